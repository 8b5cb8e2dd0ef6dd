//! Reads an MNIST-format (IDX) directory and shows what is in it: counts,
//! shape, class balance and one image as ASCII art.
//!
//! The directory is the first argument, else `MNIST_DIR`, else the
//! embedded subset's four files written to a temporary directory (so the
//! example runs offline):
//!
//! ```sh
//! cargo run -p convnet-datasets --example read_idx
//! cargo run -p convnet-datasets --example read_idx -- path/to/fashion-mnist
//! ```

use std::path::PathBuf;
use std::time::Instant;

use datasets::{MNIST_CLASSES, Split, load_idx_dir};

/// The embedded subset's files as the crate compiles them in, under the
/// standard names that `load_idx_dir` looks for.
const EMBEDDED: [(&str, &[u8]); 4] = [
    (
        "train-images-idx3-ubyte.gz",
        include_bytes!("../data/embedded-train-images-idx3-ubyte.gz"),
    ),
    (
        "train-labels-idx1-ubyte.gz",
        include_bytes!("../data/embedded-train-labels-idx1-ubyte.gz"),
    ),
    (
        "t10k-images-idx3-ubyte.gz",
        include_bytes!("../data/embedded-t10k-images-idx3-ubyte.gz"),
    ),
    (
        "t10k-labels-idx1-ubyte.gz",
        include_bytes!("../data/embedded-t10k-labels-idx1-ubyte.gz"),
    ),
];

fn balance(split: &Split) -> [usize; 10] {
    let mut counts = [0; 10];
    for &l in split.labels() {
        counts[l as usize] += 1;
    }
    counts
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Held until the end of main: dropping it deletes the directory.
    let mut temp = None;
    let dir = match std::env::args_os()
        .nth(1)
        .or_else(|| std::env::var_os("MNIST_DIR"))
    {
        Some(dir) => PathBuf::from(dir),
        None => {
            let t = tempfile::tempdir()?;
            for (name, bytes) in EMBEDDED {
                std::fs::write(t.path().join(name), bytes)?;
            }
            println!("no directory given and MNIST_DIR unset: using the embedded subset");
            temp.insert(t).path().to_path_buf()
        }
    };
    println!("reading {}", dir.display());

    let start = Instant::now();
    let data = match load_idx_dir(&dir, "mnist", &MNIST_CLASSES) {
        Ok(data) => data,
        Err(e) => {
            // The error names the file and what is wrong in it.
            eprintln!("error: {e}");
            drop(temp);
            std::process::exit(1);
        }
    };
    println!("read in {:.2} s", start.elapsed().as_secs_f64());
    println!(
        "train: {} images {:?}, test: {} images {:?}",
        data.train.len(),
        data.train.pixels().dim(),
        data.test.len(),
        data.test.pixels().dim()
    );
    let [c, h, w] = data.input_shape();
    println!("input shape (C, H, W): ({c}, {h}, {w})");
    assert_eq!(data.train.pixels().dim(), (data.train.len(), c, h, w));

    println!("\nclass balance:");
    println!(
        "  label {}",
        (0..10).map(|l| format!("{l:>6}")).collect::<String>()
    );
    for (what, split) in [("train", &data.train), ("test", &data.test)] {
        let counts = balance(split);
        assert_eq!(counts.iter().sum::<usize>(), split.len());
        println!(
            "  {what:<5} {}",
            counts.iter().map(|n| format!("{n:>6}")).collect::<String>()
        );
    }

    // The first test image, darker to brighter, two characters per pixel
    // so that it is about as wide as it is tall.
    let ramp = b" .:-=+*#%@";
    let label = data.test.labels()[0];
    println!("\ntest image 0, label {label}:");
    let image = data.test.pixels();
    for i in 0..h {
        let line: String = (0..w)
            .map(|j| ramp[image[[0, 0, i, j]] as usize * ramp.len() / 256] as char)
            .flat_map(|ch| [ch, ch])
            .collect();
        println!("{}", format!("  {line}").trim_end());
    }
    Ok(())
}
