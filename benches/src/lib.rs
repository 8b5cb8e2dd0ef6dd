//! Shapes and inputs shared by the criterion benchmarks in `benches/`, and
//! the FLOP counts their throughput figures use; the matrix products the
//! layers run and the engines that compute them ([`products`]), and the
//! reference BLAS loaded at run time ([`blas`]). Nothing here is timed.

pub mod blas;
pub mod products;

use ndarray::{Array4, ArrayD, IxDyn};
use products::{Engine, Product};
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

/// The convolutions benchmarked: SimpleConvNet's only one and two of
/// AlexNet-lite's (the 14x14 and the 7x7 layers, where most of its time goes).
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

/// The instruction set `kernels` runs on in this process, as its
/// `Isa::active` names it (`avx512`, `avx2` or `portable`).
pub fn kernels_path() -> &'static str {
    kernels::Isa::active().name()
}

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

/// One benchmark the report knows how to read: its criterion id, the
/// images one iteration processes, the FLOPs it performs (multiply-adds
/// counted as two), and the product it is measured against, if any.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// Criterion's full id, e.g. `conv/simple-conv1/forward`.
    pub id: String,
    /// Images per iteration (0 where it means nothing, as for im2col).
    pub images: usize,
    /// FLOPs per iteration counted from the shapes.
    pub flops: u64,
    /// The product whose yardstick row (OpenBLAS's, or `matrixmultiply`'s
    /// without OpenBLAS) this row's GFLOP/s are a share of.
    pub against: Option<Product>,
    /// The engine, when this row is one of `against`'s own rows.
    pub engine: Option<Engine>,
}

/// FLOPs of a network's forward pass and of a training step (forward, the
/// weight gradients, the input gradients of every layer but the first) on a
/// batch of `batch`, counted from the convolution and affine shapes.
pub fn model_flops(arch: models::Architecture, batch: usize) -> (u64, u64) {
    let net = arch
        .build::<f32>([1, 28, 28], 10, 0)
        .unwrap_or_else(|e| panic!("{arch}: {e}"));
    let mut shape = vec![batch, 1, 28, 28];
    let mut per_layer = Vec::new();
    for (_, layer) in net.layers() {
        let out = layer
            .output_shape(&shape)
            .unwrap_or_else(|e| panic!("{arch}: {e}"));
        let mut w = Vec::new();
        layer.visit_params(&mut |n, v, _| {
            if n == "weight" {
                w = v.shape().to_vec();
            }
        });
        let flops = match w.len() {
            // (FN, C, FH, FW) over (N, FN, OH, OW): one multiply-add per weight per output pixel.
            4 => 2 * (out[0] * w[0] * w[1] * w[2] * w[3] * out[2] * out[3]) as u64,
            2 => 2 * (batch * w[0] * w[1]) as u64,
            _ => 0,
        };
        if flops > 0 {
            per_layer.push(flops);
        }
        shape = out;
    }
    let forward: u64 = per_layer.iter().sum();
    (forward, 3 * forward - per_layer.first().copied().unwrap_or(0))
}

/// Every benchmark in `benches/` with its work, for `cargo xtask bench`.
pub fn catalog() -> Vec<Entry> {
    let mut out = Vec::new();
    let plain = |id: String, images: usize, flops: u64| Entry {
        id,
        images,
        flops,
        against: None,
        engine: None,
    };
    let all_products = products::products();
    let rows_of = |p: &Product| {
        Engine::ALL.map(|engine| Entry {
            id: p.id(engine),
            images: p.images,
            flops: p.flops,
            against: Some(p.clone()),
            engine: Some(engine),
        })
    };
    for c in CONV_CASES {
        let images = c.input.0;
        let group = format!("conv/{}", c.name);
        let product = all_products
            .iter()
            .find(|p| p.group == group)
            .unwrap_or_else(|| unreachable!("every convolution has its product"));
        for method in ["", "chapter/"] {
            for (pass, flops) in [
                ("forward", c.forward_flops()),
                ("backward", 2 * c.forward_flops()),
            ] {
                out.push(Entry {
                    against: Some(product.clone()),
                    ..plain(format!("{group}/{method}{pass}"), images, flops)
                });
            }
        }
        out.extend(rows_of(product));
        for what in ["im2col", "col2im"] {
            out.push(plain(format!("{group}/{what}"), images, 0));
        }
    }
    for what in ["forward", "backward", "chapter/forward", "chapter/backward"] {
        out.push(plain(format!("pool/max2x2-100x30x24x24/{what}"), 100, 0));
    }
    out.push(plain(
        "affine/4320x100-batch100/forward".into(),
        100,
        2 * 100 * 4320 * 100,
    ));
    out.push(plain(
        "affine/4320x100-batch100/backward".into(),
        100,
        4 * 100 * 4320 * 100,
    ));
    for p in all_products.iter().filter(|p| p.group.starts_with("product/")) {
        out.extend(rows_of(p));
    }
    let (fwd100, step100) = model_flops(models::Architecture::SimpleConvNet, 100);
    for (what, flops) in [("train-step-batch100", step100), ("inference-batch100", fwd100)] {
        out.push(plain(format!("model/simple-conv-net/chapter/{what}"), 100, flops));
    }
    for arch in models::Architecture::ALL {
        let (fwd100, step100) = model_flops(arch, 100);
        let (fwd1, _) = model_flops(arch, 1);
        out.push(plain(format!("model/{arch}/train-step-batch100"), 100, step100));
        out.push(plain(format!("model/{arch}/inference-batch100"), 100, fwd100));
        out.push(plain(format!("model/{arch}/inference-batch1"), 1, fwd1));
    }
    out
}
