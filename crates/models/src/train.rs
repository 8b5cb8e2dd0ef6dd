use std::ops::ControlFlow;
use std::time::Instant;

use layers::{Optimizer, Parameters};
use ndarray::{Array4, ArrayViewMut4};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_pcg::Pcg64;
use tensor4d::{Float, reuse4};

use crate::{Error, ImageSource, Network};

/// How to train.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// Images per step.
    pub batch_size: usize,
    /// Seed of the shuffling (the weights have their own, in the network).
    pub seed: u64,
    /// How many training images (the first ones) to score for the training
    /// accuracy after each epoch.
    pub train_eval_samples: usize,
    /// Images per forward pass when evaluating.
    pub eval_batch_size: usize,
    /// Where to start: the beginning, or where a stopped run left off.
    pub start: Resume,
}

/// A position in a training run, with what was accumulated up to it: enough
/// to continue exactly where a run stopped.
#[derive(Clone, Debug, PartialEq)]
pub struct Resume {
    /// The 1-based epoch in progress.
    pub epoch: usize,
    /// Steps of that epoch already taken.
    pub step: usize,
    /// Sum of those steps' losses (for the epoch's mean loss).
    pub loss_sum: f64,
    /// Seconds spent training in that epoch so far.
    pub seconds: f64,
    /// The epochs completed before it.
    pub completed: Vec<EpochMetrics>,
}

impl Default for Resume {
    /// The beginning of a run.
    fn default() -> Self {
        Resume {
            epoch: 1,
            step: 0,
            loss_sum: 0.0,
            seconds: 0.0,
            completed: Vec::new(),
        }
    }
}

/// The order in which epoch `epoch` visits the `n` training images: a
/// permutation drawn from `seed` and the epoch alone, so a run can resume in
/// any epoch without replaying the ones before.
pub fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = Pcg64::seed_from_u64(seed ^ (epoch as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    order.shuffle(&mut rng);
    order
}

impl Default for TrainConfig {
    /// The book's recipe: batch 100; 5 epochs, 10,000 images scored,
    /// evaluating 100 at a time (the training batch size, so evaluation
    /// reuses the training buffers instead of growing them).
    fn default() -> Self {
        TrainConfig {
            epochs: 5,
            batch_size: 100,
            seed: 0,
            train_eval_samples: 10_000,
            eval_batch_size: 100,
            start: Resume::default(),
        }
    }
}

/// What one epoch achieved.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochMetrics {
    /// 1-based.
    pub epoch: usize,
    /// Mean training loss over the epoch's steps.
    pub loss: f64,
    /// Accuracy on the first `train_eval_samples` training images.
    pub train_accuracy: f64,
    /// Accuracy on the test set.
    pub test_accuracy: f64,
    /// Seconds spent training (evaluation excluded).
    pub seconds: f64,
    /// Training throughput.
    pub images_per_sec: f64,
}

/// Progress, for the caller to display; returning `ControlFlow::Break` from
/// the callback stops training after the current step.
#[derive(Clone, Debug, PartialEq)]
pub enum Event<'a> {
    /// Training begins.
    Start {
        /// Epochs planned.
        epochs: usize,
        /// Steps in each epoch.
        steps_per_epoch: usize,
    },
    /// A step finished.
    Step {
        /// 1-based epoch.
        epoch: usize,
        /// 1-based step in the epoch.
        step: usize,
        /// Steps in each epoch.
        steps_per_epoch: usize,
        /// This step's loss.
        loss: f64,
        /// Images per second so far this epoch.
        images_per_sec: f64,
    },
    /// Evaluation after an epoch begins.
    Evaluating {
        /// 1-based epoch.
        epoch: usize,
    },
    /// An epoch and its evaluation finished.
    Epoch(&'a EpochMetrics),
}

