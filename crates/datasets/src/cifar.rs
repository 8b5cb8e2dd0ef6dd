//! The CIFAR-10 binary format: records of 3,073 bytes, a label byte then a
//! 32x32 image as 1,024 red, 1,024 green and 1,024 blue bytes.

use std::path::Path;

use ndarray::Array4;

use crate::{Dataset, Error, Split, read_file};

/// The class names of CIFAR-10.
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

const RECORD: usize = 1 + 3 * 32 * 32;

/// Parses one CIFAR-10 batch file's bytes into `(N, 3, 32, 32)` images and labels.
///
/// ```
/// let mut record = vec![7u8];
/// record.extend(std::iter::repeat(128u8).take(3072));
/// let (images, labels) = datasets::parse_cifar10(&record, "one.bin").unwrap();
/// assert_eq!((images.dim(), labels), ((1, 3, 32, 32), vec![7]));
/// assert!(datasets::parse_cifar10(&record[..100], "short.bin").is_err());
/// ```
pub fn parse_cifar10(bytes: &[u8], file: &str) -> Result<(Array4<u8>, Vec<u8>), Error> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(RECORD) {
        let whole = bytes.len() / RECORD;
        return Err(Error::format(
            file,
            format!(
                "{} bytes is not a whole number of {RECORD}-byte records: record {} (at offset {}) is truncated to {} bytes",
                bytes.len(),
                whole,
                whole * RECORD,
                bytes.len() - whole * RECORD
            ),
        ));
    }
    let n = bytes.len() / RECORD;
    let mut labels = Vec::with_capacity(n);
    let mut pixels = Vec::with_capacity(n * (RECORD - 1));
    for (i, rec) in bytes.chunks_exact(RECORD).enumerate() {
        if rec[0] >= 10 {
            return Err(Error::format(
                file,
                format!(
                    "record {i} (offset {}): label {} is out of range 0..10",
                    i * RECORD,
                    rec[0]
                ),
            ));
        }
        labels.push(rec[0]);
        pixels.extend_from_slice(&rec[1..]);
    }
    let images = Array4::from_shape_vec((n, 3, 32, 32), pixels)
        .map_err(|e| Error::format(file, format!("cannot shape {n} records as 3x32x32: {e}")))?;
    Ok((images, labels))
}

fn read_batches(dir: &Path, names: &[String]) -> Result<Split, Error> {
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for name in names {
        let path = dir.join(name);
        let (im, lb) = parse_cifar10(&read_file(&path)?, &path.display().to_string())?;
        images.extend(im.into_raw_vec_and_offset().0);
        labels.extend(lb);
    }
    let n = labels.len();
    let images = Array4::from_shape_vec((n, 3, 32, 32), images).map_err(|e| Error::Mismatch {
        message: format!("{}: {e}", dir.display()),
    })?;
    Split::new(images, labels, 10, &dir.display().to_string())
}

/// Loads CIFAR-10 from a directory holding `data_batch_1.bin` ...
/// `data_batch_5.bin` and `test_batch.bin` (the "binary version").
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// // One record per file: a label byte, then 3 x 32 x 32 pixel bytes.
/// let names = (1..=5).map(|i| format!("data_batch_{i}.bin")).chain(["test_batch.bin".into()]);
/// for (label, name) in names.enumerate() {
///     let mut record = vec![label as u8];
///     record.extend(std::iter::repeat_n(label as u8 * 10, 3 * 32 * 32));
///     std::fs::write(dir.path().join(name), record).unwrap();
/// }
/// let cifar = datasets::load_cifar10_dir(dir.path())?;
/// assert_eq!(cifar.train.pixels().dim(), (5, 3, 32, 32));
/// assert_eq!(cifar.train.labels(), &[0, 1, 2, 3, 4]);
/// assert_eq!(cifar.classes[cifar.test.labels()[0] as usize], "dog");
/// # Ok::<(), datasets::Error>(())
/// ```
pub fn load_cifar10_dir(dir: &Path) -> Result<Dataset, Error> {
    for name in (1..=5)
        .map(|i| format!("data_batch_{i}.bin"))
        .chain(["test_batch.bin".to_string()])
    {
        if !dir.join(&name).is_file() {
            return Err(Error::Missing {
                dir: dir.display().to_string(),
                file: name.clone(),
                candidates: name,
            });
        }
    }
    let train_names: Vec<String> = (1..=5).map(|i| format!("data_batch_{i}.bin")).collect();
    Ok(Dataset {
        name: "cifar10".into(),
        train: read_batches(dir, &train_names)?,
        test: read_batches(dir, &["test_batch.bin".to_string()])?,
        classes: CIFAR10_CLASSES.iter().map(|c| c.to_string()).collect(),
    })
}
