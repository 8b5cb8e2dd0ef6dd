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
    assert_eq!(history.stopped_at, Some((2, 1)));
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
