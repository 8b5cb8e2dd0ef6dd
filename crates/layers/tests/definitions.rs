//! What the `Layer` and `LayerHooks` contracts promise of every layer, and
//! what the accessors give back, checked against the documentation's
//! definitions: a layer that fuses nothing says so, a smooth layer's kink
//! fingerprint is 0, a layer without noise has noise state 0, a backward
//! without the input gradient refuses what backward refuses, and each
//! accessor returns what the layer was built with.

use crate::common::*;
use layers::{
    Activation, Affine, ConvMethod, Convolution, Dropout, Layer, LayerHooks, Lrn, Mode, Pooling, Relu,
    Sigmoid,
};
use ndarray::{Array2, ArrayD};
use tensor4d::Window;

/// One of each layer that keeps the trait's defaults for some hook, with
/// an input it accepts.
fn layers_and_inputs() -> Vec<(Box<dyn LayerHooks<f64>>, ArrayD<f64>)> {
    let image = uniform(&[2, 3, 4, 4], 1);
    let w: Array2<f64> = uniform(&[48, 5], 2).into_dimensionality().unwrap();
    vec![
        (Box::new(Relu::new()), image.clone()),
        (Box::new(Sigmoid::new()), image.clone()),
        (Box::new(Dropout::new(0.25, 3).unwrap()), image.clone()),
        (Box::new(Lrn::alexnet()), image.clone()),
        (
            Box::new(Pooling::max(Window::square(2).with_stride(2))),
            image.clone(),
        ),
        (
            Box::new(Pooling::average(Window::square(2).with_stride(2))),
            image.clone(),
        ),
        (Box::new(Affine::from_weights(w, uniform1(5, 4)).unwrap()), image),
    ]
}

/// Only a convolution takes over an activation; every other layer refuses,
/// for both activations, before and after a forward pass.
#[test]
fn layers_other_than_convolution_fuse_nothing() {
    for (mut layer, x) in layers_and_inputs() {
        let name = layer.describe();
        for act in [Activation::Relu, Activation::Sigmoid] {
            assert!(!layer.fuse(act), "{name} took over {act:?}");
        }
        layer.forward(x.view(), Mode::Train).unwrap();
        for act in [Activation::Relu, Activation::Sigmoid] {
            assert!(!layer.fuse(act), "{name} took over {act:?} after forward");
        }
        assert_eq!(layer.describe(), name, "describe changed by a refused fusion");
    }
}

/// Smooth layers (no ReLU, no max) make no discrete choice: fingerprint 0.
/// Layers without random noise have noise state 0, whatever is set.
#[test]
fn smooth_layers_have_no_kinks_and_noiseless_layers_no_noise_state() {
    for (mut layer, x) in layers_and_inputs() {
        let name = layer.describe();
        let smooth = !(name.starts_with("ReLU") || name.starts_with("Pooling max"));
        layer.forward(x.view(), Mode::Train).unwrap();
        if smooth {
            assert_eq!(layer.kink_state(), 0, "{name}");
        }
        if !name.starts_with("Dropout") {
            assert_eq!(layer.noise_state(), 0, "{name}");
            layer.set_noise_state(5);
            assert_eq!(layer.noise_state(), 0, "{name} after set_noise_state");
        }
    }
}

/// `backward_params` refuses what `backward` refuses: a gradient before any
/// forward, and a gradient whose shape is not the forward output's; and it
/// accepts what `backward` accepts.
#[test]
fn backward_params_checks_what_backward_checks() {
    for (mut layer, x) in layers_and_inputs() {
        let name = layer.describe();
        let shape = layer.output_shape(x.shape()).unwrap();
        let g = uniform(&shape, 9);
        let early = layer.backward_params(g.view()).unwrap_err();
        assert_eq!(early.layer(), name, "before forward");
        assert!(early.to_string().contains("before forward"), "{name}: {early}");

        layer.forward(x.view(), Mode::Train).unwrap();
        let mut wrong = shape.clone();
        wrong[0] += 1;
        let e = layer.backward_params(uniform(&wrong, 9).view()).unwrap_err();
        assert!(e.to_string().contains("gradient shape"), "{name}: {e}");

        layer.forward(x.view(), Mode::Train).unwrap();
        layer.backward_params(g.view()).unwrap();
    }
}

