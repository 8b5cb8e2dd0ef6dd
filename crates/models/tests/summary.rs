//! What section 7.6 asks of a network: `Network::summary` against
//! `MODELS.md` and hand counts, `Network::receptive_field` against hand
//! counts and against what a changed input pixel actually changes, and
//! `Network::predict_visiting` against `forward_to` and `predict`.

use layers::{ConvMethod, Init, Mode};
use models::{Architecture, BuildOptions, Network, ReceptiveField};
use ndarray::ArrayD;
use tensor4d::Window;

/// `MODELS.md`'s section for `heading`: its table's output column (the
/// rows that give one) and its `Parameters: a + b + ... = total` terms.
fn spec(heading: &str) -> (Vec<Vec<usize>>, Vec<usize>, usize) {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../MODELS.md")).unwrap();
    let section = text
        .split("\n## ")
        .find(|s| s.starts_with(heading))
        .unwrap_or_else(|| panic!("MODELS.md has no section {heading}"));
    let number = |s: &str| s.trim().replace(',', "").parse::<usize>().unwrap();
    let outputs = section
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| #"))
        .filter_map(|l| {
            let out = l.split('|').nth(3)?.trim();
            (!out.is_empty()).then(|| out.split('x').map(number).collect())
        })
        .collect();
    let params = section
        .lines()
        .find_map(|l| l.strip_prefix("Parameters: "))
        .unwrap_or_else(|| panic!("{heading}: no parameter line"));
    let (terms, total) = params.trim_end_matches('.').split_once(" = ").unwrap();
    (outputs, terms.split(" + ").map(number).collect(), number(total))
}

#[test]
fn summaries_match_models_md() {
    for (arch, heading, printed) in [
        (Architecture::SimpleConvNet, "SimpleConvNet", "433,890"),
        (Architecture::LeNet, "LeNet", "61,706"),
        (Architecture::AlexNetLite, "AlexNet-lite", "461,962"),
    ] {
        let (outputs, terms, total) = spec(heading);
        let summary = arch.build::<f32>([1, 28, 28], 10, 0).unwrap().summary();
        assert_eq!(summary.params, total, "{heading}");
        let per_layer: Vec<usize> = summary
            .layers
            .iter()
            .map(|l| l.params)
            .filter(|&p| p > 0)
            .collect();
        assert_eq!(per_layer, terms, "{heading}: parameters per layer");
        // Every output MODELS.md lists appears, in order, and the last is the scores.
        let mut ours = summary.layers.iter().map(|l| &l.output);
        for want in &outputs {
            assert!(
                ours.any(|o| o == want),
                "{heading}: no layer outputs {want:?} in order"
            );
        }
        assert_eq!(summary.layers.last().unwrap().output, [10], "{heading}");
        assert_eq!(outputs.last().unwrap(), &[10], "{heading}");
        let table = summary.to_string();
        assert!(
            table.contains(&format!("total parameters: {printed}\n")),
            "{table}"
        );
        for l in &summary.layers {
            assert!(table.contains(&l.label), "{table}");
        }
    }
}

#[test]
fn simple_conv_net_flops_are_counted_by_hand() {
    // conv1: 30x24x24 outputs, each 25 multiply-adds, a bias and a ReLU.
    let conv1 = 30 * 24 * 24 * (2 * 25 + 1 + 1);
    // pool1: 30x12x12 outputs, each a 2x2 max.
    let pool1 = 30 * 12 * 12 * 4;
    let fc1 = 2 * 4320 * 100 + 100;
    let relu2 = 100;
    let fc2 = 2 * 100 * 10 + 10;
    let net = Architecture::SimpleConvNet
        .build::<f32>([1, 28, 28], 10, 0)
        .unwrap();
    let s = net.summary();
    let per: Vec<u64> = s.layers.iter().map(|l| l.flops.unwrap()).collect();
    assert_eq!(per, [conv1, pool1, fc1, relu2, fc2]);
    assert_eq!(s.flops, Some(conv1 + pool1 + fc1 + relu2 + fc2));
    assert_eq!(s.layers[0].fused, ["relu1"]);
}

