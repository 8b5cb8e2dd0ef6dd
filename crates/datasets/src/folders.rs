//! Image folders: one sub-folder of PNG or JPEG files per class, the layout
//! torchvision's `ImageFolder` and Keras' `image_dataset_from_directory`
//! read. Either `DIR/train/<class>/*` and `DIR/test/<class>/*`, or one tree
//! `DIR/<class>/*` split by a seeded fraction.
//!
//! The rules, so that a tree loads the same everywhere:
//! - classes are the sub-folders' names, sorted; hidden entries (a leading
//!   `.`) are skipped; every other file must be a PNG or JPEG image;
//! - every image is resized to one shape ([`resize`]:
//!   a triangle filter, grey taken as luma, grey replicated into colour):
//!   the shape asked for, or else the first training image's size, with one
//!   channel if that image is grey and three otherwise;
//! - images are ordered by file name, then by class, so a tree written
//!   from an indexed data set (`00042.png`, ...) keeps the data set's order.

use std::path::{Path, PathBuf};

use ndarray::Array4;

use crate::images::{read_picture, resize};
use crate::{Dataset, Error, Split};

/// How [`load_image_folders`] reads a tree.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FolderOptions {
    /// For a single tree `DIR/<class>/*`: the share of each class's images
    /// held out for testing, in `(0, 1)`. Must be `None` for a tree with
    /// `train/` and `test/`.
    pub test_split: Option<f64>,
    /// Seeds which images a `test_split` holds out.
    pub seed: u64,
    /// The shape `[C, H, W]` every image is resized to (`C` 1 or 3); by
    /// default the first training image's.
    pub shape: Option<[usize; 3]>,
}

/// The most bytes of pixels a tree may load into memory (8 GiB).
pub const MAX_FOLDER_BYTES: u64 = 8 << 30;

/// Whether `dir` looks like an image-folder tree: it has sub-folders and
/// no IDX files.
pub fn is_image_folder(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let mut folders = false;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.contains("idx3-ubyte") || name.contains("idx1-ubyte") {
            return false;
        }
        folders |= !name.starts_with('.') && e.path().is_dir();
    }
    folders
}

/// One class folder's files, sorted by name.
fn files_of(class_dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut files: Vec<PathBuf> = entries(class_dir)?.into_iter().filter(|p| !p.is_dir()).collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::format(
            &class_dir.display().to_string(),
            "an empty class: the folder holds no images",
        ));
    }
    Ok(files)
}

/// The non-hidden entries of `dir`.
fn entries(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let io = |error| Error::Io {
        file: dir.display().to_string(),
        error,
    };
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io)? {
        let e = e.map_err(io)?;
        if !e.file_name().to_string_lossy().starts_with('.') {
            out.push(e.path());
        }
    }
    Ok(out)
}

