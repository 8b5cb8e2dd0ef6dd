//! Every layer's backward (input gradient and each parameter gradient)
//! against central differences, in f64, on inputs kept off the kinks.

mod common;

use layers::gradcheck::{Check, Settings, check_layer, compare, kink_free_input};
use layers::{Affine, Convolution, Dropout, Init, Layer, Lrn, Pooling, Relu, Sigmoid, SoftmaxWithLoss};
use ndarray::ArrayD;
use rand::SeedableRng;
use tensor4d::Window;

fn rng(seed: u64) -> rand_pcg::Pcg64 {
    rand_pcg::Pcg64::seed_from_u64(seed)
}

fn assert_passes(what: &str, checks: &[Check]) {
    for c in checks {
        assert!(c.passed, "{what}: {c:?}");
        assert!(c.checked > 0, "{what}: nothing checked in {}", c.tensor);
    }
}

fn check(layer: &mut dyn Layer<f64>, shape: &[usize], seed: u64) {
    let x = kink_free_input(shape, seed);
    let settings = Settings {
        seed,
        ..Settings::default()
    };
    let checks = check_layer(layer, &x, &settings).unwrap();
    assert_passes(&layer.describe(), &checks);
}

#[test]
fn convolution_gradients() {
    // The shapes issue 4 lists, several channels in and out.
    let cases = [
        (Window::square(3).with_pad(1), (2, 3, 5, 5), 4),
        (Window::square(5), (2, 2, 7, 7), 3),
        (Window::square(3).with_pad(1).with_stride(2), (2, 3, 7, 7), 2),
        (Window::new(2, 3).with_pads(1, 1), (1, 2, 4, 5), 3),
        (
            Window::new(3, 2).with_strides(2, 1).with_pads(0, 1),
            (2, 1, 5, 4),
            2,
        ),
    ];
    for (i, (win, shape, filters)) in cases.into_iter().enumerate() {
        let mut conv = Convolution::new(shape.1, filters, win, Init::He, &mut rng(i as u64)).unwrap();
        check(&mut conv, &[shape.0, shape.1, shape.2, shape.3], 10 + i as u64);
    }
}

#[test]
fn pooling_gradients() {
    for (i, win) in [
        Window::square(2).with_stride(2),
        Window::square(3).with_stride(2), // overlapping
        Window::new(2, 3).with_strides(1, 2).with_pads(1, 0),
    ]
    .into_iter()
    .enumerate()
    {
        let shape = if i == 0 { [2, 3, 6, 8] } else { [2, 3, 5, 7] };
        check(&mut Pooling::max(win), &shape, 20 + i as u64);
        check(&mut Pooling::average(win), &shape, 30 + i as u64);
    }
}

#[test]
fn affine_gradients_on_4d_and_2d_input() {
    let mut fc = Affine::new(2 * 3 * 3, 5, Init::Xavier, &mut rng(1)).unwrap();
    check(&mut fc, &[4, 2, 3, 3], 40);
    let mut fc = Affine::new(7, 3, Init::He, &mut rng(2)).unwrap();
    check(&mut fc, &[6, 7], 41);
}

#[test]
fn activation_gradients() {
    check(&mut Relu::new(), &[3, 2, 4, 4], 50);
    check(&mut Sigmoid::new(), &[3, 2, 4, 4], 51);
    check(&mut Sigmoid::new(), &[5, 9], 52);
}

#[test]
fn dropout_gradient_with_held_mask() {
    let mut d = Dropout::new(0.5, 9).unwrap();
    check(&mut d, &[4, 3, 5, 5], 60);
}

#[test]
fn lrn_gradients() {
    check(&mut Lrn::alexnet(), &[2, 7, 3, 3], 70);
    // A strong alpha makes the cross-channel term large, so a wrong one fails.
    let mut strong = Lrn::new(3, 0.5, 0.75, 1.0).unwrap();
    check(&mut strong, &[2, 6, 2, 3], 71);
}

#[test]
fn softmax_with_loss_gradient() {
    let x = kink_free_input(&[6, 10], 80).mapv(|v| v * 3.0);
    let labels = [3, 0, 9, 9, 1, 5];
    let mut sl = SoftmaxWithLoss::new();
    sl.forward(x.view(), &labels).unwrap();
    let dx = sl.backward().unwrap().clone();
    let mut xp: ArrayD<f64> = x.clone();
    let check = compare("input", &dx, &Settings::default(), 0, |i, d| {
        xp.as_slice_mut().unwrap()[i] += d;
        let l = sl.forward(xp.view(), &labels);
        xp.as_slice_mut().unwrap()[i] -= d;
        l
    })
    .unwrap();
    assert_passes("SoftmaxWithLoss", &[check]);
}

#[test]
fn large_tensors_are_sampled() {
    let mut conv = Convolution::new(3, 8, Window::square(3).with_pad(1), Init::He, &mut rng(5)).unwrap();
    let x = kink_free_input(&[2, 3, 6, 6], 90);
    let checks = check_layer(
        &mut conv,
        &x,
        &Settings {
            max_coords: 16,
            ..Settings::default()
        },
    )
    .unwrap();
    assert_eq!(checks[0].total, 216);
    assert_eq!(checks[0].checked, 16);
    assert_eq!(checks[2].checked, 8); // the bias is small enough to check whole
    assert_passes("sampled", &checks);
}
