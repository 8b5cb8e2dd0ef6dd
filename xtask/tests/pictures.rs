//! The pictures `cargo xtask` writes: each is decoded back and checked for
//! its size, for text in its title region, for not being blank, and for
//! panels drawn as zoomed blocks of the right gray.

use std::path::Path;

use models::EpochMetrics;
use ndarray::{Array, Array2, Array4, ArrayD};
use xtask::pictures::{self, Figure, Panel, Scale, Section};

/// A decoded PNG as RGB rows.
struct Picture {
    width: u32,
    height: u32,
    rgb: Vec<u8>,
}

impl Picture {
    fn read(path: &Path) -> Picture {
        let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(info.bit_depth, png::BitDepth::Eight);
        // Gray figures are written with one channel.
        let channels = match info.color_type {
            png::ColorType::Grayscale => 1,
            png::ColorType::Rgb => 3,
            png::ColorType::Rgba => 4,
            other => panic!("unexpected colour type {other:?}"),
        };
        let rgb = buf[..info.buffer_size()]
            .chunks_exact(channels)
            .flat_map(|p| {
                if channels == 1 {
                    [p[0]; 3]
                } else {
                    [p[0], p[1], p[2]]
                }
            })
            .collect();
        Picture {
            width: info.width,
            height: info.height,
            rgb,
        }
    }

    fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let i = 3 * (y as usize * self.width as usize + x as usize);
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }

    /// Pixels in rows `rows` darker than 100 in every channel.
    fn dark_in_rows(&self, rows: std::ops::Range<u32>) -> usize {
        rows.flat_map(|y| (0..self.width).map(move |x| (x, y)))
            .filter(|&(x, y)| self.pixel(x, y).iter().all(|&c| c < 100))
            .count()
    }

    fn count(&self, pred: impl Fn([u8; 3]) -> bool) -> usize {
        self.rgb
            .chunks_exact(3)
            .filter(|p| pred([p[0], p[1], p[2]]))
            .count()
    }
}

/// What every picture must be: the expected size, sane bounds, not blank,
/// and text (a title) in its top 30 rows.
fn check_readable(pic: &Picture, size: (u32, u32)) {
    assert_eq!((pic.width, pic.height), size, "the picture is the size announced");
    assert!(
        (200..=8000).contains(&pic.width),
        "width {} out of bounds",
        pic.width
    );
    assert!(
        (100..=8000).contains(&pic.height),
        "height {} out of bounds",
        pic.height
    );
    let white = pic.count(|p| p.iter().all(|&c| c > 240));
    let dark = pic.count(|p| p.iter().all(|&c| c < 60));
    let all = (pic.width * pic.height) as usize;
    assert!(white > all / 10, "mostly not white: {white} of {all}");
    assert!(dark > 50, "nothing dark: {dark} of {all}");
    let title = pic.dark_in_rows(0..30);
    assert!(
        title > 80,
        "only {title} dark pixels in the title rows: no title drawn"
    );
}

/// The gray `write` gives `v` on `lo..hi`: white low, black high.
fn gray(v: f32, lo: f32, hi: f32) -> u8 {
    let t = if hi > lo {
        ((v - lo) / (hi - lo)).clamp(0.0, 1.0)
    } else {
        0.0
    };
    (255.0 * (1.0 - t)).round() as u8
}

/// Checks that panel (section, index) of `fig` is drawn in `pic` as
/// `zoom`-sized blocks, each the colour `expect(y, x)` gives for its
/// source pixel, with no smoothing between blocks.
fn check_blocks(
    fig: &Figure,
    pic: &Picture,
    (section, index): (usize, usize),
    zoom: u32,
    expect: impl Fn(usize, usize) -> [u8; 3],
) {
    let (x0, y0, w, h) = fig.panel_rect(section, index).expect("the panel exists");
    let shape = fig.sections[section].panels[index].image.shape().to_vec();
    let (ih, iw) = (shape[shape.len() - 2] as u32, shape[shape.len() - 1] as u32);
    assert_eq!((w, h), (iw * zoom, ih * zoom), "panel drawn at zoom {zoom}");
    for y in 0..h {
        for x in 0..w {
            let want = expect((y / zoom) as usize, (x / zoom) as usize);
            assert_eq!(
                pic.pixel(x0 + x, y0 + y),
                want,
                "panel pixel ({x}, {y}) of block ({}, {})",
                x / zoom,
                y / zoom
            );
        }
    }
    // The one-pixel frame around the panel is not panel colour: the panel
    // ends where `panel_rect` says.
    let frame = pic.pixel(x0 - 1, y0 + h / 2);
    assert_eq!(frame[0], frame[1]);
    assert!(frame[0] > 100 && frame[0] < 230, "frame gray {frame:?}");
}

fn map(h: usize, w: usize, f: impl Fn(usize, usize) -> f32) -> ArrayD<f32> {
    Array2::from_shape_fn((h, w), |(y, x)| f(y, x)).into_dyn()
}

fn panel(label: &str, image: ArrayD<f32>) -> Panel {
    Panel {
        label: label.into(),
        image,
    }
}

