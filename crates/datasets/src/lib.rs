//! Image datasets for the networks: a strict reader for the IDX format of
//! MNIST and Fashion-MNIST (gzip or raw, detected from the bytes), a
//! CIFAR-10 binary reader, and a 10,000-image MNIST subset compiled into the
//! crate so that training runs offline on a fresh machine ([`embedded`]);
//! with the default `download` feature, MNIST and Fashion-MNIST are fetched
//! from their public mirrors and verified by SHA-256 ([`download`]); with the
//! default `images` feature, one's own PNG or JPEG pictures are read and
//! prepared as MNIST's digits were made, or resized for CIFAR-10 ([`images`]).
//!
//! Every malformed file is an [`Error`] naming the file and saying what is
//! wrong where (offset or field, expected versus found); sizes declared in a
//! header are checked against the file before anything is allocated.
//!
//! This crate reads files and knows only `tensor4d`; it does not train.
//!
//! ```
//! let mnist = datasets::embedded()?;
//! assert_eq!((mnist.train.len(), mnist.test.len()), (8000, 2000));
//! let x = mnist.train.images::<f32>(); // (8000, 1, 28, 28), scaled to [0, 1]
//! assert!(x.iter().all(|&v| (0.0..=1.0).contains(&v)));
//! # Ok::<(), datasets::Error>(())
//! ```

#![deny(unsafe_code)]
#![deny(missing_docs)]

// The README's examples run as doctests, so it cannot drift from the code.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

mod cifar;
#[cfg(feature = "download")]
pub mod download;
mod embedded;
mod error;
#[cfg(feature = "images")]
pub mod folders;
mod idx;
#[cfg(feature = "images")]
pub mod images;

use std::path::{Path, PathBuf};

use ndarray::{Array4, Axis};
use tensor4d::Float;

pub use cifar::{CIFAR10_CLASSES, load_cifar10_dir, parse_cifar10};
pub use embedded::embedded;
pub use error::Error;
pub use idx::{Idx, MAX_DECOMPRESSED, maybe_gunzip, parse_idx, parse_idx_owned};

/// The class names of MNIST.
pub const MNIST_CLASSES: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

/// The class names of Fashion-MNIST.
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Where Debian's `dataset-fashion-mnist` package installs the four files.
pub const DEBIAN_FASHION_MNIST: &str = "/usr/share/datasets/fashion-mnist";

/// Images `(N, C, H, W)` as bytes and their labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    images: Array4<u8>,
    labels: Vec<u8>,
}

impl Split {
    /// Pairs images and labels, refusing differing counts or labels outside
    /// `0..classes`. `what` names the data in errors.
    ///
    /// ```
    /// use ndarray::Array4;
    /// let images = Array4::<u8>::zeros((2, 1, 28, 28));
    /// let split = datasets::Split::new(images.clone(), vec![3, 9], 10, "mine")?;
    /// assert_eq!((split.len(), split.labels_usize()), (2, vec![3, 9]));
    /// let err = datasets::Split::new(images.clone(), vec![3], 10, "mine").unwrap_err();
    /// assert_eq!(err.to_string(), "mine: 2 images but 1 labels");
    /// assert!(datasets::Split::new(images, vec![3, 10], 10, "mine").is_err());
    /// # Ok::<(), datasets::Error>(())
    /// ```
    pub fn new(images: Array4<u8>, labels: Vec<u8>, classes: usize, what: &str) -> Result<Self, Error> {
        if images.len_of(Axis(0)) != labels.len() {
            return Err(Error::Mismatch {
                message: format!(
                    "{what}: {} images but {} labels",
                    images.len_of(Axis(0)),
                    labels.len()
                ),
            });
        }
        if let Some((i, &l)) = labels.iter().enumerate().find(|&(_, &l)| l as usize >= classes) {
            return Err(Error::Mismatch {
                message: format!("{what}: label {l} of image {i} is out of range for {classes} classes"),
            });
        }
        Ok(Split { images, labels })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The raw pixels, `(N, C, H, W)`.
    pub fn pixels(&self) -> &Array4<u8> {
        &self.images
    }

    /// The images as floats scaled to `[0, 1]` (`byte / 255`), as the
    /// chapter's `load_mnist(normalize=True)`.
    ///
    /// ```
    /// use ndarray::Array4;
    /// let pixels = Array4::from_shape_vec((1, 1, 1, 3), vec![0u8, 51, 255]).unwrap();
    /// let split = datasets::Split::new(pixels, vec![0], 10, "three pixels")?;
    /// assert_eq!(split.images::<f64>().into_raw_vec_and_offset().0, [0.0, 0.2, 1.0]);
    /// # Ok::<(), datasets::Error>(())
    /// ```
    pub fn images<T: Float>(&self) -> Array4<T> {
        let scale = T::one() / T::of(255.0);
        self.images.mapv(|p| T::of(p as f64) * scale)
    }

    /// The labels as bytes.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// The labels as indices, as the loss layer takes them.
    pub fn labels_usize(&self) -> Vec<usize> {
        self.labels.iter().map(|&l| l as usize).collect()
    }

    /// The first `n` images (all if there are fewer).
    pub fn head(&self, n: usize) -> Split {
        let n = n.min(self.len());
        Split {
            images: self.images.slice_axis(Axis(0), (0..n).into()).to_owned(),
            labels: self.labels[..n].to_vec(),
        }
    }
}

/// A training and a test split with their class names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dataset {
    /// A short name, e.g. `mnist`.
    pub name: String,
    /// The training split.
    pub train: Split,
    /// The test split.
    pub test: Split,
    /// One name per class.
    pub classes: Vec<String>,
}

