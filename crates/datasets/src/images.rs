//! One's own pictures as a network sees them: PNG or JPEG files of any size,
//! grey or colour, read ([`read_picture`]) and prepared as a network's input
//! ([`prepare`]).
//!
//! For a one-channel 28x28 input the picture is made as MNIST's digits were
//! made: grey, bright ink on a dark background (a drawing with dark ink on
//! light paper is inverted), the ink's bounding box scaled with antialiasing
//! to fit 20x20 keeping its aspect ratio, and pasted into a black 28x28 field
//! so that its centre of mass lands on the field's centre. For a
//! three-channel input (CIFAR-10's 3x32x32) the picture is resized, as
//! [`resize`] does for any input.
//!
//! ```
//! use datasets::images::{prepare, Picture, Preparation};
//! // A 60x40 sheet of white paper with a black bar drawn off-centre.
//! let (height, width) = (60, 40);
//! let mut pixels = vec![255u8; height * width];
//! for y in 10..40 {
//!     for x in 5..11 {
//!         pixels[y * width + x] = 0;
//!     }
//! }
//! let picture = Picture { channels: 1, height, width, pixels, source: "bar.png".into() };
//! let (input, how) = prepare(&picture, [1, 28, 28])?;
//! assert_eq!(input.len(), 28 * 28);
//! assert_eq!(input.iter().max(), Some(&255)); // ink is bright, as in MNIST
//! assert_eq!(input[0], 0); // on a black field
//! assert_eq!(how, Preparation::Mnist { inverted: true, ink_box: [10, 5, 30, 6] });
//! // The bar, 30x6 in the picture, is 20x4 now: its longer side is 20.
//! let rows = (0..28).filter(|y| (0..28).any(|x| input[y * 28 + x] > 0)).count();
//! let cols = (0..28).filter(|x| (0..28).any(|y| input[y * 28 + x] > 0)).count();
//! assert_eq!((rows, cols), (20, 4));
//!
//! // Bytes that are no image are an error naming the source.
//! let err = datasets::images::decode_picture(b"hello", "notes.png".as_ref()).unwrap_err();
//! assert!(err.to_string().starts_with("notes.png: not a PNG or JPEG image"), "{err}");
//! # Ok::<(), datasets::Error>(())
//! ```

use std::borrow::Cow;
use std::io::Cursor;
use std::path::Path;

use image::imageops::{self, FilterType};
use image::metadata::Orientation;
use image::{DynamicImage, ImageBuffer, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits, Luma};

use crate::Error;

/// The longest side a picture may have; larger ones are refused before
/// their pixels are decoded.
pub const MAX_SIDE: u32 = 16384;

/// The most pixels a picture may have (2^26, 64 Mi, 192 MiB as RGB);
/// more are refused before decoding.
pub const MAX_PIXELS: u64 = 1 << 26;

/// The largest file [`read_picture`] reads (512 MiB): about what an
/// uncompressed PNG of [`MAX_PIXELS`] 16-bit RGBA pixels holds.
pub const MAX_FILE_BYTES: u64 = 512 << 20;

/// The least that the brightest ink must stand above the background, in grey
/// levels (of 255), for a picture to hold a digit at all; below it the
/// picture is uniform (or only JPEG noise).
pub const MIN_CONTRAST: u8 = 32;

/// A decoded picture: `(C, H, W)` bytes, `C` = 1 (grey) or 3 (RGB), as read.
///
/// Transparency is flattened: a picture with an alpha channel is composited
/// over white if what it shows is mostly dark, over black if mostly bright,
/// so that strokes drawn on a transparent canvas stay visible.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Picture {
    /// 1 (grey) or 3 (red, green, blue).
    pub channels: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// `channels * height * width` bytes, one plane per channel, rows in order.
    pub pixels: Vec<u8>,
    /// Where the picture came from (its path), named in errors.
    pub source: String,
}

/// How a picture was turned into a network input, for reporting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preparation {
    /// MNIST's rule, for a one-channel input.
    Mnist {
        /// Whether the grey levels were inverted (dark ink on light paper).
        inverted: bool,
        /// The ink's bounding box in the source: top, left, height, width
        /// (to within the block a picture over 2048 pixels a side is
        /// first averaged in).
        ink_box: [usize; 4],
    },
    /// Resized as it is ([`resize`]; [`prepare`]'s rule for a
    /// three-channel input).
    Resized {
        /// The source's height and width.
        from: [usize; 2],
    },
}

