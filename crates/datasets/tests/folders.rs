//! Image folders against the data they were written from: the embedded
//! subset written as `train/<class>/NNNNN.png` reads back pixel for pixel
//! in its own order; a single tree splits by its seed; every fault names
//! its file or folder.

#![cfg(feature = "images")]

use std::path::Path;

use datasets::folders::{FolderOptions, is_image_folder, load_image_folders};
use ndarray::s;

/// Writes `split` as `dir/<class>/<index>.png`.
fn write_tree(dir: &Path, split: &datasets::Split, classes: &[String], first: usize) {
    for c in classes {
        std::fs::create_dir_all(dir.join(c)).unwrap();
    }
    for i in 0..split.len() {
        let px = split.pixels().slice(s![i, 0, .., ..]).iter().copied().collect();
        let class = &classes[split.labels()[i] as usize];
        image::GrayImage::from_raw(28, 28, px)
            .unwrap()
            .save(dir.join(class).join(format!("{:05}.png", first + i)))
            .unwrap();
    }
}

#[test]
fn the_embedded_subset_written_as_folders_reads_back_exactly() {
    let data = datasets::embedded().unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_tree(&dir.path().join("train"), &data.train, &data.classes, 0);
    write_tree(
        &dir.path().join("test"),
        &data.test,
        &data.classes,
        data.train.len(),
    );
    assert!(is_image_folder(dir.path()));
    let mut calls = 0;
    let back = load_image_folders(dir.path(), &FolderOptions::default(), &mut |done, total| {
        calls += 1;
        assert_eq!((done, total), (calls, 10_000));
    })
    .unwrap();
    assert_eq!(calls, 10_000);
    assert_eq!(back.classes, data.classes);
    assert_eq!(back.train, data.train);
    assert_eq!(back.test, data.test);
}

/// `n` images per class of classes `a` and `b`, 6x4 grey.
fn single_tree(dir: &Path, n: usize) {
    for (c, shade) in [("a", 20u8), ("b", 200)] {
        std::fs::create_dir_all(dir.join(c)).unwrap();
        for i in 0..n {
            image::GrayImage::from_pixel(4, 6, image::Luma([shade]))
                .save(dir.join(c).join(format!("{c}{i:03}.png")))
                .unwrap();
        }
    }
}

#[test]
fn a_single_tree_is_split_by_its_seed() {
    let dir = tempfile::tempdir().unwrap();
    single_tree(dir.path(), 50);
    let load = |seed| {
        let options = FolderOptions {
            test_split: Some(0.2),
            seed,
            ..FolderOptions::default()
        };
        load_image_folders(dir.path(), &options, &mut |_, _| {}).unwrap()
    };
    let (one, again, other) = (load(1), load(1), load(2));
    assert_eq!(one, again);
    assert_eq!((one.train.len(), one.test.len()), (80, 20));
    assert_eq!(one.input_shape(), [1, 6, 4]);
    // Ten of each class held out.
    let held_b = one.test.labels().iter().filter(|&&l| l == 1).count();
    assert_eq!(held_b, 10);
    assert!(
        one.test.labels()[..10].iter().all(|&l| l == 0),
        "ordered by file name: a* first"
    );
    // Another seed holds out other files (the pixels cannot tell, so the
    // order of file names does: compare which indices each class lost).
    assert_ne!(split_names(dir.path(), 1), split_names(dir.path(), 2));
    // The split depends on the seed and the files' names, not on where the
    // tree lies (each call copies it into a new temporary folder).
    assert_eq!(split_names(dir.path(), 1), split_names(dir.path(), 1));
    assert_eq!(one.classes, ["a", "b"]);
    assert_eq!(other.test.len(), 20);
}

/// Which files a seed holds out, found by marking each file's pixels.
fn split_names(dir: &Path, seed: u64) -> Vec<u8> {
    let marked = tempfile::tempdir().unwrap();
    for c in ["a", "b"] {
        std::fs::create_dir_all(marked.path().join(c)).unwrap();
        for f in std::fs::read_dir(dir.join(c)).unwrap() {
            let f = f.unwrap().path();
            let i: u8 = f.file_stem().unwrap().to_str().unwrap()[1..].parse().unwrap();
            image::GrayImage::from_pixel(4, 6, image::Luma([i]))
                .save(marked.path().join(c).join(f.file_name().unwrap()))
                .unwrap();
        }
    }
    let options = FolderOptions {
        test_split: Some(0.2),
        seed,
        ..FolderOptions::default()
    };
    let data = load_image_folders(marked.path(), &options, &mut |_, _| {}).unwrap();
    data.test.pixels().slice(s![.., 0, 0, 0]).to_vec()
}

