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
    /// Where the callback stopped training, as (epoch, step), if it did.
    pub stopped_at: Option<(usize, usize)>,
}

/// Trains `net` with `optimizer` on `train_set` (images `(N, C, H, W)` and
/// labels), evaluating on `test_set` after each epoch. The images are
/// shuffled each epoch by a generator seeded from `config.seed`, so the same
/// seeds give the same weights.
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
    let mut history = History::default();
    if on_event(Event::Start {
        epochs: config.epochs,
        steps_per_epoch: steps,
    })
    .is_break()
    {
        history.stopped_at = Some((1, 0));
        return Ok(history);
    }

    let mut rng = Pcg64::seed_from_u64(config.seed);
    let mut order: Vec<usize> = (0..n).collect();
    let [c, h, w] = x.image_shape();
    let mut batch = Array4::<T>::zeros((0, c, h, w));
    let mut batch_labels = Vec::with_capacity(config.batch_size);

    for epoch in 1..=config.epochs {
        order.shuffle(&mut rng);
        let started = Instant::now();
        let mut loss_sum = 0.0;
        for (step, chunk) in order.chunks(config.batch_size).enumerate() {
            let step = step + 1;
            reuse4(&mut batch, (chunk.len(), c, h, w));
            x.copy_batch(chunk, batch.view_mut());
            batch_labels.clear();
            batch_labels.extend(chunk.iter().map(|&i| labels[i]));
            let loss = net.gradient(batch.view().into_dyn(), &batch_labels)?.as_f64();
            if !loss.is_finite() {
                return Err(Error::NonFinite { epoch, step, loss });
            }
            optimizer
                .step(net as &mut dyn Parameters<T>)
                .map_err(Error::Optimizer)?;
            loss_sum += loss;
            let done = (step - 1) * config.batch_size + chunk.len();
            let event = Event::Step {
                epoch,
                step,
                steps_per_epoch: steps,
                loss,
                images_per_sec: done as f64 / started.elapsed().as_secs_f64().max(1e-9),
            };
            if on_event(event).is_break() {
                history.stopped_at = Some((epoch, step));
                return Ok(history);
            }
        }
        let seconds = started.elapsed().as_secs_f64();
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
            history.stopped_at = Some((epoch + 1, 0));
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
