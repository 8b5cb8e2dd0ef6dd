//! Checkpoints: exact round trips, the PyTorch layout of MODELS.md, and
//! refusal of files that do not match the model, naming the first mismatch.

use std::collections::HashMap;

use layers::{Mode, Parameters};
use models::{Architecture, Network, checkpoint};
use ndarray::ArrayD;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};

fn bits(net: &Network<f32>) -> Vec<(String, Vec<u32>)> {
    let mut v = Vec::new();
    net.visit_params(&mut |n, p, _| v.push((n.to_string(), p.iter().map(|x| x.to_bits()).collect())));
    v
}

#[test]
fn round_trip_is_exact_for_all_three_models() {
    let dir = tempfile::tempdir().unwrap();
    for arch in Architecture::ALL {
        let path = dir.path().join(format!("{arch}.safetensors"));
        let mut net = arch.build::<f32>([1, 28, 28], 10, 42).unwrap();
        checkpoint::save(&net, &path).unwrap();
        let mut back: Network<f32> = checkpoint::load(&path).unwrap();
        assert_eq!(bits(&net), bits(&back), "{arch}");
        let x = ArrayD::from_shape_fn(vec![2, 1, 28, 28], |i| (i[2] * i[3]) as f32 / 784.0);
        let a = net.predict(x.view(), Mode::Inference).unwrap().clone();
        assert_eq!(&a, back.predict(x.view(), Mode::Inference).unwrap(), "{arch}");
    }
}

#[test]
fn files_use_the_pytorch_layout_and_record_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let net = Architecture::SimpleConvNet
        .build::<f32>([1, 28, 28], 10, 1)
        .unwrap();
    checkpoint::save(&net, &path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut names = st.names();
    names.sort();
    assert_eq!(
        names,
        [
            "conv1.bias",
            "conv1.weight",
            "fc1.bias",
            "fc1.weight",
            "fc2.bias",
            "fc2.weight"
        ]
    );
    assert_eq!(st.tensor("conv1.weight").unwrap().shape(), [30, 1, 5, 5]);
    let fc1 = st.tensor("fc1.weight").unwrap();
    assert_eq!((fc1.shape(), fc1.dtype()), (&[100, 4320][..], Dtype::F32));
    // Element [out=3][in=7] of the file is W[7][3] of the chapter's Affine.
    let at =
        |t: &TensorView<'_>, i: usize| f32::from_le_bytes(t.data()[4 * i..4 * i + 4].try_into().unwrap());
    let mut w73 = 0.0;
    net.visit_params(&mut |n, v, _| {
        if n == "fc1.weight" {
            w73 = v[[7, 3]];
        }
    });
    assert_eq!(at(&fc1, 3 * 4320 + 7), w73);
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone().unwrap();
    assert_eq!(meta["model"], "simple-conv-net");
    assert_eq!(meta["input_shape"], "1,28,28");
    assert_eq!(meta["classes"], "10");
}

#[test]
fn mismatched_files_are_refused_naming_the_first_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let lenet = Architecture::LeNet.build::<f32>([1, 28, 28], 10, 0).unwrap();
    checkpoint::save(&lenet, &p("lenet")).unwrap();
    let mut simple = Architecture::SimpleConvNet
        .build::<f32>([1, 28, 28], 10, 0)
        .unwrap();
    let e = checkpoint::load_into(&mut simple, &p("lenet"))
        .unwrap_err()
        .to_string();
    assert!(
        e.ends_with("tensor conv1.weight has shape [6, 1, 5, 5], the model needs [30, 1, 5, 5]"),
        "{e}"
    );

    let cifar = Architecture::SimpleConvNet
        .build::<f32>([3, 32, 32], 10, 0)
        .unwrap();
    checkpoint::save(&cifar, &p("cifar")).unwrap();
    let mut gray = Architecture::SimpleConvNet
        .build::<f32>([1, 28, 28], 10, 0)
        .unwrap();
    let e = checkpoint::load_into(&mut gray, &p("cifar"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("conv1.weight has shape [30, 3, 5, 5]"), "{e}");

    // A file with an F64 tensor, and one lacking a tensor.
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    simple.visit_params(&mut |n, v, _| {
        let shape: Vec<usize> = if v.ndim() == 2 {
            v.shape().iter().rev().copied().collect()
        } else {
            v.shape().to_vec()
        };
        let (dtype_bytes, len) = if n == "fc2.bias" {
            (8, v.len())
        } else {
            (4, v.len())
        };
        tensors.push((n.to_string(), shape, vec![0u8; dtype_bytes * len]));
    });
    let write = |tensors: &[(String, Vec<usize>, Vec<u8>)], name: &str| {
        let views = tensors.iter().map(|(n, s, b)| {
            let dt = if n == "fc2.bias" { Dtype::F64 } else { Dtype::F32 };
            (n.clone(), TensorView::new(dt, s.clone(), b).unwrap())
        });
        std::fs::write(
            p(name),
            safetensors::serialize(views, None::<HashMap<String, String>>).unwrap(),
        )
        .unwrap();
    };
    write(&tensors, "f64");
    let e = checkpoint::load_into(&mut simple, &p("f64"))
        .unwrap_err()
        .to_string();
    assert!(e.ends_with("tensor fc2.bias: dtype F64, expected F32"), "{e}");
    write(&tensors[..3], "short");
    let e = checkpoint::load_into(&mut simple, &p("short"))
        .unwrap_err()
        .to_string();
    assert!(
        e.ends_with("tensor fc1.bias is missing (the model needs shape [100])"),
        "{e}"
    );
    // load() needs the metadata.
    let e = checkpoint::load::<f32>(&p("short")).err().unwrap().to_string();
    assert!(e.ends_with("metadata has no \"model\" entry"), "{e}");

    // A damaged file.
    let bytes = std::fs::read(p("lenet")).unwrap();
    std::fs::write(p("cut"), &bytes[..bytes.len() / 2]).unwrap();
    let e = checkpoint::load::<f32>(&p("cut")).err().unwrap().to_string();
    assert!(e.contains("not a safetensors file"), "{e}");
}

#[test]
fn saving_replaces_the_file_and_leaves_no_temporary() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    for seed in [1, 2] {
        let net = Architecture::LeNet.build::<f32>([1, 28, 28], 10, seed).unwrap();
        checkpoint::save(&net, &path).unwrap();
        let back: Network<f32> = checkpoint::load(&path).unwrap();
        assert_eq!(bits(&back), bits(&net));
    }
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files, ["m.safetensors"]);
}
