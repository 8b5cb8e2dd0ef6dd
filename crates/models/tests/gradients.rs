//! The three networks end to end against numerical differentiation (every
//! parameter tensor, sampled where large), and the chapter's f32 figure.

use layers::gradcheck::Settings;
use layers::{Init, Parameters};
use models::{Architecture, Network, gradcheck};
use ndarray::ArrayD;
use tensor4d::Window;

/// Every parameter tensor's name, in visiting order.
fn names(net: &Network<f64>) -> Vec<String> {
    let mut v = Vec::new();
    net.visit_params(&mut |name, _, _| v.push(name.to_string()));
    v
}

#[test]
fn every_network_gradient_matches_numerical_differentiation() {
    for arch in Architecture::ALL {
        let settings = Settings {
            max_coords: 24,
            seed: 1,
            ..Settings::default()
        };
        let checks = gradcheck::check_architecture(arch, &settings).unwrap();
        let net = arch.build::<f64>([1, 28, 28], 10, 1).unwrap();
        let checked: Vec<String> = checks.iter().map(|c| c.tensor.clone()).collect();
        assert_eq!(checked, names(&net), "{arch}: every parameter tensor is checked");
        for c in &checks {
            eprintln!(
                "{arch} {} {}/{} skipped {} max rel {:.2e}",
                c.tensor, c.checked, c.total, c.skipped, c.max_rel
            );
            assert!(c.passed, "{arch}: {c:?}");
            // Sampled tensors replace coordinates whose probes cross a kink;
            // tensors checked whole re-check them on fresh batches.
            assert_eq!(c.checked, c.total.min(24), "{arch}: {c:?}");
        }
    }
}

#[test]
fn the_chapters_f32_figure_is_small() {
    let figure = gradcheck::chapter_figure(0).unwrap();
    let names: Vec<&str> = figure.iter().map(|(b, _, _)| b.as_str()).collect();
    assert_eq!(names, ["W1", "b1", "W2", "b2", "W3", "b3"]);
    for (book, ours, diff) in figure {
        assert!(diff < 1e-3, "{book} ({ours}): {diff}");
    }
}

#[test]
fn a_network_of_ones_own_is_checked_on_the_batch_given() {
    let mut net = Network::<f64>::builder("tiny", [1, 6, 6], 2)
        .conv(2, Window::square(3), Init::He)
        .unwrap()
        .sigmoid()
        .unwrap()
        .avg_pool(Window::square(2).with_stride(2))
        .unwrap()
        .affine(3, Init::He)
        .unwrap()
        .build()
        .unwrap();
    let x = ArrayD::from_shape_fn(vec![2, 1, 6, 6], |d| {
        ((d[0] * 36 + d[2] * 6 + d[3]) as f64 * 0.37).sin()
    });
    let settings = Settings {
        max_coords: 1000,
        ..Settings::default()
    };
    let checks = gradcheck::check_network(&mut net, &x, &[0, 2], &settings).unwrap();
    let checked: Vec<String> = checks.iter().map(|c| c.tensor.clone()).collect();
    assert_eq!(checked, ["conv1.weight", "conv1.bias", "fc1.weight", "fc1.bias"]);
    for c in &checks {
        // Smooth layers only: every coordinate compared, none skipped.
        assert!(c.passed && c.checked == c.total && c.skipped == 0, "{c:?}");
    }
    // A label out of range is the loss layer's error, not a pass.
    assert!(gradcheck::check_network(&mut net, &x, &[0, 3], &settings).is_err());
}
