//! Whole networks against numerical differentiation: the loss gradient with
//! respect to every parameter tensor, in f64, with dropout masks held and
//! probes kept off ReLU and pooling kinks (see [`layers::gradcheck`]).
//!
//! ```
//! use models::{Architecture, gradcheck};
//! let settings = layers::gradcheck::Settings { max_coords: 4, ..Default::default() };
//! let checks = gradcheck::check_architecture(Architecture::LeNet, &settings)?;
//! assert_eq!(checks.len(), 10);
//! assert!(checks.iter().all(|c| c.passed), "{checks:?}");
//! # Ok::<(), models::Error>(())
//! ```

use layers::Parameters;
use layers::gradcheck::{
    Check, Probe, Settings, candidates, compare_at, kink_free_input, param_grads, with_nudged,
};
use ndarray::{ArrayD, IxDyn};
use rand::{RngExt, SeedableRng};
use tensor4d::Window;

use crate::{Architecture, Error, Network};

fn probe_err(e: Error) -> layers::Error {
    layers::Error::Invalid {
        layer: "network".into(),
        message: e.to_string(),
    }
}

/// Checks every parameter gradient of `net`'s mean loss on `(x, labels)`,
/// on the coordinates `coords(index)` gives for each tensor (`None`: the
/// default seeded choice). Returns each tensor's check and the
/// coordinates left out because their probes crossed a kink.
fn check_on(
    net: &mut Network<f64>,
    x: &ArrayD<f64>,
    labels: &[usize],
    settings: &Settings,
    coords: &dyn Fn(usize) -> Option<Vec<usize>>,
) -> Result<Vec<(Check, Vec<usize>)>, Error> {
    net.hold_noise(true);
    let result = (|| {
        // The fingerprint of the forward pass, read before backward
        // overwrites the activations' outputs with gradients.
        net.loss(x.view(), labels)?;
        let base = net.kink_state();
        net.gradient(x.view(), labels)?;
        let grads = param_grads(net);
        let mut out = Vec::new();
        for (index, (name, grad)) in grads.iter().enumerate() {
            let mut probe = |i: usize, d: f64| {
                let (loss, kinks) = with_nudged(&mut *net, index, i, d, |net| {
                    (net.loss(x.view(), labels), net.kink_state())
                });
                Ok(Probe {
                    loss: loss.map_err(probe_err)?,
                    kinks,
                })
            };
            let label = |source| Error::Layer {
                label: name.clone(),
                source,
            };
            let list = coords(index).unwrap_or_else(|| candidates(grad.len(), settings, index as u64 + 1));
            let result = compare_at(name, grad, &list, settings, base, &mut probe).map_err(label)?;
            out.push(result);
        }
        Ok(out)
    })();
    net.hold_noise(false);
    result
}

/// Checks every parameter gradient of `net`'s mean loss on `(x, labels)`.
pub fn check_network(
    net: &mut Network<f64>,
    x: &ArrayD<f64>,
    labels: &[usize],
    settings: &Settings,
) -> Result<Vec<Check>, Error> {
    Ok(check_on(net, x, labels, settings, &|_| None)?
        .into_iter()
        .map(|(c, _)| c)
        .collect())
}

/// How many fresh input batches may be drawn to re-check coordinates whose
/// probes crossed a kink.
pub const REDRAWS: u64 = 24;

/// Checks one of the three networks on a batch of two 28x28 kink-free
/// images, weights drawn from `settings.seed` as in training. Coordinates
/// of a tensor checked whole whose probes cross a kink are checked again on
/// freshly drawn batches (up to [`REDRAWS`]) until each has been checked
/// on one where it does not.
pub fn check_architecture(arch: Architecture, settings: &Settings) -> Result<Vec<Check>, Error> {
    let mut net = arch.build::<f64>([1, 28, 28], 10, settings.seed)?;
    let batch = |draw: u64| {
        let seed = settings.seed ^ 0x5eed ^ draw.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let labels = vec![((seed >> 3) % 10) as usize, ((seed >> 7) % 10) as usize];
        (kink_free_input(&[2, 1, 28, 28], seed), labels)
    };
    let (x, labels) = batch(0);
    let first = check_on(&mut net, &x, &labels, settings, &|_| None)?;
    let (mut checks, mut pending): (Vec<Check>, Vec<Vec<usize>>) = first.into_iter().unzip();
    // Re-check only as many left-out coordinates as each tensor falls short by.
    let short = |c: &Check| c.total.min(settings.max_coords) - c.checked;
    for (c, p) in checks.iter().zip(pending.iter_mut()) {
        p.truncate(short(c));
    }
    for draw in 1..=REDRAWS {
        if pending.iter().all(Vec::is_empty) {
            break;
        }
        let (x, labels) = batch(draw);
        let todo = pending.clone();
        let again = check_on(&mut net, &x, &labels, settings, &|i| Some(todo[i].clone()))?;
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

/// The chapter's own figure (`ch07/gradient_check.py`): a small f32
/// SimpleConvNet (input 1x10x10, 10 filters 3x3, hidden 10, weights
/// N(0, 0.01^2)) on one random image with label 1; for each parameter, the
/// mean absolute difference between backpropagation and the book's
/// numerical gradient (central differences, h = 1e-4). Returns the book's
/// names (`W1`, `b1`, ...) beside ours.
pub fn chapter_figure(seed: u64) -> Result<Vec<(String, String, f64)>, Error> {
    let init = layers::Init::Normal { std: 0.01 };
    let mut net = Network::<f32>::builder("simple-conv-net (chapter check)", [1, 10, 10], seed)
        .conv(10, Window::square(3), init)?
        .relu()?
        .max_pool(Window::square(2).with_stride(2))?
        .affine(10, init)?
        .relu()?
        .affine(10, init)?
        .build()?;
    let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
    let x = ArrayD::from_shape_simple_fn(IxDyn(&[1, 1, 10, 10]), || rng.random::<f32>()); // numpy's rand: uniform in [0, 1)
    let labels = [1];
    net.gradient(x.view(), &labels)?;
    let mut grads: Vec<(String, Vec<f32>)> = Vec::new();
    net.visit_params(&mut |n, _, g| grads.push((n.to_string(), g.iter().copied().collect())));
    let h = 1e-4f32;
    let mut out = Vec::new();
    for (index, (name, analytic)) in grads.iter().enumerate() {
        let mut sum = 0.0f64;
        for (i, &a) in analytic.iter().enumerate() {
            let plus = with_nudged(&mut net, index, i, h, |net| net.loss(x.view(), &labels))?;
            let minus = with_nudged(&mut net, index, i, -h, |net| net.loss(x.view(), &labels))?;
            let numeric = (plus - minus) / (2.0 * h);
            sum += (numeric - a).abs() as f64;
        }
        let book = format!(
            "{}{}",
            if name.ends_with("weight") { "W" } else { "b" },
            index / 2 + 1
        );
        out.push((book, name.clone(), sum / analytic.len() as f64));
    }
    Ok(out)
}