impl Dataset {
    /// The input shape `[C, H, W]` of its images.
    pub fn input_shape(&self) -> [usize; 3] {
        let (_, c, h, w) = self.train.images.dim();
        [c, h, w]
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Io {
        file: path.display().to_string(),
        error: source,
    })
}

/// Reads an IDX image file (gzip or raw) as `(N, 1, H, W)` bytes.
///
/// ```
/// // Two 2x3 images: magic (type 0x08, 3 dimensions), sizes 2, 2, 3, pixels.
/// let mut bytes = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3];
/// bytes.extend(1..=12u8);
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("images-idx3-ubyte");
/// std::fs::write(&path, &bytes).unwrap();
/// let images = datasets::read_idx_images(&path)?;
/// assert_eq!(images.dim(), (2, 1, 2, 3));
/// assert_eq!(images[[1, 0, 0, 0]], 7);
/// // One byte short: the error names the file and the sizes.
/// std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
/// let err = datasets::read_idx_images(&path).unwrap_err();
/// assert!(err.to_string().contains("truncated"), "{err}");
/// # Ok::<(), datasets::Error>(())
/// ```
pub fn read_idx_images(path: &Path) -> Result<Array4<u8>, Error> {
    let file = path.display().to_string();
    let idx = parse_idx_owned(maybe_gunzip(read_file(path)?, &file)?, &file)?;
    idx_images(idx, &file)
}

/// Shapes a parsed IDX of images (3 dimensions: count, rows, columns) as NCHW.
/// `file` names the source in errors.
///
/// ```
/// let idx = datasets::Idx { dims: vec![1, 2, 2], data: vec![0, 64, 128, 255] };
/// let images = datasets::idx_images(idx, "one image")?;
/// assert_eq!((images.dim(), images[[0, 0, 1, 0]]), ((1, 1, 2, 2), 128));
/// // Labels (one dimension) are not images.
/// let labels = datasets::Idx { dims: vec![4], data: vec![0, 1, 2, 3] };
/// assert!(datasets::idx_images(labels, "labels").is_err());
/// # Ok::<(), datasets::Error>(())
/// ```
pub fn idx_images(idx: Idx, file: &str) -> Result<Array4<u8>, Error> {
    let &[n, h, w] = idx.dims.as_slice() else {
        return Err(Error::format(
            file,
            format!(
                "expected an image file (3 dimensions: count, rows, columns; magic 2051), found {} dimensions {:?}",
                idx.dims.len(),
                idx.dims
            ),
        ));
    };
    if h == 0 || w == 0 {
        return Err(Error::format(file, format!("images of {h}x{w} pixels are empty")));
    }
    Array4::from_shape_vec((n, 1, h, w), idx.data)
        .map_err(|e| Error::format(file, format!("cannot shape the data as {n}x1x{h}x{w}: {e}")))
}

/// Reads an IDX label file (gzip or raw), one byte per label.
///
/// ```
/// use std::io::Write;
/// // Three labels, gzipped as MNIST's mirrors serve them.
/// let raw = [0, 0, 8, 1, 0, 0, 0, 3, 5, 0, 4];
/// let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
/// gz.write_all(&raw).unwrap();
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("labels-idx1-ubyte.gz");
/// std::fs::write(&path, gz.finish().unwrap()).unwrap();
/// assert_eq!(datasets::read_idx_labels(&path)?, vec![5, 0, 4]);
/// # Ok::<(), datasets::Error>(())
/// ```
pub fn read_idx_labels(path: &Path) -> Result<Vec<u8>, Error> {
    let file = path.display().to_string();
    let idx = parse_idx_owned(maybe_gunzip(read_file(path)?, &file)?, &file)?;
    idx_labels(idx, &file)
}

