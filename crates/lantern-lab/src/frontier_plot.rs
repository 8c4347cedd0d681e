//! The size/quality frontier's plot: perplexity against weight bytes, a line per way of
//! choosing blocks (objective or policy), each point labelled with its formats.

use std::path::Path;

use anyhow::{bail, Context, Result};
use plotters::prelude::*;

use crate::plot::{color, encode_png, padded, plot_error, register, FONT, GRID, LIGHT_GRID};

/// The image's size in pixels.
const SIZE: (u32, u32) = (1100, 700);

/// One measured variant.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Point {
    /// The line it belongs to (an objective, a policy).
    pub(crate) series: String,
    /// Its formats, as the point's label.
    pub(crate) label: String,
    /// Weight bytes, in MB.
    pub(crate) mb: f64,
    /// Perplexity on the evaluation text.
    pub(crate) ppl: f64,
}

/// Reads points from tab-separated lines `series, label, MB, perplexity`; lines starting
/// with `#` are comments.
///
/// # Errors
/// A line with other fields, naming its number.
pub(crate) fn parse(text: &str) -> Result<Vec<Point>> {
    let mut points = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let [series, label, mb, ppl] = fields[..] else {
            bail!("line {}: expected series, label, MB and perplexity, tab-separated", n + 1);
        };
        let number = |v: &str| -> Result<f64> {
            v.trim().parse().with_context(|| format!("line {}: {v:?} is not a number", n + 1))
        };
        points.push(Point {
            series: series.into(),
            label: label.into(),
            mb: number(mb)?,
            ppl: number(ppl)?,
        });
    }
    Ok(points)
}

/// Draws `points` under `title` into a PNG written atomically at `path`.
///
/// # Errors
/// When the file cannot be written.
pub(crate) fn draw(path: &Path, title: &str, points: &[Point]) -> Result<()> {
    register();
    let (width, height) = SIZE;
    let mut rgb = vec![0; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let x = padded(points.iter().map(|p| p.mb), 0.08);
        let y = padded(points.iter().map(|p| p.ppl), 0.08);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FONT, 24))
            .margin(20)
            .x_label_area_size(52)
            .y_label_area_size(72)
            .build_cartesian_2d(x, y)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("weight bytes, also read per token (MB)")
            .y_desc("perplexity on the evaluation text")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .axis_desc_style((FONT, 16))
            .label_style((FONT, 14))
            .light_line_style(LIGHT_GRID)
            .bold_line_style(GRID)
            .draw()
            .map_err(plot_error)?;
        let mut names: Vec<&str> = Vec::new();
        for p in points {
            if !names.contains(&p.series.as_str()) {
                names.push(&p.series);
            }
        }
        for (i, name) in names.iter().enumerate() {
            let mut line: Vec<&Point> = points.iter().filter(|p| p.series == *name).collect();
            line.sort_by(|a, b| a.mb.total_cmp(&b.mb));
            let style = color(i).filled().stroke_width(2);
            chart
                .draw_series(
                    LineSeries::new(line.iter().map(|p| (p.mb, p.ppl)), style).point_size(5),
                )
                .map_err(plot_error)?
                .label(*name)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
            // Each label a few pixels right of and above its point, clear of the dot.
            let font = (FONT, 13).into_font().color(&color(i));
            let labels = line.iter().map(|p| {
                EmptyElement::at((p.mb, p.ppl)) + Text::new(p.label.clone(), (9, -16), font.clone())
            });
            chart.draw_series(labels).map_err(plot_error)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font((FONT, 15))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(plot_error)?;
        root.present().map_err(plot_error)?;
    }
    Ok(lantern_io::write_atomic(path, &encode_png(&rgb, width, height)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "# series\tlabel\tMB\tPPL\n\
                         nearest\tQ4_0\t89.9\t29.75\n\
                         nearest\tQ3_0\t76.7\t73.10\n\
                         scale-search\tQ3_0\t76.7\t40.39\n";

    #[test]
    fn reads_tab_separated_points_and_draws_them() {
        let points = parse(TABLE).unwrap();
        assert_eq!(points.len(), 3);
        assert_eq!(
            points[2],
            Point { series: "scale-search".into(), label: "Q3_0".into(), mb: 76.7, ppl: 40.39 }
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("frontier.png");
        draw(&path, "title", &points).unwrap();
        assert!(std::fs::read(&path).unwrap().starts_with(b"\x89PNG\r\n\x1a\n"));
    }

    #[test]
    fn bad_lines_are_named() {
        let err = parse("nearest\tQ4_0\t89.9\n").unwrap_err().to_string();
        assert!(err.contains("line 1: expected"), "{err}");
        let err = parse("a\tb\tc\td\n").unwrap_err().to_string();
        assert!(err.contains("line 1: \"c\" is not a number"), "{err}");
    }
}
