//! Training on the embedded MNIST subset: it learns, it reports progress,
//! and the same seeds give bit-identical weights.

use std::ops::ControlFlow;

use layers::{Adam, Parameters};
use models::{Architecture, Event, History, Network, TrainConfig, train};
use ndarray::{Array4, s};

fn subset(n: usize) -> (Array4<f32>, Vec<usize>, Array4<f32>, Vec<usize>) {
    let e = datasets::embedded().unwrap();
    let (train, test) = (e.train.head(n), e.test.head(n / 4));
    (
        train.images(),
        train.labels_usize(),
        test.images(),
        test.labels_usize(),
    )
}

fn run(arch: Architecture, n: usize, epochs: usize, seed: u64) -> (Network<f32>, History, Vec<String>) {
    let (x, y, tx, ty) = subset(n);
    let mut net = arch.build::<f32>([1, 28, 28], 10, seed).unwrap();
    let config = TrainConfig {
        epochs,
        batch_size: 50,
        seed,
        train_eval_samples: 500,
        eval_batch_size: 250,
        ..TrainConfig::default()
    };
    let mut events = Vec::new();
    let history = train(
        &mut net,
        &mut Adam::new(0.001),
        (&x.view(), &y),
        (&tx.view(), &ty),
        &config,
        &mut |e| {
            events.push(match e {
                Event::Start { .. } => "start".to_string(),
                Event::Step { step, .. } => format!("step {step}"),
                Event::Evaluating { .. } => "eval".to_string(),
                Event::Epoch(m) => format!("epoch {}", m.epoch),
            });
            ControlFlow::Continue(())
        },
    )
    .unwrap();
    (net, history, events)
}

fn weights(net: &Network<f32>) -> Vec<u32> {
    let mut all = Vec::new();
    net.visit_params(&mut |_, v, _| all.extend(v.iter().map(|x| x.to_bits())));
    all
}

#[test]
fn simple_conv_net_learns_digits() {
    let (_, history, events) = run(Architecture::SimpleConvNet, 2000, 2, 0);
    let last = history.epochs.last().unwrap();
    assert!(last.test_accuracy > 0.8, "{history:?}");
    assert!(history.epochs[1].loss < history.epochs[0].loss);
    assert_eq!(events.iter().filter(|e| e.starts_with("step")).count(), 80);
    assert_eq!(events.first().unwrap(), "start");
    assert_eq!(events.last().unwrap(), "epoch 2");
}

#[test]
fn same_seed_gives_bit_identical_weights() {
    for arch in [Architecture::SimpleConvNet, Architecture::AlexNetLite] {
        let (a, ha, _) = run(arch, 200, 1, 7);
        let (b, hb, _) = run(arch, 200, 1, 7);
        assert_eq!(weights(&a), weights(&b), "{arch}");
        assert_eq!(ha.epochs[0].loss.to_bits(), hb.epochs[0].loss.to_bits());
        let (c, _, _) = run(arch, 200, 1, 8);
        assert_ne!(weights(&a), weights(&c), "{arch}");
    }
}

#[test]
fn a_callback_can_stop_training() {
    let (x, y, tx, ty) = subset(300);
    let mut net = Architecture::LeNet.build::<f32>([1, 28, 28], 10, 0).unwrap();
    let config = TrainConfig {
        epochs: 3,
        batch_size: 100,
        ..TrainConfig::default()
    };
    let history = train(
        &mut net,
        &mut Adam::new(0.001),
        (&x.view(), &y),
        (&tx.view(), &ty),
        &config,
        &mut |e| {
            if matches!(
                e,
                Event::Step {
                    epoch: 2,
                    step: 1,
                    ..
                }
            ) {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        },
    )
    .unwrap();
    assert_eq!(history.epochs.len(), 1);
    let at = history.stopped_at.unwrap();
    assert_eq!((at.epoch, at.step, at.completed.len()), (2, 1, 1));
}

#[test]
fn a_diverging_loss_stops_with_epoch_and_step() {
    let (x, y, tx, ty) = subset(200);
    let mut poisoned = x.clone();
    poisoned.slice_mut(s![.., .., 0, 0]).fill(f32::NAN);
    let mut net = Architecture::SimpleConvNet
        .build::<f32>([1, 28, 28], 10, 0)
        .unwrap();
    let config = TrainConfig {
        epochs: 1,
        batch_size: 100,
        ..TrainConfig::default()
    };
    let e = train(
        &mut net,
        &mut Adam::new(0.001),
        (&poisoned.view(), &y),
        (&tx.view(), &ty),
        &config,
        &mut |_| ControlFlow::Continue(()),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "loss became NaN at epoch 1, step 1; stopping (the last good weights are kept)"
    );
    let _ = x;
}

/// Trains AlexNet-lite (dropout: its masks are part of the state) for two
/// epochs, stopping wherever `stop` says, saving, loading into fresh
/// objects and resuming, until done; returns the final weights' bits.
fn train_with_stops(stop: impl Fn(&Event<'_>) -> bool) -> (Vec<u32>, History) {
    let (x, y, tx, ty) = subset(150);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.safetensors");
    let mut net = Architecture::AlexNetLite
        .build::<f32>([1, 28, 28], 10, 3)
        .unwrap();
    let mut opt: Box<dyn layers::Optimizer<f32>> = Box::new(Adam::new(0.001));
    let mut config = TrainConfig {
        epochs: 2,
        batch_size: 40,
        seed: 5,
        train_eval_samples: 50,
        eval_batch_size: 40,
        ..TrainConfig::default()
    };
    loop {
        let history = train(
            &mut net,
            opt.as_mut(),
            (&x.view(), &y),
            (&tx.view(), &ty),
            &config,
            &mut |e| {
                if stop(&e) {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        )
        .unwrap();
        let Some(at) = history.stopped_at.clone() else {
            return (weights(&net), history);
        };
        models::checkpoint::save_training(&net, opt.as_ref(), &config, &at, &path, &[]).unwrap();
        // Everything from the file: nothing carried over in memory.
        let restored = models::checkpoint::load_training::<f32>(&path).unwrap();
        (net, opt, config) = (restored.net, restored.optimizer, restored.config);
    }
}

#[test]
fn a_run_stopped_and_resumed_ends_bit_identical() {
    let (straight, full) = train_with_stops(|_| false);
    // Stopped once mid-epoch, once between epochs (after evaluation), and
    // at the last step of an epoch (before its evaluation).
    let stops = [
        |e: &Event<'_>| {
            matches!(
                e,
                Event::Step {
                    epoch: 1,
                    step: 2,
                    ..
                }
            )
        },
        |e: &Event<'_>| matches!(e, Event::Epoch(m) if m.epoch == 1),
        |e: &Event<'_>| {
            matches!(
                e,
                Event::Step {
                    epoch: 2,
                    step: 4,
                    ..
                }
            )
        },
    ];
    for (k, stop) in stops.into_iter().enumerate() {
        let fired = std::cell::Cell::new(false);
        let (resumed, history) = train_with_stops(|e| {
            let now = !fired.get() && stop(e);
            fired.set(fired.get() || now);
            now
        });
        assert!(fired.get(), "stop {k} never fired");
        assert_eq!(resumed, straight, "stop {k}: weights differ");
        let losses = |h: &History| {
            h.epochs
                .iter()
                .map(|m| (m.loss.to_bits(), m.test_accuracy.to_bits()))
                .collect::<Vec<_>>()
        };
        assert_eq!(losses(&history), losses(&full), "stop {k}: metrics differ");
    }
}