/// Reads a PNG or JPEG file (format detected from the bytes, not the
/// extension), as [`decode_picture`] does.
///
/// Errors name the file and say what is wrong: missing or unreadable, empty,
/// not an image or an unsupported format, corrupt or truncated data, or too
/// large (over [`MAX_FILE_BYTES`], or over [`MAX_SIDE`] a side or
/// [`MAX_PIXELS`] in all, found from the header before decoding).
pub fn read_picture(path: &Path) -> Result<Picture, Error> {
    let io = |error| Error::Io {
        file: path.display().to_string(),
        error,
    };
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > MAX_FILE_BYTES {
        return Err(Error::format(
            &path.display().to_string(),
            format!("{len} bytes is too large for a picture (at most {MAX_FILE_BYTES})"),
        ));
    }
    let bytes = std::fs::read(path).map_err(io)?;
    decode_picture(&bytes, path)
}

/// Decodes a PNG or JPEG from bytes; `path` only names the source in errors
/// and becomes [`Picture::source`].
///
/// Grey pictures (with or without alpha) have one channel, colour ones
/// three; 16-bit samples are reduced to 8 bits, and a JPEG's EXIF
/// orientation is applied, so a phone's photo stands the right way up.
pub fn decode_picture(bytes: &[u8], path: &Path) -> Result<Picture, Error> {
    let file = path.display().to_string();
    if bytes.is_empty() {
        return Err(Error::format(&file, "the file is empty (0 bytes), not an image"));
    }
    let format = match image::guess_format(bytes) {
        Ok(format @ (ImageFormat::Png | ImageFormat::Jpeg)) => format,
        Ok(other) => {
            return Err(Error::format(
                &file,
                format!(
                    "unsupported image format {}: only PNG and JPEG are read",
                    format!("{other:?}").to_uppercase()
                ),
            ));
        }
        Err(_) => {
            let start = &bytes[..bytes.len().min(8)];
            return Err(Error::format(
                &file,
                format!("not a PNG or JPEG image (it starts with the bytes {start:02x?})"),
            ));
        }
    };
    let name = if format == ImageFormat::Png { "PNG" } else { "JPEG" };
    let fail = |e| image_error(&file, name, e);
    if format == ImageFormat::Jpeg && jpeg_truncated(bytes) {
        return Err(Error::format(
            &file,
            "corrupt or truncated JPEG data: it ends before its end-of-image marker",
        ));
    }

    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(fail)?;
    // The header is read; refuse a huge picture before its pixels are.
    let (w, h) = decoder.dimensions();
    if w > MAX_SIDE || h > MAX_SIDE || u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(Error::format(
            &file,
            format!("{w}x{h} pixels is too large (at most {MAX_SIDE} a side and {MAX_PIXELS} in all)"),
        ));
    }
    // A damaged EXIF block should not cost the picture: read it upright as stored.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(fail)?;
    image.apply_orientation(orientation);
    if image.width() == 0 || image.height() == 0 {
        return Err(Error::format(
            &file,
            format!("the {name} has no pixels ({w}x{h})"),
        ));
    }
    Ok(to_picture(image, file))
}

/// Whether a JPEG's segments stop short of its end-of-image marker. image's
/// JPEG decoder is lenient and paints what is missing grey, so a partly
/// downloaded photo would otherwise pass. This walks the markers only
/// (segment lengths, and entropy-coded data up to the next marker);
/// anything else malformed is left to the decoder.
fn jpeg_truncated(bytes: &[u8]) -> bool {
    let mut i = 2; // past the start-of-image marker
    loop {
        let Some(&[ff, marker]) = bytes.get(i..i + 2) else {
            return true;
        };
        if ff != 0xff {
            return false;
        }
        match marker {
            0xd9 => return false,         // end of image
            0xff => i += 1,               // fill byte
            0x01 | 0xd0..=0xd7 => i += 2, // no length
            _ => {
                let Some(&[hi, lo]) = bytes.get(i + 2..i + 4) else {
                    return true;
                };
                i += 2 + usize::from(u16::from_be_bytes([hi, lo]));
                if marker == 0xda {
                    // Entropy-coded data runs to the next marker: 0xff
                    // followed by anything but a stuffed 0, a restart or fill.
                    loop {
                        match bytes.get(i..i + 2) {
                            None => return true,
                            Some(&[0xff, next]) if !matches!(next, 0x00 | 0xd0..=0xd7 | 0xff) => break,
                            Some(_) => i += 1,
                        }
                    }
                }
            }
        }
    }
}

