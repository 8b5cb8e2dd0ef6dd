//! Pictures for people: the first layer's filters (section 7.6.1), the
//! responses of the first convolution to one image (7.6.2), and learning
//! curves.

use std::path::Path;

use anyhow::{Context, Result};
use models::EpochMetrics;
use ndarray::{ArrayView3, ArrayView4, Axis};
use plotters::prelude::*;

/// Writes an 8-bit grayscale or RGB PNG.
fn write_png(path: &Path, width: usize, height: usize, color: png::ColorType, pixels: &[u8]) -> Result<()> {
    let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), width as u32, height as u32);
    enc.set_color(color);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header()?.write_image_data(pixels)?;
    Ok(())
}

/// Tiles `maps` (`(K, H, W)`, one gray image each, scaled to its own range
/// with high values dark as the book's `gray_r`) in a grid of `cols`
/// columns, each pixel drawn `zoom` times larger.
fn gray_grid(maps: ArrayView3<'_, f32>, cols: usize, zoom: usize, path: &Path) -> Result<()> {
    let (k, h, w) = maps.dim();
    let rows = k.div_ceil(cols);
    let gap = zoom.max(2);
    let (cw, ch) = (w * zoom + gap, h * zoom + gap);
    let (width, height) = (cols * cw + gap, rows * ch + gap);
    let mut pixels = vec![255u8; width * height];
    for (i, map) in maps.outer_iter().enumerate() {
        let lo = map.iter().copied().fold(f32::INFINITY, f32::min);
        let hi = map.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let span = if hi > lo { hi - lo } else { 1.0 };
        let (x0, y0) = (gap + (i % cols) * cw, gap + (i / cols) * ch);
        for ((y, x), &v) in map.indexed_iter() {
            let shade = 255.0 - 255.0 * (v - lo) / span;
            for dy in 0..zoom {
                let row = (y0 + y * zoom + dy) * width + x0 + x * zoom;
                pixels[row..row + zoom].fill(shade.round() as u8);
            }
        }
    }
    write_png(path, width, height, png::ColorType::Grayscale, &pixels)
}

/// The first convolution's filters `(FN, C, FH, FW)`: channel 0 of each, in
/// gray, as the book draws them.
pub fn filters(weights: ArrayView4<'_, f32>, path: &Path) -> Result<()> {
    gray_grid(weights.index_axis(Axis(1), 0), 10, 12, path)
}

/// Response maps `(FN, OH, OW)` of one image.
pub fn responses(maps: ArrayView3<'_, f32>, path: &Path) -> Result<()> {
    gray_grid(maps, 10, 4, path)
}

/// Loads a TrueType font for chart labels from the usual system places;
/// charts are drawn without text when none is found.
fn register_font() -> bool {
    const CANDIDATES: [&str; 3] = [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
        "/Library/Fonts/Arial.ttf",
    ];
    for path in CANDIDATES {
        if let Ok(bytes) = std::fs::read(path) {
            // plotters keeps fonts for the life of the program.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                return true;
            }
        }
    }
    false
}

/// Loss and accuracy per epoch, side by side.
pub fn curves(epochs: &[EpochMetrics], path: &Path) -> Result<()> {
    let text = register_font();
    let root = BitMapBackend::new(path, (1000, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(500);
    let n = epochs.len().max(2) as f64;
    let max_loss = epochs.iter().map(|m| m.loss).fold(0.0, f64::max).max(1e-6) * 1.1;
    let lo_acc = epochs
        .iter()
        .flat_map(|m| [m.train_accuracy, m.test_accuracy])
        .fold(1.0, f64::min)
        .min(0.9)
        * 100.0;

    let mut chart = ChartBuilder::on(&left);
    chart.margin(15);
    if text {
        chart
            .caption("training loss", ("sans-serif", 20))
            .x_label_area_size(30)
            .y_label_area_size(45);
    }
    let mut chart = chart.build_cartesian_2d(1.0..n, 0.0..max_loss)?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc("epoch");
    } else {
        mesh.disable_x_mesh().x_labels(0).y_labels(0);
    }
    mesh.draw()?;
    chart.draw_series(LineSeries::new(
        epochs.iter().map(|m| (m.epoch as f64, m.loss)),
        BLUE.stroke_width(2),
    ))?;

    let mut chart = ChartBuilder::on(&right);
    chart.margin(15);
    if text {
        chart
            .caption("accuracy (%)", ("sans-serif", 20))
            .x_label_area_size(30)
            .y_label_area_size(45);
    }
    let mut chart = chart.build_cartesian_2d(1.0..n, lo_acc.floor()..100.0)?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc("epoch");
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw()?;
    let train = chart.draw_series(LineSeries::new(
        epochs.iter().map(|m| (m.epoch as f64, 100.0 * m.train_accuracy)),
        GREEN.stroke_width(2),
    ))?;
    if text {
        train
            .label("train")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], GREEN));
    }
    let test = chart.draw_series(LineSeries::new(
        epochs.iter().map(|m| (m.epoch as f64, 100.0 * m.test_accuracy)),
        RED.stroke_width(2),
    ))?;
    if text {
        test.label("test")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], RED));
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE)
            .draw()?;
    }
    root.present()?;
    Ok(())
}
