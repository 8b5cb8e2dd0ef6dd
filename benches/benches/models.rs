//! Whole networks: a training step (forward, backward, Adam) at batch 100,
//! and inference at batch 100 and batch 1; SimpleConvNet also computed by
//! the chapter's algorithms.

use benches::tensor;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use layers::{Adam, ConvMethod, Mode, Optimizer, PoolMethod};
use models::{Architecture, BuildOptions, Network};
use std::hint::black_box;

fn networks(c: &mut Criterion) {
    for arch in Architecture::ALL {
        let mut group = c.benchmark_group(format!("model/{arch}"));
        if arch == Architecture::AlexNetLite {
            group.sample_size(10);
        }
        if arch == Architecture::SimpleConvNet {
            // Its ReLUs layers of their own, as the book runs it.
            let chapter = BuildOptions {
                conv_method: ConvMethod::Chapter,
                pool_method: PoolMethod::Chapter,
                ..BuildOptions::default()
            };
            let net = arch.build_with::<f32>([1, 28, 28], 10, 0, chapter).unwrap();
            batch_of_100(&mut group, "chapter/", net);
        }
        let mut net = arch.build::<f32>([1, 28, 28], 10, 0).unwrap();
        let one = tensor(&[1, 1, 28, 28], 2);
        group.throughput(Throughput::Elements(1));
        group.bench_function("inference-batch1", |b| {
            b.iter(|| black_box(net.predict(one.view(), Mode::Inference).unwrap().len()))
        });
        batch_of_100(&mut group, "", net);
        group.finish();
    }
}

/// `{prefix}train-step-batch100` and `{prefix}inference-batch100` of `net`.
fn batch_of_100(group: &mut BenchmarkGroup<'_, WallTime>, prefix: &str, mut net: Network<f32>) {
    let x = tensor(&[100, 1, 28, 28], 1);
    let labels: Vec<usize> = (0..100).map(|i| i % 10).collect();
    let mut adam = Adam::new(0.001);
    group.throughput(Throughput::Elements(100));
    group.bench_function(format!("{prefix}train-step-batch100"), |b| {
        b.iter(|| {
            let loss = net.gradient(x.view(), &labels).unwrap();
            adam.step(&mut net).unwrap();
            black_box(loss)
        })
    });
    group.bench_function(format!("{prefix}inference-batch100"), |b| {
        b.iter(|| black_box(net.predict(x.view(), Mode::Inference).unwrap().len()))
    });
}

criterion_group!(benches, networks);
criterion_main!(benches);
