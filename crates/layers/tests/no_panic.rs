//! Random shapes and hyper-parameters into every layer: each call returns
//! Ok or an error naming the layer, and nothing panics.

use layers::{Affine, Convolution, Dropout, Init, Layer, Lrn, Mode, Pooling, Relu, Sigmoid, SoftmaxWithLoss};
use ndarray::{ArrayD, IxDyn};
use proptest::prelude::*;
use rand::SeedableRng;
use tensor4d::Window;

fn shape() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0usize..7, 0..6)
}

fn window() -> impl Strategy<Value = Window> {
    (0usize..5, 0usize..5, 0usize..3, 0usize..3, 0usize..3, 0usize..3)
        .prop_map(|(fh, fw, sh, sw, ph, pw)| Window::new(fh, fw).with_strides(sh, sw).with_pads(ph, pw))
}

fn layers(
    win: Window,
    c: usize,
    f: usize,
    d: usize,
    o: usize,
    ratio: f64,
    lrn: usize,
) -> Vec<Box<dyn Layer<f32>>> {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(0);
    let mut v: Vec<Box<dyn Layer<f32>>> = vec![
        Box::new(Pooling::max(win)),
        Box::new(Pooling::average(win)),
        Box::new(Relu::new()),
        Box::new(Sigmoid::new()),
    ];
    // Constructors may refuse hyper-parameters (with an error); that is fine.
    if let Ok(l) = Convolution::new(c, f, win, Init::He, &mut rng) {
        v.push(Box::new(l));
    }
    if let Ok(l) = Affine::new(d, o, Init::Xavier, &mut rng) {
        v.push(Box::new(l));
    }
    if let Ok(l) = Dropout::new(ratio, 1) {
        v.push(Box::new(l));
    }
    if let Ok(l) = Lrn::new(lrn, 1e-4, 0.75, 2.0) {
        v.push(Box::new(l));
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn no_layer_panics(
        win in window(), c in 0usize..4, f in 0usize..4, d in 0usize..40, o in 0usize..4,
        ratio in -0.5f64..1.5, lrn in 0usize..6,
        x_shape in shape(), dout_shape in shape(), backward_first in any::<bool>(),
        labels in prop::collection::vec(0usize..12, 0..8),
    ) {
        let x = ArrayD::<f32>::ones(IxDyn(&x_shape));
        let dout = ArrayD::<f32>::ones(IxDyn(&dout_shape));
        for mut layer in layers(win, c, f, d, o, ratio, lrn) {
            let name = layer.describe();
            let check = |r: Result<_, layers::Error>| if let Err(e) = r {
                assert_eq!(e.layer(), name, "errors name their layer");
                assert!(!e.to_string().is_empty());
            };
            if backward_first {
                check(layer.backward(dout.view()).map(|_| ()));
            }
            check(layer.output_shape(&x_shape).map(|_| ()));
            let out = layer.forward(x.view(), Mode::Train).map(|y| y.shape().to_vec());
            if let Ok(out) = &out {
                // output_shape predicts forward exactly.
                prop_assert_eq!(Some(out.clone()), layer.output_shape(&x_shape).ok());
                let good = ArrayD::<f32>::ones(IxDyn(out));
                check(layer.backward(good.view()).map(|_| ()));
            }
            check(out.map(|_| ()));
            check(layer.backward(dout.view()).map(|_| ()));
            check(layer.forward(x.view(), Mode::Inference).map(|_| ()));
        }
        let mut sl = SoftmaxWithLoss::<f32>::new();
        let _ = sl.backward();
        let _ = sl.forward(x.view(), &labels);
        let _ = sl.backward();
    }
}

#[test]
fn errors_name_the_layer_and_sizes() {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(0);
    let mut conv = Convolution::<f32>::new(1, 30, Window::square(5), Init::He, &mut rng).unwrap();
    let msg = |r: Result<&ArrayD<f32>, layers::Error>| r.unwrap_err().to_string();

    let rgb = ArrayD::zeros(IxDyn(&[2, 3, 28, 28]));
    assert_eq!(
        msg(conv.forward(rgb.view(), Mode::Train)),
        "Convolution 30@5x5 p0/s1: input channels: expected 1, found 3"
    );
    let flat = ArrayD::zeros(IxDyn(&[2, 784]));
    assert_eq!(
        msg(conv.forward(flat.view(), Mode::Train)),
        "Convolution 30@5x5 p0/s1: expected an input of rank 4 (N, C, H, W), found shape [2, 784]"
    );
    let mut strided =
        Convolution::<f32>::new(1, 4, Window::square(5).with_stride(2), Init::He, &mut rng).unwrap();
    let img = ArrayD::zeros(IxDyn(&[2, 1, 28, 28]));
    assert_eq!(
        msg(strided.forward(img.view(), Mode::Train)),
        "Convolution 4@5x5 p0/s2: output height is not whole: (28 + 2*0 - 5) = 23 is not a multiple of stride 2"
    );
    let mut pool = Pooling::<f32>::max(Window::square(3).with_stride(2));
    assert!(
        msg(pool.forward(img.view(), Mode::Train))
            .starts_with("Pooling max 3x3 p0/s2: output height is not whole")
    );
    let huge = Pooling::<f32>::max(Window::new(257, 256));
    let e = huge.output_shape(&[1, 1, 257, 256]).unwrap_err().to_string();
    assert!(
        e.contains("Pooling max 257x256") && e.contains("65792 elements; at most 65536"),
        "{e}"
    );
    let mut fc = Affine::<f32>::new(4320, 100, Init::He, &mut rng).unwrap();
    assert_eq!(
        msg(fc.forward(img.view(), Mode::Train)),
        "Affine 4320 -> 100: features per sample (the product of [1, 28, 28]): expected 4320, found 784"
    );
    assert_eq!(
        msg(Relu::<f32>::new().backward(img.view())),
        "ReLU: backward called before forward"
    );
    conv.forward(img.view(), Mode::Train).unwrap();
    assert_eq!(
        msg(conv.backward(img.view())),
        "Convolution 30@5x5 p0/s1: gradient shape: expected [2, 30, 24, 24] (the forward output), found [2, 1, 28, 28]"
    );
    let mut sl = SoftmaxWithLoss::<f32>::new();
    let scores = ArrayD::zeros(IxDyn(&[2, 10]));
    assert_eq!(
        sl.forward(scores.view(), &[3, 10]).unwrap_err().to_string(),
        "SoftmaxWithLoss: label 10 of sample 1 is out of range for 10 classes"
    );
    assert!(
        Dropout::<f32>::new(1.0, 0)
            .unwrap_err()
            .to_string()
            .contains("[0, 1)")
    );
}

#[test]
fn dropout_masks_are_seeded_and_scaled() {
    let x = ArrayD::<f64>::ones(IxDyn(&[100, 100]));
    let run = |seed| {
        Dropout::new(0.3, seed)
            .unwrap()
            .forward(x.view(), Mode::Train)
            .unwrap()
            .clone()
    };
    assert_eq!(run(4), run(4));
    assert_ne!(run(4), run(5));
    let y = run(4);
    let kept = y.iter().filter(|&&v| v != 0.0).count() as f64 / 1e4;
    assert!((kept - 0.7).abs() < 0.03, "kept {kept}");
    assert!(y.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.7).abs() < 1e-12));
    // The mean is preserved in expectation: that is what "inverted" buys.
    assert!((y.mean().unwrap() - 1.0).abs() < 0.05);
}