/// A tree's classes (sorted) and, per class, its files.
fn tree(dir: &Path) -> Result<(Vec<String>, Vec<Vec<PathBuf>>), Error> {
    let mut classes: Vec<PathBuf> = entries(dir)?.into_iter().filter(|p| p.is_dir()).collect();
    classes.sort();
    if classes.is_empty() {
        return Err(Error::format(
            &dir.display().to_string(),
            "no class folders: expected DIR/<class>/<image> (or DIR/train/<class> and DIR/test/<class>)",
        ));
    }
    if classes.len() > 256 {
        return Err(Error::format(
            &dir.display().to_string(),
            format!("{} class folders; at most 256 are supported", classes.len()),
        ));
    }
    let names = classes
        .iter()
        .map(|c| {
            c.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect();
    let files = classes.iter().map(|c| files_of(c)).collect::<Result<_, _>>()?;
    Ok((names, files))
}

/// A seeded 64-bit mix of `seed` and the file's name (splitmix64 over the
/// bytes). The name alone, not the path, so that a tree splits the same
/// wherever it is copied.
fn rank(seed: u64, file: &Path) -> u64 {
    let mut h = seed ^ 0x9e37_79b9_7f4a_7c15;
    let name = file.file_name().unwrap_or(file.as_os_str());
    for b in name.as_encoded_bytes() {
        h = (h ^ u64::from(*b)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h ^= h >> 31;
    }
    h
}

/// `(file, class)` pairs ordered by file name, then class.
fn ordered(files: Vec<Vec<PathBuf>>) -> Vec<(PathBuf, u8)> {
    let mut all: Vec<(PathBuf, u8)> = files
        .into_iter()
        .enumerate()
        .flat_map(|(c, fs)| fs.into_iter().map(move |f| (f, c as u8)))
        .collect();
    all.sort_by(|a, b| a.0.file_name().cmp(&b.0.file_name()).then(a.1.cmp(&b.1)));
    all
}

/// Reads an image-folder tree (see the module's rules), reporting
/// `progress(done, total)` after each image.
///
/// ```
/// use datasets::folders::{FolderOptions, load_image_folders};
/// let dir = tempfile::tempdir()?;
/// for (class, shade) in [("dark", 10u8), ("light", 240)] {
///     std::fs::create_dir(dir.path().join(class))?;
///     for i in 0..4 {
///         let img = image::GrayImage::from_pixel(8, 8, image::Luma([shade]));
///         img.save(dir.path().join(class).join(format!("{i}.png")))?;
///     }
/// }
/// let options = FolderOptions { test_split: Some(0.25), ..FolderOptions::default() };
/// let data = load_image_folders(dir.path(), &options, &mut |_, _| {})?;
/// assert_eq!(data.classes, ["dark", "light"]);
/// assert_eq!((data.train.len(), data.test.len(), data.input_shape()), (6, 2, [1, 8, 8]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn load_image_folders(
    dir: &Path,
    options: &FolderOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Dataset, Error> {
    let here = dir.display().to_string();
    let (train_dir, test_dir) = (dir.join("train"), dir.join("test"));
    let (classes, train, test) = if train_dir.is_dir() && test_dir.is_dir() {
        if options.test_split.is_some() {
            return Err(Error::format(
                &here,
                "has train/ and test/ folders; a test split applies to a single tree",
            ));
        }
        let (classes, train) = tree(&train_dir)?;
        let (test_classes, test) = tree(&test_dir)?;
        if test_classes != classes {
            return Err(Error::Mismatch {
                message: format!(
                    "{}: classes {classes:?}, but {}: {test_classes:?}",
                    train_dir.display(),
                    test_dir.display()
                ),
            });
        }
        (classes, ordered(train), ordered(test))
    } else {
        let fraction = match options.test_split {
            Some(f) if f > 0.0 && f < 1.0 => f,
            Some(f) => {
                return Err(Error::format(
                    &here,
                    format!("test split {f}: a fraction in (0, 1)"),
                ));
            }
            None => {
                return Err(Error::format(
                    &here,
                    "no train/ and test/ folders: give a test split to hold out part of the single tree",
                ));
            }
        };
        let (classes, files) = tree(dir)?;
        let (mut train, mut test) = (Vec::new(), Vec::new());
        for mut fs in files {
            fs.sort_by_key(|f| rank(options.seed, f));
            let held = ((fs.len() as f64 * fraction).round() as usize).min(fs.len());
            test.push(fs.split_off(fs.len() - held));
            train.push(fs);
        }
        (classes, ordered(train), ordered(test))
    };
    if train.is_empty() || test.is_empty() {
        return Err(Error::format(
            &here,
            "the training or the test split would be empty",
        ));
    }
    let shape = match options.shape {
        Some(s) => s,
        None => {
            let first = read_picture(&train[0].0)?;
            let c = if first.channels == 1 { 1 } else { 3 };
            [c, first.height, first.width]
        }
    };
    let total = train.len() + test.len();
    let bytes = shape
        .iter()
        .fold(total as u64, |p, &d| p.saturating_mul(d as u64));
    if bytes > MAX_FOLDER_BYTES {
        return Err(Error::format(
            &here,
            format!("{total} images of {shape:?} would take {bytes} bytes, more than {MAX_FOLDER_BYTES}"),
        ));
    }
    let mut done = 0;
    let mut read = |files: &[(PathBuf, u8)], what: &str| -> Result<Split, Error> {
        let [c, h, w] = shape;
        let mut pixels = Vec::with_capacity(files.len() * c * h * w);
        for (file, _) in files {
            let (bytes, _) = resize(&read_picture(file)?, shape)?;
            pixels.extend_from_slice(&bytes);
            done += 1;
            progress(done, total);
        }
        let images = Array4::from_shape_vec((files.len(), c, h, w), pixels)
            .map_err(|e| Error::format(&here, e.to_string()))?;
        let labels = files.iter().map(|(_, l)| *l).collect();
        Split::new(images, labels, classes.len(), &format!("{here} ({what})"))
    };
    let train = read(&train, "train")?;
    let test = read(&test, "test")?;
    let name = dir
        .file_name()
        .map_or_else(|| here.clone(), |n| n.to_string_lossy().into_owned());
    Ok(Dataset {
        name,
        train,
        test,
        classes,
    })
}