#[test]
fn lenet_and_alexnet_lite_flops_are_counted_by_hand() {
    // Fused sigmoids count one per output; average pooling adds a division.
    let lenet = [
        6 * 28 * 28 * (2 * 25 + 1 + 1),
        6 * 14 * 14 * (4 + 1),
        16 * 10 * 10 * (2 * 6 * 25 + 1 + 1),
        16 * 5 * 5 * (4 + 1),
        2 * 400 * 120 + 120,
        120,
        2 * 120 * 84 + 84,
        84,
        2 * 84 * 10 + 10,
    ];
    let s = Architecture::LeNet
        .build::<f32>([1, 28, 28], 10, 0)
        .unwrap()
        .summary();
    assert_eq!(
        s.layers.iter().map(|l| l.flops.unwrap()).collect::<Vec<_>>(),
        lenet
    );

    let s = Architecture::AlexNetLite
        .build::<f32>([1, 28, 28], 10, 0)
        .unwrap()
        .summary();
    let flops = |label: &str| s.layers.iter().find(|l| l.label == label).unwrap().flops.unwrap();
    // LRN over 5 channels: 5 multiply-adds, then the scale, power and quotient.
    assert_eq!(flops("lrn1"), 32 * 28 * 28 * (2 * 5 + 4));
    assert_eq!(flops("pool3"), 64 * 3 * 3 * 9);
    assert_eq!(flops("dropout1"), 0);
}

#[test]
fn fused_and_unfused_networks_count_the_same() {
    // The chapter's method keeps each activation a layer of its own.
    for arch in [
        Architecture::SimpleConvNet,
        Architecture::LeNet,
        Architecture::AlexNetLite,
    ] {
        let fused = arch.build::<f32>([1, 28, 28], 10, 0).unwrap().summary();
        let options = BuildOptions {
            conv_method: ConvMethod::Chapter,
            ..BuildOptions::default()
        };
        let apart = arch
            .build_with::<f32>([1, 28, 28], 10, 0, options)
            .unwrap()
            .summary();
        assert!(apart.layers.len() > fused.layers.len(), "{}", arch.name());
        assert_eq!(
            (apart.params, apart.flops),
            (fused.params, fused.flops),
            "{}",
            arch.name()
        );
        assert!(fused.flops.is_some());
    }
}

#[test]
fn receptive_fields_counted_by_hand() {
    let net = Architecture::SimpleConvNet
        .build::<f32>([1, 28, 28], 10, 0)
        .unwrap();
    let f = |label| net.receptive_field(label).unwrap();
    assert_eq!(
        f("conv1"),
        ReceptiveField {
            size: [5, 5],
            jump: [1, 1],
            start: [0, 0]
        }
    );
    // The fused ReLU sees what its convolution sees.
    assert_eq!(f("relu1"), f("conv1"));
    // A 2x2 window of 5x5 fields one pixel apart covers 6x6.
    assert_eq!(
        f("pool1"),
        ReceptiveField {
            size: [6, 6],
            jump: [2, 2],
            start: [0, 0]
        }
    );
    let e = net.receptive_field("fc1").unwrap_err().to_string();
    assert!(
        e.starts_with("fc1: Affine 4320 -> 100: no receptive field"),
        "{e}"
    );
    let e = net.receptive_field("conv9").unwrap_err().to_string();
    assert!(
        e.contains("\"conv9\"") && e.contains("conv1, relu1, pool1, fc1, relu2, fc2"),
        "{e}"
    );

    let alex = Architecture::AlexNetLite
        .build::<f32>([1, 28, 28], 10, 0)
        .unwrap();
    // conv1 5x5 p2 (5, start -2), pool 2/2 (6, jump 2), conv2 5x5 p2
    // (6 + 4x2 = 14, start -2 - 2x2 = -6), pool 2/2 (16, jump 4), conv3 3x3 p1
    // (24, start -10), conv4 (32, -14), conv5 (40, -18), pool 3/2 (48, jump 8).
    let g = |label| alex.receptive_field(label).unwrap();
    assert_eq!(
        g("conv2"),
        ReceptiveField {
            size: [14, 14],
            jump: [2, 2],
            start: [-6, -6]
        }
    );
    assert_eq!(
        g("conv5"),
        ReceptiveField {
            size: [40, 40],
            jump: [4, 4],
            start: [-18, -18]
        }
    );
    assert_eq!(
        g("pool3"),
        ReceptiveField {
            size: [48, 48],
            jump: [8, 8],
            start: [-18, -18]
        }
    );
    // pool3's top-left output sees rows -18..30: clipped to the whole image.
    assert_eq!(g("pool3").within(0, 0, 28, 28), Some([0, 0, 28, 28]));
    assert_eq!(g("conv2").within(13, 0, 28, 28), Some([20, 0, 8, 8]));
}

