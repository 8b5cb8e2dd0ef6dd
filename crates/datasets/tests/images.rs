//! Reading one's own pictures and preparing them as MNIST's digits were made:
//! oracles independent of the code (MNIST's own digits, drawings made here,
//! files broken on purpose).
#![cfg(feature = "images")]

use std::io::Cursor;
use std::path::Path;

use datasets::images::{Picture, Preparation, decode_picture, prepare, read_picture, resize};
use image::{DynamicImage, ImageFormat};

/// Intensity-weighted centre of mass (row, column) in pixel-index coordinates.
fn centre_of_mass(img: &[u8], width: usize) -> (f64, f64) {
    let (mut m, mut y, mut x) = (0.0, 0.0, 0.0);
    for (i, &v) in img.iter().enumerate() {
        let v = f64::from(v);
        m += v;
        y += v * (i / width) as f64;
        x += v * (i % width) as f64;
    }
    (y / m, x / m)
}

/// Rows and columns spanned by non-zero pixels.
fn ink_extent(img: &[u8], width: usize) -> (usize, usize) {
    let height = img.len() / width;
    let rows: Vec<usize> = (0..height)
        .filter(|&y| img[y * width..][..width].iter().any(|&v| v > 0))
        .collect();
    let cols: Vec<usize> = (0..width)
        .filter(|&x| (0..height).any(|y| img[y * width + x] > 0))
        .collect();
    (
        rows[rows.len() - 1] + 1 - rows[0],
        cols[cols.len() - 1] + 1 - cols[0],
    )
}

fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(&a, &b)| f64::from(a.abs_diff(b)))
        .sum::<f64>()
        / a.len() as f64
}

fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut bytes = Vec::new();
    image.write_to(&mut Cursor::new(&mut bytes), format).unwrap();
    bytes
}

fn jpeg(image: &DynamicImage, quality: u8) -> Vec<u8> {
    let mut bytes = Vec::new();
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, quality);
    image.write_with_encoder(encoder).unwrap();
    bytes
}

fn grey_image(width: usize, height: usize, pixels: Vec<u8>) -> DynamicImage {
    DynamicImage::ImageLuma8(image::GrayImage::from_raw(width as u32, height as u32, pixels).unwrap())
}

