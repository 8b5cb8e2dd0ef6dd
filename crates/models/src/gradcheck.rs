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

use layers::gradcheck::{Check, Objective, Settings, check_objective, kink_free_input, with_nudged};
use layers::{ParamVisitor, ParamVisitorMut, Parameters};
use ndarray::{ArrayD, IxDyn};
use rand::{RngExt, SeedableRng};
use tensor4d::Window;

use crate::{Architecture, Error, Network};

/// How many fresh input batches may be drawn to re-check coordinates whose
/// probes crossed a kink.
pub const REDRAWS: u64 = 24;

/// A network's mean loss on numbered batches, as [`layers::gradcheck`]
/// checks it: batch 0 is `first` when given, the others (and batch 0
/// otherwise) two kink-free 28x28-style images drawn from the seed.
struct Loss<'a> {
    net: &'a mut Network<f64>,
    seed: u64,
    first: Option<(&'a ArrayD<f64>, &'a [usize])>,
    /// The batch last drawn, and its number.
    drawn: Option<(u64, ArrayD<f64>, Vec<usize>)>,
}

impl Loss<'_> {
    /// Batch `draw`, drawn once and kept while it is asked for again.
    fn batch(&mut self, draw: u64) -> (ArrayD<f64>, Vec<usize>) {
        if let (0, Some((x, labels))) = (draw, self.first) {
            return (x.clone(), labels.to_vec());
        }
        if !matches!(&self.drawn, Some((d, ..)) if *d == draw) {
            let seed = self.seed ^ 0x5eed ^ draw.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let labels = vec![((seed >> 3) % 10) as usize, ((seed >> 7) % 10) as usize];
            let [c, h, w] = self.net.input_shape();
            self.drawn = Some((draw, kink_free_input(&[2, c, h, w], seed), labels));
        }
        let (_, x, labels) = self.drawn.as_ref().unwrap_or_else(|| unreachable!("drawn above"));
        (x.clone(), labels.clone())
    }
}

/// A network error as the gradient check reports it.
fn probe_err(e: Error) -> layers::Error {
    layers::Error::Invalid {
        layer: "network".into(),
        message: e.to_string(),
    }
}

impl Parameters<f64> for Loss<'_> {
    fn visit_params(&self, f: &mut ParamVisitor<'_, f64>) {
        self.net.visit_params(f)
    }

    fn visit_params_mut(&mut self, f: &mut ParamVisitorMut<'_, f64>) {
        self.net.visit_params_mut(f)
    }
}

impl Objective for Loss<'_> {
    fn loss(&mut self, draw: u64) -> Result<(f64, u64), layers::Error> {
        let (x, labels) = self.batch(draw);
        let loss = self.net.loss(x.view(), &labels).map_err(probe_err)?;
        Ok((loss, self.net.kink_state()))
    }

    fn gradient(&mut self, draw: u64) -> Result<(), layers::Error> {
        let (x, labels) = self.batch(draw);
        self.net.gradient(x.view(), &labels).map_err(probe_err)?;
        Ok(())
    }
}

/// Checks every parameter gradient of `net`'s mean loss on `(x, labels)`
/// (dropout masks held fixed meanwhile).
pub fn check_network(
    net: &mut Network<f64>,
    x: &ArrayD<f64>,
    labels: &[usize],
    settings: &Settings,
) -> Result<Vec<Check>, Error> {
    run(net, Some((x, labels)), settings, 0)
}

/// Checks one of the three networks on a batch of two 28x28 kink-free
/// images, weights drawn from `settings.seed` as in training. Coordinates
/// of a tensor checked whole whose probes cross a kink are checked again on
/// freshly drawn batches (up to [`REDRAWS`]) until each has been checked
/// on one where it does not.
pub fn check_architecture(arch: Architecture, settings: &Settings) -> Result<Vec<Check>, Error> {
    let mut net = arch.build::<f64>([1, 28, 28], 10, settings.seed)?;
    run(&mut net, None, settings, REDRAWS)
}

fn run(
    net: &mut Network<f64>,
    first: Option<(&ArrayD<f64>, &[usize])>,
    settings: &Settings,
    redraws: u64,
) -> Result<Vec<Check>, Error> {
    let seed = settings.seed;
    net.hold_noise(true);
    let mut loss = Loss {
        net: &mut *net,
        seed,
        first,
        drawn: None,
    };
    let result = check_objective(&mut loss, settings, redraws);
    net.hold_noise(false);
    result.map_err(|source| Error::Layer {
        label: "gradient check".into(),
        error: source,
    })
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
