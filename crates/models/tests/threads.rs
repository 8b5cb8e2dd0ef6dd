//! Training in f32, where it runs on the packed GEMM and the CPU's SIMD
//! kernels, gives the same bits on 1, 2 and 3 threads: every parallel loop
//! owns its outputs and no sum is split between threads.

use layers::{Adam, ConvMethod, Optimizer, Parameters};
use models::{Architecture, BuildOptions};
use ndarray::ArrayD;

/// The weights, as bits, after `steps` Adam steps of `arch` on a fixed
/// batch, on a pool of `threads` threads.
fn trained(arch: Architecture, method: ConvMethod, threads: usize, steps: usize) -> Vec<u32> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        let options = BuildOptions {
            conv_method: method,
            ..BuildOptions::default()
        };
        let mut net = arch.build_with::<f32>([1, 28, 28], 10, 7, options).unwrap();
        let x = ArrayD::from_shape_fn(vec![24, 1, 28, 28], |d| {
            ((d[0] * 131 + d[2] * 29 + d[3] * 7) % 97) as f32 / 97.0
        });
        let labels: Vec<usize> = (0..24).map(|i| (i * 7) % 10).collect();
        let mut adam = Adam::new(0.001);
        for _ in 0..steps {
            net.gradient(x.view(), &labels).unwrap();
            adam.step(&mut net).unwrap();
        }
        let mut bits = Vec::new();
        net.visit_params(&mut |_, v, g| bits.extend(v.iter().chain(g.iter()).map(|x| x.to_bits())));
        bits
    })
}

#[test]
fn f32_training_is_bit_identical_on_1_2_and_3_threads() {
    for arch in Architecture::ALL {
        for method in [ConvMethod::Auto, ConvMethod::Columns] {
            let one = trained(arch, method, 1, 3);
            assert_eq!(
                one,
                trained(arch, method, 2, 3),
                "{arch} {method}: 1 and 2 threads"
            );
            assert_eq!(
                one,
                trained(arch, method, 3, 3),
                "{arch} {method}: 1 and 3 threads"
            );
        }
    }
}