fn image_error(file: &str, name: &str, e: ImageError) -> Error {
    let message = match e {
        // Decoding from memory, an I/O error can only be the data running out.
        ImageError::Decoding(_) | ImageError::IoError(_) => format!("corrupt or truncated {name} data: {e}"),
        ImageError::Limits(_) => {
            format!("too large to decode ({e}; at most {MAX_SIDE} pixels a side and {MAX_PIXELS} in all)")
        }
        ImageError::Unsupported(_) => format!("a kind of {name} that cannot be read: {e}"),
        _ => format!("cannot decode the {name}: {e}"),
    };
    Error::format(file, message)
}

/// Flattens alpha and lays the channels out as planes.
fn to_picture(image: DynamicImage, source: String) -> Picture {
    let (width, height) = (image.width() as usize, image.height() as usize);
    let color = image.color();
    let (channels, interleaved) = match (color.has_color(), color.has_alpha()) {
        (false, false) => (1, image.into_luma8().into_raw()),
        (true, false) => (3, image.into_rgb8().into_raw()),
        (false, true) => (1, flatten_alpha(&image.into_luma_alpha8().into_raw(), 1)),
        (true, true) => (3, flatten_alpha(&image.into_rgba8().into_raw(), 3)),
    };
    let plane = height * width;
    let mut pixels = vec![0u8; channels * plane];
    for (c, out) in pixels.chunks_exact_mut(plane).enumerate() {
        for (o, px) in out.iter_mut().zip(interleaved.chunks_exact(channels)) {
            *o = px[c];
        }
    }
    Picture {
        channels,
        height,
        width,
        pixels,
        source,
    }
}

/// Composites `colors` channels plus alpha over a background that contrasts
/// with what is drawn: white if the opaque pixels are mostly dark, black if
/// mostly bright (a drawing app's transparent canvas holds no colour).
fn flatten_alpha(samples: &[u8], colors: usize) -> Vec<u8> {
    let (mut weighted, mut opacity) = (0f64, 0f64);
    for px in samples.chunks_exact(colors + 1) {
        let a = f64::from(px[colors]);
        weighted += a * f64::from(luma(&px[..colors]));
        opacity += a;
    }
    let background = if opacity > 0.0 && weighted / opacity >= 127.5 {
        0.0
    } else {
        255.0
    };
    samples
        .chunks_exact(colors + 1)
        .flat_map(|px| {
            let a = f64::from(px[colors]) / 255.0;
            px[..colors]
                .iter()
                .map(move |&v| (a * f64::from(v) + (1.0 - a) * background).round() as u8)
        })
        .collect()
}

/// ITU-R BT.601 luma, with the weights of PIL's `convert("L")`.
fn luma(rgb: &[u8]) -> u8 {
    match *rgb {
        [r, g, b] => ((299 * u32::from(r) + 587 * u32::from(g) + 114 * u32::from(b) + 500) / 1000) as u8,
        _ => rgb[0],
    }
}