/// The result of [`train`].
#[derive(Clone, Debug, PartialEq, Default)]
pub struct History {
    /// One entry per completed epoch.
    pub epochs: Vec<EpochMetrics>,
    /// Where the callback stopped training, if it did: pass it back as
    /// [`TrainConfig::start`] to continue.
    pub stopped_at: Option<Resume>,
}

/// Trains `net` with `optimizer` on `train_set` (images `(N, C, H, W)` and
/// labels), evaluating on `test_set` after each epoch. The images are
/// shuffled each epoch by a generator seeded from `config.seed`, so the same
/// seeds give the same weights.
///
/// `on_event` sees every step and epoch; returning `ControlFlow::Break`
/// stops training, and the [`History::stopped_at`] it returns continues it
/// exactly, as if it had never stopped:
///
/// ```
/// use layers::{Adam, Parameters};
/// use models::{Architecture, Event, TrainConfig};
/// use ndarray::Array4;
/// use std::ops::ControlFlow;
///
/// let x = Array4::from_shape_fn((12, 1, 28, 28), |(n, _, i, j)| ((n + i * j) % 7) as f32 / 7.0);
/// let labels: Vec<usize> = (0..12).map(|n| n % 3).collect();
/// let data = (&x.view() as &dyn models::ImageSource<f32>, &labels[..]);
/// let config = TrainConfig { epochs: 2, batch_size: 4, ..TrainConfig::default() };
/// let weights = |net: &models::Network<f32>| {
///     let mut w = Vec::new();
///     net.visit_params(&mut |_, v, _| w.extend(v.iter().copied()));
///     w
/// };
///
/// // Two epochs straight.
/// let mut straight = Architecture::LeNet.build::<f32>([1, 28, 28], 3, 0)?;
/// models::train(&mut straight, &mut Adam::new(0.01), data, data, &config, &mut |_| ControlFlow::Continue(()))?;
///
/// // The same, stopped after the first epoch and continued.
/// let mut net = Architecture::LeNet.build::<f32>([1, 28, 28], 3, 0)?;
/// let mut adam = Adam::new(0.01);
/// let stop_after_one = &mut |e: Event<'_>| match e {
///     Event::Epoch(m) if m.epoch == 1 => ControlFlow::Break(()),
///     _ => ControlFlow::Continue(()),
/// };
/// let first = models::train(&mut net, &mut adam, data, data, &config, stop_after_one)?;
/// let resume = TrainConfig { start: first.stopped_at.expect("stopped"), ..config.clone() };
/// let history = models::train(&mut net, &mut adam, data, data, &resume, &mut |_| ControlFlow::Continue(()))?;
/// assert_eq!(history.epochs.len(), 2);
/// assert_eq!(weights(&net), weights(&straight)); // bit for bit
/// # Ok::<(), models::Error>(())
/// ```
pub fn train<T: Float>(
    net: &mut Network<T>,
    optimizer: &mut dyn Optimizer<T>,
    train_set: (&dyn ImageSource<T>, &[usize]),
    test_set: (&dyn ImageSource<T>, &[usize]),
    config: &TrainConfig,
    on_event: &mut dyn FnMut(Event<'_>) -> ControlFlow<()>,
) -> Result<History, Error> {
    let (x, labels) = train_set;
    let n = x.len();
    if config.batch_size == 0 || config.eval_batch_size == 0 {
        return Err(Error::Config("batch sizes must be at least 1".into()));
    }
    if n == 0 || labels.len() != n || test_set.1.len() != test_set.0.len() {
        return Err(Error::Config(format!(
            "{n} training images with {} labels, {} test images with {} labels",
            labels.len(),
            test_set.0.len(),
            test_set.1.len()
        )));
    }
    let steps = n.div_ceil(config.batch_size);
    let start = &config.start;
    let mut history = History {
        epochs: start.completed.clone(),
        stopped_at: None,
    };
    if start.epoch == 0 || start.step > steps {
        return Err(Error::Config(format!(
            "cannot resume at epoch {} step {}: an epoch has {steps} steps",
            start.epoch, start.step
        )));
    }
    if on_event(Event::Start {
        epochs: config.epochs,
        steps_per_epoch: steps,
    })
    .is_break()
    {
        history.stopped_at = Some(start.clone());
        return Ok(history);
    }

    let [c, h, w] = x.image_shape();
    let mut batch = Array4::<T>::zeros((0, c, h, w));
    // Never more than the data set: the batch size may come from a file.
    let mut batch_labels = Vec::with_capacity(config.batch_size.min(n));

    for epoch in start.epoch..=config.epochs {
        let order = epoch_order(n, config.seed, epoch);
        let (skip, mut loss_sum, before) = if epoch == start.epoch {
            (start.step, start.loss_sum, start.seconds)
        } else {
            (0, 0.0, 0.0)
        };
        let started = Instant::now();
        let seconds = |started: &Instant| before + started.elapsed().as_secs_f64();
        for (step, chunk) in order.chunks(config.batch_size).enumerate().skip(skip) {
            let step = step + 1;
            reuse4(&mut batch, (chunk.len(), c, h, w));
            x.copy_batch(chunk, batch.view_mut());
            batch_labels.clear();
            batch_labels.extend(chunk.iter().map(|&i| labels[i]));
            // The step's passes and the update, all from inside the pool.
            let (x, labels) = (batch.view().into_dyn(), &batch_labels);
            let loss = layers::in_pool(|| {
                let loss = net.gradient(x, labels)?.as_f64();
                if !loss.is_finite() {
                    return Err(Error::NonFinite { epoch, step, loss });
                }
                optimizer
                    .step(net as &mut dyn Parameters<T>)
                    .map_err(Error::Optimizer)?;
                Ok(loss)
            })?;
            loss_sum += loss;
            let done = ((step - skip - 1) * config.batch_size + chunk.len()) as f64;
            let event = Event::Step {
                epoch,
                step,
                steps_per_epoch: steps,
                loss,
                images_per_sec: done / started.elapsed().as_secs_f64().max(1e-9),
            };
            if on_event(event).is_break() {
                history.stopped_at = Some(Resume {
                    epoch,
                    step,
                    loss_sum,
                    seconds: seconds(&started),
                    completed: history.epochs.clone(),
                });
                return Ok(history);
            }
        }
        let seconds = seconds(&started);
        let _ = on_event(Event::Evaluating { epoch });
        let k = config.train_eval_samples.clamp(1, n);
        let metrics = EpochMetrics {
            epoch,
            loss: loss_sum / steps as f64,
            train_accuracy: net.accuracy(&Head(x, k), &labels[..k], config.eval_batch_size)?,
            test_accuracy: net.accuracy(test_set.0, test_set.1, config.eval_batch_size)?,
            seconds,
            images_per_sec: n as f64 / seconds.max(1e-9),
        };
        let stop = on_event(Event::Epoch(&metrics)).is_break();
        history.epochs.push(metrics);
        if stop && epoch < config.epochs {
            history.stopped_at = Some(Resume {
                epoch: epoch + 1,
                completed: history.epochs.clone(),
                ..Resume::default()
            });
            break;
        }
    }
    Ok(history)
}

/// The first `.1` images of a source.
struct Head<'a, T: Float>(&'a dyn ImageSource<T>, usize);

impl<T: Float> ImageSource<T> for Head<'_, T> {
    fn len(&self) -> usize {
        self.1.min(self.0.len())
    }

    fn image_shape(&self) -> [usize; 3] {
        self.0.image_shape()
    }

    fn copy_batch(&self, indices: &[usize], out: ArrayViewMut4<'_, T>) {
        self.0.copy_batch(indices, out)
    }

    fn copy_range(&self, start: usize, out: ArrayViewMut4<'_, T>) {
        self.0.copy_range(start, out)
    }
}