/// A "7" (a bar and a diagonal, strokes 20 units wide, 120x170 units in
/// all) drawn at `scale` with its top-left stroke centre at `at` (x, y), as
/// coverage in [0, 1] from 4x4 samples a pixel.
fn seven(width: usize, height: usize, scale: f32, at: (f32, f32)) -> Vec<f32> {
    let strokes = [((0.0, 0.0), (100.0, 0.0)), ((100.0, 0.0), (40.0, 150.0))];
    let radius = 10.0 * scale;
    let near = |px: f32, py: f32| {
        strokes.iter().any(|&((x0, y0), (x1, y1))| {
            let (ax, ay) = (at.0 + x0 * scale, at.1 + y0 * scale);
            let (bx, by) = (at.0 + x1 * scale, at.1 + y1 * scale);
            let (dx, dy) = (bx - ax, by - ay);
            let t = (((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy)).clamp(0.0, 1.0);
            let (ex, ey) = (px - ax - t * dx, py - ay - t * dy);
            ex * ex + ey * ey <= radius * radius
        })
    };
    let mut ink = vec![0f32; width * height];
    for (i, v) in ink.iter_mut().enumerate() {
        let (y, x) = ((i / width) as f32, (i % width) as f32);
        let hits = (0..16)
            .filter(|s| near(x + (s % 4) as f32 / 4.0 + 0.125, y + (s / 4) as f32 / 4.0 + 0.125))
            .count();
        *v = hits as f32 / 16.0;
    }
    ink
}

/// Coverage as bytes: dark ink on white paper, or bright ink on black.
fn paint(ink: &[f32], dark_on_white: bool) -> Vec<u8> {
    ink.iter()
        .map(|&c| {
            let v = (c * 255.0).round() as u8;
            if dark_on_white { 255 - v } else { v }
        })
        .collect()
}

fn grey_picture(width: usize, height: usize, pixels: Vec<u8>) -> Picture {
    Picture {
        channels: 1,
        height,
        width,
        pixels,
        source: format!("drawn {width}x{height}"),
    }
}

fn prepare_mnist(picture: &Picture) -> (Vec<u8>, Preparation) {
    let (input, how) = prepare(picture, [1, 28, 28]).unwrap();
    assert_eq!(input.len(), 784);
    (input, how)
}

/// MNIST's digits are already prepared, so preparing them again should
/// nearly reproduce them: the rule recovers LeCun's.
#[test]
fn mnist_digits_survive_a_round_trip_through_png() {
    let mnist = datasets::embedded().unwrap();
    let pixels = mnist.test.pixels();
    let n = pixels.shape()[0];
    let dir = tempfile::tempdir().unwrap();
    let mut diffs = Vec::with_capacity(n);
    let (mut worst_original, mut worst_prepared) = (0f64, 0f64);
    for i in 0..n {
        let original: Vec<u8> = pixels.slice(ndarray::s![i, 0, .., ..]).iter().copied().collect();
        let png = encode(&grey_image(28, 28, original.clone()), ImageFormat::Png);
        // A few through the file system, the rest from memory.
        let picture = if i < 20 {
            let path = dir.path().join(format!("mnist-{i}.png"));
            std::fs::write(&path, &png).unwrap();
            read_picture(&path).unwrap()
        } else {
            decode_picture(&png, Path::new("mnist.png")).unwrap()
        };
        assert_eq!((picture.channels, picture.height, picture.width), (1, 28, 28));
        assert_eq!(picture.pixels, original, "PNG is lossless");
        let (prepared, how) = prepare_mnist(&picture);
        assert!(
            matches!(how, Preparation::Mnist { inverted: false, .. }),
            "{how:?}"
        );
        diffs.push(mean_abs_diff(&prepared, &original));
        // MNIST centred each digit's centre of mass on index (14, 14) at
        // whole pixels, so it lies within half a pixel of it; so must ours.
        for (img, worst) in [(&original, &mut worst_original), (&prepared, &mut worst_prepared)] {
            let (y, x) = centre_of_mass(img, 28);
            *worst = worst.max((y - 14.0).abs()).max((x - 14.0).abs());
        }
    }
    let mean = diffs.iter().sum::<f64>() / n as f64;
    diffs.sort_by(f64::total_cmp);
    let (median, p99, worst) = (diffs[n / 2], diffs[n * 99 / 100], diffs[n - 1]);
    let over_5 = diffs.iter().filter(|&&d| d > 5.0).count();
    println!(
        "MNIST round trip over {n} digits: mean |difference| {mean:.3} grey levels, median {median:.3}, \
         99th percentile {p99:.3}, worst {worst:.2}, {over_5} over 5; centre of mass at most \
         {worst_original:.3} px from (14, 14) in MNIST, {worst_prepared:.3} prepared"
    );
    assert!(worst_original <= 0.5 + 1e-9, "{worst_original}");
    assert!(worst_prepared <= 0.5 + 1e-9, "{worst_prepared}");
    assert!(mean < 0.3, "{mean}");
    assert!(p99 < 0.6, "{p99}");
    // Where MNIST's box is set by pixels fainter than 5% of the ink, or by a
    // faint separate speck, ours is smaller and the digit comes out larger.
    assert!(over_5 <= 25, "{over_5}");
}

#[test]
fn a_drawn_digit_is_prepared_as_mnist_would() {
    let (width, height) = (200, 300);
    // Off-centre: the digit spans x 20..140, y 30..200.
    let ink = seven(width, height, 1.0, (30.0, 40.0));
    let on_paper = grey_picture(width, height, paint(&ink, true));
    let (input, how) = prepare_mnist(&on_paper);
    assert_eq!(
        how,
        Preparation::Mnist {
            inverted: true,
            ink_box: [30, 20, 170, 120]
        }
    );
    let (rows, cols) = ink_extent(&input, 28);
    let (y, x) = centre_of_mass(&input, 28);
    println!("drawn 7, 200x300: ink spans {rows}x{cols}, centre of mass ({y:.3}, {x:.3})");
    assert!(rows.max(cols).abs_diff(20) <= 1, "{rows}x{cols}");
    // 120/170 of 20 is 14.1; the filter's support may smear a pixel more.
    assert!(cols.abs_diff(14) <= 2, "{rows}x{cols}");
    assert!((y - 14.0).abs() <= 1.0 && (x - 14.0).abs() <= 1.0, "({y}, {x})");
    assert_eq!(input.iter().max(), Some(&255));
    assert!(
        input.iter().filter(|&&v| v > 0).count() > 60,
        "the strokes survive"
    );

    // White ink on black: not inverted, and the same input.
    let on_black = grey_picture(width, height, paint(&ink, false));
    let (input_black, how) = prepare_mnist(&on_black);
    assert!(
        matches!(how, Preparation::Mnist { inverted: false, .. }),
        "{how:?}"
    );
    let black_diff = mean_abs_diff(&input, &input_black);
    println!("white on black against black on white: mean |difference| {black_diff:.3}");
    assert!(black_diff < 0.5, "{black_diff}");

    // The same drawing at 56x56, elsewhere on its canvas: nearly the same.
    let small = grey_picture(56, 56, paint(&seven(56, 56, 0.3, (6.0, 4.0)), true));
    let (input_small, _) = prepare_mnist(&small);
    let small_diff = mean_abs_diff(&input, &input_small);
    let (ys, xs) = centre_of_mass(&input_small, 28);
    println!("56x56 against 200x300: mean |difference| {small_diff:.3}, centre of mass ({ys:.3}, {xs:.3})");
    assert!(small_diff < 8.0, "{small_diff}");
    assert!(
        (ys - 14.0).abs() <= 1.0 && (xs - 14.0).abs() <= 1.0,
        "({ys}, {xs})"
    );
}

/// Photographs are noisy and carry specks; neither should move the box.
#[test]
fn paper_grain_and_a_speck_do_not_move_the_box() {
    let (width, height) = (200, 300);
    let ink = seven(width, height, 1.0, (30.0, 40.0));
    let (clean, _) = prepare_mnist(&grey_picture(width, height, paint(&ink, true)));
    // Grey paper (about 200) with grain (uniform, +-20), a pencil-grey
    // stroke (about 60), and a speck of dust far from the digit.
    let mut state = 12345u32;
    let mut grain = || {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (state >> 24) as f32 / 255.0 * 40.0 - 20.0
    };
    let mut photo: Vec<u8> = ink
        .iter()
        .map(|&c| (200.0 - 140.0 * c + grain()).round().clamp(0.0, 255.0) as u8)
        .collect();
    for y in 260..263 {
        for x in 170..173 {
            photo[y * width + x] = 40;
        }
    }
    let (input, how) = prepare_mnist(&grey_picture(width, height, photo));
    let Preparation::Mnist { inverted, ink_box } = how else {
        panic!("{how:?}")
    };
    println!(
        "grainy photo: ink box {ink_box:?}, mean |difference| from clean {:.3}",
        mean_abs_diff(&input, &clean)
    );
    assert!(inverted);
    for (found, drawn) in ink_box.iter().zip([30, 20, 170, 120]) {
        assert!(found.abs_diff(drawn) <= 3, "{ink_box:?}");
    }
    assert!(mean_abs_diff(&input, &clean) < 10.0);
}

#[test]
fn png_and_jpeg_grey_rgb_and_rgba_decode() {
    let (width, height) = (60, 90);
    let ink = seven(width, height, 0.35, (10.0, 12.0));
    let grey = paint(&ink, true);
    let (reference, _) = prepare_mnist(&grey_picture(width, height, grey.clone()));
    let rgb: Vec<u8> = grey.iter().flat_map(|&v| [v, v, v]).collect();
    // Black ink on a transparent canvas, as drawing apps save it.
    let rgba: Vec<u8> = ink
        .iter()
        .flat_map(|&c| [0, 0, 0, (c * 255.0).round() as u8])
        .collect();
    let grey_alpha: Vec<u8> = ink.iter().flat_map(|&c| [0, (c * 255.0).round() as u8]).collect();
    let (w, h) = (width as u32, height as u32);
    let images = [
        ("grey", 1, grey_image(width, height, grey.clone())),
        (
            "RGB",
            3,
            DynamicImage::ImageRgb8(image::RgbImage::from_raw(w, h, rgb).unwrap()),
        ),
        (
            "RGBA",
            3,
            DynamicImage::ImageRgba8(image::RgbaImage::from_raw(w, h, rgba).unwrap()),
        ),
        (
            "grey and alpha",
            1,
            DynamicImage::ImageLumaA8(image::GrayAlphaImage::from_raw(w, h, grey_alpha).unwrap()),
        ),
        (
            "grey, 16-bit",
            1,
            DynamicImage::ImageLuma16(grey_image(width, height, grey).to_luma16()),
        ),
    ];
    for (what, channels, image) in &images {
        let mut files = vec![("PNG", encode(image, ImageFormat::Png))];
        // JPEG has neither alpha nor 16 bits.
        if matches!(image, DynamicImage::ImageLuma8(_) | DynamicImage::ImageRgb8(_)) {
            files.push(("JPEG", jpeg(image, 90)));
        }
        for (format, bytes) in files {
            // The extension says nothing: the bytes do.
            let picture = decode_picture(&bytes, Path::new("picture.dat")).unwrap();
            assert_eq!(
                (
                    picture.channels,
                    picture.height,
                    picture.width,
                    picture.pixels.len()
                ),
                (*channels, height, width, channels * width * height),
                "{format} {what}"
            );
            let (input, how) = prepare_mnist(&picture);
            assert!(
                matches!(how, Preparation::Mnist { inverted: true, .. }),
                "{format} {what}: {how:?}"
            );
            let diff = mean_abs_diff(&input, &reference);
            println!("{format} {what}: mean |difference| from the grey original {diff:.3}");
            // JPEG's ringing may grow the ink's box by a pixel, rescaling it.
            let bound = if format == "PNG" { 0.5 } else { 1.0 };
            assert!(diff < bound, "{format} {what}: {diff}");
        }
    }
}

fn expect_error(result: Result<Picture, datasets::Error>, path: &Path, what: &str) {
    let err = result.expect_err(what).to_string();
    println!("{what}: {err}");
    assert!(err.contains(&path.display().to_string()), "{what}: {err}");
    assert!(err.contains(what), "expected {what:?} in {err}");
}

#[test]
fn broken_files_are_errors_that_name_them() {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let missing = dir.path().join("missing.png");
    expect_error(read_picture(&missing), &missing, "No such file");
    let empty = file("empty.png", b"");
    expect_error(read_picture(&empty), &empty, "empty");
    let text = file("notes.png", b"my shopping list: eggs, milk\n");
    expect_error(read_picture(&text), &text, "not a PNG or JPEG image");

    let drawing = grey_image(40, 40, paint(&seven(40, 40, 0.2, (8.0, 6.0)), true));
    let png = encode(&drawing, ImageFormat::Png);
    let truncated = file("truncated.png", &png[..png.len() / 2]);
    expect_error(read_picture(&truncated), &truncated, "corrupt or truncated PNG");
    let jpg = jpeg(&drawing, 90);
    let truncated_jpeg = file("truncated.jpg", &jpg[..jpg.len() / 2]);
    expect_error(
        read_picture(&truncated_jpeg),
        &truncated_jpeg,
        "corrupt or truncated JPEG",
    );
    // A PNG whose data chunk is damaged (its checksum no longer matches).
    let mut damaged = png.clone();
    let at = damaged.windows(4).position(|w| w == b"IDAT").unwrap() + 8;
    damaged[at] ^= 0xff;
    let damaged = file("damaged.png", &damaged);
    expect_error(read_picture(&damaged), &damaged, "corrupt or truncated PNG");

    let bmp = file("drawing.bmp", b"BM\x46\0\0\0\0\0\0\0\x36\0\0\0\x28\0\0\0");
    expect_error(read_picture(&bmp), &bmp, "unsupported image format BMP");
    let gif = file("drawing.png", b"GIF89a\x01\0\x01\0\0\0\0;");
    expect_error(read_picture(&gif), &gif, "unsupported image format GIF");

    // A header claiming 20000x20000 pixels: refused before any decoding.
    let mut huge = encode(&grey_image(1, 1, vec![0]), ImageFormat::Png);
    huge[16..20].copy_from_slice(&20000u32.to_be_bytes());
    huge[20..24].copy_from_slice(&20000u32.to_be_bytes());
    let mut crc = flate2::Crc::new();
    crc.update(&huge[12..29]);
    huge[29..33].copy_from_slice(&crc.sum().to_be_bytes());
    let huge = file("huge.png", &huge);
    expect_error(read_picture(&huge), &huge, "too large");
    // Under the side limit, over the pixel limit (10000 x 10000 > 2^26).
    let mut many = encode(&grey_image(1, 1, vec![0]), ImageFormat::Png);
    many[16..20].copy_from_slice(&10000u32.to_be_bytes());
    many[20..24].copy_from_slice(&10000u32.to_be_bytes());
    let mut crc = flate2::Crc::new();
    crc.update(&many[12..29]);
    many[29..33].copy_from_slice(&crc.sum().to_be_bytes());
    let many = file("many.png", &many);
    expect_error(read_picture(&many), &many, "10000x10000 pixels is too large");

    // Uniform: it decodes, but there is no digit in it.
    for (name, level) in [("white.png", 255), ("grey.png", 128), ("black.png", 0)] {
        let uniform = file(
            name,
            &encode(&grey_image(50, 30, vec![level; 1500]), ImageFormat::Png),
        );
        let picture = read_picture(&uniform).unwrap();
        let result = prepare(&picture, [1, 28, 28]).map(|_| picture);
        expect_error(result, &uniform, "no ink found: the image is uniform");
    }
}

#[test]
fn malformed_pictures_and_shapes_are_errors() {
    let picture = grey_picture(4, 4, vec![0; 15]);
    let err = prepare(&picture, [1, 28, 28]).unwrap_err().to_string();
    assert!(err.contains("drawn 4x4") && err.contains("15 bytes"), "{err}");
    let picture = grey_picture(4, 4, vec![0; 16]);
    for shape in [[2, 28, 28], [1, 0, 28], [3, 32, 0]] {
        let err = prepare(&picture, shape).unwrap_err().to_string();
        assert!(
            err.contains("drawn 4x4") && err.contains("network input"),
            "{err}"
        );
    }
}

#[test]
fn three_channel_inputs_are_resized() {
    let (width, height) = (64, 48);
    // Red rising left to right, green top to bottom, blue constant.
    let mut pixels = vec![0u8; 3 * width * height];
    for y in 0..height {
        for x in 0..width {
            pixels[y * width + x] = (x * 4) as u8;
            pixels[width * height + y * width + x] = (y * 5) as u8;
            pixels[2 * width * height + y * width + x] = 77;
        }
    }
    let picture = Picture {
        channels: 3,
        height,
        width,
        pixels,
        source: "gradient".into(),
    };
    let (input, how) = prepare(&picture, [3, 32, 32]).unwrap();
    assert_eq!(input.len(), 3072);
    assert_eq!(how, Preparation::Resized { from: [48, 64] });
    let plane = |c: usize| &input[c * 1024..][..1024];
    // Output column x covers source columns 2x and 2x + 1 (red 8x and
    // 8x + 4), row y source rows 1.5y to 1.5y + 1.5 (green about 7.5y + 2.5).
    for y in 0..32 {
        for x in 0..32 {
            let red = f64::from(plane(0)[y * 32 + x]);
            let green = f64::from(plane(1)[y * 32 + x]);
            assert!(
                (red - (8 * x + 2) as f64).abs() <= 3.0,
                "red at ({y}, {x}): {red}"
            );
            assert!(
                (green - (7.5 * y as f64 + 2.5)).abs() <= 4.0,
                "green at ({y}, {x}): {green}"
            );
            assert_eq!(plane(2)[y * 32 + x], 77);
        }
    }

    // A grey picture fills the three channels alike.
    let grey = Picture {
        channels: 1,
        ..picture.clone()
    };
    let grey = Picture {
        pixels: grey.pixels[..width * height].to_vec(),
        ..grey
    };
    let (input, _) = prepare(&grey, [3, 32, 32]).unwrap();
    assert_eq!(input.len(), 3072);
    assert_eq!(input[..1024], input[1024..2048]);
    assert_eq!(input[..1024], input[2048..]);
    assert_eq!(input[..1024], *plane(0));

    // A colour picture for a one-channel network is read as its luma.
    let (one, how) = prepare(&picture, [1, 28, 28]).unwrap();
    assert_eq!(one.len(), 784);
    assert!(matches!(how, Preparation::Mnist { .. }));
    // `resize` makes it so without MNIST's rule: the luma of the resized colours.
    let (one, how) = resize(&picture, [1, 32, 32]).unwrap();
    assert_eq!(how, Preparation::Resized { from: [48, 64] });
    for (i, &v) in one.iter().enumerate() {
        let luma =
            0.299 * f64::from(plane(0)[i]) + 0.587 * f64::from(plane(1)[i]) + 0.114 * f64::from(plane(2)[i]);
        assert!((f64::from(v) - luma).abs() <= 2.0, "{i}: {v} against {luma}");
    }
    // Nor does it invert or refuse a blank sheet.
    let blank = grey_picture(30, 20, vec![255; 600]);
    assert!(prepare(&blank, [1, 28, 28]).is_err());
    assert_eq!(resize(&blank, [1, 28, 28]).unwrap().0, vec![255; 784]);

    // Shrinking a large photo averages it: a fine checkerboard turns grey.
    let (w, h) = (1000, 800);
    let board: Vec<u8> = (0..w * h)
        .map(|i| if (i / w + i % w) % 2 == 0 { 0 } else { 255 })
        .collect();
    let board = Picture {
        channels: 1,
        height: h,
        width: w,
        pixels: board,
        source: "board".into(),
    };
    let (input, how) = prepare(&board, [3, 32, 32]).unwrap();
    assert_eq!(how, Preparation::Resized { from: [800, 1000] });
    assert!(input.iter().all(|&v| v.abs_diff(128) <= 2), "{:?}", &input[..8]);
}
