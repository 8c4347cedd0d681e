//! The sparsity sweep's plot: one PNG, two panels side by side. Left, perplexity change
//! against FFN sparsity, a line per criterion; right, decode speed against sparsity, with
//! dense speed as a dashed reference line.
//!
//! Text is drawn with a font compiled into the binary (Noto Sans), so the plot looks the
//! same on every machine and needs no system fonts. The image is drawn in memory and
//! encoded by `png`, then written atomically.

use std::ops::Range;
use std::path::Path;

use anyhow::Result;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::plot::{color, encode_png, padded, plot_error, register, FONT, GRID, LIGHT_GRID};

/// Each panel's size in pixels.
const PANEL: (u32, u32) = (760, 560);
/// Height of the title strip above the panels.
const TITLE_HEIGHT: u32 = 48;
/// The perplexity change (%) the cost panel shows at most.
const COST_CAP: f64 = 40.0;

/// One criterion's measured points, the dense point first.
#[derive(Debug)]
pub(crate) struct Curve {
    /// The criterion, as the legend names it.
    pub(crate) name: String,
    /// Per point: FFN neurons zeroed (%), perplexity change from dense (%) and decode
    /// speed relative to dense (×), if measured.
    pub(crate) points: Vec<(f64, f64, Option<f64>)>,
}

/// Draws `curves` under `title` into a PNG written atomically at `path`; without `speed`,
/// leaves the speed panel out.
///
/// # Errors
/// When the file cannot be written.
pub(crate) fn draw(path: &Path, title: &str, curves: &[Curve], speed: bool) -> Result<()> {
    let png = render(title, curves, speed)?;
    Ok(lantern_io::write_atomic(path, &png)?)
}

/// The plot as the bytes of a PNG file.
fn render(title: &str, curves: &[Curve], speed: bool) -> Result<Vec<u8>> {
    register();
    let panels = if speed { 2 } else { 1 };
    let (width, height) = (PANEL.0 * panels, PANEL.1 + TITLE_HEIGHT);
    let mut rgb = vec![0; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let root = root.titled(title, (FONT, 26)).map_err(plot_error)?;
        let (left, right) = root.split_horizontally(PANEL.0);
        let x = sparsity_range(curves);
        cost_panel(&left, curves, x.clone())?;
        if speed {
            speed_panel(&right, curves, x)?;
        }
        root.present().map_err(plot_error)?;
    }
    encode_png(&rgb, width, height)
}

type Area<'b> = DrawingArea<BitMapBackend<'b>, Shift>;

/// Perplexity change against sparsity, a line per criterion.
fn cost_panel(area: &Area<'_>, curves: &[Curve], x: Range<f64>) -> Result<()> {
    // Past COST_CAP a criterion has failed; its line leaves the top of the panel, so
    // that the differences that matter, near dense, stay visible.
    let changes = curves.iter().flat_map(|c| c.points.iter().map(|p| p.1.min(COST_CAP)));
    let y = padded(changes.chain([0.0]), 0.08);
    // Whole percents once the curves span ten of them, tenths below that.
    let decimals = if y.end - y.start >= 10.0 { 0 } else { 1 };
    let half_step = 0.5 / 10f64.powi(decimals as i32);
    let label = move |v: &f64| {
        if v.abs() < half_step {
            "0".to_string()
        } else {
            format!("{v:+.decimals$}")
        }
    };
    let mut chart = panel(area, "Perplexity cost", x, y)?;
    mesh(&mut chart, "perplexity change vs dense (%, capped at +40)", &label)?;
    for (i, curve) in curves.iter().enumerate() {
        let points: Vec<(f64, f64)> = curve.points.iter().map(|p| (p.0, p.1)).collect();
        series(&mut chart, &curve.name, color(i), points)?;
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft)
}

