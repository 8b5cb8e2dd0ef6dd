//! Gradient checking (section 5.4 of the book): compare the gradients that
//! backward computes with central differences `(L(p + eps) - L(p - eps)) / 2eps`.
//!
//! Run in f64. A coordinate passes when
//! `|analytic - numeric| <= tol * max(|analytic|, |numeric|, floor)`:
//! a relative test, which becomes an absolute one (`tol * floor`) for
//! gradients smaller than `floor`, where rounding in the difference
//! quotient dominates.
//!
//! Piecewise-linear layers have kinks (ReLU at 0, ties in max pooling) where
//! a difference quotient straddles two pieces. [`kink_free_input`] keeps
//! inputs away from them (distinct values, none near zero) instead of
//! loosening the tolerance.
//!
//! ```
//! use layers::{gradcheck, Affine, Init};
//! use rand::SeedableRng;
//! let mut rng = rand::rngs::StdRng::seed_from_u64(3);
//! let mut fc = Affine::<f64>::new(6, 4, Init::He, &mut rng)?;
//! let x = gradcheck::kink_free_input(&[5, 6], 1);
//! let checks = gradcheck::check_layer(&mut fc, &x, &gradcheck::Settings::default())?;
//! assert_eq!(checks.len(), 3); // input, weight, bias
//! assert!(checks.iter().all(|c| c.passed), "{checks:?}");
//! # Ok::<(), layers::Error>(())
//! ```

use ndarray::{ArrayD, IxDyn, Zip};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

use crate::{Error, Layer, Mode, Parameters};

/// How strictly and how widely to check.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    /// Step of the central difference.
    pub eps: f64,
    /// Largest relative error that passes.
    pub tol: f64,
    /// Below this magnitude, errors are measured against `floor` instead.
    pub floor: f64,
    /// Tensors with more elements are checked on a seeded random sample of
    /// this many coordinates.
    pub max_coords: usize,
    /// Seed of the coordinate sample and of the random output projection.
    pub seed: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            eps: 1e-5,
            tol: 1e-6,
            floor: 1e-3,
            max_coords: 64,
            seed: 0,
        }
    }
}

/// The outcome of checking one tensor's gradient.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    /// The tensor: `input`, or a parameter name such as `weight` or `conv1.bias`.
    pub tensor: String,
    /// How many coordinates were compared.
    pub checked: usize,
    /// How many the tensor has.
    pub total: usize,
    /// Largest `|analytic - numeric|`.
    pub max_abs: f64,
    /// Largest `|analytic - numeric| / max(|analytic|, |numeric|, floor)`.
    pub max_rel: f64,
    /// Whether every compared coordinate passed.
    pub passed: bool,
}

/// Values for a layer's input that keep central differences off every kink:
/// all distinct (no ties for max pooling) and at least 0.1 away from zero
/// (ReLU), spaced by at least `1/len`, far more than any `eps` used here.
pub fn kink_free_input(shape: &[usize], seed: u64) -> ArrayD<f64> {
    let len: usize = shape.iter().product();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut ranks: Vec<usize> = (0..len).collect();
    ranks.shuffle(&mut rng);
    let mut it = ranks.into_iter();
    ArrayD::from_shape_simple_fn(IxDyn(shape), || {
        let magnitude = 0.1 + it.next().unwrap_or(0) as f64 / len.max(1) as f64;
        if rng.random::<bool>() {
            magnitude
        } else {
            -magnitude
        }
    })
}

