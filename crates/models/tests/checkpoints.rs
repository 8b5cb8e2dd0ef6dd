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

/// The child side of the kill test: save two checkpoints alternately, forever.
fn save_loop_if_child() {
    if let Some(path) = std::env::var_os("CHECKPOINT_SAVE_LOOP") {
        let path = std::path::PathBuf::from(path);
        let a = Architecture::LeNet.build::<f32>([1, 28, 28], 10, 1).unwrap();
        let b = Architecture::LeNet.build::<f32>([1, 28, 28], 10, 2).unwrap();
        loop {
            checkpoint::save(&a, &path).unwrap();
            checkpoint::save(&b, &path).unwrap();
        }
    }
}

#[test]
fn a_save_killed_at_any_moment_leaves_the_old_or_the_new_checkpoint() {
    save_loop_if_child();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let a = Architecture::LeNet.build::<f32>([1, 28, 28], 10, 1).unwrap();
    let b = Architecture::LeNet.build::<f32>([1, 28, 28], 10, 2).unwrap();
    checkpoint::save(&a, &path).unwrap();
    let (bits_a, bits_b) = (bits(&a), bits(&b));
    let mut seen = [0usize; 2];
    // This test's name as the harness knows it: the module path past the
    // crate's name, which differs with the binary the file is built into.
    const TEST: &str = "a_save_killed_at_any_moment_leaves_the_old_or_the_new_checkpoint";
    let name = match module_path!().split_once("::") {
        Some((_, module)) => format!("{module}::{TEST}"),
        None => TEST.to_string(),
    };
    // At least 25 rounds, and until each checkpoint has been found whole
    // at least once (so the test shows both writes complete, not merely
    // that the first file survived).
    for round in 0..200u64 {
        if round >= 25 && seen[0] > 0 && seen[1] > 0 {
            break;
        }
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", &name, "--test-threads=1"])
            .env("CHECKPOINT_SAVE_LOOP", &path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Kill at a different moment each round, within the save loop.
        std::thread::sleep(std::time::Duration::from_millis(20 + (round * 37) % 90));
        child.kill().unwrap();
        child.wait().unwrap();
        let loaded: Network<f32> = checkpoint::load(&path).unwrap_or_else(|e| panic!("round {round}: {e}"));
        let got = bits(&loaded);
        assert!(
            got == bits_a || got == bits_b,
            "round {round}: a mixture of checkpoints"
        );
        seen[(got == bits_b) as usize] += 1;
    }
    assert!(
        seen[0] > 0 && seen[1] > 0,
        "each checkpoint found whole: {} and {} times",
        seen[0],
        seen[1]
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

    // A slice of `cargo xtask fuzz --target checkpoint`: mutated checkpoints
    // are refused with an error, never a panic.
    #[test]
    fn mutated_checkpoints_never_panic(at in 0usize..300_000, val in proptest::prelude::any::<u8>(), cut in proptest::prelude::any::<bool>()) {
        use std::sync::OnceLock;
        static SEED: OnceLock<Vec<u8>> = OnceLock::new();
        let seed = SEED.get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("s");
            checkpoint::save(&Architecture::LeNet.build::<f32>([1, 28, 28], 10, 0).unwrap(), &p).unwrap();
            std::fs::read(p).unwrap()
        });
        let mut bytes = seed.clone();
        let i = at % bytes.len();
        if cut { bytes.truncate(i) } else { bytes[i] = val }
        let _ = checkpoint::load_bytes::<f32>(bytes, std::path::Path::new("mutated"));
    }
}

#[test]
fn a_training_checkpoint_loads_as_weights_but_strangers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.safetensors");
    let net = Architecture::SimpleConvNet
        .build::<f32>([1, 28, 28], 10, 4)
        .unwrap();
    let opt = layers::Adam::<f32>::new(0.001);
    let config = models::TrainConfig::default();
    checkpoint::save_training(&net, &opt, &config, &config.start, &path, &[]).unwrap();
    let back: Network<f32> = checkpoint::load(&path).unwrap();
    assert_eq!(bits(&back), bits(&net));
    let stranger = ndarray::ArrayD::<f32>::zeros(vec![2]);
    checkpoint::save_with(&net, &path, &[("extra.thing".into(), stranger)], &[]).unwrap();
    let e = checkpoint::load::<f32>(&path).err().unwrap().to_string();
    assert!(
        e.ends_with("tensor extra.thing is not a parameter of simple-conv-net"),
        "{e}"
    );
}

