//! Training in f32, where it runs on the packed GEMM and the CPU's SIMD
//! kernels, gives the same bits on 1, 2 and 3 threads: every parallel loop
//! owns its outputs and no sum is split between threads.

use layers::ConvMethod;
use models::Architecture;

/// The weights and gradients, as bits, after `steps` Adam steps of `arch`
/// on a fixed batch, on a pool of `threads` threads.
fn trained(arch: Architecture, method: ConvMethod, threads: usize, steps: usize) -> Vec<u32> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| crate::common::trained_params(arch, method, steps))
        .into_iter()
        .map(f32::to_bits)
        .collect()
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
