//! The three networks against `MODELS.md`: layer outputs, parameter names,
//! shapes and counts, initialisation, and refusal of shapes that do not divide.

use layers::{Mode, Parameters};
use models::{Architecture, Network};
use ndarray::ArrayD;

fn params(net: &Network<f64>) -> Vec<(String, Vec<usize>)> {
    let mut v = Vec::new();
    net.visit_params(&mut |name, value, _| v.push((name.to_string(), value.shape().to_vec())));
    v
}

/// Output shape after each layer, for one 1x28x28 image.
fn shapes(net: &mut Network<f64>) -> Vec<(String, Vec<usize>)> {
    let mut shape = vec![1, 1, 28, 28];
    net.layers()
        .map(|(label, layer)| {
            shape = layer.output_shape(&shape).unwrap();
            (label.to_string(), shape[1..].to_vec())
        })
        .collect()
}

fn s(v: &[(&str, &[usize])]) -> Vec<(String, Vec<usize>)> {
    v.iter().map(|(n, d)| (n.to_string(), d.to_vec())).collect()
}

#[test]
fn simple_conv_net_is_as_specified() {
    let mut net = Architecture::SimpleConvNet
        .build::<f64>([1, 28, 28], 10, 0)
        .unwrap();
    assert_eq!(net.param_count(), 433_890);
    assert_eq!(
        params(&net),
        s(&[
            ("conv1.weight", &[30, 1, 5, 5]),
            ("conv1.bias", &[30]),
            ("fc1.weight", &[4320, 100]),
            ("fc1.bias", &[100]),
            ("fc2.weight", &[100, 10]),
            ("fc2.bias", &[10]),
        ])
    );
    let sh = shapes(&mut net);
    assert_eq!(sh[0], ("conv1".into(), vec![30, 24, 24]));
    assert!(sh.contains(&("pool1".into(), vec![30, 12, 12])), "{sh:?}");
    assert_eq!(sh.last().unwrap().1, vec![10]);
    // conv1's ReLU is fused into it; fc1's stays a layer of its own.
    let kinds: Vec<String> = net.layers().map(|(_, l)| l.describe()).collect();
    assert_eq!(kinds[0], "Convolution 30@5x5 p0/s1 + ReLU");
    assert!(kinds.contains(&"ReLU".to_string()), "{kinds:?}");
}

#[test]
fn lenet_is_as_specified() {
    let mut net = Architecture::LeNet.build::<f64>([1, 28, 28], 10, 0).unwrap();
    assert_eq!(net.param_count(), 61_706);
    let names: Vec<String> = params(&net).into_iter().map(|p| p.0).collect();
    assert_eq!(
        names,
        [
            "conv1.weight",
            "conv1.bias",
            "conv2.weight",
            "conv2.bias",
            "fc1.weight",
            "fc1.bias",
            "fc2.weight",
            "fc2.bias",
            "fc3.weight",
            "fc3.bias"
        ]
    );
    let sh = shapes(&mut net);
    let find = |l: &str| sh.iter().find(|(n, _)| n == l).unwrap().1.clone();
    assert_eq!(find("conv1"), [6, 28, 28]);
    assert_eq!(find("pool1"), [6, 14, 14]);
    assert_eq!(find("conv2"), [16, 10, 10]);
    assert_eq!(find("pool2"), [16, 5, 5]);
    assert_eq!(find("fc1"), [120]);
    assert_eq!(find("fc2"), [84]);
    assert_eq!(find("fc3"), [10]);
    let kinds: Vec<String> = net.layers().map(|(_, l)| l.describe()).collect();
    // Four sigmoids: after each affine but the last, and fused into both convolutions.
    assert!(
        kinds.iter().filter(|k| k.as_str() == "Sigmoid").count() == 2,
        "{kinds:?}"
    );
    assert!(
        kinds.iter().filter(|k| k.ends_with("+ Sigmoid")).count() == 2,
        "{kinds:?}"
    );
    assert!(
        kinds.iter().filter(|k| k.starts_with("Pooling average")).count() == 2,
        "{kinds:?}"
    );
}