/// The default `backward_params` is backward without its result: the
/// parameter gradients it leaves are those of backward, computed here from
/// their definitions for an affine layer (dW = x^T g, db = column sums of g).
#[test]
fn backward_params_leaves_the_parameter_gradients_of_backward() {
    let (n, d, out) = (3, 4, 2);
    let x = uniform(&[n, d], 11);
    let w: Array2<f64> = uniform(&[d, out], 12).into_dimensionality().unwrap();
    let g = uniform(&[n, out], 13);
    let mut fc = Affine::from_weights(w, uniform1(out, 14)).unwrap();
    fc.forward(x.view(), Mode::Train).unwrap();
    fc.backward_params(g.view()).unwrap();
    let want_dw = ArrayD::from_shape_fn(vec![d, out], |i| {
        (0..n).map(|s| x[[s, i[0]]] * g[[s, i[1]]]).sum()
    });
    let want_db = ArrayD::from_shape_fn(vec![out], |i| (0..n).map(|s| g[[s, i[0]]]).sum());
    assert_all_close(&fc.dw().clone().into_dyn(), &want_dw, "dW");
    assert_all_close(&fc.db().clone().into_dyn(), &want_db, "db");
}

/// Accessors give back what the layer was built with.
#[test]
fn accessors_return_what_the_layer_was_built_with() {
    let win = Window::new(3, 2).with_strides(1, 2).with_pads(1, 0);
    let conv = Convolution::from_weights(uniform4((2, 1, 3, 2), 1), uniform1(2, 2), win).unwrap();
    assert_eq!(conv.window(), win);
    assert_eq!(conv.method(), ConvMethod::Auto);
    for method in [ConvMethod::Chapter, ConvMethod::Columns, ConvMethod::Implicit] {
        assert_eq!(conv.clone().with_method(method).unwrap().method(), method);
    }
    let stride_1 = Convolution::from_weights(uniform4((2, 1, 3, 3), 1), uniform1(2, 2), Window::square(3));
    let direct = stride_1.unwrap().with_method(ConvMethod::Direct).unwrap();
    assert_eq!(direct.method(), ConvMethod::Direct);
    for ratio in [0.0, 0.3, 0.5] {
        assert_eq!(Dropout::<f32>::new(ratio, 1).unwrap().ratio(), ratio);
    }
}

/// A two-dimensional input `(N, in)` is already flat: an affine layer takes
/// it as it is, `y[s, o] = b[o] + sum_k x[s, k] W[k, o]`, and refuses
/// inputs of rank below 2.
#[test]
fn affine_takes_a_matrix_input_and_refuses_lower_ranks() {
    let (n, d, out) = (3, 5, 4);
    let x = uniform(&[n, d], 21);
    let w: Array2<f64> = uniform(&[d, out], 22).into_dimensionality().unwrap();
    let b = uniform1(out, 23);
    let mut fc = Affine::from_weights(w.clone(), b.clone()).unwrap();
    assert_eq!(fc.output_shape(&[n, d]).unwrap(), vec![n, out]);
    let y = fc.forward(x.view(), Mode::Train).unwrap().clone();
    let want = ArrayD::from_shape_fn(vec![n, out], |i| {
        b[i[1]] + (0..d).map(|k| x[[i[0], k]] * w[[k, i[1]]]).sum::<f64>()
    });
    assert_all_close(&y, &want, "forward");
    for bad in [vec![d], vec![]] {
        let e = fc.output_shape(&bad).unwrap_err().to_string();
        assert!(
            e.starts_with("Affine 5 -> 4") && e.contains("rank"),
            "{bad:?}: {e}"
        );
    }
}

