//! Gradient checking (section 5.4 of the book): compare the gradients that
//! backward computes with central differences `(L(p + eps) - L(p - eps)) / 2eps`.
//!
//! Run in f64. A coordinate passes when
//! `|analytic - numeric| <= tol * max(|analytic|, |numeric|, floor)`:
//! a relative test, which becomes an absolute one (`tol * floor`) for
//! gradients smaller than `floor`, where rounding in the difference
//! quotient dominates.
//!
//! **Kinks.** ReLU (at 0) and max pooling (at ties) are not differentiable
//! everywhere, and a difference quotient that straddles a kink measures
//! neither side's slope. Kinks are kept away from by how the probes are
//! drawn, never by loosening the tolerance:
//! - layer inputs come from [`kink_free_input`]: all distinct (no ties) and
//!   at least 0.1 away from zero, spaced by at least `1/len`, far more than
//!   any `eps` used here;
//! - inside a network, where hidden values cannot be chosen, every probe
//!   compares the layers' [`LayerHooks::kink_state`] fingerprints at `p + eps`
//!   and `p - eps` with those at `p`: a probe that changed any ReLU sign or
//!   pooling winner crossed a kink, and its coordinate is replaced by
//!   another one drawn from the same seeded sequence (or, in a tensor
//!   checked whole, left out), and counted in [`Check::skipped`]. A shorter
//!   step is no way out: the loss carries about 1e-15 of rounding, so a
//!   quotient with step 1e-7 is noisy at 5e-9, above the 1e-9 that the
//!   default tolerance allows for small gradients.
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
use tensor4d::Window;

use tensor4d::Float;

use crate::{
    Activation, Affine, ConvMethod, Convolution, Dropout, Error, Init, LayerHooks, Lrn, Mode, Parameters,
    PoolMethod, Pooling, Relu, Sigmoid, SoftmaxWithLoss,
};

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
    /// Seed of the inputs, the coordinate sample and the output projection.
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

impl Settings {
    /// Refuses settings under which a check could not fail, or could not
    /// run: a step or floor that is not a positive finite number, a
    /// tolerance that is negative or not a number (NaN passes nothing
    /// and fails nothing), no coordinates. The error names the field.
    ///
    /// ```
    /// use layers::gradcheck::Settings;
    /// assert!(Settings::default().validate().is_ok());
    /// let e = Settings { tol: f64::NAN, ..Settings::default() }.validate().unwrap_err();
    /// assert_eq!(e.to_string(), "gradcheck settings: tol must be a finite number >= 0, found NaN");
    /// ```
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |field: &str, rule: &str, found: &dyn std::fmt::Display| {
            Err(Error::invalid(
                "gradcheck settings",
                format!("{field} must be {rule}, found {found}"),
            ))
        };
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return bad("eps", "a finite number > 0", &self.eps);
        }
        if !(self.tol.is_finite() && self.tol >= 0.0) {
            return bad("tol", "a finite number >= 0", &self.tol);
        }
        if !(self.floor.is_finite() && self.floor > 0.0) {
            return bad("floor", "a finite number > 0", &self.floor);
        }
        if self.max_coords == 0 {
            return bad("max_coords", "at least 1", &0);
        }
        Ok(())
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
    /// Coordinates left out because a probe crossed a kink.
    pub skipped: usize,
    /// Largest `|analytic - numeric|`.
    pub max_abs: f64,
    /// Largest `|analytic - numeric| / max(|analytic|, |numeric|, floor)`.
    pub max_rel: f64,
    /// Whether every compared coordinate passed (and at least one was compared).
    pub passed: bool,
}

/// What one probe of the loss saw: the loss, and the kink fingerprint of
/// the forward pass ([`LayerHooks::kink_state`]).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Probe {
    loss: f64,
    kinks: u64,
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

