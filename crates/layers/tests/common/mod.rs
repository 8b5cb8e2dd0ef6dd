//! Shared by the integration tests: random inputs and shape strategies.
#![allow(dead_code)]

use ndarray::{Array1, Array4, ArrayD, IxDyn};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_distr::{Distribution, Uniform};
use tensor4d::Window;

/// Uniform values in [-1, 1) from a seed.
pub fn uniform(shape: &[usize], seed: u64) -> ArrayD<f64> {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
    let u = Uniform::new(-1.0, 1.0).unwrap();
    ArrayD::from_shape_simple_fn(IxDyn(shape), || u.sample(&mut rng))
}

pub fn uniform4(shape: (usize, usize, usize, usize), seed: u64) -> Array4<f64> {
    uniform(&[shape.0, shape.1, shape.2, shape.3], seed)
        .into_dimensionality()
        .unwrap()
}

pub fn uniform1(n: usize, seed: u64) -> Array1<f64> {
    uniform(&[n], seed).into_dimensionality().unwrap()
}

/// An NCHW input shape and a window that tiles it exactly: pick the output
/// size, derive the input size (H + 2P - F = (OH - 1) S), padding < filter.
pub fn exact_case(
    max_n: usize,
    max_c: usize,
) -> impl Strategy<Value = ((usize, usize, usize, usize), Window)> {
    (
        1..=max_n,
        1..=max_c,
        1usize..6,
        1usize..6,
        1usize..4,
        1usize..4,
        1usize..5,
        1usize..5,
    )
        .prop_flat_map(|(n, c, fh, fw, sh, sw, oh, ow)| {
            let span_h = (oh - 1) * sh + fh;
            let span_w = (ow - 1) * sw + fw;
            (
                0..=((span_h - 1) / 2).min(fh - 1),
                0..=((span_w - 1) / 2).min(fw - 1),
            )
                .prop_map(move |(ph, pw)| {
                    (
                        (n, c, span_h - 2 * ph, span_w - 2 * pw),
                        Window::new(fh, fw).with_strides(sh, sw).with_pads(ph, pw),
                    )
                })
        })
}

/// Relative closeness for sums computed in different orders.
pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1.0)
}

pub fn assert_all_close(a: &ArrayD<f64>, b: &ArrayD<f64>, what: &str) {
    assert_eq!(a.shape(), b.shape(), "{what}: shapes");
    for ((i, &x), &y) in a.indexed_iter().zip(b.iter()) {
        assert!(close(x, y), "{what} at {:?}: {x} vs {y}", i);
    }
}

/// [`assert_all_close`] where NaN must stand exactly where it stands in `b`.
pub fn assert_all_close_or_nan(a: &ArrayD<f64>, b: &ArrayD<f64>, what: &str) {
    assert_eq!(a.shape(), b.shape(), "{what}: shapes");
    for ((i, &x), &y) in a.indexed_iter().zip(b.iter()) {
        let same = if y.is_nan() { x.is_nan() } else { close(x, y) };
        assert!(same, "{what} at {:?}: {x} vs {y}", i);
    }
}

/// Runs `f` on a rayon pool of `threads` threads.
pub fn on_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}
