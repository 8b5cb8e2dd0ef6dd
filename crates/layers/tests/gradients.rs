//! Every layer's backward (input gradient and each parameter gradient)
//! against central differences, in f64, on inputs kept off the kinks; and
//! proof that the check catches wrong gradients.

use layers::gradcheck::{
    Check, Objective, Settings, check_layer, check_objective, check_softmax_with_loss, kink_free_input,
    layer_cases,
};
use layers::{
    Affine, Convolution, Error, Init, Layer, LayerHooks, Mode, ParamVisitor, ParamVisitorMut, Parameters,
    SoftmaxWithLoss,
};
use ndarray::{ArrayD, ArrayViewD};
use rand::SeedableRng;
use tensor4d::Window;

fn assert_passes(what: &str, checks: &[Check]) {
    for c in checks {
        assert!(c.passed && c.skipped == 0, "{what}: {c:?}");
    }
}

#[test]
fn every_standard_layer_case_passes() {
    let settings = Settings::default();
    let cases = layer_cases(7).unwrap();
    assert!(cases.len() >= 14);
    for mut case in cases {
        let x = kink_free_input(&case.input, 11);
        let checks = check_layer(case.layer.as_mut(), &x, &settings).unwrap();
        assert_passes(&case.layer.describe(), &checks);
    }
    assert_passes(
        "SoftmaxWithLoss",
        &[check_softmax_with_loss(6, 10, &settings).unwrap()],
    );
}

#[test]
fn large_tensors_are_sampled() {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(5);
    let mut conv = Convolution::new(3, 8, Window::square(3).with_pad(1), Init::He, &mut rng).unwrap();
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
    assert_eq!((checks[0].total, checks[0].checked), (216, 16));
    assert_eq!(checks[2].checked, 8); // the bias is small enough to check whole
    assert_passes("sampled", &checks);
}

/// An affine layer whose backward reports the transpose of its weight
/// gradient: plausible-looking (same shape for a square weight) and wrong.
struct TransposedGrad(Affine<f64>);

impl Parameters<f64> for TransposedGrad {
    fn visit_params(&self, f: &mut ParamVisitor<'_, f64>) {
        self.0.visit_params(&mut |n, v, g| {
            if n == "weight" {
                f(n, v, g.t().into_dyn())
            } else {
                f(n, v, g)
            }
        });
    }
    fn visit_params_mut(&mut self, f: &mut ParamVisitorMut<'_, f64>) {
        self.0.visit_params_mut(&mut |n, v, g| {
            if n == "weight" {
                f(n, v, g.reversed_axes())
            } else {
                f(n, v, g)
            }
        });
    }
}

impl Layer<f64> for TransposedGrad {
    fn describe(&self) -> String {
        "transposed dW".into()
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, Error> {
        self.0.output_shape(input)
    }
    fn forward(&mut self, x: ArrayViewD<'_, f64>, mode: Mode) -> Result<&ArrayD<f64>, Error> {
        self.0.forward(x, mode)
    }
    fn backward(&mut self, dout: ArrayViewD<'_, f64>) -> Result<&ArrayD<f64>, Error> {
        self.0.backward(dout)
    }
}

impl LayerHooks<f64> for TransposedGrad {}

#[test]
fn a_transposed_weight_gradient_is_caught() {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(1);
    let mut bad = TransposedGrad(Affine::new(5, 5, Init::He, &mut rng).unwrap());
    let x = kink_free_input(&[4, 5], 2);
    let checks = check_layer(&mut bad, &x, &Settings::default()).unwrap();
    let weight = checks.iter().find(|c| c.tensor == "weight").unwrap();
    assert!(!weight.passed && weight.max_rel > 1e-2, "{weight:?}");
    assert!(
        checks.iter().filter(|c| c.tensor != "weight").all(|c| c.passed),
        "{checks:?}"
    );
}

/// SoftmaxWithLoss's input as the parameter of an objective, its gradient
/// scaled by `scale` (1 is right).
struct SoftmaxInput {
    x: ArrayD<f64>,
    grad: ArrayD<f64>,
    labels: Vec<usize>,
    layer: SoftmaxWithLoss<f64>,
    scale: f64,
}

impl Parameters<f64> for SoftmaxInput {
    fn visit_params(&self, f: &mut ParamVisitor<'_, f64>) {
        f("input", self.x.view(), self.grad.view());
    }
    fn visit_params_mut(&mut self, f: &mut ParamVisitorMut<'_, f64>) {
        f("input", self.x.view_mut(), self.grad.view());
    }
}

impl Objective for SoftmaxInput {
    fn loss(&mut self, _: u64) -> Result<(f64, u64), Error> {
        Ok((self.layer.forward(self.x.view(), &self.labels)?, 0))
    }
    fn gradient(&mut self, draw: u64) -> Result<(), Error> {
        self.loss(draw)?;
        self.grad = self.layer.backward()? * self.scale;
        Ok(())
    }
}

#[test]
fn a_missing_one_over_n_is_caught() {
    // The loss is a mean over the batch; a backward that forgets to divide
    // by N is off by a factor of N.
    for (scale, right) in [(1.0, true), (4.0, false)] {
        let mut objective = SoftmaxInput {
            x: kink_free_input(&[4, 3], 3),
            grad: ArrayD::zeros(vec![4, 3]),
            labels: vec![0, 2, 1, 1],
            layer: SoftmaxWithLoss::new(),
            scale,
        };
        let checks = check_objective(&mut objective, &Settings::default(), 0).unwrap();
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].passed, right, "{checks:?}");
        if !right {
            assert!(checks[0].max_rel > 0.5, "{checks:?}");
        }
    }
}

#[test]
fn a_probe_across_a_kink_is_left_out_not_trusted() {
    // With eps 1e-5, a ReLU input at 5e-6 straddles the kink: its quotient
    // would be 0.75 where the slope is 1. It must be left out and reported.
    let mut relu = layers::Relu::new();
    let x = ArrayD::from_shape_vec(vec![1, 3], vec![0.5, 5e-6, -0.7]).unwrap();
    let checks = check_layer(&mut relu, &x, &Settings::default()).unwrap();
    assert_eq!((checks[0].checked, checks[0].skipped), (2, 1), "{checks:?}");
    assert!(checks[0].passed);
}
