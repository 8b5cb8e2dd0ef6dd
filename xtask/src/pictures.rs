//! Pictures for people: the first layer's filters (section 7.6.1),
//! learning curves, and [`Figure`], the titled grid of gray or colour
//! panels that these and the responses, patches and predictions of 7.6.2
//! are drawn with.
//!
//! Every picture carries its title, labels and colour-scale note as text,
//! in DejaVu Sans compiled into the binary, so it reads the same on every
//! machine. Pixels are drawn as integer-zoomed blocks, never resampled.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, Once, OnceLock};

use anyhow::{Context, Result, bail, ensure};
use models::EpochMetrics;
use ndarray::{ArrayD, ArrayView3, ArrayView4, Axis, Ix3};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// The (width, height) in pixels of the picture [`curves`] writes.
pub const CURVES_SIZE: (u32, u32) = (1000, 470);

/// Registers the embedded DejaVu Sans as plotters' "sans-serif", once per
/// process (plotters keeps fonts in a global table).
fn ensure_font() {
    static FONT: Once = Once::new();
    FONT.call_once(|| {
        let regular =
            plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular());
        let bold = plotters::style::register_font("sans-serif", FontStyle::Bold, dejavu::sans::bold());
        assert!(regular.is_ok() && bold.is_ok(), "the embedded DejaVu Sans parses");
    });
}

fn font(size: u32, bold: bool) -> FontDesc<'static> {
    let style = if bold { FontStyle::Bold } else { FontStyle::Normal };
    FontDesc::new(FontFamily::SansSerif, f64::from(size), style)
}

/// (advance, offset) by (glyph, size, bold), for [`glyph`].
type GlyphCache = Mutex<HashMap<(char, u32, bool), (f64, f64)>>;

/// A glyph's advance and the offset from the pen at which its ink is drawn.
///
/// plotters' ab_glyph text (0.3) starts every glyph's ink at the whole
/// pixel left of the pen, ignoring side bearings, which spaces small text
/// unevenly (a gap after every "1"). Drawing glyph by glyph from these
/// metrics centres each glyph's ink in its advance, which is what DejaVu's
/// digits and most letters do. Measured once per glyph, size and weight by
/// drawing it.
fn glyph(c: char, size: u32, bold: bool) -> (f64, f64) {
    static CACHE: OnceLock<GlyphCache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(&m) = cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&(c, size, bold))
    {
        return m;
    }
    ensure_font();
    // Sixteen in a row, for the fractional advance.
    let run: String = std::iter::repeat_n(c, 16).collect();
    let advance = font(size, bold)
        .box_size(&run)
        .map_or(0.0, |(w, _)| f64::from(w) / 16.0);
    let (w, h) = (3 * size + 8, 2 * size + 8);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let mut backend = BitMapBackend::with_buffer(&mut buf, (w, h));
        let style = font(size, bold).color(&BLACK);
        let _ = backend.draw_text(&c.to_string(), &style, (4, 4 + size as i32 / 2));
    }
    let inked: Vec<u32> = (0..w)
        .filter(|&x| (0..h).any(|y| buf[((y * w + x) * 3) as usize] < 255))
        .collect();
    let offset = match (inked.first(), inked.last()) {
        (Some(&a), Some(&b)) => (advance - f64::from(b - a + 1)) / 2.0,
        _ => 0.0,
    };
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert((c, size, bold), (advance, offset));
    (advance, offset)
}

/// The width of `text` in pixels, as [`draw_line`] draws it.
fn text_width(text: &str, size: u32, bold: bool) -> u32 {
    text.chars().map(|c| glyph(c, size, bold).0).sum::<f64>().ceil() as u32
}

/// `text` cut to at most `width` pixels, ending in "…" when cut.
fn fit(text: &str, size: u32, width: u32) -> String {
    if text_width(text, size, false) <= width {
        return text.to_string();
    }
    let mut chars: Vec<char> = text.chars().collect();
    while !chars.is_empty() {
        chars.pop();
        let kept = String::from_iter(&chars);
        let cut = format!("{}…", kept.trim_end());
        if text_width(&cut, size, false) <= width {
            return cut;
        }
    }
    String::new()
}

