//! Weights from elsewhere: a safetensors file with PyTorch's names and
//! layouts and none of our metadata (what `safetensors.torch.save_file`
//! writes for a state dict) is read by `eval`, `predict`, `features` and
//! `train --init-from` given `--model`, and each wrong tensor is named.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use safetensors::Dtype;
use safetensors::SafeTensors;
use safetensors::tensor::TensorView;

const XTASK: &str = env!("CARGO_BIN_EXE_xtask");

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(XTASK).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A SimpleConvNet trained for one epoch, its model.safetensors, and the
/// test accuracy `train` reported.
fn trained() -> &'static (PathBuf, String) {
    static RUN: OnceLock<(PathBuf, String)> = OnceLock::new();
    RUN.get_or_init(|| {
        let out = tempfile::tempdir().unwrap().keep().join("run");
        let (ok, stdout, e) = run(&["train", "--epochs", "1", "--out", out.to_str().unwrap()]);
        assert!(ok, "{e}");
        let last = stdout.lines().last().unwrap().to_string();
        assert!(last.starts_with("test accuracy: "), "{last}");
        (out.join("model.safetensors"), last)
    })
}

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
    let (model, accuracy) = trained();
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
    let (model, _) = trained();
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
    let (model, accuracy) = trained();
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