#[test]
fn filters_are_titled_gray_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("filters.png");
    // (FN, C, FH, FW) = (30, 2, 5, 5); channel 1 is noise that must not show.
    let w = Array4::from_shape_fn((30, 2, 5, 5), |(n, c, y, x)| {
        if c == 0 {
            ((n * 7 + y * 5 + x) % 11) as f32 - 5.0
        } else {
            1e6
        }
    });
    pictures::filters(w.view(), "conv1 filters", &path).unwrap();
    let fig = pictures::filters_figure(w.view(), "conv1 filters");
    let pic = Picture::read(&path);
    check_readable(&pic, fig.size());
    assert_eq!(fig.sections[0].panels.len(), 30);
    assert_eq!(fig.sections[0].panels[29].label, "#29");
    // 5x5 filters are zoomed 12x: 60 pixels a side.
    for n in [0, 13, 29] {
        let m = w.slice(ndarray::s![n, 0, .., ..]);
        let (lo, hi) = m
            .iter()
            .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
        check_blocks(&fig, &pic, (0, n), 12, |y, x| [gray(m[[y, x]], lo, hi); 3]);
    }
}

fn epoch(epoch: usize, loss: f64, train: f64, test: f64) -> EpochMetrics {
    EpochMetrics {
        epoch,
        loss,
        train_accuracy: train,
        test_accuracy: test,
        seconds: 1.0,
        images_per_sec: 1000.0,
    }
}

#[test]
fn curves_are_titled_charts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("curves.png");
    let epochs = [
        epoch(1, 0.9, 0.80, 0.79),
        epoch(2, 0.4, 0.90, 0.88),
        epoch(3, 0.2, 0.95, 0.93),
    ];
    pictures::curves(&epochs, &path).unwrap();
    let pic = Picture::read(&path);
    check_readable(&pic, pictures::CURVES_SIZE);
    // The lines: blue loss, green train and red test accuracy.
    let blue = pic.count(|[r, g, b]| b > 200 && r < 60 && g < 60);
    let green = pic.count(|[r, g, b]| g > 120 && r < 60 && b < 60);
    let red = pic.count(|[r, g, b]| r > 200 && g < 60 && b < 60);
    assert!(
        blue > 100 && green > 100 && red > 100,
        "lines: blue {blue}, green {green}, red {red}"
    );
    // The axis texts under the charts (ticks and "epoch") are drawn.
    let h = pic.height;
    assert!(pic.dark_in_rows(h - 45..h) > 100, "no x-axis text");
}

/// A figure of two per-panel sections: a 3x3 map (zoomed 19x) beside a
/// constant map, and a 28x28 map (zoomed 2x) with a colour panel.
fn per_panel_figure() -> Figure {
    Figure {
        title: "per-panel test".into(),
        subtitle: "two sections\nof several shapes".into(),
        sections: vec![
            Section {
                heading: "small maps".into(),
                panels: vec![
                    panel("3x3 ramp", map(3, 3, |y, x| (3 * y + x) as f32)),
                    panel("constant", map(3, 3, |_, _| 0.25)),
                    panel(
                        "a label far too long to fit in any reasonable cell of this figure",
                        map(3, 3, |y, _| y as f32),
                    ),
                ],
                columns: 2,
            },
            Section {
                heading: "digits".into(),
                panels: vec![
                    panel("checker", map(28, 28, |y, x| ((x + y) % 2) as f32 * 10.0 - 3.0)),
                    panel(
                        "colour",
                        Array::from_shape_fn((3, 28, 28), |(c, y, _)| {
                            if c == 0 {
                                1.0
                            } else if c == 1 {
                                y as f32 / 27.0
                            } else {
                                0.0
                            }
                        })
                        .into_dyn(),
                    ),
                ],
                columns: 8,
            },
        ],
        scale: Scale::PerPanel,
    }
}

#[test]
fn per_panel_figure_draws_each_panel_on_its_own_range() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("per-panel.png");
    let fig = per_panel_figure();
    fig.write(&path).unwrap();
    let pic = Picture::read(&path);
    check_readable(&pic, fig.size());
    check_blocks(&fig, &pic, (0, 0), 19, |y, x| {
        [gray((3 * y + x) as f32, 0.0, 8.0); 3]
    });
    // A constant panel does not divide by zero: it is all its lowest, white.
    check_blocks(&fig, &pic, (0, 1), 19, |_, _| [255; 3]);
    check_blocks(&fig, &pic, (0, 2), 19, |y, _| [gray(y as f32, 0.0, 2.0); 3]);
    check_blocks(&fig, &pic, (1, 0), 2, |y, x| {
        [if (x + y) % 2 == 1 { 0 } else { 255 }; 3]
    });
    check_blocks(&fig, &pic, (1, 1), 2, |y, _| {
        [255, (255.0 * y as f32 / 27.0).round() as u8, 0]
    });
    // The long label is cut to its cell rather than spilling into the next.
    let (x0, _, w0, _) = fig.panel_rect(0, 0).unwrap();
    let (x1, _, _, _) = fig.panel_rect(0, 1).unwrap();
    assert!(x1 > x0 + w0, "second column right of the first");
    // Uncut, the third label would be some 400 pixels wide.
    assert!(x1 - x0 < 200, "the long label widens its column to {}", x1 - x0);
}