/// `v` to at most 3 significant digits, for range and scale notes.
fn sig3(v: f32) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let mag = v.abs().log10().floor() as i32;
    if !(-3..3).contains(&mag) {
        return format!("{v:.2e}");
    }
    let decimals = (2 - mag).max(0) as usize;
    let s = format!("{v:.decimals$}");
    // Trailing zeros only widen the cell.
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// One line of text at a place: `y` is the top of the line box, which is
/// `size` pixels tall (ascender to descender).
struct Line {
    text: String,
    x: i32,
    y: i32,
    size: u32,
    bold: bool,
    centred: bool,
    color: RGBColor,
}

/// Draws `line` glyph by glyph (see [`glyph`]) with `draw`, plotters'
/// `draw_text` of a backend or drawing area. plotters' ab_glyph text puts
/// the baseline half a size below the anchor; DejaVu's ascender is 0.8 of
/// the line box, so the anchor goes 0.3 of a size under the line's top.
fn draw_line(
    line: &Line,
    mut draw: impl FnMut(&str, &TextStyle<'_>, (i32, i32)) -> Result<()>,
) -> Result<()> {
    let style = font(line.size, line.bold)
        .color(&line.color)
        .pos(Pos::new(HPos::Left, VPos::Top));
    let y = line.y + (0.3 * f64::from(line.size)).round() as i32;
    let mut pen = f64::from(line.x);
    if line.centred {
        pen -= f64::from(text_width(&line.text, line.size, line.bold)) / 2.0;
    }
    let mut one = [0u8; 4];
    for c in line.text.chars() {
        let (advance, offset) = glyph(c, line.size, line.bold);
        if !c.is_whitespace() {
            draw(
                c.encode_utf8(&mut one),
                &style,
                ((pen + offset).round() as i32, y),
            )?;
        }
        pen += advance;
    }
    Ok(())
}

/// One picture in a figure: a gray map (H, W) or a colour image (3, H, W),
/// values in any range. (1, H, W) is taken as a gray map. Non-finite values
/// are drawn red.
pub struct Panel {
    /// Small text above the panel, cut with "…" when wider than its cell.
    pub label: String,
    /// Shape [H, W] or [1, H, W] (gray), or [3, H, W] (red, green, blue).
    pub image: ArrayD<f32>,
}

/// A row-wrapped group of panels under a heading.
pub struct Section {
    /// The line above the panels; an empty heading takes no room.
    pub heading: String,
    /// The panels, left to right, then top to bottom.
    pub panels: Vec<Panel>,
    /// Panels per row (at least 1).
    pub columns: usize,
}

/// How panel values map to gray.
///
/// Gray maps follow the book's convention (matplotlib's `gray_r`): low
/// values white, high values black. Colour panels keep their colours: low
/// values dark, high values bright, each channel on the same range.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scale {
    /// Each panel stretched to its own min..max, which is printed under it.
    PerPanel,
    /// Every panel of the figure on one min..max (values given), e.g. raw
    /// pixels 0..1; values outside are clamped.
    Fixed {
        /// The value drawn white (black in colour panels).
        lo: f32,
        /// The value drawn black (full intensity in colour panels).
        hi: f32,
    },
}

/// A titled figure of panel sections, written as a PNG by [`Figure::write`].
///
/// From the top: the title, the subtitle (one line per `\n`), the
/// colour-scale note, then each section's heading and its grid of panels,
/// each panel with its label above it (and its range under it for
/// [`Scale::PerPanel`]). Each section's panels are zoomed by one integer
/// factor, the smallest that makes the longest side at least 56 pixels
/// (so under 112: a 3x3 map 19x, 5x5 12x, 28x28 2x); larger panels are
/// drawn 1:1. Zooming repeats pixels, never smooths them.
pub struct Figure {
    /// The first line, in bold.
    pub title: String,
    /// What the figure shows, under the title; may hold several lines.
    pub subtitle: String,
    /// The groups of panels, top to bottom.
    pub sections: Vec<Section>,
    /// How values map to gray; the figure says which on its face.
    pub scale: Scale,
}

// Layout, in pixels.
const MARGIN: i32 = 14;
const TITLE: u32 = 22;
const TEXT: u32 = 14;
const HEADING: u32 = 15;
const LABEL: u32 = 12;
const RANGE: u32 = 11;
const LINE_GAP: i32 = 4;
const COL_GAP: i32 = 12;
const ROW_GAP: i32 = 10;
const SECTION_GAP: i32 = 12;
/// Labels may widen a cell up to this many pixels before they are cut.
const LABEL_ROOM: u32 = 150;
/// The side, in pixels, a section's longest panel side is zoomed to reach.
const MIN_SIDE: usize = 56;