/// The picture as a network with input `[C, H, W]` takes it: `C * H * W`
/// bytes, one plane per channel; for one channel, 0 is background and 255
/// full ink, as MNIST stores them.
///
/// - `C == 1`: MNIST's rule (below) for `(H, W) == (28, 28)`, and the same
///   rule scaled for other sizes (the box is 20/28 of each side).
/// - `C == 3`: [`resize`]: the RGB picture resized to `(H, W)`, not keeping its aspect
///   ratio, with image's triangle filter (bilinear; when shrinking, its
///   support widens with the ratio so that it averages every source pixel,
///   and has no overshoot, unlike Catmull-Rom), after averaging whole
///   blocks where a picture is over 8 times the input's size; grey pictures
///   are replicated to three channels.
///
/// MNIST's rule, after LeCun: "the images were centered in a 28x28 image by
/// computing the center of mass of the pixels, and translating the image so
/// as to position this point at the center of the 28x28 field", the digit
/// having been scaled to fit a 20x20 box, keeping its aspect ratio, with
/// anti-aliasing. Here:
///
/// 1. Grey: BT.601 luma of RGB. A picture over 2048 pixels a side is first
///    averaged down by a whole factor (a 4032x3024 photo by 2).
/// 2. Polarity: MNIST's ink is bright on dark. If the median of the border
///    pixels (outermost rows and columns) is over 127, the picture is dark
///    ink on light paper and is inverted.
/// 3. Ink: the background level is the border's median, its noise `s`
///    1.4826 times the border's median absolute deviation (a robust
///    standard deviation), and the contrast is how far the brightest pixel
///    rises above the background. Under [`MIN_CONTRAST`] the picture is
///    uniform: an error. Ink is found with two thresholds above the
///    background (hysteresis, as Canny's edges): pieces of 8-connected
///    pixels over `max(3 s, 5% of the contrast)` count if one of their
///    pixels reaches `max(3 s, 25% of the contrast)` and they hold at least
///    1% of the ink of the largest such piece. The low threshold keeps a clean drawing's faint
///    anti-aliased edges (and most of MNIST's own) yet not JPEG's ringing
///    at quality 90; the high one and the share drop paper grain, noise and
///    specks, which would otherwise stretch the box. Ink keeps its height
///    above the background; everything else becomes 0.
/// 4. The bounding box of the ink is cropped and scaled so that its longer
///    side is 20 pixels, with the triangle filter as above.
/// 5. Centring: the scaled crop's intensity-weighted centre of mass is
///    moved, by whole pixels, to the nearest pixel to index (14, 14) of the
///    field (`(H/2, W/2)`), clipping what falls outside. That is half a
///    pixel below and right of the geometric centre (13.5, 13.5), and it is
///    where MNIST's digits have it: each of the embedded subset's lies within
///    half a pixel of (14, 14).
/// 6. Intensities are stretched so that the brightest ink is 255.
///
/// Errors name [`Picture::source`]: a picture with no ink, a malformed
/// [`Picture`], or an input shape other than 1 or 3 channels of 1 to
/// [`MAX_SIDE`] pixels a side.
pub fn prepare(picture: &Picture, input: [usize; 3]) -> Result<(Vec<u8>, Preparation), Error> {
    check(picture, input)?;
    match input {
        [1, h, w] => mnist(picture, [h, w]),
        _ => resize(picture, input),
    }
}

/// The picture resized to `[C, H, W]` as it is, without MNIST's
/// inversion, cropping or centring (for one-channel data made otherwise,
/// such as Fashion-MNIST): the luma of a colour picture for `C == 1`, a
/// grey picture replicated for `C == 3`, with the filter of [`prepare`].
///
/// ```
/// use datasets::images::{resize, Picture, Preparation};
/// // Pure red, 3x2, for a 1x4x4 input: its luma, 76, everywhere.
/// let pixels = [vec![255; 6], vec![0; 12]].concat();
/// let red = Picture { channels: 3, height: 3, width: 2, pixels, source: "red".into() };
/// let (input, how) = resize(&red, [1, 4, 4])?;
/// assert_eq!((input, how), (vec![76; 16], Preparation::Resized { from: [3, 2] }));
/// # Ok::<(), datasets::Error>(())
/// ```
pub fn resize(picture: &Picture, input: [usize; 3]) -> Result<(Vec<u8>, Preparation), Error> {
    check(picture, input)?;
    let [c, h, w] = input;
    let from = [picture.height, picture.width];
    let to_bytes = |plane: &[u8]| -> Vec<u8> {
        resize_plane(plane, from, [h, w], |v| f32::from(v) / 255.0)
            .iter()
            .map(|&v| (v * 255.0).round() as u8)
            .collect()
    };
    let bytes = if c == 1 {
        to_bytes(&grey(picture))
    } else {
        let planes: Vec<Vec<u8>> = picture
            .pixels
            .chunks_exact(from[0] * from[1])
            .map(to_bytes)
            .collect();
        // A grey picture fills all three channels.
        (0..3)
            .flat_map(|c| planes[c % planes.len()].iter().copied())
            .collect()
    };
    Ok((bytes, Preparation::Resized { from }))
}

