//! The readers against files made here: every malformation is an error that
//! names the file and says what and where, valid files round-trip, and
//! arbitrary or mutated bytes never panic.

use std::io::Write;
use std::path::Path;

use datasets::{Error, load_cifar10_dir, load_idx_dir, parse_cifar10, parse_idx};
use proptest::prelude::*;

fn idx(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = magic.to_be_bytes().to_vec();
    for d in dims {
        v.extend(d.to_be_bytes());
    }
    v.extend_from_slice(data);
    v
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn msg(bytes: &[u8]) -> String {
    parse_idx(bytes, "f.idx").unwrap_err().to_string()
}

#[test]
fn malformed_idx_headers_are_explained() {
    assert_eq!(
        msg(&[0, 0]),
        "f.idx: too short for an IDX header: 2 bytes, need at least 4"
    );
    assert_eq!(
        msg(&[0x1f, 0x8b, 8, 0, 0, 0]),
        "f.idx: bad magic at offset 0: expected 00 00, found 1f 8b (not an IDX file)"
    );
    assert_eq!(
        msg(&idx(0x0d01, &[1], &[0, 0, 0, 0])),
        "f.idx: unsupported data type 0x0d at offset 2: expected 0x08 (unsigned byte)"
    );
    assert_eq!(
        msg(&[0, 0, 8, 3, 0, 0, 0, 1]),
        "f.idx: truncated header: 3 dimensions need 16 bytes, the file has 8"
    );
    assert_eq!(
        msg(&idx(0x0803, &[2, 28, 28], &[0; 1000])),
        "f.idx: truncated: the header declares 1568 data bytes after offset 16, the file has 1000"
    );
    assert!(msg(&idx(0x0801, &[2], &[1, 2, 3])).contains("1 unexpected bytes after the data"));
}

#[test]
fn huge_declared_sizes_are_refused_before_allocating() {
    // 2^32-1 cubed overflows on 64 bits; 60000 x 65535 x 65535 does not but
    // is far beyond the file. Neither may allocate its declared size.
    let e = msg(&idx(0x0803, &[u32::MAX, u32::MAX, u32::MAX], &[]));
    assert!(e.contains("overflow"), "{e}");
    let e = msg(&idx(0x0803, &[60000, 65535, 65535], &[1, 2, 3]));
    assert!(e.contains("declares 257690173500000 data bytes"), "{e}");
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap();
}

/// A small MNIST-like directory: `n` train and `m` test images of 4x3.
fn mnist_dir(n: u32, m: u32, gzip: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let pix = |k: u32| (0..k * 12).map(|i| (i % 251) as u8).collect::<Vec<_>>();
    let lab = |k: u32| (0..k).map(|i| (i % 10) as u8).collect::<Vec<_>>();
    let files = [
        ("train-images-idx3-ubyte", idx(0x0803, &[n, 4, 3], &pix(n))),
        ("train-labels-idx1-ubyte", idx(0x0801, &[n], &lab(n))),
        ("t10k-images-idx3-ubyte", idx(0x0803, &[m, 4, 3], &pix(m))),
        ("t10k-labels-idx1-ubyte", idx(0x0801, &[m], &lab(m))),
    ];
    for (name, bytes) in files {
        if gzip {
            write(dir.path(), &format!("{name}.gz"), &gz(&bytes));
        } else {
            write(dir.path(), name, &bytes);
        }
    }
    dir
}

#[test]
fn idx_directories_round_trip_raw_and_gzip() {
    for gzip in [false, true] {
        let dir = mnist_dir(20, 7, gzip);
        let d = load_idx_dir(dir.path(), "tiny", &datasets::MNIST_CLASSES).unwrap();
        assert_eq!((d.train.len(), d.test.len()), (20, 7));
        assert_eq!(d.input_shape(), [1, 4, 3]);
        assert_eq!(d.train.pixels()[[1, 0, 0, 0]], 12);
        assert_eq!(d.test.labels()[6], 6);
        let x = d.train.images::<f64>();
        assert_eq!(x[[0, 0, 0, 1]], 1.0 / 255.0);
    }
}

#[test]
fn mismatched_and_damaged_files_are_refused() {
    let dir = mnist_dir(20, 7, false);
    // Labels for 19 images beside 20 images.
    write(
        dir.path(),
        "train-labels-idx1-ubyte",
        &idx(0x0801, &[19], &[0; 19]),
    );
    let e = load_idx_dir(dir.path(), "x", &datasets::MNIST_CLASSES)
        .unwrap_err()
        .to_string();
    assert!(e.contains("20 images but 19 labels"), "{e}");
    // A label of 10 in a 10-class set.
    write(
        dir.path(),
        "train-labels-idx1-ubyte",
        &idx(0x0801, &[20], &[10; 20]),
    );
    let e = load_idx_dir(dir.path(), "x", &datasets::MNIST_CLASSES)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("label 10 of image 0 is out of range for 10 classes"),
        "{e}"
    );
    // Labels where images should be.
    write(
        dir.path(),
        "train-images-idx3-ubyte",
        &idx(0x0801, &[20], &[0; 20]),
    );
    let e = load_idx_dir(dir.path(), "x", &datasets::MNIST_CLASSES)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("train-images-idx3-ubyte: expected an image file"),
        "{e}"
    );
    // A gzip stream cut short (with valid images back in place).
    write(
        dir.path(),
        "train-images-idx3-ubyte",
        &idx(0x0803, &[20, 4, 3], &[1; 240]),
    );
    let full = gz(&idx(0x0801, &[20], &[1; 20]));
    write(dir.path(), "train-labels-idx1-ubyte.gz", &full[..full.len() - 9]);
    let e = load_idx_dir(dir.path(), "x", &datasets::MNIST_CLASSES)
        .unwrap_err()
        .to_string();
    assert!(e.contains("gzip stream is damaged or truncated"), "{e}");
    // A missing file.
    std::fs::remove_file(dir.path().join("t10k-labels-idx1-ubyte")).unwrap();
    std::fs::remove_file(dir.path().join("train-labels-idx1-ubyte.gz")).unwrap();
    write(
        dir.path(),
        "train-labels-idx1-ubyte",
        &idx(0x0801, &[20], &[1; 20]),
    );
    assert!(matches!(
        load_idx_dir(dir.path(), "x", &datasets::MNIST_CLASSES),
        Err(Error::Missing { .. })
    ));
}