#[test]
fn alexnet_lite_is_as_specified() {
    let mut net = Architecture::AlexNetLite
        .build::<f64>([1, 28, 28], 10, 0)
        .unwrap();
    assert_eq!(net.param_count(), 461_962);
    let p = params(&net);
    assert_eq!(p.len(), 16);
    assert_eq!(p[0], ("conv1.weight".into(), vec![32, 1, 5, 5]));
    assert_eq!(p[8], ("conv5.weight".into(), vec![64, 96, 3, 3]));
    assert_eq!(p[10], ("fc1.weight".into(), vec![576, 256]));
    assert_eq!(p[15], ("fc3.bias".into(), vec![10]));
    let sh = shapes(&mut net);
    let find = |l: &str| sh.iter().find(|(n, _)| n == l).unwrap().1.clone();
    assert_eq!(find("lrn1"), [32, 28, 28]);
    assert_eq!(find("pool2"), [64, 7, 7]);
    assert_eq!(find("conv5"), [64, 7, 7]);
    assert_eq!(find("pool3"), [64, 3, 3]);
    let kinds: Vec<String> = net.layers().map(|(_, l)| l.describe()).collect();
    assert!(kinds.contains(&"Pooling max 3x3 p0/s2".to_string()), "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| k.as_str() == "Dropout 0.5").count(), 2);
    assert!(
        kinds.contains(&"LRN n=5 alpha=0.0001 beta=0.75 k=2".to_string()),
        "{kinds:?}"
    );
}

#[test]
fn initialisation_follows_the_spec() {
    let std_of = |net: &Network<f64>, name: &str| {
        let mut out = None;
        net.visit_params(&mut |n, v, _| {
            if n == name {
                let mean = v.mean().unwrap();
                out = Some((v.mapv(|x| (x - mean).powi(2)).mean().unwrap().sqrt(), mean));
            }
        });
        out.unwrap()
    };
    let close = |(got, mean): (f64, f64), want: f64| {
        assert!(
            (got / want - 1.0).abs() < 0.05 && mean.abs() < want / 10.0,
            "std {got} (mean {mean}) vs {want}"
        )
    };
    let simple = Architecture::SimpleConvNet
        .build::<f64>([1, 28, 28], 10, 1)
        .unwrap();
    close(std_of(&simple, "fc1.weight"), 0.01);
    let lenet = Architecture::LeNet.build::<f64>([1, 28, 28], 10, 1).unwrap();
    close(std_of(&lenet, "fc1.weight"), (1.0f64 / 400.0).sqrt());
    close(std_of(&lenet, "conv2.weight"), (1.0f64 / 150.0).sqrt());
    let alex = Architecture::AlexNetLite
        .build::<f64>([1, 28, 28], 10, 1)
        .unwrap();
    close(std_of(&alex, "conv3.weight"), (2.0f64 / (64.0 * 9.0)).sqrt());
    close(std_of(&alex, "fc2.weight"), (2.0f64 / 256.0).sqrt());
    alex.visit_params(&mut |n, v, _| {
        if n.ends_with("bias") {
            assert!(v.iter().all(|&b| b == 0.0), "{n}");
        }
    });
}

/// `--init pytorch`: every weight and bias within `b = sqrt(1/fan_in)`,
/// spread as U(-b, b) (std `b / sqrt(3)`), the extremes reached.
#[test]
fn pytorch_initialisation_is_uniform_in_the_fan_in_bound() {
    let net = Architecture::SimpleConvNet
        .build_with::<f64>(
            [1, 28, 28],
            10,
            5,
            models::BuildOptions {
                init: Some(layers::Init::PyTorch),
                ..Default::default()
            },
        )
        .unwrap();
    let fan_in = |name: &str| match name.split('.').next() {
        Some("conv1") => 25.0,
        Some("fc1") => 4320.0,
        _ => 100.0,
    };
    let mut seen = 0;
    net.visit_params(&mut |name, v, _| {
        let b = (1.0f64 / fan_in(name)).sqrt();
        assert!(v.iter().all(|x| x.abs() <= b), "{name} within {b}");
        let (lo, hi) = v
            .iter()
            .fold((0.0f64, 0.0f64), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        assert!(
            lo < -0.5 * b && hi > 0.5 * b,
            "{name} spans the bound: {lo}..{hi}"
        );
        if v.len() > 1000 {
            let std = (v.mapv(|x| x * x).mean().unwrap()).sqrt();
            assert!((std / (b / 3f64.sqrt()) - 1.0).abs() < 0.05, "{name}: std {std}");
        }
        seen += 1;
    });
    assert_eq!(seen, 6);
}

#[test]
fn seeds_decide_the_weights() {
    let weights = |seed| {
        let net = Architecture::LeNet.build::<f64>([1, 28, 28], 10, seed).unwrap();
        let mut all = Vec::new();
        net.visit_params(&mut |_, v, _| all.extend(v.iter().copied()));
        all
    };
    assert_eq!(weights(3), weights(3));
    assert_ne!(weights(3), weights(4));
}

#[test]
fn shapes_that_do_not_divide_are_refused_naming_the_layer() {
    let e = Architecture::AlexNetLite
        .build::<f32>([3, 32, 32], 10, 0)
        .err()
        .unwrap()
        .to_string();
    assert_eq!(
        e,
        "pool3: Pooling max 3x3 p0/s2: output height is not whole: (8 + 2*0 - 3) = 5 is not a multiple of stride 2"
    );
    // Other input shapes work where the sizes divide: CIFAR-10 for the other two.
    let mut net = Architecture::SimpleConvNet
        .build::<f32>([3, 32, 32], 10, 0)
        .unwrap();
    assert_eq!(net.param_count(), 30 * 75 + 30 + 30 * 14 * 14 * 100 + 100 + 1010);
    let x = ArrayD::zeros(vec![2, 3, 32, 32]);
    assert_eq!(net.predict(x.view(), Mode::Inference).unwrap().shape(), &[2, 10]);
    let wrong = ArrayD::zeros(vec![2, 1, 28, 28]);
    let e = net
        .predict(wrong.view(), Mode::Inference)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "simple-conv-net: expected input [N, 3, 32, 32] with N >= 1, found [2, 1, 28, 28]"
    );
}

/// ReLUs and sigmoids fused into the convolutions before them change no
/// bit: loss, gradients and predictions of the network equal those of the
/// same network built with every activation as its own layer, and the
/// fused activation's label still names an output.
#[test]
fn fused_activations_change_no_bit() {
    use layers::Window;
    for sigmoid in [false, true] {
        let (kind, suffix) = if sigmoid {
            ("sigmoid", "+ Sigmoid")
        } else {
            ("relu", "+ ReLU")
        };
        let act = |b: models::Builder<f64>| if sigmoid { b.sigmoid() } else { b.relu() };
        let build = |fusing: bool| {
            Network::<f64>::builder("fused", [1, 12, 12], 5)
                .fusing(fusing)
                .conv(4, Window::square(3).with_pad(1), layers::Init::He)
                .and_then(act)
                .and_then(|b| b.max_pool(Window::square(2).with_stride(2)))
                .and_then(|b| b.conv(6, Window::square(3), layers::Init::He))
                .and_then(act)
                .and_then(|b| b.affine(10, layers::Init::He))
                .and_then(|b| b.build())
                .unwrap()
        };
        let (mut fused, mut plain) = (build(true), build(false));
        assert_eq!(fused.layers().count() + 2, plain.layers().count());
        assert!(fused.layers().next().unwrap().1.describe().ends_with(suffix));
        let x = ArrayD::from_shape_fn(vec![7, 1, 12, 12], |d| {
            ((d[0] * 31 + d[2] * 7 + d[3]) % 13) as f64 / 6.0 - 1.0
        });
        let labels: Vec<usize> = (0..7).map(|i| i % 10).collect();
        let bits = |net: &Network<f64>| {
            let mut v = Vec::new();
            net.visit_params(&mut |_, _, g| v.extend(g.iter().map(|x| x.to_bits())));
            v
        };
        let (lf, lp) = (
            fused.gradient(x.view(), &labels).unwrap(),
            plain.gradient(x.view(), &labels).unwrap(),
        );
        assert_eq!(lf.to_bits(), lp.to_bits());
        assert_eq!(bits(&fused), bits(&plain));
        let label = format!("{kind}2");
        let a = fused.forward_to(x.view(), &label).unwrap().clone();
        let b = plain.forward_to(x.view(), &label).unwrap().clone();
        assert_eq!(a, b);
    }
}

/// The chapter's network computing by the chapter's algorithms: each ReLU a
/// layer of its own, the same parameters, and the loss and every gradient
/// of the engine's network to rounding (f64), for all three networks.
#[test]
fn the_chapters_methods_give_the_engines_gradients() {
    use layers::{ConvMethod, PoolMethod};
    use models::BuildOptions;
    let chapter = BuildOptions {
        conv_method: ConvMethod::Chapter,
        pool_method: PoolMethod::Chapter,
        ..BuildOptions::default()
    };
    let x = ArrayD::from_shape_fn(vec![3, 1, 28, 28], |d| {
        ((d[0] * 31 + d[2] * 7 + d[3]) % 13) as f64 / 13.0
    });
    let labels = [3, 1, 4];
    for arch in Architecture::ALL {
        let mut engine = arch.build::<f64>([1, 28, 28], 10, 1).unwrap();
        let mut book = arch.build_with::<f64>([1, 28, 28], 10, 1, chapter).unwrap();
        assert_eq!(book.conv_method(), ConvMethod::Chapter);
        assert_eq!(params(&engine), params(&book), "{arch}");
        let fused = engine
            .layers()
            .filter(|(_, l)| l.describe().contains(" + "))
            .count();
        assert_eq!(book.layers().count(), engine.layers().count() + fused, "{arch}");
        assert!(
            book.layers().all(|(_, l)| !l.describe().contains(" + ")),
            "{arch}"
        );
        let (a, b) = (
            engine.gradient(x.view(), &labels).unwrap(),
            book.gradient(x.view(), &labels).unwrap(),
        );
        assert!((a - b).abs() <= 1e-12 * a.abs(), "{arch} loss: {a} vs {b}");
        for ((name, ga), (_, gb)) in engine.grads().iter().zip(book.grads()) {
            let scale = ga.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-300);
            let worst = ga
                .iter()
                .zip(gb.iter())
                .fold(0.0f64, |m, (p, q)| m.max((p - q).abs()));
            assert!(worst <= 1e-10 * scale, "{arch} {name}: off by {worst} of {scale}");
        }
    }
}

#[test]
fn a_network_has_one_convolution_method() {
    use layers::{ConvMethod, Init, Window};
    let e = Network::<f32>::builder("mixed", [1, 8, 8], 0)
        .conv(2, Window::square(3), Init::He)
        .and_then(|b| b.conv_method(ConvMethod::Chapter))
        .err()
        .expect("refused")
        .to_string();
    assert!(
        e.contains("mixed") && e.contains("conv1") && e.contains("before"),
        "{e}"
    );
}