/// Refuses a malformed picture or an input shape that cannot be made.
fn check(picture: &Picture, [c, h, w]: [usize; 3]) -> Result<(), Error> {
    let file = picture.source.as_str();
    let Picture {
        channels,
        height,
        width,
        ..
    } = *picture;
    let expected = channels.checked_mul(height).and_then(|n| n.checked_mul(width));
    if !matches!(channels, 1 | 3) || height == 0 || width == 0 || expected != Some(picture.pixels.len()) {
        return Err(Error::format(
            file,
            format!(
                "a picture of {channels} channels of {height}x{width} pixels holds {} bytes: expected 1 or 3 \
                 channels, at least one pixel, and channels x height x width bytes",
                picture.pixels.len()
            ),
        ));
    }
    if !matches!(c, 1 | 3) || h == 0 || w == 0 || h > MAX_SIDE as usize || w > MAX_SIDE as usize {
        return Err(Error::format(
            file,
            format!(
                "cannot prepare a network input of shape [{c}, {h}, {w}]: expected 1 or 3 channels of 1 to \
                 {MAX_SIDE} pixels a side"
            ),
        ));
    }
    Ok(())
}

/// The picture's grey levels (borrowed when it is grey already).
fn grey(picture: &Picture) -> Cow<'_, [u8]> {
    if picture.channels == 1 {
        return picture.pixels.as_slice().into();
    }
    let plane = picture.height * picture.width;
    let (r, rest) = picture.pixels.split_at(plane);
    let (g, b) = rest.split_at(plane);
    r.iter()
        .zip(g)
        .zip(b)
        .map(|((&r, &g), &b)| luma(&[r, g, b]))
        .collect::<Vec<_>>()
        .into()
}

/// The longest side MNIST's rule works at: larger pictures are first
/// averaged down by a whole factor (a 4032x3024 photo by 2), which bounds
/// the memory of finding the ink's pieces and lowers the noise.
const WORK_SIDE: usize = 2048;

/// Ink pixels rise above the background by more than this share of the
/// contrast (brightest pixel above background), or 3 noise deviations.
const WEAK_FRACTION: f32 = 0.05;

/// A piece of ink counts only if some pixel in it rises this share of the
/// contrast above the background (and 3 noise deviations).
const STRONG_FRACTION: f32 = 0.25;

/// A piece of ink holding less than this share of the largest piece's ink is
/// a speck (dust, a stray mark) and is dropped.
const MIN_PIECE: f32 = 0.01;

/// Side of the box the ink fits in, as a share of the field: MNIST's 20 of 28.
const BOX_SHARE: f64 = 20.0 / 28.0;

