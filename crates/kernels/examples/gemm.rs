//! The instruction-set paths this CPU has, a product on each checked
//! against a triple loop, and the GFLOP/s of one mid-size product.
//!
//! Run with `cargo run -p convnet-kernels --example gemm` (add `--release`
//! for a meaningful speed). The speed is one quick measurement, not a
//! benchmark: `cargo xtask bench` is the benchmark.

use std::time::{Duration, Instant};

use kernels::{GemmScratch, Isa, MatMut, MatRef};

/// Deterministic values in [-1, 1), so the example prints the same on every run.
fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            // xorshift64*
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            let r = s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
            r as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// `A B` by the definition, summed in f64: the oracle.
fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut c = vec![0.0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            for p in 0..k {
                c[i * n + j] += a[i * k + p] as f64 * b[p * n + j] as f64;
            }
        }
    }
    c
}

fn main() {
    println!("instruction-set paths (kernels::Isa):");
    for isa in Isa::ALL {
        let mark = if isa == Isa::detect() {
            "  <- Isa::detect()"
        } else {
            ""
        };
        let has = if isa.is_available() {
            "available"
        } else {
            "not on this CPU"
        };
        println!("  {:<9} {has}{mark}", isa.name());
    }
    if Isa::detect() == Isa::Avx512 && Isa::Avx512.gemm_tile() == (6, 16) {
        println!("  (the GEMM on the 6x16 tile: this CPU runs 512-bit operations as two 256-bit halves)");
    }

    // Sizes that are multiples of no tile, so every path runs its edge code.
    let (m, k, n) = (67, 300, 45);
    let a = values(m * k, 1);
    let b = values(k * n, 2);
    let want = naive(&a, &b, m, k, n);
    println!("\n{m}x{k} times {k}x{n} against a triple loop in f64:");
    let mut scratch = GemmScratch::default();
    let mut results = Vec::new();
    for isa in Isa::ALL.into_iter().filter(|i| i.is_available()) {
        let mut c = vec![0.0f32; m * n];
        isa.gemm_with(
            &mut scratch,
            1.0,
            MatRef::row_major(&a, m, k),
            MatRef::row_major(&b, k, n),
            0.0,
            MatMut::row_major(&mut c, m, n),
        );
        let worst = c
            .iter()
            .zip(&want)
            .map(|(&g, &w)| (g as f64 - w).abs())
            .fold(0.0, f64::max);
        println!("  {:<9} largest difference {worst:.2e}", isa.name());
        // Each of k products rounds at most once in f32, and |a b| < 1.
        assert!(worst < k as f64 * f32::EPSILON as f64, "{isa}: {worst}");
        results.push((isa, c));
    }
    // AVX-512 and AVX2 both fuse multiply-adds and sum in the same order.
    let fused: Vec<_> = results.iter().filter(|(isa, _)| *isa != Isa::Portable).collect();
    if let [(x, cx), (y, cy)] = fused.as_slice() {
        let same = cx.iter().zip(cy).all(|(p, q)| p.to_bits() == q.to_bits());
        println!("  {x} and {y} give the same bits: {same}");
        assert!(same);
    }

    // One mid-size product on the detected path, best of a few runs.
    let s = 256;
    let (a, b) = (values(s * s, 3), values(s * s, 4));
    let mut c = vec![0.0f32; s * s];
    let isa = Isa::detect();
    let mut run = || {
        let start = Instant::now();
        isa.gemm_with(
            &mut scratch,
            1.0,
            MatRef::row_major(&a, s, s),
            MatRef::row_major(&b, s, s),
            0.0,
            MatMut::row_major(&mut c, s, s),
        );
        start.elapsed()
    };
    run(); // grows the scratch and warms the caches
    let mut best = Duration::MAX;
    let started = Instant::now();
    for _ in 0..20 {
        best = best.min(run());
        if started.elapsed() > Duration::from_millis(300) {
            break;
        }
    }
    let gflops = 2.0 * (s * s * s) as f64 / best.as_secs_f64() / 1e9;
    println!(
        "\n{s}x{s}x{s} on {isa}: {:.2} ms, {gflops:.1} GFLOP/s (one quick measurement; `cargo xtask bench` is the benchmark)",
        best.as_secs_f64() * 1e3
    );
    if cfg!(debug_assertions) {
        println!("  (an unoptimised build: run with --release for the real speed)");
    }
}