const INK: RGBColor = RGBColor(0, 0, 0);
const SOFT_INK: RGBColor = RGBColor(70, 70, 70);
const FRAME: RGBColor = RGBColor(170, 170, 170);
const DARK_GREEN: RGBColor = RGBColor(0, 150, 0);

/// The integer zoom that brings a panel whose longest side is `side`
/// pixels to at least [`MIN_SIDE`]; as the smallest such zoom, it stays
/// under twice that. Panels already that large are drawn 1:1.
fn zoom_for(side: usize) -> usize {
    MIN_SIDE.div_ceil(side.max(1)).max(1)
}

/// A panel's (channels, height, width), or `None` for a shape it cannot be.
fn panel_dims(image: &ArrayD<f32>) -> Option<(usize, usize, usize)> {
    match *image.shape() {
        [h, w] => Some((1, h, w)),
        [c @ (1 | 3), h, w] => Some((c, h, w)),
        _ => None,
    }
}

/// The (lo, hi) of a panel's finite values; (0, 0) when there are none.
fn finite_range(image: &ArrayD<f32>) -> (f32, f32) {
    let (lo, hi) = image
        .iter()
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    if lo > hi { (0.0, 0.0) } else { (lo, hi) }
}

/// Where a panel goes, and the values it spans.
struct Placed {
    section: usize,
    index: usize,
    /// Top-left corner of the zoomed pixels.
    x: i32,
    y: i32,
    zoom: usize,
    lo: f32,
    hi: f32,
}

/// Everything [`Figure::write`] draws, with its place.
struct Layout {
    width: u32,
    height: u32,
    lines: Vec<Line>,
    panels: Vec<Placed>,
}

impl Figure {
    /// The colour-scale note drawn under the subtitle.
    fn scale_note(&self) -> String {
        let colour = self
            .sections
            .iter()
            .flat_map(|s| &s.panels)
            .any(|p| matches!(panel_dims(&p.image), Some((3, _, _))));
        match self.scale {
            Scale::PerPanel => {
                let mut note =
                    "gray scale per panel: white = lowest, black = highest (range under each panel)"
                        .to_string();
                if colour {
                    note.push_str("; colour panels: each stretched to its range");
                }
                note
            }
            Scale::Fixed { lo, hi } => {
                let mut note = format!("gray scale: white = {}, black = {}", sig3(lo), sig3(hi));
                if colour {
                    note.push_str(&format!(
                        "; colour panels: {}..{} as dark..bright",
                        sig3(lo),
                        sig3(hi)
                    ));
                }
                note
            }
        }
    }