/// The order in which coordinates are tried: all of them in order for a
/// small tensor, otherwise a seeded random sequence (long enough to replace
/// coordinates whose probes cross a kink). `salt` varies it per tensor.
fn candidates(total: usize, settings: &Settings, salt: u64) -> Vec<usize> {
    if total <= settings.max_coords {
        return (0..total).collect();
    }
    let mut rng = StdRng::seed_from_u64(settings.seed ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let n = (4 * settings.max_coords).min(total);
    rand::seq::index::sample(&mut rng, total, n).into_vec()
}

/// Compares `analytic` with central differences of `probe(coord, delta)`,
/// which must return the loss (and kink fingerprint) with coordinate `coord`
/// shifted by `delta`, leaving it restored afterwards. `base_kinks` is the
/// fingerprint at the unshifted point.
fn compare(
    tensor: &str,
    analytic: &ArrayD<f64>,
    settings: &Settings,
    salt: u64,
    base_kinks: u64,
    probe: impl FnMut(usize, f64) -> Result<Probe, Error>,
) -> Result<Check, Error> {
    let coords = candidates(analytic.len(), settings, salt);
    Ok(compare_at(tensor, analytic, &coords, settings, base_kinks, probe)?.0)
}

/// [`compare`] on the given coordinates in order, stopping after
/// `settings.max_coords` have been compared; also returns the coordinates
/// left out because their probes crossed a kink.
fn compare_at(
    tensor: &str,
    analytic: &ArrayD<f64>,
    coords: &[usize],
    settings: &Settings,
    base_kinks: u64,
    mut probe: impl FnMut(usize, f64) -> Result<Probe, Error>,
) -> Result<(Check, Vec<usize>), Error> {
    let flat: Vec<f64> = analytic.iter().copied().collect();
    let mut check = Check {
        tensor: tensor.to_string(),
        checked: 0,
        total: flat.len(),
        skipped: 0,
        max_abs: 0.0,
        max_rel: 0.0,
        passed: true,
    };
    let mut left_out = Vec::new();
    for &i in coords {
        if check.checked == settings.max_coords {
            break;
        }
        let plus = probe(i, settings.eps)?;
        let minus = probe(i, -settings.eps)?;
        if plus.kinks != base_kinks || minus.kinks != base_kinks {
            left_out.push(i);
            continue;
        }
        check.checked += 1;
        let numeric = (plus.loss - minus.loss) / (2.0 * settings.eps);
        let err = (flat[i] - numeric).abs();
        let rel = err / flat[i].abs().max(numeric.abs()).max(settings.floor);
        // NaN anywhere fails, so test for passing rather than for failing.
        if rel.is_nan() || rel > settings.tol {
            check.passed = false;
        }
        check.max_abs = check.max_abs.max(err);
        check.max_rel = if rel.is_nan() {
            f64::NAN
        } else {
            check.max_rel.max(rel)
        };
    }
    check.skipped = left_out.len();
    check.passed &= check.checked > 0;
    Ok((check, left_out))
}

impl Check {
    /// Folds in a later check of the same tensor (on other coordinates, or
    /// the same ones on another input): counts add, worst errors stay, and
    /// `skipped` becomes the later check's (what is still left out).
    fn absorb(&mut self, later: &Check) {
        let passed_before = self.passed || self.checked == 0;
        self.checked += later.checked;
        self.skipped = later.skipped;
        self.max_abs = self.max_abs.max(later.max_abs);
        self.max_rel = if later.max_rel.is_nan() {
            f64::NAN
        } else {
            self.max_rel.max(later.max_rel)
        };
        self.passed = passed_before && (later.passed || later.checked == 0) && self.checked > 0;
    }
}

/// Sets element `coord` (row-major) of the parameter at position `index` in
/// `params`' visiting order to `value`; returns the old value.
fn set_param<T: Float, P: Parameters<T> + ?Sized>(params: &mut P, index: usize, coord: usize, value: T) -> T {
    let mut k = 0;
    let mut old = value;
    params.visit_params_mut(&mut |_, mut tensor, _| {
        if k == index
            && let Some(v) = tensor.iter_mut().nth(coord)
        {
            old = std::mem::replace(v, value);
        }
        k += 1;
    });
    old
}

/// Evaluates `f` with element `coord` (row-major) of the parameter at
/// position `index` in `params`' visiting order shifted by `delta`, then
/// restores the exact old value (adding and subtracting `delta` would not
/// always give it back): the step of the book's `numerical_gradient`
/// (section 4.4), for anything with [`Parameters`].
///
/// ```
/// use layers::{Affine, Layer, Mode, Parameters};
/// use layers::gradcheck::with_nudged;
/// let mut fc = Affine::from_weights(ndarray::arr2(&[[2.0f64]]), ndarray::arr1(&[0.0]))?;
/// let x = ndarray::ArrayD::from_elem(vec![1, 1], 3.0);
/// // d(out)/d(weight) = x = 3, by a central difference on the weight.
/// let mut at = |d: f64| with_nudged(&mut fc, 0, 0, d, |fc| fc.forward(x.view(), Mode::Inference).map(|y| y[[0, 0]]));
/// let slope = (at(1e-6)? - at(-1e-6)?) / 2e-6;
/// assert!((slope - 3.0).abs() < 1e-6);
/// assert_eq!(fc.weight()[[0, 0]], 2.0); // restored exactly
/// # Ok::<(), layers::Error>(())
/// ```
pub fn with_nudged<T: Float, P: Parameters<T> + ?Sized, R>(
    params: &mut P,
    index: usize,
    coord: usize,
    delta: T,
    f: impl FnOnce(&mut P) -> R,
) -> R {
    let old = set_param(params, index, coord, T::zero());
    set_param(params, index, coord, old + delta);
    let result = f(params);
    set_param(params, index, coord, old);
    result
}

/// The gradients `params` currently holds, by name, in visiting order.
fn param_grads<P: Parameters<f64> + ?Sized>(params: &P) -> Vec<(String, ArrayD<f64>)> {
    let mut out = Vec::new();
    params.visit_params(&mut |name, _, grad| out.push((name.to_string(), grad.to_owned())));
    out
}

/// Checks one layer on input `x`: the input gradient and every parameter
/// gradient of the scalar `L = sum(forward(x) * G)` for a fixed random `G`
/// (so backward receives `G`). Dropout-like noise is held fixed meanwhile.
pub fn check_layer(
    layer: &mut dyn LayerHooks<f64>,
    x: &ArrayD<f64>,
    settings: &Settings,
) -> Result<Vec<Check>, Error> {
    settings.validate()?;
    layer.hold_noise(true);
    let result = check_layer_held(layer, x, settings);
    layer.hold_noise(false);
    result
}

fn check_layer_held(
    layer: &mut dyn LayerHooks<f64>,
    x: &ArrayD<f64>,
    settings: &Settings,
) -> Result<Vec<Check>, Error> {
    let out_shape = layer.forward(x.view(), Mode::Train)?.shape().to_vec();
    let base_kinks = layer.kink_state();
    let mut rng = StdRng::seed_from_u64(settings.seed);
    let g = ArrayD::from_shape_simple_fn(IxDyn(&out_shape), || StandardNormal.sample(&mut rng));
    let dx = layer.backward(g.view())?.clone();
    let grads = param_grads(layer);

    let probe = |layer: &mut dyn LayerHooks<f64>, x: &ArrayD<f64>| -> Result<Probe, Error> {
        let y = layer.forward(x.view(), Mode::Train)?;
        let mut loss = 0.0;
        Zip::from(y).and(&g).for_each(|&a, &b| loss += a * b);
        Ok(Probe {
            loss,
            kinks: layer.kink_state(),
        })
    };

    let mut checks = Vec::new();
    let mut xp = x.clone();
    checks.push(compare("input", &dx, settings, 0, base_kinks, |i, d| {
        let v = xp
            .iter_mut()
            .nth(i)
            .unwrap_or_else(|| unreachable!("coordinate within the tensor"));
        let old = *v;
        *v = old + d;
        let p = probe(layer, &xp);
        *xp.iter_mut().nth(i).unwrap_or_else(|| unreachable!()) = old;
        p
    })?);
    for (index, (name, grad)) in grads.iter().enumerate() {
        checks.push(compare(
            name,
            grad,
            settings,
            index as u64 + 1,
            base_kinks,
            |i, d| with_nudged(layer, index, i, d, |layer| probe(layer, x)),
        )?);
    }
    Ok(checks)
}

/// Checks [`SoftmaxWithLoss`] on random scores `(N, K)` and labels.
pub fn check_softmax_with_loss(n: usize, k: usize, settings: &Settings) -> Result<Check, Error> {
    settings.validate()?;
    let x = kink_free_input(&[n, k], settings.seed).mapv(|v| v * 3.0);
    let labels: Vec<usize> = (0..n).map(|i| (i * 7 + settings.seed as usize) % k).collect();
    let mut sl = SoftmaxWithLoss::new();
    sl.forward(x.view(), &labels)?;
    let dx = sl.backward()?.clone();
    let mut xp = x;
    compare("input", &dx, settings, 0, 0, |i, d| {
        let v = xp.iter_mut().nth(i).unwrap_or_else(|| unreachable!());
        *v += d;
        let loss = sl.forward(xp.view(), &labels);
        *xp.iter_mut().nth(i).unwrap_or_else(|| unreachable!()) -= d;
        Ok(Probe {
            loss: loss?,
            kinks: 0,
        })
    })
}

/// One layer configuration that the standard check covers.
pub struct LayerCase {
    /// The layer, its weights drawn from the settings' seed.
    pub layer: Box<dyn LayerHooks<f64>>,
    /// The input shape to check it on.
    pub input: Vec<usize>,
}

/// The layer configurations every gradient check covers: convolutions
/// (3x3 p1 s1, 5x5 p0 s1, 3x3 p1 s2, a rectangular 2x3 filter with
/// padding, several channels in and out) by every method, one with its
/// ReLU fused in, max and average pooling (2x2 s2 and the overlapping 3x3
/// s2) by both methods, affine on 4-D input, ReLU, Sigmoid, dropout with a
/// held mask and LRN.
pub fn layer_cases(seed: u64) -> Result<Vec<LayerCase>, Error> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut cases = Vec::new();
    let mut add = |layer: Box<dyn LayerHooks<f64>>, input: &[usize]| {
        cases.push(LayerCase {
            layer,
            input: input.to_vec(),
        })
    };
    for (win, shape, filters) in [
        (Window::square(3).with_pad(1), [2, 3, 5, 5], 4),
        (Window::square(5), [2, 2, 7, 7], 3),
        (Window::square(3).with_pad(1).with_stride(2), [2, 3, 7, 7], 2),
        (Window::new(2, 3).with_pads(1, 1), [1, 2, 4, 5], 3),
    ] {
        let conv = Convolution::new(shape[1], filters, win, Init::He, &mut rng)?;
        let stride_1 = (win.sh, win.sw) == (1, 1);
        for method in [
            ConvMethod::Chapter,
            ConvMethod::Columns,
            ConvMethod::Implicit,
            ConvMethod::Direct,
        ] {
            if method != ConvMethod::Direct || stride_1 {
                add(Box::new(conv.clone().with_method(method)?), &shape);
            }
        }
        add(Box::new(conv), &shape);
    }
    // A convolution with its ReLU fused in: the masked backward.
    let mut fused = Convolution::new(3, 4, Window::square(3).with_pad(1), Init::He, &mut rng)?;
    fused.fuse(Activation::Relu);
    add(Box::new(fused), &[2, 3, 5, 5]);
    for (win, shape) in [
        (Window::square(2).with_stride(2), [2, 3, 6, 8]),
        (Window::square(3).with_stride(2), [2, 3, 7, 9]),
    ] {
        for method in [PoolMethod::Chapter, PoolMethod::Direct] {
            add(Box::new(Pooling::max(win).with_method(method)), &shape);
            add(Box::new(Pooling::average(win).with_method(method)), &shape);
        }
    }
    add(
        Box::new(Affine::new(2 * 3 * 3, 5, Init::Xavier, &mut rng)?),
        &[4, 2, 3, 3],
    );
    add(Box::<Relu<f64>>::default(), &[3, 2, 4, 4]);
    add(Box::<Sigmoid<f64>>::default(), &[3, 2, 4, 4]);
    add(Box::new(Dropout::new(0.5, seed)?), &[4, 3, 5, 5]);
    add(Box::new(Lrn::alexnet()), &[2, 7, 3, 3]);
    // A strong alpha makes LRN's cross-channel term large, so a wrong one fails.
    add(Box::new(Lrn::new(3, 0.5, 0.75, 1.0)?), &[2, 6, 2, 3]);
    // Any other beta goes through `powf`.
    add(Box::new(Lrn::new(5, 0.3, 0.6, 1.5)?), &[2, 6, 2, 3]);
    Ok(cases)
}