fn mnist(picture: &Picture, [field_h, field_w]: [usize; 2]) -> Result<(Vec<u8>, Preparation), Error> {
    let no_ink = |paper: f32| {
        Error::format(
            &picture.source,
            format!(
                "no ink found: the image is uniform (nothing stands out from its background, grey level {paper:.0}, \
                 by {MIN_CONTRAST} levels or more)"
            ),
        )
    };
    let grey = grey(picture);
    let k = picture.height.max(picture.width).div_ceil(WORK_SIDE);
    let [height, width] = [picture.height.div_ceil(k), picture.width.div_ceil(k)];
    let mut work = block_mean(&grey, [picture.height, picture.width], [k, k], f32::from);
    drop(grey);

    // Background and its noise from the border (outermost rows and columns).
    let mut border: Vec<f32> = Vec::with_capacity(2 * (height + width));
    for (y, row) in work.chunks_exact(width).enumerate() {
        if y == 0 || y == height - 1 || width <= 2 {
            border.extend_from_slice(row);
        } else {
            border.extend([row[0], row[width - 1]]);
        }
    }
    let paper = median(&mut border);
    let inverted = paper > 127.5;
    let background = if inverted { 255.0 - paper } else { paper };
    // Each pixel's height above the background, ink up.
    for v in &mut work {
        *v = if inverted { 255.0 - *v } else { *v } - background;
    }
    border.iter_mut().for_each(|v| *v = (*v - paper).abs());
    let noise = 1.4826 * median(&mut border);
    let contrast = work.iter().fold(0f32, |m, &v| m.max(v));
    if contrast < f32::from(MIN_CONTRAST) {
        return Err(no_ink(paper));
    }
    let weak = (3.0 * noise).max(WEAK_FRACTION * contrast).min(contrast / 2.0);
    let strong = weak.max(STRONG_FRACTION * contrast);

    // Pieces: 8-connected weak ink holding some strong ink, specks dropped.
    let (labels, pieces) = pieces(&work, [height, width], weak);
    let largest = pieces
        .iter()
        .filter(|p| p.peak >= strong)
        .fold(0f32, |m, p| m.max(p.mass));
    let kept = |p: &Piece| p.peak >= strong && p.mass >= MIN_PIECE * largest;
    // keep[label], label 0 being background.
    let keep: Vec<bool> = std::iter::once(false).chain(pieces.iter().map(kept)).collect();
    let [mut top, mut left, mut bottom, mut right] = [usize::MAX, usize::MAX, 0, 0];
    for p in pieces.iter().filter(|p| kept(p)) {
        top = top.min(p.bounds[0]);
        left = left.min(p.bounds[1]);
        bottom = bottom.max(p.bounds[2]);
        right = right.max(p.bounds[3]);
    }
    // The brightest pixel's piece always counts (see `weak` and `strong`).
    if top > bottom {
        return Err(no_ink(paper));
    }
    let [box_h, box_w] = [bottom + 1 - top, right + 1 - left];
    let crop: Vec<f32> = (top..=bottom)
        .flat_map(|y| (left..=right).map(move |x| y * width + x))
        .map(|i| {
            if keep[labels[i] as usize] {
                work[i] / 255.0
            } else {
                0.0
            }
        })
        .collect();
    drop((work, labels));
    let ink_box = [
        top * k,
        left * k,
        (box_h * k).min(picture.height - top * k),
        (box_w * k).min(picture.width - left * k),
    ];

    // Scale the box to fit, keeping its aspect ratio.
    let fit_h = (field_h as f64 * BOX_SHARE).round().max(1.0);
    let fit_w = (field_w as f64 * BOX_SHARE).round().max(1.0);
    let scale = (fit_h / box_h as f64).min(fit_w / box_w as f64);
    let new_h = ((box_h as f64 * scale).round() as usize).clamp(1, fit_h as usize);
    let new_w = ((box_w as f64 * scale).round() as usize).clamp(1, fit_w as usize);
    let digit = resize_plane(&crop, [box_h, box_w], [new_h, new_w], |v| v);

    // Centre of mass onto index (H/2, W/2), at whole pixels.
    let (mut mass, mut my, mut mx) = (0f64, 0f64, 0f64);
    for (i, &v) in digit.iter().enumerate() {
        let v = f64::from(v);
        mass += v;
        my += v * (i / new_w) as f64;
        mx += v * (i % new_w) as f64;
    }
    if mass <= 0.0 {
        return Err(no_ink(paper));
    }
    let dy = (field_h as f64 / 2.0 - my / mass).round() as isize;
    let dx = (field_w as f64 / 2.0 - mx / mass).round() as isize;
    let mut field = vec![0f32; field_h * field_w];
    for (i, &v) in digit.iter().enumerate() {
        let y = (i / new_w) as isize + dy;
        let x = (i % new_w) as isize + dx;
        if (0..field_h as isize).contains(&y) && (0..field_w as isize).contains(&x) {
            field[y as usize * field_w + x as usize] = v;
        }
    }

    let brightest = field.iter().fold(0f32, |m, &v| m.max(v));
    if brightest <= 0.0 {
        return Err(no_ink(paper));
    }
    let bytes = field
        .iter()
        .map(|&v| (v / brightest * 255.0).round() as u8)
        .collect();
    Ok((bytes, Preparation::Mnist { inverted, ink_box }))
}