    fn layout(&self) -> Layout {
        ensure_font();
        let mut lines = Vec::new();
        let mut panels = Vec::new();
        let mut text_right = 0u32; // widest line of text, for the figure width
        let mut grid_right = 0i32;
        let mut y = MARGIN;
        let mut line = |lines: &mut Vec<Line>, text: String, y: i32, size, bold, color| {
            text_right = text_right.max(text_width(&text, size, bold));
            lines.push(Line {
                text,
                x: MARGIN,
                y,
                size,
                bold,
                centred: false,
                color,
            });
        };

        line(&mut lines, self.title.clone(), y, TITLE, true, INK);
        y += TITLE as i32 + LINE_GAP + 2;
        for sub in self.subtitle.lines().filter(|l| !l.trim().is_empty()) {
            line(&mut lines, sub.to_string(), y, TEXT, false, SOFT_INK);
            y += TEXT as i32 + LINE_GAP;
        }
        line(&mut lines, self.scale_note(), y, TEXT, false, INK);
        y += TEXT as i32 + LINE_GAP;

        let per_panel = self.scale == Scale::PerPanel;
        for (s, section) in self.sections.iter().enumerate() {
            y += SECTION_GAP;
            if !section.heading.is_empty() {
                line(&mut lines, section.heading.clone(), y, HEADING, true, INK);
                y += HEADING as i32 + 6;
            }
            if section.panels.is_empty() {
                continue;
            }
            let dims: Vec<_> = section
                .panels
                .iter()
                .map(|p| panel_dims(&p.image).unwrap_or((1, 1, 1)))
                .collect();
            let zoom = zoom_for(dims.iter().map(|&(_, h, w)| h.max(w)).max().unwrap_or(1));
            let ranges: Vec<_> = section
                .panels
                .iter()
                .map(|p| match self.scale {
                    Scale::PerPanel => finite_range(&p.image),
                    Scale::Fixed { lo, hi } => (lo, hi),
                })
                .collect();
            let range_text: Vec<_> = ranges
                .iter()
                .map(|&(lo, hi)| format!("{}..{}", sig3(lo), sig3(hi)))
                .collect();
            let pw = dims.iter().map(|&(_, _, w)| w * zoom).max().unwrap_or(1) as u32;
            let ph = dims.iter().map(|&(_, h, _)| h * zoom).max().unwrap_or(1) as i32;
            let label_w = section
                .panels
                .iter()
                .map(|p| text_width(&p.label, LABEL, false))
                .max()
                .unwrap_or(0);
            let range_w = if per_panel {
                range_text
                    .iter()
                    .map(|t| text_width(t, RANGE, false))
                    .max()
                    .unwrap_or(0)
            } else {
                0
            };
            // The frame takes one pixel each side.
            let cell_w = (pw + 2).max(label_w.min(LABEL_ROOM.max(pw + 2))).max(range_w);
            let has_labels = section.panels.iter().any(|p| !p.label.is_empty());
            let columns = section.columns.clamp(1, section.panels.len());
            for (i, panel) in section.panels.iter().enumerate() {
                let (col, row) = ((i % columns) as i32, (i / columns) as i32);
                if col == 0 && row > 0 {
                    y += ROW_GAP;
                }
                let cell_x = MARGIN + col * (cell_w as i32 + COL_GAP);
                let centre = cell_x + cell_w as i32 / 2;
                let mut top = y;
                if has_labels {
                    let label = fit(&panel.label, LABEL, cell_w);
                    lines.push(Line {
                        text: label,
                        x: centre,
                        y: top,
                        size: LABEL,
                        bold: false,
                        centred: true,
                        color: INK,
                    });
                    top += LABEL as i32 + 3;
                }
                let (_, _, w) = dims[i];
                panels.push(Placed {
                    section: s,
                    index: i,
                    x: centre - (w * zoom) as i32 / 2,
                    y: top + 1,
                    zoom,
                    lo: ranges[i].0,
                    hi: ranges[i].1,
                });
                top += ph + 2;
                if per_panel {
                    top += 2;
                    lines.push(Line {
                        text: range_text[i].clone(),
                        x: centre,
                        y: top,
                        size: RANGE,
                        bold: false,
                        centred: true,
                        color: SOFT_INK,
                    });
                    top += RANGE as i32;
                }
                grid_right = grid_right.max(cell_x + cell_w as i32);
                if col == columns as i32 - 1 || i == section.panels.len() - 1 {
                    y = top;
                }
            }
        }
        let width = (grid_right.max(MARGIN + text_right as i32) + MARGIN).max(200) as u32;
        let height = (y + MARGIN) as u32;
        Layout {
            width,
            height,
            lines,
            panels,
        }
    }

    /// The (width, height) in pixels `write` will produce, for tests and callers.
    pub fn size(&self) -> (u32, u32) {
        let layout = self.layout();
        (layout.width, layout.height)
    }

    /// Where panel `index` of section `section` is drawn: the
    /// (x, y, width, height) in pixels of its zoomed pixels (inside its
    /// one-pixel frame), or `None` if there is no such panel.
    pub fn panel_rect(&self, section: usize, index: usize) -> Option<(u32, u32, u32, u32)> {
        let layout = self.layout();
        let p = layout
            .panels
            .iter()
            .find(|p| p.section == section && p.index == index)?;
        let (_, h, w) = panel_dims(&self.sections[section].panels[index].image)?;
        Some((p.x as u32, p.y as u32, (w * p.zoom) as u32, (h * p.zoom) as u32))
    }