#[test]
fn cifar10_directories_load_and_refuse_damage() {
    let dir = tempfile::tempdir().unwrap();
    let record = |label: u8, v: u8| {
        let mut r = vec![label];
        r.extend(std::iter::repeat_n(v, 3072));
        r
    };
    for i in 1..=5 {
        let bytes: Vec<u8> = (0..3).flat_map(|k| record(k as u8 + i, k as u8)).collect();
        write(dir.path(), &format!("data_batch_{i}.bin"), &bytes);
    }
    write(dir.path(), "test_batch.bin", &record(9, 200));
    let d = load_cifar10_dir(dir.path()).unwrap();
    assert_eq!(
        (d.train.len(), d.test.len(), d.input_shape()),
        (15, 1, [3, 32, 32])
    );
    assert_eq!(d.train.labels()[..3], [1, 2, 3]);
    assert_eq!(d.test.pixels()[[0, 2, 31, 31]], 200);
    let e = parse_cifar10(&record(10, 0), "bad.bin").unwrap_err().to_string();
    assert_eq!(e, "bad.bin: record 0 (offset 0): label 10 is out of range 0..10");
    let e = parse_cifar10(&[record(1, 0), vec![3; 5]].concat(), "cut.bin")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("record 1 (at offset 3073) is truncated to 5 bytes"),
        "{e}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = parse_idx(&bytes, "fuzz");
        let _ = datasets::maybe_gunzip(bytes.clone(), "fuzz");
        let _ = parse_cifar10(&bytes, "fuzz");
    }

    #[test]
    fn mutated_valid_files_never_panic(pos in 0usize..60, val in any::<u8>(), cut in 0usize..60, zip in any::<bool>()) {
        let mut bytes = idx(0x0803, &[2, 4, 5], &[7; 40]);
        if zip { bytes = gz(&bytes); }
        let pos = pos % bytes.len();
        bytes[pos] = val;
        bytes.truncate(bytes.len() - cut.min(bytes.len()));
        if let Ok(raw) = datasets::maybe_gunzip(bytes, "m")
            && let Ok(i) = parse_idx(&raw, "m")
        {
            prop_assert_eq!(i.data.len(), i.dims.iter().product::<usize>());
        }
    }
}