/// Decode speed relative to dense against sparsity, a line per criterion, over a dashed
/// line at 1×.
fn speed_panel(area: &Area<'_>, curves: &[Curve], x: Range<f64>) -> Result<()> {
    let ratios = curves.iter().flat_map(|c| c.points.iter().filter_map(|p| p.2));
    let y = padded(ratios.chain([0.8, 1.2]), 0.1);
    let mut chart = panel(area, "Decode speed", x.clone(), y)?;
    mesh(&mut chart, "decode speed vs dense, paired runs (×)", &|v: &f64| format!("{v:.2}×"))?;
    let grey = RGBColor(110, 110, 110).stroke_width(2);
    chart
        .draw_series(DashedLineSeries::new([(x.start, 1.0), (x.end, 1.0)], 10, 6, grey))
        .map_err(plot_error)?
        .label("dense")
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], grey));
    for (i, curve) in curves.iter().enumerate() {
        let points: Vec<(f64, f64)> =
            curve.points.iter().filter_map(|p| Some((p.0, p.2?))).collect();
        series(&mut chart, &curve.name, color(i), points)?;
    }
    legend(&mut chart, SeriesLabelPosition::LowerLeft)
}

/// The axes and grid of a panel: sparsity along x, `y_desc` up y with `y_label`s.
fn mesh(chart: &mut Chart<'_, '_>, y_desc: &str, y_label: &dyn Fn(&f64) -> String) -> Result<()> {
    chart
        .configure_mesh()
        .x_desc("FFN neurons zeroed on the evaluation text (%)")
        .y_desc(y_desc)
        .x_label_formatter(&whole)
        .y_label_formatter(y_label)
        .axis_desc_style((FONT, 16))
        .label_style((FONT, 14))
        .light_line_style(LIGHT_GRID)
        .bold_line_style(GRID)
        .draw()
        .map_err(plot_error)
}

/// A captioned chart on `area` over `x` and `y`.
fn panel<'a, 'b>(
    area: &'a Area<'b>,
    caption: &str,
    x: Range<f64>,
    y: Range<f64>,
) -> Result<Chart<'a, 'b>> {
    ChartBuilder::on(area)
        .caption(caption, (FONT, 20))
        .margin(16)
        .x_label_area_size(52)
        .y_label_area_size(72)
        .build_cartesian_2d(x, y)
        .map_err(plot_error)
}

type Chart<'a, 'b> =
    ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A line through `points` with a dot on each, in the legend as `name`.
fn series<'a, 'b: 'a>(
    chart: &mut Chart<'a, 'b>,
    name: &str,
    color: RGBColor,
    points: Vec<(f64, f64)>,
) -> Result<()> {
    let style = color.filled().stroke_width(2);
    chart
        .draw_series(LineSeries::new(points, style).point_size(4))
        .map_err(plot_error)?
        .label(name)
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
    Ok(())
}

fn legend<'a, 'b: 'a>(chart: &mut Chart<'a, 'b>, position: SeriesLabelPosition) -> Result<()> {
    chart
        .configure_series_labels()
        .position(position)
        .label_font((FONT, 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(plot_error)
}

/// A tick label without decimals.
fn whole(v: &f64) -> String {
    format!("{v:.0}")
}

/// The x range: from 0 to past the sparsest point, at least to 10%.
fn sparsity_range(curves: &[Curve]) -> Range<f64> {
    let most = curves.iter().flat_map(|c| c.points.iter().map(|p| p.0)).fold(10.0, f64::max);
    0.0..most * 1.05
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curves() -> Vec<Curve> {
        let dense = (0.0, 0.0, Some(1.0));
        vec![
            Curve { name: "cats".into(), points: vec![dense, (30.1, 5.7, Some(0.95))] },
            Curve { name: "gate-up".into(), points: vec![dense, (50.4, 3.2, Some(1.02))] },
        ]
    }

    #[test]
    fn draws_a_png_in_place_of_the_old_file_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sweep.png");
        std::fs::write(&path, "old").unwrap();
        draw(&path, "title", &curves(), true).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
        let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(files.len(), 1);
        // Without speeds, one panel; a name without .png still gets a PNG.
        let other = dir.path().join("sweep.image");
        draw(&other, "title", &curves(), false).unwrap();
        assert!(std::fs::read(&other).unwrap().starts_with(b"\x89PNG"));
    }

    #[test]
    fn a_directory_that_is_not_there_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("sweep.png");
        let err = draw(&path, "title", &curves(), true).unwrap_err();
        assert!(format!("{err:#}").contains("missing"), "{err:#}");
    }

    #[test]
    fn the_sparsity_range_covers_the_points_and_survives_no_points() {
        assert_eq!(sparsity_range(&curves()).start, 0.0);
        assert!(sparsity_range(&curves()).end > 50.4);
        assert_eq!(sparsity_range(&[]), 0.0..10.5);
    }
}