#[test]
fn the_same_state_saves_to_the_same_bytes_laid_out_as_safetensors_writes_them() {
    let dir = tempfile::tempdir().unwrap();
    let net = Architecture::LeNet.build::<f32>([1, 28, 28], 10, 5).unwrap();
    // Keys and values that JSON must escape, and more keys than a hash map
    // would keep in insertion order.
    let meta: Vec<(String, String)> = (0..12)
        .map(|i| (format!("key \"{i}\"\\"), format!("välue\n{i}")))
        .collect();
    let (a, b) = (dir.path().join("a.safetensors"), dir.path().join("b.safetensors"));
    checkpoint::save_with(&net, &a, &[], &meta).unwrap();
    checkpoint::save_with(&net, &b, &[], &meta).unwrap();
    let bytes = std::fs::read(&a).unwrap();
    assert_eq!(bytes, std::fs::read(&b).unwrap());

    // The safetensors crate reads back every entry...
    let (header_len, read) = SafeTensors::read_metadata(&bytes).unwrap();
    let read_meta = read.metadata().clone().unwrap();
    for (k, v) in &meta {
        assert_eq!(read_meta.get(k), Some(v), "{k}");
    }
    assert_eq!(read_meta["model"], "lenet");
    // ...and its own writer, given the same tensors, lays out the same data.
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let theirs = safetensors::serialize(st.tensors(), Some(read_meta)).unwrap();
    let their_len = u64::from_le_bytes(theirs[..8].try_into().unwrap()) as usize;
    assert_eq!(&bytes[8 + header_len..], &theirs[8 + their_len..]);
    assert_eq!(header_len % 8, 0);
}

/// A network computing by the chapter's convolution comes back from its
/// checkpoint computing the same way (with its ReLUs as layers of their
/// own, so a training run resumes on the same layers); an unknown method
/// in the metadata is refused naming the field.
#[test]
fn the_convolution_method_survives_a_checkpoint() {
    use layers::ConvMethod;
    use models::BuildOptions;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chapter.safetensors");
    let options = BuildOptions {
        conv_method: ConvMethod::Chapter,
        ..BuildOptions::default()
    };
    let net = Architecture::SimpleConvNet
        .build_with::<f32>([1, 28, 28], 10, 3, options)
        .unwrap();
    checkpoint::save(&net, &path).unwrap();
    let back: Network<f32> = checkpoint::load(&path).unwrap();
    assert_eq!(back.conv_method(), ConvMethod::Chapter);
    assert_eq!(back.layers().count(), net.layers().count());
    assert_eq!(bits(&net), bits(&back));
    // The default method is not recorded at all.
    let plain = dir.path().join("plain.safetensors");
    checkpoint::save(
        &Architecture::LeNet.build::<f32>([1, 28, 28], 10, 3).unwrap(),
        &plain,
    )
    .unwrap();
    let bytes = std::fs::read(&plain).unwrap();
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    assert!(
        !meta
            .metadata()
            .clone()
            .unwrap_or_default()
            .contains_key(checkpoint::META_CONV_METHOD)
    );

    let bytes = std::fs::read(&path).unwrap();
    let at = bytes.windows(9).position(|w| w == b"\"chapter\"").unwrap();
    let mut bad = bytes.clone();
    bad[at + 1..at + 8].copy_from_slice(b"chapped");
    let e = checkpoint::load_bytes::<f32>(bad, std::path::Path::new("bad.safetensors"))
        .err()
        .expect("refused")
        .to_string();
    assert!(
        e.contains("bad.safetensors") && e.contains("conv_method") && e.contains("chapped"),
        "{e}"
    );
}

/// Metadata that describes an impossible or enormous network is refused
/// with an error naming the file and the fields, before any of it is
/// allocated: no panic inside ndarray, no abort asking for terabytes.
#[test]
fn hostile_metadata_is_refused_before_anything_is_built() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.safetensors");
    checkpoint::save(
        &Architecture::SimpleConvNet
            .build::<f32>([1, 28, 28], 10, 0)
            .unwrap(),
        &good,
    )
    .unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    for (key, value) in [
        (checkpoint::META_INPUT, "4611686018427387904,28,28"),
        (checkpoint::META_INPUT, "1,65534,65534"),
        (
            checkpoint::META_INPUT,
            "18446744073709551615,18446744073709551615,1",
        ),
        (checkpoint::META_CLASSES, "3000000000"),
        (checkpoint::META_CLASSES, "0"),
    ] {
        let mut meta: HashMap<String, String> = header.metadata().clone().unwrap();
        meta.insert(key.to_string(), value.to_string());
        let path = dir.path().join("hostile.safetensors");
        let tensors: Vec<(String, TensorView<'_>)> = file
            .tensors()
            .into_iter()
            .map(|(n, t)| (n.to_string(), t))
            .collect();
        safetensors::serialize_to_file(tensors, Some(meta), &path).unwrap();
        let e = checkpoint::load::<f32>(&path).err().expect("refused").to_string();
        assert!(
            e.contains("hostile.safetensors") && e.contains(key) && e.contains(value),
            "{e}"
        );
        let lines: Vec<&str> = e.split(": ").collect();
        let mut unique = lines.clone();
        unique.dedup();
        assert_eq!(lines, unique, "each thing said once: {e}");
    }
}