#[test]
fn images_of_other_sizes_and_colours_take_the_first_ones_shape() {
    // The first training image, by file name then class, is train/cat/0.png.
    let tree = |first_is_grey: bool| {
        let dir = tempfile::tempdir().unwrap();
        for c in ["train/cat", "train/dog", "test/cat", "test/dog"] {
            std::fs::create_dir_all(dir.path().join(c)).unwrap();
        }
        let first = dir.path().join("train/cat/0.png");
        if first_is_grey {
            image::GrayImage::from_pixel(16, 8, image::Luma([200]))
                .save(first)
                .unwrap();
        } else {
            image::RgbImage::from_pixel(16, 8, image::Rgb([255, 0, 0]))
                .save(first)
                .unwrap();
        }
        image::GrayImage::from_pixel(40, 40, image::Luma([128]))
            .save(dir.path().join("train/cat/1.jpg"))
            .unwrap();
        image::RgbImage::from_pixel(3, 3, image::Rgb([0, 0, 255]))
            .save(dir.path().join("train/dog/0.png"))
            .unwrap();
        image::GrayImage::from_pixel(5, 5, image::Luma([7]))
            .save(dir.path().join("test/cat/0.png"))
            .unwrap();
        image::RgbImage::from_pixel(5, 9, image::Rgb([0, 0, 255]))
            .save(dir.path().join("test/dog/0.png"))
            .unwrap();
        dir
    };
    let options = FolderOptions::default();
    let colour = tree(false);
    let data = load_image_folders(colour.path(), &options, &mut |_, _| {}).unwrap();
    assert_eq!(data.input_shape(), [3, 8, 16]);
    assert_eq!((data.train.len(), data.test.len()), (3, 2));
    // The grey 40x40 image, replicated into colour and resized.
    let cat1 = data.train.pixels().slice(s![2, .., .., ..]).to_owned();
    assert!(cat1.iter().all(|&p| p == 128), "{cat1:?}");
    let grey = tree(true);
    let data = load_image_folders(grey.path(), &options, &mut |_, _| {}).unwrap();
    assert_eq!(data.input_shape(), [1, 8, 16]);
    // Asked for a shape, every image has it.
    let options = FolderOptions {
        shape: Some([1, 7, 9]),
        ..options
    };
    let data = load_image_folders(colour.path(), &options, &mut |_, _| {}).unwrap();
    assert_eq!(data.input_shape(), [1, 7, 9]);
    assert_eq!(data.test.pixels().shape(), [2, 1, 7, 9]);
}

#[test]
fn every_fault_names_its_file_or_folder() {
    let err = |dir: &Path, options: FolderOptions| {
        load_image_folders(dir, &options, &mut |_, _| {})
            .unwrap_err()
            .to_string()
    };
    let split = FolderOptions {
        test_split: Some(0.5),
        ..FolderOptions::default()
    };

    let dir = tempfile::tempdir().unwrap();
    single_tree(dir.path(), 2);
    let bad = dir.path().join("b").join("b001.png");
    std::fs::write(&bad, b"not a picture").unwrap();
    let e = err(dir.path(), split);
    assert!(e.starts_with(&bad.display().to_string()), "{e}");

    std::fs::remove_file(&bad).unwrap();
    std::fs::create_dir(dir.path().join("c")).unwrap();
    let e = err(dir.path(), split);
    assert!(
        e.contains(&dir.path().join("c").display().to_string()) && e.contains("an empty class"),
        "{e}"
    );
    std::fs::remove_dir(dir.path().join("c")).unwrap();

    let e = err(dir.path(), FolderOptions::default());
    assert!(
        e.contains("no train/ and test/ folders: give a test split"),
        "{e}"
    );
    let e = err(
        dir.path(),
        FolderOptions {
            test_split: Some(1.0),
            ..split
        },
    );
    assert!(e.contains("test split 1: a fraction in (0, 1)"), "{e}");

    let two = tempfile::tempdir().unwrap();
    single_tree(&two.path().join("train"), 2);
    single_tree(&two.path().join("test"), 2);
    let e = err(two.path(), split);
    assert!(e.contains("a test split applies to a single tree"), "{e}");
    std::fs::rename(two.path().join("test/b"), two.path().join("test/z")).unwrap();
    let e = err(two.path(), FolderOptions::default());
    assert!(
        e.contains("[\"a\", \"b\"]") && e.contains("[\"a\", \"z\"]"),
        "{e}"
    );

    let flat = tempfile::tempdir().unwrap();
    std::fs::write(flat.path().join("x.png"), b"").unwrap();
    assert!(!is_image_folder(flat.path()));
    let e = err(flat.path(), split);
    assert!(e.contains("no class folders"), "{e}");
}
