//! Networks from TOML: the three shipped files build MODELS.md's networks
//! bit for bit (against the builder code in `zoo.rs`), a custom network
//! survives a checkpoint, and every mistake in a file names its line and
//! layer.

use layers::{Mode, Parameters};
use models::{Architecture, BuildOptions, Network, NetworkSpec, checkpoint};
use ndarray::ArrayD;

/// Every parameter's name, shape and bits.
fn params(net: &Network<f32>) -> Vec<(String, Vec<usize>, Vec<u32>)> {
    let mut v = Vec::new();
    net.visit_params(&mut |name, value, _| {
        v.push((
            name.to_string(),
            value.shape().to_vec(),
            value.iter().map(|x| x.to_bits()).collect(),
        ));
    });
    v
}

#[test]
fn the_shipped_files_build_models_md_networks_bit_for_bit() {
    for arch in Architecture::ALL {
        let spec = NetworkSpec::parse(arch.spec_text(), arch.name()).unwrap();
        assert_eq!(
            (spec.name(), spec.input(), spec.classes()),
            (arch.name(), [1, 28, 28], 10)
        );
        for seed in [0, 7] {
            let mut from_file = spec.build::<f32>(seed, BuildOptions::default()).unwrap();
            let mut from_code = arch.build::<f32>([1, 28, 28], 10, seed).unwrap();
            assert_eq!(params(&from_file), params(&from_code), "{arch} seed {seed}");
            assert_eq!(from_file.summary(), from_code.summary(), "{arch}");
            let x = ArrayD::from_shape_fn(vec![2, 1, 28, 28], |d| {
                ((d[0] + d[2] * 28 + d[3]) as f32 * 0.1).sin()
            });
            let a = from_file.predict(x.view(), Mode::Train).unwrap().clone();
            let b = from_code.predict(x.view(), Mode::Train).unwrap().clone();
            assert_eq!(a, b, "{arch}: dropout masks and all");
            assert_eq!(from_file.spec(), Some(arch.spec_text()));
        }
    }
}

const CUSTOM: &str = r#"name = "two-conv"
input = [1, 13, 11]
classes = 3
init = "xavier"

[[layers]]
kind = "conv"
filters = 4
size = [3, 5]
pad = 1
init = { normal = 0.05 }

[[layers]]
kind = "sigmoid"

[[layers]]
kind = "avg-pool"
size = 3
stride = 2

[[layers]]
kind = "conv"
filters = 2
size = 2
stride = 2

[[layers]]
kind = "relu"

[[layers]]
kind = "dropout"
ratio = 0.25

[[layers]]
kind = "affine"
init = "pytorch"
"#;

#[test]
fn a_custom_network_survives_a_checkpoint() {
    let spec = NetworkSpec::parse(CUSTOM, "two-conv.toml").unwrap();
    let mut net = spec.build::<f32>(3, BuildOptions::default()).unwrap();
    let s = net.summary();
    let outputs: Vec<Vec<usize>> = s.layers.iter().map(|l| l.output.clone()).collect();
    // conv 3x5 pad 1 on 13x11: 13x9; pool 3/2: 6x4; conv 2/2: 3x2.
    assert_eq!(
        outputs,
        [
            vec![4, 13, 9],
            vec![4, 6, 4],
            vec![2, 3, 2],
            vec![2, 3, 2],
            vec![3]
        ]
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    checkpoint::save(&net, &path).unwrap();
    let mut back: Network<f32> = checkpoint::load(&path).unwrap();
    assert_eq!(back.name(), "two-conv");
    assert_eq!(back.spec(), Some(CUSTOM));
    assert_eq!(params(&back), params(&net));
    let x = ArrayD::from_elem(vec![2, 1, 13, 11], 0.3f32);
    assert_eq!(
        back.predict(x.view(), Mode::Inference).unwrap(),
        net.predict(x.view(), Mode::Inference).unwrap()
    );
}

/// The error for `text`, as its file would report it.
fn error(text: &str) -> String {
    match NetworkSpec::parse(text, "net.toml") {
        Err(e) => e.to_string(),
        Ok(spec) => spec
            .build::<f32>(0, BuildOptions::default())
            .err()
            .expect("refused")
            .to_string(),
    }
}

#[test]
fn every_mistake_names_its_line_and_layer() {
    let edit = |from: &str, to: &str| {
        assert!(CUSTOM.contains(from), "{from}");
        error(&CUSTOM.replacen(from, to, 1))
    };
    // CUSTOM's lines: the first layer's header is 6, the pool's 16, the
    // second conv's 21, the dropout's 30.
    let e = edit("kind = \"avg-pool\"", "kind = \"avg-pooling\"");
    assert!(
        e.starts_with("net.toml:16: layer 3 (avg-pooling): unknown variant `avg-pooling`"),
        "{e}"
    );
    let e = edit("filters = 2\n", "");
    assert_eq!(e, "net.toml:21: layer 4 (conv): missing field `filters`");
    let e = edit("filters = 2\n", "filters = 0\n");
    assert_eq!(e, "net.toml:21: layer 4 (conv): filters 0: at least 1");
    let e = edit(
        "stride = 2\n\n[[layers]]\nkind = \"relu\"",
        "stride = 3\n\n[[layers]]\nkind = \"relu\"",
    );
    assert!(
        e.starts_with(
            "net.toml:21: layer 4 (conv): conv2: Convolution 2@2x2 p0/s3: output height is not whole"
        ),
        "{e}"
    );
    let e = edit("ratio = 0.25", "ratio = 1.5");
    assert_eq!(e, "net.toml:30: layer 6 (dropout): ratio 1.5: in [0, 1)");
    let e = edit("pad = 1\ninit", "padding = 1\ninit");
    assert!(
        e.starts_with("net.toml:6: layer 1 (conv): unknown field `padding`"),
        "{e}"
    );
    let e = edit("classes = 3", "classes = \"3\"");
    assert!(e.starts_with("net.toml:3: invalid type: string \"3\""), "{e}");
    let e = edit("[[layers]]\nkind = \"affine\"\ninit = \"pytorch\"\n", "");
    assert_eq!(
        e,
        "net.toml:30: layer 6 (dropout): the last layer must be an affine one, giving the class scores"
    );
    let e = edit("input = [1, 13, 11]", "input = [1, 0, 11]");
    assert_eq!(e, "net.toml:2: input [1, 0, 11]: every size at least 1");
    let e = edit("classes = 3", "classes = 0");
    assert_eq!(e, "net.toml:3: classes 0: at least 1");
    let e = edit("size = 3\nstride = 2", "size = 0\nstride = 2");
    assert_eq!(e, "net.toml:16: layer 3 (avg-pool): size 0x0: at least 1");
    let e = error("name = \"x\"\ninput = [1, 2, 2]\nclasses = 2\nlayers = []\n");
    assert_eq!(e, "net.toml:4: no layers: give at least an affine one");
}
