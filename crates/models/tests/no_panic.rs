//! Random network compositions, input shapes, labels and hyper-parameters
//! through the public API of `models`: every call returns Ok or an error,
//! and nothing panics.

use layers::{Init, Mode};
use models::{Architecture, Network};
use ndarray::{ArrayD, IxDyn};
use proptest::prelude::*;
use tensor4d::Window;

#[derive(Clone, Debug)]
enum Step {
    Conv(usize, Window),
    Affine(usize),
    Relu,
    Sigmoid,
    MaxPool(Window),
    AvgPool(Window),
    Lrn,
    Dropout(f64),
}

/// Mostly plausible windows, sometimes degenerate ones (zero sizes).
fn window() -> impl Strategy<Value = Window> {
    prop_oneof![
        3 => (1usize..4, 1usize..4, 1usize..3, 1usize..3, 0usize..2)
            .prop_map(|(fh, fw, sh, sw, p)| Window::new(fh, fw).with_strides(sh, sw).with_pad(p)),
        1 => (0usize..4, 0usize..4, 0usize..3, 0usize..3, 0usize..2)
            .prop_map(|(fh, fw, sh, sw, p)| Window::new(fh, fw).with_strides(sh, sw).with_pad(p)),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0usize..4, window()).prop_map(|(f, w)| Step::Conv(f, w)),
        (0usize..6).prop_map(Step::Affine),
        (1usize..6).prop_map(Step::Affine),
        Just(Step::Relu),
        Just(Step::Sigmoid),
        window().prop_map(Step::MaxPool),
        window().prop_map(Step::AvgPool),
        Just(Step::Lrn),
        (-0.5f64..1.5).prop_map(Step::Dropout),
    ]
}

fn build(input: [usize; 3], steps: &[Step]) -> Result<Network<f32>, models::Error> {
    let mut b = Network::builder("random", input, 0);
    for s in steps {
        b = match s.clone() {
            Step::Conv(f, w) => b.conv(f, w, Init::He)?,
            Step::Affine(o) => b.affine(o, Init::Xavier)?,
            Step::Relu => b.relu()?,
            Step::Sigmoid => b.sigmoid()?,
            Step::MaxPool(w) => b.max_pool(w)?,
            Step::AvgPool(w) => b.avg_pool(w)?,
            Step::Lrn => b.lrn()?,
            Step::Dropout(r) => b.dropout(r)?,
        };
    }
    b.build()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn no_public_model_call_panics(
        input in prop_oneof![3 => (1usize..4, 1usize..9, 1usize..9), 1 => (0usize..4, 0usize..9, 0usize..9)],
        steps in prop::collection::vec(step(), 0..6),
        batch_shape in prop::collection::vec(0usize..9, 0..6),
        labels in prop::collection::vec(0usize..12, 0..5),
        batch in 0usize..4,
        arch in 0usize..3,
        classes in 0usize..4,
    ) {
        let input = [input.0, input.1, input.2];
        let x = ArrayD::<f32>::ones(IxDyn(&batch_shape));
        if let Ok(mut net) = build(input, &steps) {
            let _ = net.predict(x.view(), Mode::Train);
            let _ = net.loss(x.view(), &labels);
            let _ = net.gradient(x.view(), &labels);
            let _ = net.classify(x.view());
            if let Ok(x4) = x.clone().into_dimensionality::<ndarray::Ix4>() {
                let _ = net.accuracy(&x4.view(), &labels, batch);
            }
            // A batch and labels that fit the network exercise backward too.
            let n = labels.len().max(1);
            let fitting: Vec<usize> = (0..n).map(|i| labels.get(i).copied().unwrap_or(0) % net.classes().max(1)).collect();
            let good = ArrayD::<f32>::from_shape_fn(IxDyn(&[n, input[0], input[1], input[2]]), |i| (i[2] as f32 - 1.5) * 0.3);
            let _ = net.gradient(good.view(), &fitting);
            let _ = net.gradient(good.view(), &fitting);
        }
        let _ = Architecture::ALL[arch].build::<f32>(input, classes, 0);
    }
}
