//! What several test binaries share.

use layers::{Adam, ConvMethod, Optimizer, Parameters};
use models::{Architecture, BuildOptions};
use ndarray::ArrayD;

/// `arch` (seed 7) after `steps` Adam steps on a fixed batch of 24 images,
/// on the calling thread's pool and path: its weights and gradients.
pub fn trained_params(arch: Architecture, method: ConvMethod, steps: usize) -> Vec<f32> {
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
    let mut out = Vec::new();
    net.visit_params(&mut |_, v, g| out.extend(v.iter().chain(g.iter())));
    out
}