#[test]
fn a_changed_pixel_changes_exactly_the_outputs_whose_field_holds_it() {
    // Sigmoids and average pooling: every input in a field moves its output.
    let mut net = Network::<f64>::builder("probe", [1, 14, 11], 3)
        .conv(2, Window::new(3, 2).with_pad(1), Init::Normal { std: 1.0 })
        .unwrap()
        .sigmoid()
        .unwrap()
        .avg_pool(Window::new(2, 2).with_stride(1))
        .unwrap()
        .conv(
            2,
            Window::new(3, 3).with_stride(2).with_pad(1),
            Init::Normal { std: 1.0 },
        )
        .unwrap()
        .affine(2, Init::He)
        .unwrap()
        .build()
        .unwrap();
    let base = ArrayD::from_shape_fn(vec![1, 1, 14, 11], |d| ((d[2] * 11 + d[3]) as f64 * 0.37).sin());
    for label in ["conv1", "pool1", "conv2"] {
        let field = net.receptive_field(label).unwrap();
        let y0 = net.forward_to(base.view(), label).unwrap().clone();
        let (oh, ow) = (y0.shape()[2], y0.shape()[3]);
        for (py, px) in [(0, 0), (6, 5), (13, 10), (3, 9)] {
            let mut x = base.clone();
            x[[0, 0, py, px]] += 1.0;
            let y1 = net.forward_to(x.view(), label).unwrap().clone();
            for oy in 0..oh {
                for ox in 0..ow {
                    let moved = (0..2).any(|c| y1[[0, c, oy, ox]] != y0[[0, c, oy, ox]]);
                    let inside = field
                        .within(oy, ox, 14, 11)
                        .is_some_and(|[t, l, r, c]| (t..t + r).contains(&py) && (l..l + c).contains(&px));
                    assert_eq!(
                        moved, inside,
                        "{label} output ({oy}, {ox}), pixel ({py}, {px}), {field:?}"
                    );
                }
            }
        }
    }
    let _ = net.predict(base.view(), Mode::Inference).unwrap();
}

#[test]
fn visiting_shows_what_forward_to_gives_for_every_layer() {
    let mut net = Architecture::AlexNetLite
        .build::<f32>([1, 28, 28], 10, 5)
        .unwrap();
    let x = ArrayD::from_shape_fn(vec![2, 1, 28, 28], |d| {
        ((d[0] * 784 + d[2] * 28 + d[3]) as f32 * 0.01).cos()
    });
    let mut seen = Vec::new();
    let scores = net
        .predict_visiting(x.view(), &mut |label, out| {
            seen.push((label.to_string(), out.clone()))
        })
        .unwrap()
        .clone();
    let labels: Vec<String> = net.summary().layers.into_iter().map(|l| l.label).collect();
    assert_eq!(seen.iter().map(|(l, _)| l.clone()).collect::<Vec<_>>(), labels);
    for (label, out) in &seen {
        assert_eq!(net.forward_to(x.view(), label).unwrap(), out, "{label}");
    }
    assert_eq!(&scores, net.predict(x.view(), Mode::Inference).unwrap());
    assert_eq!(&seen.last().unwrap().1, &scores);
}

#[test]
fn patches_are_cut_where_the_field_lies_with_zero_padding() {
    // A 3x5 window, strides 2 down and 1 across, padding 1 and 2: each axis
    // on its own.
    let field = ReceptiveField::PIXEL.through([3, 5], [2, 1], [1, 2]);
    assert_eq!(
        field,
        ReceptiveField {
            size: [3, 5],
            jump: [2, 1],
            start: [-1, -2]
        }
    );
    let image = ndarray::Array3::from_shape_fn((2, 5, 6), |(c, y, x)| (100 * c + 10 * y + x) as f64 + 1.0);
    // Output (0, 0) sees rows -1..2 and columns -2..3.
    let p = field.patch(image.view(), 0, 0);
    assert_eq!(p.dim(), (2, 3, 5));
    for c in 0..2 {
        for dy in 0..3 {
            for dx in 0..5 {
                let (y, x) = (dy as i64 - 1, dx as i64 - 2);
                let inside = (0..5).contains(&y) && (0..6).contains(&x);
                let want = if inside {
                    image[[c, y as usize, x as usize]]
                } else {
                    0.0
                };
                assert_eq!(p[[c, dy, dx]], want, "({c}, {dy}, {dx})");
            }
        }
    }
    // Output (2, 5) sees rows 3..6 and columns 3..8: the last row and two
    // columns are padding.
    let p = field.patch(image.view(), 2, 5);
    assert_eq!(p[[1, 0, 0]], image[[1, 3, 3]]);
    assert_eq!(p[[1, 1, 2]], image[[1, 4, 5]]);
    assert_eq!(
        p.slice(ndarray::s![.., 2, ..]).sum() + p.slice(ndarray::s![.., .., 3..]).sum(),
        0.0
    );
    assert_eq!(field.within(2, 5, 5, 6), Some([3, 3, 2, 3]));
}