#[test]
fn fixed_scale_figure_draws_every_panel_on_one_range() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fixed.png");
    let fig = Figure {
        title: "fixed-scale test".into(),
        subtitle: "raw pixels".into(),
        sections: vec![Section {
            heading: String::new(),
            panels: vec![
                panel("half", map(28, 28, |y, _| if y < 14 { 0.0 } else { 0.5 })),
                // Values outside 0..1 are clamped, not stretched.
                panel("beyond", map(28, 28, |_, x| if x < 14 { -3.0 } else { 7.0 })),
            ],
            columns: 2,
        }],
        scale: Scale::Fixed { lo: 0.0, hi: 1.0 },
    };
    fig.write(&path).unwrap();
    let pic = Picture::read(&path);
    check_readable(&pic, fig.size());
    check_blocks(&fig, &pic, (0, 0), 2, |y, _| [if y < 14 { 255 } else { 128 }; 3]);
    check_blocks(&fig, &pic, (0, 1), 2, |_, x| [if x < 14 { 255 } else { 0 }; 3]);
}

#[test]
fn many_panels_and_a_large_one_fill_the_picture() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("many.png");
    let panels = (0..120)
        .map(|i| panel(&format!("{i}"), map(28, 28, |y, x| ((x * y + i) % 13) as f32)))
        .collect();
    let fig = Figure {
        title: "many panels".into(),
        subtitle: String::new(),
        sections: vec![
            Section {
                heading: "a grid".into(),
                panels,
                columns: 20,
            },
            // Past 56 pixels a side a panel is drawn 1:1, never shrunk.
            Section {
                heading: "one large map".into(),
                panels: vec![panel("200x120", map(120, 200, |y, x| (x + y) as f32))],
                columns: 3,
            },
        ],
        scale: Scale::PerPanel,
    };
    fig.write(&path).unwrap();
    let pic = Picture::read(&path);
    check_readable(&pic, fig.size());
    check_blocks(&fig, &pic, (0, 57), 2, |y, x| {
        [gray(((x * y + 57) % 13) as f32, 0.0, 12.0); 3]
    });
    check_blocks(&fig, &pic, (1, 0), 1, |y, x| {
        [gray((x + y) as f32, 0.0, 318.0); 3]
    });
    // The panels fill the picture, with no more than a margin (and the
    // range line) to spare.
    let (x_last, _, w, _) = fig.panel_rect(0, 19).unwrap();
    let (_, y_last, _, h) = fig.panel_rect(1, 0).unwrap();
    assert!(
        y_last + h < pic.height && pic.height - (y_last + h) < 40,
        "last row ends at {}",
        y_last + h
    );
    assert!(
        x_last + w < pic.width && pic.width - (x_last + w) < 60,
        "last column ends at {}",
        x_last + w
    );
    assert!(fig.panel_rect(0, 120).is_none() && fig.panel_rect(2, 0).is_none());
}

#[test]
fn bad_panels_and_scales_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.png");
    let one = |image: ArrayD<f32>, scale| Figure {
        title: "bad".into(),
        subtitle: String::new(),
        sections: vec![Section {
            heading: String::new(),
            panels: vec![panel("x", image)],
            columns: 1,
        }],
        scale,
    };
    let four_d = Array::zeros((1, 1, 2, 2)).into_dyn();
    assert!(one(four_d, Scale::PerPanel).write(&path).is_err());
    let two_channels = Array::zeros((2, 2, 2)).into_dyn();
    assert!(one(two_channels, Scale::PerPanel).write(&path).is_err());
    let empty = Array::zeros((0, 2)).into_dyn();
    assert!(one(empty, Scale::PerPanel).write(&path).is_err());
    let fine = || map(2, 2, |_, _| 0.0);
    assert!(
        one(fine(), Scale::Fixed { lo: 1.0, hi: 1.0 })
            .write(&path)
            .is_err()
    );
    assert!(
        one(
            fine(),
            Scale::Fixed {
                lo: 0.0,
                hi: f32::NAN
            }
        )
        .write(&path)
        .is_err()
    );
    one(fine(), Scale::Fixed { lo: 0.0, hi: 1.0 })
        .write(&path)
        .unwrap();
}

/// The PNG's colour type, as written.
fn color_type(path: &std::path::Path) -> png::ColorType {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    decoder.read_info().unwrap().info().color_type
}

#[test]
fn gray_figures_are_written_with_one_channel_and_colour_ones_with_three() {
    let dir = tempfile::tempdir().unwrap();
    let (gray_path, colour_path) = (dir.path().join("gray.png"), dir.path().join("colour.png"));
    let w = Array4::from_shape_fn((4, 1, 5, 5), |(n, _, y, x)| (n + y * x) as f32);
    pictures::filters(w.view(), "gray", &gray_path).unwrap();
    per_panel_figure().write(&colour_path).unwrap();
    assert_eq!(color_type(&gray_path), png::ColorType::Grayscale);
    assert_eq!(color_type(&colour_path), png::ColorType::Rgb);
}