/// FNV-1a over a stream of words: how a layer's
/// [`LayerHooks::kink_state`] condenses its discrete choices, and how an
/// [`Objective`] may combine its layers' into one.
///
/// ```
/// use layers::gradcheck::fingerprint;
/// assert_eq!(fingerprint([1, 2].into_iter()), fingerprint([1, 2].into_iter()));
/// assert_ne!(fingerprint([1, 2].into_iter()), fingerprint([2, 1].into_iter()));
/// ```
pub fn fingerprint(words: impl Iterator<Item = u64>) -> u64 {
    words.fold(0xcbf2_9ce4_8422_2325, |h, w| {
        (h ^ w).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A scalar loss of named parameters whose gradient backpropagation
/// computes, on numbered inputs: what [`check_objective`] checks. A
/// network's mean loss on batch number `draw` is one (the `models` crate
/// checks its networks this way).
pub trait Objective: Parameters<f64> {
    /// The loss at the current parameters on input `draw`, and the kink
    /// fingerprint of that forward pass (every layer's
    /// [`LayerHooks::kink_state`], combined by [`fingerprint`]; equal fingerprints, same
    /// linear piece).
    fn loss(&mut self, draw: u64) -> Result<(f64, u64), Error>;

    /// Backpropagation on input `draw`, leaving each parameter's gradient
    /// where [`Parameters::visit_params`] finds it.
    fn gradient(&mut self, draw: u64) -> Result<(), Error>;
}

/// Checks every parameter gradient of `objective` on input 0, on the
/// coordinates `settings` chooses. Coordinates whose probes cross a kink
/// are checked again on inputs 1, 2, ... (up to `redraws` of them), as
/// many as each tensor falls short of its share, until each has been
/// checked on an input where its probes do not cross one.
pub fn check_objective(
    objective: &mut dyn Objective,
    settings: &Settings,
    redraws: u64,
) -> Result<Vec<Check>, Error> {
    settings.validate()?;
    let first = check_on(objective, 0, settings, &|_| None)?;
    let (mut checks, mut pending): (Vec<Check>, Vec<Vec<usize>>) = first.into_iter().unzip();
    // Re-check only as many left-out coordinates as each tensor falls short by.
    let short = |c: &Check| c.total.min(settings.max_coords) - c.checked;
    for (c, p) in checks.iter().zip(pending.iter_mut()) {
        p.truncate(short(c));
    }
    for draw in 1..=redraws {
        if pending.iter().all(Vec::is_empty) {
            break;
        }
        let todo = pending.clone();
        let again = check_on(objective, draw, settings, &|i| Some(todo[i].clone()))?;
        for ((check, left), ((later, still), todo)) in checks
            .iter_mut()
            .zip(pending.iter_mut())
            .zip(again.into_iter().zip(todo))
        {
            if !todo.is_empty() {
                check.absorb(&later);
                *left = still;
                left.truncate(short(check));
            }
        }
    }
    Ok(checks)
}

/// Checks every parameter gradient of `objective` on input `draw`, on the
/// coordinates `coords(index)` gives for each tensor (`None`: the seeded
/// choice). Returns each tensor's check and the coordinates left out
/// because their probes crossed a kink.
fn check_on(
    objective: &mut dyn Objective,
    draw: u64,
    settings: &Settings,
    coords: &dyn Fn(usize) -> Option<Vec<usize>>,
) -> Result<Vec<(Check, Vec<usize>)>, Error> {
    // The fingerprint of the forward pass, read before backward
    // overwrites the activations' outputs with gradients.
    let (_, base) = objective.loss(draw)?;
    objective.gradient(draw)?;
    let grads = param_grads(objective);
    let mut out = Vec::new();
    for (index, (name, grad)) in grads.iter().enumerate() {
        let mut probe = |i: usize, d: f64| {
            let (loss, kinks) = with_nudged(&mut *objective, index, i, d, |o| o.loss(draw))?;
            Ok(Probe { loss, kinks })
        };
        let list = coords(index).unwrap_or_else(|| candidates(grad.len(), settings, index as u64 + 1));
        out.push(compare_at(name, grad, &list, settings, base, &mut probe)?);
    }
    Ok(out)
}