/// The lower median (reorders `values`, which is not empty).
fn median(values: &mut [f32]) -> f32 {
    let middle = (values.len() - 1) / 2;
    *values.select_nth_unstable_by(middle, f32::total_cmp).1
}

/// A connected piece of ink.
struct Piece {
    /// Its ink: the sum of its pixels' heights above the background.
    mass: f32,
    /// Its highest pixel's height.
    peak: f32,
    /// Top, left, bottom, right (inclusive).
    bounds: [usize; 4],
}

/// Labels the 8-connected pieces of pixels above `weak` from 1 (0 is
/// background) and measures them: label `l` is `pieces[l - 1]`.
fn pieces(work: &[f32], [height, width]: [usize; 2], weak: f32) -> (Vec<u32>, Vec<Piece>) {
    let mut labels = vec![0u32; work.len()];
    let mut pieces = Vec::new();
    let mut stack = Vec::new();
    for start in 0..work.len() {
        if labels[start] != 0 || work[start] <= weak {
            continue;
        }
        let label = pieces.len() as u32 + 1;
        let (y, x) = (start / width, start % width);
        let mut piece = Piece {
            mass: 0.0,
            peak: 0.0,
            bounds: [y, x, y, x],
        };
        labels[start] = label;
        stack.push(start);
        while let Some(i) = stack.pop() {
            let (y, x) = (i / width, i % width);
            piece.mass += work[i];
            piece.peak = piece.peak.max(work[i]);
            let b = &mut piece.bounds;
            *b = [b[0].min(y), b[1].min(x), b[2].max(y), b[3].max(x)];
            for ny in y.saturating_sub(1)..=(y + 1).min(height - 1) {
                for nx in x.saturating_sub(1)..=(x + 1).min(width - 1) {
                    let n = ny * width + nx;
                    if labels[n] == 0 && work[n] > weak {
                        labels[n] = label;
                        stack.push(n);
                    }
                }
            }
        }
        pieces.push(piece);
    }
    (labels, pieces)
}

/// Means of `ky x kx` blocks (smaller at the right and bottom edges).
/// `value` reads a sample.
fn block_mean<T: Copy>(
    src: &[T],
    [h, w]: [usize; 2],
    [ky, kx]: [usize; 2],
    value: impl Fn(T) -> f32,
) -> Vec<f32> {
    if (ky, kx) == (1, 1) {
        return src.iter().map(|&v| value(v)).collect();
    }
    let (rh, rw) = (h.div_ceil(ky), w.div_ceil(kx));
    let mut sum = vec![0f32; rh * rw];
    for (y, row) in src.chunks_exact(w).enumerate() {
        let out = &mut sum[(y / ky) * rw..][..rw];
        for (x, &v) in row.iter().enumerate() {
            out[x / kx] += value(v);
        }
    }
    for (i, s) in sum.iter_mut().enumerate() {
        let (by, bx) = (i / rw, i % rw);
        let rows = ky.min(h - by * ky);
        let cols = kx.min(w - bx * kx);
        *s /= (rows * cols) as f32;
    }
    sum
}

/// Resizes one plane to `[nh, nw]` values in [0, 1] with image's triangle
/// filter, first averaging blocks while the source stays over 4 times the
/// target along an axis: the filter, its support widened by the remaining
/// ratio, still averages every source pixel, and sees few enough to stay
/// cheap on a large photo.
/// `unit` reads a sample as a value in [0, 1].
fn resize_plane<T: Copy>(
    src: &[T],
    [h, w]: [usize; 2],
    [nh, nw]: [usize; 2],
    unit: impl Fn(T) -> f32,
) -> Vec<f32> {
    let [ky, kx] = [(h / (4 * nh)).max(1), (w / (4 * nw)).max(1)];
    let reduced = block_mean(src, [h, w], [ky, kx], unit);
    let (rh, rw) = (h.div_ceil(ky), w.div_ceil(kx));
    let image = ImageBuffer::<Luma<f32>, Vec<f32>>::from_raw(rw as u32, rh as u32, reduced)
        .expect("the buffer holds rh * rw values");
    imageops::resize(&image, nw as u32, nh as u32, FilterType::Triangle).into_raw()
}