/// Checks that a parsed IDX holds labels (1 dimension). `file` names the
/// source in errors.
///
/// ```
/// let idx = datasets::parse_idx(&[0, 0, 8, 1, 0, 0, 0, 2, 7, 1], "labels")?;
/// assert_eq!(datasets::idx_labels(idx, "labels")?, vec![7, 1]);
/// let images = datasets::Idx { dims: vec![1, 1, 2], data: vec![7, 1] };
/// assert!(datasets::idx_labels(images, "images").is_err());
/// # Ok::<(), datasets::Error>(())
/// ```
pub fn idx_labels(idx: Idx, file: &str) -> Result<Vec<u8>, Error> {
    if idx.dims.len() != 1 {
        return Err(Error::format(
            file,
            format!(
                "expected a label file (1 dimension; magic 2049), found {} dimensions {:?}",
                idx.dims.len(),
                idx.dims
            ),
        ));
    }
    Ok(idx.data)
}

/// Finds `stem` in `dir` under the names the MNIST mirrors use
/// (`train-images-idx3-ubyte`, `train-images.idx3-ubyte`, each raw or `.gz`).
fn find(dir: &Path, stem: &str) -> Result<PathBuf, Error> {
    let dotted = stem.replacen("-idx", ".idx", 1);
    let candidates = [
        format!("{stem}.gz"),
        stem.to_string(),
        format!("{dotted}.gz"),
        dotted.clone(),
    ];
    candidates
        .iter()
        .map(|c| dir.join(c))
        .find(|p| p.is_file())
        .ok_or_else(|| Error::Missing {
            dir: dir.display().to_string(),
            file: stem.to_string(),
            candidates: candidates.join(", "),
        })
}

/// Loads MNIST or Fashion-MNIST from a directory holding the four standard
/// files (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
/// `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`, gzipped or not;
/// the mirrors' `train-images.idx3-ubyte` spelling is found too). `name`
/// becomes [`Dataset::name`]; a label outside `classes` is an error.
///
/// ```
/// use datasets::{MNIST_CLASSES, load_idx_dir};
/// /// An IDX file: magic (unsigned bytes, `dims.len()` dimensions), sizes, data.
/// fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
///     let mut bytes = vec![0, 0, 8, dims.len() as u8];
///     dims.iter().for_each(|d| bytes.extend(d.to_be_bytes()));
///     bytes.extend(data);
///     bytes
/// }
/// let dir = tempfile::tempdir().unwrap();
/// let write = |name: &str, bytes: Vec<u8>| std::fs::write(dir.path().join(name), bytes).unwrap();
/// write("train-images-idx3-ubyte", idx(&[3, 4, 4], &[200; 48]));
/// write("train-labels-idx1-ubyte", idx(&[3], &[1, 2, 3]));
/// write("t10k-images-idx3-ubyte", idx(&[1, 4, 4], &[0; 16]));
/// write("t10k-labels-idx1-ubyte", idx(&[1], &[9]));
///
/// let data = load_idx_dir(dir.path(), "tiny", &MNIST_CLASSES)?;
/// assert_eq!((data.train.len(), data.test.len()), (3, 1));
/// assert_eq!(data.input_shape(), [1, 4, 4]);
/// assert_eq!(data.test.labels(), &[9]);
///
/// // A missing file is an error that says which and where it looked.
/// std::fs::remove_file(dir.path().join("t10k-labels-idx1-ubyte")).unwrap();
/// let err = load_idx_dir(dir.path(), "tiny", &MNIST_CLASSES).unwrap_err();
/// assert!(err.to_string().contains("missing t10k-labels-idx1-ubyte"), "{err}");
/// # Ok::<(), datasets::Error>(())
/// ```
pub fn load_idx_dir(dir: &Path, name: &str, classes: &[&str]) -> Result<Dataset, Error> {
    let split = |prefix: &str| -> Result<Split, Error> {
        let images = find(dir, &format!("{prefix}-images-idx3-ubyte"))?;
        let labels = find(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
        let what = format!("{} and {}", images.display(), labels.display());
        Split::new(
            read_idx_images(&images)?,
            read_idx_labels(&labels)?,
            classes.len(),
            &what,
        )
    };
    let train = split("train")?;
    let test = split("t10k")?;
    if train.images.shape()[1..] != test.images.shape()[1..] {
        return Err(Error::Mismatch {
            message: format!(
                "{}: training images are {:?} but test images {:?}",
                dir.display(),
                &train.images.shape()[1..],
                &test.images.shape()[1..]
            ),
        });
    }
    Ok(Dataset {
        name: name.to_string(),
        train,
        test,
        classes: classes.iter().map(|c| c.to_string()).collect(),
    })
}