    /// Draws the figure into a PNG at `path` (creating parent directories is the caller's job).
    pub fn write(&self, path: &Path) -> Result<()> {
        for section in &self.sections {
            for p in &section.panels {
                match panel_dims(&p.image) {
                    Some((_, h, w)) if h > 0 && w > 0 => {}
                    _ => bail!(
                        "panel {:?} of section {:?} has shape {:?}, not [H, W], [1, H, W] or [3, H, W]",
                        p.label,
                        section.heading,
                        p.image.shape()
                    ),
                }
            }
        }
        if let Scale::Fixed { lo, hi } = self.scale {
            ensure!(
                lo.is_finite() && hi.is_finite() && lo < hi,
                "a fixed scale needs finite lo < hi, not {lo}..{hi}"
            );
        }
        let layout = self.layout();
        let mut rgb = vec![0u8; layout.width as usize * layout.height as usize * 3];
        let mut backend = BitMapBackend::with_buffer(&mut rgb, (layout.width, layout.height));
        let err = |e| anyhow::anyhow!("drawing {}: {e}", path.display());
        backend
            .draw_rect((0, 0), (layout.width as i32, layout.height as i32), &WHITE, true)
            .map_err(err)?;
        let mut pixels = Vec::new();
        for p in &layout.panels {
            let image = &self.sections[p.section].panels[p.index].image;
            let (w, h) = render(image, p.zoom, p.lo, p.hi, &mut pixels);
            backend.blit_bitmap((p.x, p.y), (w, h), &pixels).map_err(err)?;
            let (x1, y1) = (p.x + w as i32, p.y + h as i32);
            backend
                .draw_rect((p.x - 1, p.y - 1), (x1, y1), &FRAME, false)
                .map_err(err)?;
        }
        for line in &layout.lines {
            draw_line(line, |text, style, pos| {
                backend.draw_text(text, style, pos).map_err(err)
            })?;
        }
        backend.present().map_err(err)?;
        drop(backend);
        save_png(path, layout.width, layout.height, rgb)
    }
}

/// Writes RGB pixels as a PNG, as one gray channel when every pixel is
/// gray (a third of the bytes), best compression: figures are committed
/// to the repository and shown in READMEs.
fn save_png(path: &Path, width: u32, height: u32, rgb: Vec<u8>) -> Result<()> {
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    use image::{ExtendedColorType, ImageEncoder};
    let gray = rgb.chunks_exact(3).all(|p| p[0] == p[1] && p[1] == p[2]);
    let (bytes, color) = if gray {
        (rgb.chunks_exact(3).map(|p| p[0]).collect(), ExtendedColorType::L8)
    } else {
        (rgb, ExtendedColorType::Rgb8)
    };
    let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    PngEncoder::new_with_quality(
        std::io::BufWriter::new(file),
        CompressionType::Best,
        FilterType::Adaptive,
    )
    .write_image(&bytes, width, height, color)
    .with_context(|| format!("writing {}", path.display()))
}

/// Fills `out` with `image` as RGB bytes, each value a `zoom` x `zoom`
/// block, on the range `lo..hi`; returns the (width, height) drawn.
fn render(image: &ArrayD<f32>, zoom: usize, lo: f32, hi: f32, out: &mut Vec<u8>) -> (u32, u32) {
    let view = if image.ndim() == 2 {
        image.view().insert_axis(Axis(0))
    } else {
        image.view()
    };
    let view = view.into_dimensionality::<Ix3>().expect("checked by panel_dims");
    let (c, h, w) = view.dim();
    let span = hi - lo;
    // A constant panel (span 0) is drawn as its lowest value, as matplotlib does.
    let unit = |v: f32| {
        if span > 0.0 {
            ((v - lo) / span).clamp(0.0, 1.0)
        } else {
            0.0
        }
    };
    let byte = |t: f32| (255.0 * t).round() as u8;
    let row_len = w * zoom * 3;
    out.clear();
    out.resize(row_len * h * zoom, 0);
    for y in 0..h {
        let row = &mut out[y * zoom * row_len..][..row_len];
        for x in 0..w {
            let rgb = if c == 3 {
                let v = [view[[0, y, x]], view[[1, y, x]], view[[2, y, x]]];
                if v.iter().all(|v| v.is_finite()) {
                    v.map(|v| byte(unit(v)))
                } else {
                    [255, 0, 0]
                }
            } else {
                let v = view[[0, y, x]];
                if v.is_finite() {
                    [byte(1.0 - unit(v)); 3]
                } else {
                    [255, 0, 0]
                }
            };
            for px in row[x * zoom * 3..][..zoom * 3].chunks_exact_mut(3) {
                px.copy_from_slice(&rgb);
            }
        }
        let (first, rest) = out[y * zoom * row_len..][..zoom * row_len].split_at_mut(row_len);
        for copy in rest.chunks_exact_mut(row_len) {
            copy.copy_from_slice(first);
        }
    }
    ((w * zoom) as u32, (h * zoom) as u32)
}

/// One gray panel per map of `maps` (K, H, W), labelled by its index after a hash sign.
fn numbered(maps: ArrayView3<'_, f32>) -> Vec<Panel> {
    maps.outer_iter()
        .enumerate()
        .map(|(k, m)| Panel {
            label: format!("#{k}"),
            image: m.to_owned().into_dyn(),
        })
        .collect()
}