/// A stride of 0 on either axis is refused when the layer is built, not
/// left to the first forward.
#[test]
fn a_zero_stride_on_either_axis_is_refused_at_construction() {
    for (sh, sw) in [(0, 1), (1, 0), (0, 0)] {
        let win = Window::square(2).with_strides(sh, sw);
        let e = Convolution::from_weights(uniform4((1, 1, 2, 2), 1), uniform1(1, 2), win)
            .unwrap_err()
            .to_string();
        assert!(e.contains("stride"), "({sh}, {sw}): {e}");
    }
}

/// Each layer names itself as errors and summaries quote it, and predicts
/// the shape its forward pass gives.
#[test]
fn layers_name_themselves_and_predict_their_output_shape() {
    let names = [
        "ReLU",
        "Sigmoid",
        "Dropout 0.25",
        "LRN n=5",
        "Pooling max 2x2 p0/s2",
        "Pooling average 2x2 p0/s2",
        "Affine 48 -> 5",
    ];
    for ((mut layer, x), name) in layers_and_inputs().into_iter().zip(names) {
        assert!(
            layer.describe().starts_with(name),
            "{} for {name}",
            layer.describe()
        );
        let predicted = layer.output_shape(x.shape()).unwrap();
        let y = layer.forward(x.view(), Mode::Train).unwrap();
        assert_eq!(predicted, y.shape(), "{name}");
    }
}

/// Weights and biases that do not fit together are refused when the layer
/// is built: one bias per output, no empty weight axis, and for a
/// convolution a window of the filters' size.
#[test]
fn mismatched_weights_and_biases_are_refused() {
    let w2: Array2<f64> = uniform(&[4, 3], 1).into_dimensionality().unwrap();
    for len in [2, 4] {
        let e = Affine::from_weights(w2.clone(), uniform1(len, 2))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("Affine 4 -> 3") && e.contains("bias length"), "{e}");
    }
    let e = Affine::<f64>::from_weights(Array2::zeros((0, 3)), uniform1(3, 2)).unwrap_err();
    assert!(e.to_string().contains("empty axis"), "{e}");
    let w4 = uniform4((2, 1, 3, 3), 3);
    let e = Convolution::from_weights(w4.clone(), uniform1(3, 4), Window::square(3)).unwrap_err();
    assert!(e.to_string().contains("bias length"), "{e}");
    let e = Convolution::from_weights(w4, uniform1(2, 4), Window::square(2)).unwrap_err();
    assert!(e.to_string().contains("window size"), "{e}");
}

/// A convolution predicts the shape its forward pass gives:
/// `(N, FN, (H + 2P - FH)/S + 1, (W + 2P - FW)/S + 1)`.
#[test]
fn convolution_predicts_its_output_shape() {
    let cases = [
        ((2, 3, 7, 7), 4, Window::square(3)),
        (
            (1, 2, 8, 6),
            5,
            Window::new(3, 2).with_strides(1, 2).with_pads(1, 0),
        ),
        ((3, 1, 9, 9), 2, Window::square(5).with_stride(2).with_pad(2)),
    ];
    for ((n, c, h, w), f, win) in cases {
        let x = uniform(&[n, c, h, w], 5);
        let mut conv =
            Convolution::from_weights(uniform4((f, c, win.fh, win.fw), 6), uniform1(f, 7), win).unwrap();
        let want = vec![
            n,
            f,
            (h + 2 * win.ph - win.fh) / win.sh + 1,
            (w + 2 * win.pw - win.fw) / win.sw + 1,
        ];
        assert_eq!(conv.output_shape(x.shape()).unwrap(), want, "{win}");
        assert_eq!(
            conv.forward(x.view(), Mode::Train).unwrap().shape(),
            &want[..],
            "{win}"
        );
    }
}