/// The coordinates to compare: all of them, or a seeded sample.
fn coordinates(total: usize, settings: &Settings, salt: u64) -> Vec<usize> {
    if total <= settings.max_coords {
        return (0..total).collect();
    }
    let mut rng = StdRng::seed_from_u64(settings.seed ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut idx = rand::seq::index::sample(&mut rng, total, settings.max_coords).into_vec();
    idx.sort_unstable();
    idx
}

/// Compares `analytic` with central differences of `loss_at(coord, delta)`,
/// which must return the loss with coordinate `coord` shifted by `delta`
/// (and leave it restored afterwards).
pub fn compare(
    tensor: &str,
    analytic: &ArrayD<f64>,
    settings: &Settings,
    salt: u64,
    mut loss_at: impl FnMut(usize, f64) -> Result<f64, Error>,
) -> Result<Check, Error> {
    let flat: Vec<f64> = analytic.iter().copied().collect();
    let coords = coordinates(flat.len(), settings, salt);
    let (mut max_abs, mut max_rel, mut passed) = (0.0f64, 0.0f64, true);
    for &i in &coords {
        let plus = loss_at(i, settings.eps)?;
        let minus = loss_at(i, -settings.eps)?;
        let numeric = (plus - minus) / (2.0 * settings.eps);
        let err = (flat[i] - numeric).abs();
        let rel = err / flat[i].abs().max(numeric.abs()).max(settings.floor);
        // NaN anywhere fails, so test for passing rather than for failing.
        if rel.is_nan() || rel > settings.tol {
            passed = false;
        }
        max_abs = max_abs.max(err);
        max_rel = if rel.is_nan() { f64::NAN } else { max_rel.max(rel) };
    }
    Ok(Check {
        tensor: tensor.to_string(),
        checked: coords.len(),
        total: flat.len(),
        max_abs,
        max_rel,
        passed,
    })
}

/// Adds `delta` to element `coord` (row-major) of the parameter at position
/// `index` in `params`' visiting order.
pub fn nudge_param<P: Parameters<f64> + ?Sized>(params: &mut P, index: usize, coord: usize, delta: f64) {
    let mut k = 0;
    params.visit_params_mut(&mut |_, mut value, _| {
        if k == index
            && let Some(v) = value.iter_mut().nth(coord)
        {
            *v += delta;
        }
        k += 1;
    });
}

/// The gradients `params` currently holds, by name, in visiting order.
pub fn param_grads<P: Parameters<f64> + ?Sized>(params: &P) -> Vec<(String, ArrayD<f64>)> {
    let mut out = Vec::new();
    params.visit_params(&mut |name, _, grad| out.push((name.to_string(), grad.to_owned())));
    out
}

/// Checks one layer on input `x`: the input gradient and every parameter
/// gradient of the scalar `L = sum(forward(x) * G)` for a fixed random `G`
/// (so backward receives `G`). Dropout-like noise is held fixed meanwhile.
pub fn check_layer(
    layer: &mut dyn Layer<f64>,
    x: &ArrayD<f64>,
    settings: &Settings,
) -> Result<Vec<Check>, Error> {
    layer.hold_noise(true);
    let result = check_layer_held(layer, x, settings);
    layer.hold_noise(false);
    result
}

fn check_layer_held(
    layer: &mut dyn Layer<f64>,
    x: &ArrayD<f64>,
    settings: &Settings,
) -> Result<Vec<Check>, Error> {
    let out_shape = layer.forward(x.view(), Mode::Train)?.shape().to_vec();
    let mut rng = StdRng::seed_from_u64(settings.seed);
    let g = ArrayD::from_shape_simple_fn(IxDyn(&out_shape), || StandardNormal.sample(&mut rng));
    let dx = layer.backward(g.view())?.clone();
    let grads = param_grads(layer);

    let loss = |layer: &mut dyn Layer<f64>, x: &ArrayD<f64>| -> Result<f64, Error> {
        let y = layer.forward(x.view(), Mode::Train)?;
        let mut s = 0.0;
        Zip::from(y).and(&g).for_each(|&a, &b| s += a * b);
        Ok(s)
    };

    let mut checks = Vec::new();
    let mut xp = x.clone();
    checks.push(compare("input", &dx, settings, 0, |i, d| {
        let v = xp
            .iter_mut()
            .nth(i)
            .unwrap_or_else(|| unreachable!("coordinate within the tensor"));
        let old = *v;
        *v = old + d;
        let l = loss(layer, &xp);
        *xp.iter_mut().nth(i).unwrap_or_else(|| unreachable!()) = old;
        l
    })?);
    for (index, (name, grad)) in grads.iter().enumerate() {
        checks.push(compare(name, grad, settings, index as u64 + 1, |i, d| {
            nudge_param(layer, index, i, d);
            let l = loss(layer, x);
            nudge_param(layer, index, i, -d);
            l
        })?);
    }
    Ok(checks)
}
