//! Bridges in: weights from elsewhere (a safetensors file with PyTorch's
//! names and layouts and none of our metadata, what
//! `safetensors.torch.save_file` writes for a state dict) read by `eval`,
//! `predict`, `features` and `train --init-from` given `--model`, each
//! wrong tensor named; and data as image folders, trained on as the IDX
//! files they were written from.

use crate::run::{run, trained};

use std::path::Path;

use safetensors::Dtype;
use safetensors::SafeTensors;
use safetensors::tensor::TensorView;

/// One f32 tensor: name, shape, bytes.
type Owned = (String, Vec<usize>, Vec<u8>);

/// Writes the tensors of `from`, changed by `edit`, with no metadata.
fn state_dict(from: &Path, to: &Path, edit: impl FnOnce(&mut Vec<Owned>)) {
    let bytes = std::fs::read(from).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<Owned> = st
        .tensors()
        .into_iter()
        .map(|(n, t)| (n, t.shape().to_vec(), t.data().to_vec()))
        .collect();
    edit(&mut tensors);
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, shape, data)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, shape.clone(), data).unwrap(),
            )
        })
        .collect();
    std::fs::write(to, safetensors::serialize(views, None).unwrap()).unwrap();
}

#[test]
fn a_state_dict_evaluates_as_the_checkpoint_it_came_from() {
    let (model, accuracy) = (&trained().model, trained().accuracy());
    let dir = tempfile::tempdir().unwrap();
    let bare = dir.path().join("state.safetensors");
    state_dict(model, &bare, |_| {});
    let bare_s = bare.to_str().unwrap();
    let (ok, stdout, e) = run(&["eval", "--model", "simple-conv-net", "--checkpoint", bare_s]);
    assert!(ok, "{e}");
    assert_eq!(stdout.lines().last().unwrap(), accuracy);

    // Without --model, the error says what is missing and what to do.
    let (ok, _, e) = run(&["eval", "--checkpoint", bare_s]);
    assert!(!ok && e.contains(bare_s) && e.contains("needs --model"), "{e}");
    // The wrong network for the weights: the first tensor that does not fit.
    let (ok, _, e) = run(&["eval", "--model", "lenet", "--checkpoint", bare_s]);
    assert!(
        !ok && e.contains("tensor conv1.weight has shape [30, 1, 5, 5], the model needs [6, 1, 5, 5]"),
        "{e}"
    );

    let png = dir.path().join("digit.png");
    let data = datasets::embedded().unwrap();
    let pixels = data
        .test
        .pixels()
        .slice(ndarray::s![0, 0, .., ..])
        .iter()
        .copied()
        .collect();
    image::GrayImage::from_raw(28, 28, pixels)
        .unwrap()
        .save(&png)
        .unwrap();
    let (ok, by_model, e) = run(&[
        "predict",
        "--model",
        "simple-conv-net",
        "--checkpoint",
        bare_s,
        "--json",
        png.to_str().unwrap(),
    ]);
    assert!(ok, "{e}");
    let (ok, by_file, e) = run(&[
        "predict",
        "--checkpoint",
        model.to_str().unwrap(),
        "--json",
        png.to_str().unwrap(),
    ]);
    assert!(ok, "{e}");
    let top =
        |s: &str| serde_json::from_str::<serde_json::Value>(s.trim()).unwrap()["top"][0]["index"].clone();
    assert_eq!(top(&by_model), top(&by_file));

    let out = dir.path().join("f.png");
    let (ok, _, e) = run(&[
        "features",
        "--model",
        "simple-conv-net",
        "--checkpoint",
        bare_s,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok && out.exists(), "{e}");
}

#[test]
fn each_wrong_tensor_is_named() {
    let model = &trained().model;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.safetensors");
    let p = path.to_str().unwrap();
    let eval = || run(&["eval", "--model", "simple-conv-net", "--checkpoint", p]);

    state_dict(model, &path, |t| t.retain(|(n, ..)| n != "fc2.bias"));
    let (ok, _, e) = eval();
    assert!(
        !ok && e.contains("tensor fc2.bias is missing (the model needs shape [10])"),
        "{e}"
    );

    state_dict(model, &path, |t| {
        t.push(("fc3.weight".into(), vec![2], vec![0; 8]))
    });
    let (ok, _, e) = eval();
    assert!(
        !ok && e.contains("tensor fc3.weight is not a parameter of simple-conv-net"),
        "{e}"
    );

    // The chapter's Affine layout [in, out] where PyTorch's [out, in] belongs.
    state_dict(model, &path, |t| {
        for (n, shape, _) in t.iter_mut() {
            if n == "fc1.weight" {
                *shape = vec![4320, 100];
            }
        }
    });
    let (ok, _, e) = eval();
    assert!(
        !ok && e.contains("tensor fc1.weight has shape [4320, 100], the model needs [100, 4320]"),
        "{e}"
    );
}

#[test]
fn training_can_start_from_a_state_dict() {
    let (model, accuracy) = (&trained().model, trained().accuracy());
    let dir = tempfile::tempdir().unwrap();
    let bare = dir.path().join("state.safetensors");
    state_dict(model, &bare, |_| {});
    // A learning rate far below the weights' resolution: the run ends
    // where it started, so its accuracy is the checkpoint's.
    let out = dir.path().join("run");
    let (ok, stdout, e) = run(&[
        "train",
        "--init-from",
        bare.to_str().unwrap(),
        "--epochs",
        "1",
        "--lr",
        "1e-30",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{e}");
    assert_eq!(stdout.lines().last().unwrap(), accuracy);
    let (ok, _, e) = run(&[
        "train",
        "--init-from",
        bare.to_str().unwrap(),
        "--model",
        "lenet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        !ok && e.contains("--init-from") && e.contains("conv1.weight"),
        "{e}"
    );
}

/// Writes the first `n` images of `split` as `dir/<class>/<index>.png`.
fn write_tree(dir: &Path, split: &datasets::Split, classes: &[String], first: usize) {
    for c in classes {
        std::fs::create_dir_all(dir.join(c)).unwrap();
    }
    for i in 0..split.len() {
        let px = split
            .pixels()
            .slice(ndarray::s![i, 0, .., ..])
            .iter()
            .copied()
            .collect();
        let class = &classes[split.labels()[i] as usize];
        let path = dir.join(class).join(format!("{:05}.png", first + i));
        image::GrayImage::from_raw(28, 28, px)
            .unwrap()
            .save(path)
            .unwrap();
    }
}

#[test]
fn training_on_image_folders_matches_training_on_the_idx_files() {
    let accuracy = trained().accuracy();
    let data = datasets::embedded().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("digits");
    write_tree(&tree.join("train"), &data.train, &data.classes, 0);
    write_tree(&tree.join("test"), &data.test, &data.classes, data.train.len());
    let out = dir.path().join("run");
    let (ok, stdout, e) = run(&[
        "train",
        "--dataset",
        tree.to_str().unwrap(),
        "--epochs",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{e}");
    assert!(
        e.contains("8000 training and 2000 test images of [1, 28, 28] in 10 classes"),
        "{e}"
    );
    // The same images in the same order: the same run, bit for bit.
    assert_eq!(stdout.lines().last().unwrap(), accuracy);
    let model = out.join("model.safetensors");
    let (ok, stdout, e) = run(&[
        "eval",
        "--checkpoint",
        model.to_str().unwrap(),
        "--dataset",
        tree.to_str().unwrap(),
    ]);
    assert!(ok, "{e}");
    assert_eq!(stdout.lines().last().unwrap(), accuracy);

    // One tree needs a split, and a bad file is named.
    let (ok, _, e) = run(&[
        "eval",
        "--checkpoint",
        model.to_str().unwrap(),
        "--dataset",
        tree.join("test").to_str().unwrap(),
    ]);
    assert!(
        !ok && e.contains("give a test split") && e.contains("--test-split FRACTION"),
        "{e}"
    );
    let bad = tree.join("test").join("3").join("broken.png");
    std::fs::write(&bad, b"no png").unwrap();
    let (ok, _, e) = run(&[
        "eval",
        "--checkpoint",
        model.to_str().unwrap(),
        "--dataset",
        tree.join("test").to_str().unwrap(),
        "--test-split",
        "0.5",
    ]);
    assert!(!ok && e.contains(bad.to_str().unwrap()), "{e}");
    let (ok, _, e) = run(&[
        "eval",
        "--checkpoint",
        model.to_str().unwrap(),
        "--dataset",
        tree.to_str().unwrap(),
        "--test-split",
        "0.5",
    ]);
    assert!(
        !ok && e.contains("--test-split 0.5") && e.contains("applies to a single tree"),
        "{e}"
    );
}

#[test]
fn a_run_on_a_single_tree_resumes_with_its_split() {
    let data = datasets::embedded().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("few");
    write_tree(&tree, &data.test.head(400), &data.classes, 0);
    let out = dir.path().join("run");
    let args = [
        "--dataset",
        tree.to_str().unwrap(),
        "--test-split",
        "0.25",
        "--split-seed",
        "7",
    ];
    let (ok, whole, e) = run(&[
        &["train", "--epochs", "2", "--out", out.to_str().unwrap()][..],
        &args,
    ]
    .concat());
    assert!(ok, "{e}");
    // A quarter of each class, rounded: 102 of 400.
    assert!(e.contains("298 training and 102 test images"), "{e}");
    let (ok, _, e) = run(&[
        &["train", "--epochs", "1", "--out", out.to_str().unwrap()][..],
        &args,
    ]
    .concat());
    assert!(ok, "{e}");
    let ckpt = out.join("checkpoint.safetensors");
    let (ok, resumed, e) = run(&[
        "train",
        "--resume",
        ckpt.to_str().unwrap(),
        "--epochs",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{e}");
    assert_eq!(resumed.lines().last(), whole.lines().last());
}

const SMALL: &str = r#"# A network of one's own.
name = "small"
input = [1, 28, 28]
classes = 10
init = "he"

[[layers]]
kind = "conv"
filters = 8
size = 3
pad = 1

[[layers]]
kind = "relu"

[[layers]]
kind = "max-pool"
size = 4

[[layers]]
kind = "affine"
"#;

#[test]
fn a_network_from_a_file_trains_evaluates_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("small.toml");
    std::fs::write(&file, SMALL).unwrap();
    let f = file.to_str().unwrap();
    let (ok, table, e) = run(&["summary", "--model", f]);
    assert!(
        ok && table.contains("small, input 1x28x28") && table.contains("8x7x7"),
        "{table}{e}"
    );

    let out = dir.path().join("run");
    let o = out.to_str().unwrap();
    let (ok, whole, e) = run(&["train", "--model", f, "--epochs", "2", "--out", o]);
    assert!(ok, "{e}");
    let last = whole.lines().last().unwrap();
    assert!(last.starts_with("test accuracy: "), "{whole}");
    // Each epoch's line ends with the CPU time its training took.
    let cpu: Vec<f64> = whole
        .lines()
        .filter(|l| l.starts_with("epoch "))
        .filter_map(|l| l.strip_suffix(" s CPU)")?.rsplit(' ').next()?.parse().ok())
        .collect();
    assert!(cpu.len() == 2 && cpu.iter().all(|&s| s > 0.0), "{whole}");
    let model = out.join("model.safetensors");
    let (ok, stdout, e) = run(&["eval", "--checkpoint", model.to_str().unwrap()]);
    assert!(ok, "{e}");
    assert_eq!(stdout.lines().last().unwrap(), last);
    let (ok, table, _) = run(&["summary", "--checkpoint", model.to_str().unwrap()]);
    assert!(ok && table.contains("small, input 1x28x28"), "{table}");

    // Stopped after one epoch and resumed: the same run.
    let (ok, _, e) = run(&["train", "--model", f, "--epochs", "1", "--out", o]);
    assert!(ok, "{e}");
    let ckpt = out.join("checkpoint.safetensors");
    let (ok, resumed, e) = run(&[
        "train",
        "--resume",
        ckpt.to_str().unwrap(),
        "--epochs",
        "2",
        "--out",
        o,
    ]);
    assert!(ok, "{e}");
    assert_eq!(resumed.lines().last().unwrap(), last);

    // A mistake in the file: refused while the flags are read, naming the line.
    std::fs::write(&file, SMALL.replace("size = 4", "size = 5")).unwrap();
    let (ok, _, e) = run(&["train", "--model", f, "--out", o]);
    assert!(
        !ok && e.contains(&format!("{f}:16: layer 3 (max-pool): pool1: ")),
        "{e}"
    );
    std::fs::write(&file, SMALL.replace("kind = \"relu\"", "kind = \"tanh\"")).unwrap();
    let (ok, _, e) = run(&["train", "--model", f, "--out", o]);
    assert!(
        !ok && e.contains(&format!("{f}:13: layer 2 (tanh): unknown variant `tanh`")),
        "{e}"
    );
    // A network for other images than the data's.
    std::fs::write(&file, SMALL.replace("input = [1, 28, 28]", "input = [3, 32, 32]")).unwrap();
    let (ok, _, e) = run(&["train", "--model", f, "--out", o]);
    assert!(
        !ok && e
            .contains("the network takes [3, 32, 32] images and 10 classes; the data has [1, 28, 28] and 10"),
        "{e}"
    );
}