/// The figure [`filters`] writes.
pub fn filters_figure(weights: ArrayView4<'_, f32>, title: &str) -> Figure {
    let (n, c, fh, fw) = weights.dim();
    Figure {
        title: title.into(),
        subtitle: format!(
            "the first convolution's {n} filters ({fh}x{fw}), input channel 0 of {c}, \
             drawn as the book's figure 7-9"
        ),
        sections: vec![Section {
            heading: String::new(),
            panels: numbered(weights.index_axis(Axis(1), 0)),
            columns: 10,
        }],
        scale: Scale::PerPanel,
    }
}

/// The first convolution's filters `(FN, C, FH, FW)`: channel 0 of each, in
/// gray, as the book draws them (figure 7-9), under `title`.
pub fn filters(weights: ArrayView4<'_, f32>, title: &str, path: &Path) -> Result<()> {
    filters_figure(weights, title).write(path)
}

/// Loss and accuracy per epoch, side by side, under one title; the picture
/// is [`CURVES_SIZE`].
pub fn curves(epochs: &[EpochMetrics], path: &Path) -> Result<()> {
    ensure_font();
    let root = BitMapBackend::new(path, CURVES_SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let title = match epochs.last() {
        Some(m) => format!(
            "training curves: {} epochs, final test accuracy {:.2}%",
            epochs.len(),
            100.0 * m.test_accuracy
        ),
        None => "training curves: no epochs".to_string(),
    };
    let (head, body) = root.split_vertically(44);
    let title = Line {
        text: title,
        x: MARGIN,
        y: MARGIN,
        size: TITLE,
        bold: true,
        centred: false,
        color: INK,
    };
    draw_line(&title, |text, style, pos| Ok(head.draw_text(text, style, pos)?))?;
    let (left, right) = body.split_horizontally(CURVES_SIZE.0 / 2);

    let n = epochs.len().max(2) as f64;
    let whole = |x: &f64| {
        if (x - x.round()).abs() < 1e-9 {
            format!("{x:.0}")
        } else {
            String::new()
        }
    };
    let x_labels = epochs.len().clamp(2, 10);
    let caption = font(17, false);
    let axis = font(14, false);

    let max_loss = epochs.iter().map(|m| m.loss).fold(0.0, f64::max).max(1e-6) * 1.1;
    let mut chart = ChartBuilder::on(&left)
        .margin(12)
        .caption("training loss per epoch", caption.clone())
        .x_label_area_size(42)
        .y_label_area_size(62)
        .build_cartesian_2d(1.0..n, 0.0..max_loss)?;
    chart
        .configure_mesh()
        .x_labels(x_labels)
        .x_label_formatter(&whole)
        .x_desc("epoch")
        .y_desc("cross-entropy loss")
        .axis_desc_style(axis.clone())
        .draw()?;
    chart
        .draw_series(
            LineSeries::new(
                epochs.iter().map(|m| (m.epoch as f64, m.loss)),
                BLUE.stroke_width(2),
            )
            .point_size(3),
        )?
        .label("train")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE)
        .label_font(axis.clone())
        .draw()?;

    let lo_acc = epochs
        .iter()
        .flat_map(|m| [m.train_accuracy, m.test_accuracy])
        .fold(1.0, f64::min)
        .min(0.9)
        * 100.0;
    let mut chart = ChartBuilder::on(&right)
        .margin(12)
        .caption("accuracy per epoch (%)", caption)
        .x_label_area_size(42)
        .y_label_area_size(62)
        .build_cartesian_2d(1.0..n, lo_acc.floor()..100.0)?;
    chart
        .configure_mesh()
        .x_labels(x_labels)
        .x_label_formatter(&whole)
        .x_desc("epoch")
        .y_desc("accuracy (%)")
        .axis_desc_style(axis.clone())
        .draw()?;
    for (name, color, pick) in [
        (
            "train",
            DARK_GREEN,
            (|m: &EpochMetrics| m.train_accuracy) as fn(&EpochMetrics) -> f64,
        ),
        ("test", RED, |m: &EpochMetrics| m.test_accuracy),
    ] {
        chart
            .draw_series(
                LineSeries::new(
                    epochs.iter().map(|m| (m.epoch as f64, 100.0 * pick(m))),
                    color.stroke_width(2),
                )
                .point_size(3),
            )?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .border_style(BLACK)
        .background_style(WHITE)
        .label_font(axis)
        .draw()?;
    root.present()?;
    Ok(())
}
