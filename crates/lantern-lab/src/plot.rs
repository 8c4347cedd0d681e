//! What the plots share: the bundled font, colours, ranges and PNG encoding.

use std::ops::Range;
use std::sync::Once;

use anyhow::{anyhow, Context, Result};
use plotters::style::{register_font, FontStyle, RGBColor};

/// The font family every text style names.
pub(crate) const FONT: &str = "sans-serif";

/// Grid lines at labelled ticks, and the finer ones between them.
pub(crate) const GRID: RGBColor = RGBColor(205, 205, 205);
pub(crate) const LIGHT_GRID: RGBColor = RGBColor(240, 240, 240);

/// Series colours, distinct and readable on white.
pub(crate) fn color(i: usize) -> RGBColor {
    const COLORS: [RGBColor; 10] = [
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(255, 127, 14),
        RGBColor(23, 190, 207),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
        RGBColor(188, 189, 34),
    ];
    COLORS[i % COLORS.len()]
}

/// Registers the bundled font under [`FONT`], once per process.
pub(crate) fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bytes are a valid TrueType font compiled in; a failure would leave text
        // undrawn, which the plot's errors then report.
        let _ = register_font(FONT, FontStyle::Normal, ttf_noto_sans::REGULAR);
    });
}

pub(crate) fn plot_error(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("drawing the plot: {e}")
}

/// The range of `values` widened by `pad` of its span on each side; 0..1 for no values.
pub(crate) fn padded(values: impl Iterator<Item = f64>, pad: f64) -> Range<f64> {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        return 0.0..1.0;
    }
    let span = (hi - lo).max(1e-9);
    lo - span * pad..hi + span * pad
}

/// `rgb` (`width` × `height` pixels, 3 bytes each) as the bytes of a PNG file.
pub(crate) fn encode_png(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>> {
    let mut png = Vec::new();
    let mut encoder = png::Encoder::new(&mut png, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().context("encoding the plot as PNG")?;
    writer.write_image_data(rgb).context("encoding the plot as PNG")?;
    writer.finish().context("encoding the plot as PNG")?;
    Ok(png)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_the_values_and_survive_no_values() {
        assert_eq!(padded([1.0, 3.0].into_iter(), 0.5), 0.0..4.0);
        assert_eq!(padded(std::iter::empty(), 0.1), 0.0..1.0);
        assert_eq!(padded([f64::NAN].into_iter(), 0.1), 0.0..1.0);
        let r = padded([2.0].into_iter(), 0.1);
        assert!(r.start < 2.0 && r.end > 2.0);
    }
}
