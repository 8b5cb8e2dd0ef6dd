//! Shapes and inputs shared by the criterion benchmarks in `benches/`, and
//! the FLOP counts their throughput figures use. Nothing here is timed.

use ndarray::{Array4, ArrayD, IxDyn};
use rand::{RngExt, SeedableRng};
use tensor4d::Window;

/// A convolution benchmarked: its name, input shape `(N, C, H, W)`,
/// filter count and window.
#[derive(Clone, Copy, Debug)]
pub struct ConvCase {
    /// e.g. `simple-conv1`.
    pub name: &'static str,
    /// Input shape.
    pub input: (usize, usize, usize, usize),
    /// Number of filters.
    pub filters: usize,
    /// Filter size, stride, padding.
    pub window: Window,
}

impl ConvCase {
    /// Output height and width.
    pub fn output_hw(&self) -> (usize, usize) {
        self.window
            .output_size(self.input.2, self.input.3)
            .unwrap_or_else(|e| panic!("benchmark shape {}: {e}", self.name))
    }

    /// The GEMM sizes of the forward pass, per image: (M, N, K) =
    /// (filters, OH*OW, C*FH*FW).
    pub fn gemm_mnk(&self) -> (usize, usize, usize) {
        let (oh, ow) = self.output_hw();
        (self.filters, oh * ow, self.input.1 * self.window.area())
    }

    /// Multiply-adds of the forward pass counted as 2 FLOPs each.
    pub fn forward_flops(&self) -> u64 {
        let (m, n, k) = self.gemm_mnk();
        2 * (self.input.0 * m * n * k) as u64
    }
}

/// The shapes issue 5 names.
pub const CONV_CASES: [ConvCase; 3] = [
    ConvCase {
        name: "simple-conv1",
        input: (100, 1, 28, 28),
        filters: 30,
        window: Window {
            fh: 5,
            fw: 5,
            sh: 1,
            sw: 1,
            ph: 0,
            pw: 0,
        },
    },
    ConvCase {
        name: "alexnet-conv2",
        input: (100, 32, 14, 14),
        filters: 64,
        window: Window {
            fh: 5,
            fw: 5,
            sh: 1,
            sw: 1,
            ph: 2,
            pw: 2,
        },
    },
    ConvCase {
        name: "alexnet-conv4",
        input: (100, 96, 7, 7),
        filters: 96,
        window: Window {
            fh: 3,
            fw: 3,
            sh: 1,
            sw: 1,
            ph: 1,
            pw: 1,
        },
    },
];

/// Seeded uniform input in [0, 1).
pub fn input(shape: (usize, usize, usize, usize), seed: u64) -> Array4<f32> {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
    Array4::from_shape_simple_fn(shape, || rng.random::<f32>())
}

/// Seeded uniform tensor of any shape.
pub fn tensor(shape: &[usize], seed: u64) -> ArrayD<f32> {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
    ArrayD::from_shape_simple_fn(IxDyn(shape), || rng.random::<f32>())
}
