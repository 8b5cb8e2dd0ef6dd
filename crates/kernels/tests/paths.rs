//! Every kernel on every instruction-set path against a triple loop, one
//! trial per (kernel, path): a path this CPU lacks is reported as ignored,
//! with the reason, never as passed. The portable path runs everywhere.
//!
//! The `f32` oracles use small integers, whose products and sums are exact
//! in `f32` whatever the summation order, so every path must match them
//! bit for bit; AVX-512 and AVX2 must also match each other bit for bit on
//! arbitrary values, as the kernels promise.

use kernels::{GemmScratch, Isa, MatMut, MatRef, Rows, Windows};
use libtest_mimic::{Arguments, Failed, Trial};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use tensor4d::Window;

/// Small integers in -4..=4.
fn ints(len: usize, seed: u64) -> Vec<f32> {
    (0..len)
        .map(|i| ((i as u64 * 2_654_435_761 + seed * 40_503) % 9) as f32 - 4.0)
        .collect()
}

/// Values that round: products and sums are inexact in `f32`.
fn reals(len: usize, seed: u64) -> Vec<f32> {
    (0..len)
        .map(|i| (((i as u64 + 1) * 2_654_435_761 + seed * 40_503) % 10_007) as f32 / 3_001.0 - 1.7)
        .collect()
}

/// The packed GEMM's cases: every transpose of A and B, C row- or
/// column-major, beta 0 (old C NaN), 1 and -2, and sizes across the
/// tiles' edges and the blocks' (`KC` = 256 deep, `MC` = 144 rows).
fn gemm_case() -> impl Strategy<Value = (usize, usize, usize, bool, bool, bool, f32, u64)> {
    (
        prop_oneof![1usize..30, 140usize..300],
        prop_oneof![0usize..20, 250usize..530],
        prop_oneof![1usize..70, 4070usize..4130],
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        prop_oneof![Just(0.0f32), Just(1.0), Just(-2.0)],
        0u64..1000,
    )
        // Keep the work of one case small: big m, k and n never all at once.
        .prop_filter("small enough", |&(m, k, n, ..)| m * k * n <= 3_000_000)
}

/// `alpha A B + beta C` on `isa`, A, B and C stored as the flags say.
#[allow(clippy::too_many_arguments)]
fn gemm_on(
    isa: Isa,
    m: usize,
    k: usize,
    n: usize,
    ta: bool,
    tb: bool,
    ccols: bool,
    beta: f32,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
) {
    let am = if ta {
        MatRef::row_major(a, k, m).t()
    } else {
        MatRef::row_major(a, m, k)
    };
    let bm = if tb {
        MatRef::row_major(b, n, k).t()
    } else {
        MatRef::row_major(b, k, n)
    };
    let cm = if ccols {
        MatMut::new(c, m, n, 1, m)
    } else {
        MatMut::row_major(c, m, n)
    };
    isa.gemm_with(&mut GemmScratch::default(), 2.0, am, bm, beta, cm);
}

fn gemm_matches_triple_loop(isa: Isa) -> Result<(), Failed> {
    let mut runner = TestRunner::new(Config::with_cases(64));
    runner
        .run(&gemm_case(), |(m, k, n, ta, tb, ccols, beta, seed)| {
            let (a, b) = (ints(m * k, seed), ints(k * n, seed + 1));
            let ael = |i: usize, p: usize| if ta { a[p * m + i] } else { a[i * k + p] };
            let bel = |p: usize, j: usize| if tb { b[j * k + p] } else { b[p * n + j] };
            let old = ints(m * n, seed + 2);
            let mut c: Vec<f32> = if beta == 0.0 {
                vec![f32::NAN; m * n]
            } else {
                old.clone()
            };
            gemm_on(isa, m, k, n, ta, tb, ccols, beta, &a, &b, &mut c);
            for i in 0..m {
                for j in 0..n {
                    let at = if ccols { j * m + i } else { i * n + j };
                    let sum: f32 = (0..k).map(|p| ael(i, p) * bel(p, j)).sum();
                    let want = 2.0 * sum + if beta == 0.0 { 0.0 } else { beta * old[at] };
                    prop_assert_eq!(c[at], want, "element ({}, {})", i, j);
                }
            }
            Ok(())
        })
        .map_err(|e| format!("{isa}: {e}").into())
}

/// AVX-512's tile against AVX2's on values that round: the same bits.
fn gemm_paths_agree(isa: Isa) -> Result<(), Failed> {
    let mut runner = TestRunner::new(Config::with_cases(64));
    runner
        .run(&gemm_case(), |(m, k, n, ta, tb, ccols, beta, seed)| {
            let (a, b) = (reals(m * k, seed), reals(k * n, seed + 1));
            let old = reals(m * n, seed + 2);
            let mut want = old.clone();
            gemm_on(Isa::Avx2, m, k, n, ta, tb, ccols, beta, &a, &b, &mut want);
            let mut got = old;
            gemm_on(isa, m, k, n, ta, tb, ccols, beta, &a, &b, &mut got);
            let same = got.iter().zip(&want).all(|(x, y)| x.to_bits() == y.to_bits());
            prop_assert!(same, "{} and avx2 differ for {}x{}x{}", isa, m, k, n);
            Ok(())
        })
        .map_err(|e| format!("{isa}: {e}").into())
}

/// `v` in f64.
fn wide(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

/// Every element of `got` within 1e-9 of `want`'s.
fn within_1e9(got: &[f64], want: &[f64]) -> Result<(), TestCaseError> {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        prop_assert!((g - w).abs() < 1e-9, "f64 element {}: {} vs {}", i, g, w);
    }
    Ok(())
}

fn naive(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            c[i * n + j] = (0..k).map(|l| a[i * k + l] * b[l * n + j]).sum();
        }
    }
    c
}

/// The rows of `b` (`rows` x `blocks * n`, row-major) cut into `blocks`
/// blocks of `n` columns, each block stored `step` after the one before
/// with row `r` at `starts[r]` in it, NaN everywhere else: what
/// `Rows::new(&stored, starts, n).blocks(blocks, step)` reads back as `b`.
fn blocked<T: Copy>(b: &[T], n: usize, blocks: usize, starts: &[usize], nan: T) -> (Vec<T>, usize) {
    let step = starts.iter().map(|s| s + n).max().unwrap_or(0) + 2;
    let mut stored = vec![nan; step * blocks];
    for (r, &s) in starts.iter().enumerate() {
        for j in 0..blocks {
            stored[j * step + s..][..n].copy_from_slice(&b[(r * blocks + j) * n..][..n]);
        }
    }
    (stored, step)
}

/// `gemm_few_rows` in f32 (exact integers) and f64, A read through its
/// transpose's strides and B's rows stored in reverse order with a gap,
/// in one to three blocks.
fn few_rows_matches_triple_loop(isa: Isa) -> Result<(), Failed> {
    let mut runner = TestRunner::new(Config::with_cases(96));
    let case = (
        1usize..15,
        prop_oneof![0usize..30, 60usize..140],
        1usize..70,
        0u64..100,
        1usize..4,
    );
    runner
        .run(&case, |(m, k, n, seed, blocks)| {
            let cols = n * blocks;
            let (a, b) = (ints(m * k, seed), ints(k * cols, seed + 1));
            let c0 = ints(m * cols, seed + 2);
            let at: Vec<f32> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
            let starts: Vec<usize> = (0..k).map(|r| (k - 1 - r) * (n + 1)).collect();
            let (stored, step) = blocked(&b, n, blocks, &starts, f32::NAN);
            let mut c = c0.clone();
            isa.gemm_few_rows(
                MatRef::new(&at, m, k, 1, m),
                Rows::new(&stored, &starts, n).blocks(blocks, step),
                MatMut::row_major(&mut c, m, cols),
            );
            let want = naive(&wide(&a), &wide(&b), m, k, cols);
            for i in 0..m * cols {
                prop_assert_eq!(f64::from(c[i]), f64::from(c0[i]) + want[i], "element {}", i);
            }
            // f64, values that round: within 1e-9 of the loop.
            let (a, b) = (wide(&reals(m * k, seed)), wide(&reals(k * cols, seed + 1)));
            let mut c = vec![0.0f64; m * cols];
            let starts: Vec<usize> = (0..k).map(|r| r * n).collect();
            let (stored, step) = blocked(&b, n, blocks, &starts, f64::NAN);
            isa.gemm_few_rows(
                MatRef::row_major(&a, m, k),
                Rows::new(&stored, &starts, n).blocks(blocks, step),
                MatMut::row_major(&mut c, m, cols),
            );
            let want = naive(&a, &b, m, k, cols);
            within_1e9(&c, &want)?;
            Ok(())
        })
        .map_err(|e| format!("{isa}: {e}").into())
}

/// `gemm_dots` in f32 (exact integers) and f64, with beta 0 and 1, B's
/// rows in one to three blocks (each dot product runs over all of them),
/// and up to 100 columns, more than a strip of tiles keeps.
fn dots_match_triple_loop(isa: Isa) -> Result<(), Failed> {
    let mut runner = TestRunner::new(Config::with_cases(96));
    let case = (
        1usize..11,
        0usize..300,
        prop_oneof![1usize..11, 94usize..101],
        0u64..100,
        any::<bool>(),
        1usize..4,
    );
    runner
        .run(&case, |(m, n, q, seed, add, blocks)| {
            let cols = n * blocks;
            let (a, bt) = (ints(m * cols, seed), ints(q * cols, seed + 1));
            let b: Vec<f32> = (0..cols * q).map(|i| bt[(i % q) * cols + i / q]).collect();
            let c0 = ints(m * q, seed + 2);
            let mut c = if add { c0.clone() } else { vec![f32::NAN; m * q] };
            let starts: Vec<usize> = (0..q).map(|r| r * n).collect();
            let (stored, step) = blocked(&bt, n, blocks, &starts, f32::NAN);
            let beta = if add { 1.0 } else { 0.0 };
            isa.gemm_dots(
                MatRef::row_major(&a, m, cols),
                Rows::new(&stored, &starts, n).blocks(blocks, step),
                beta,
                MatMut::row_major(&mut c, m, q),
            );
            let want = naive(&wide(&a), &wide(&b), m, cols, q);
            for i in 0..m * q {
                let want = want[i] + if add { f64::from(c0[i]) } else { 0.0 };
                prop_assert_eq!(f64::from(c[i]), want, "element {}", i);
            }
            let (a, bt) = (wide(&reals(m * cols, seed)), wide(&reals(q * cols, seed + 1)));
            let b: Vec<f64> = (0..cols * q).map(|i| bt[(i % q) * cols + i / q]).collect();
            let (stored, step) = blocked(&bt, n, blocks, &starts, f64::NAN);
            let mut c = vec![f64::NAN; m * q];
            isa.gemm_dots(
                MatRef::row_major(&a, m, cols),
                Rows::new(&stored, &starts, n).blocks(blocks, step),
                0.0,
                MatMut::row_major(&mut c, m, q),
            );
            let want = naive(&a, &b, m, cols, q);
            within_1e9(&c, &want)?;
            Ok(())
        })
        .map_err(|e| format!("{isa}: {e}").into())
}

/// The columns of `win` over `images` images `(c, h, w)` by the
/// definition: row `(ch, i, j)`, column `(img, y, x)` is the input at
/// `(img, ch, y*sh + i - ph, x*sw + j - pw)`, zero outside.
fn written_columns(x: &[f32], images: usize, (c, h, w): (usize, usize, usize), win: Window) -> Vec<f32> {
    let (oh, ow) = win.output_size(h, w).unwrap();
    let n = images * oh * ow;
    let mut col = vec![0.0; c * win.fh * win.fw * n];
    for ch in 0..c {
        for i in 0..win.fh {
            for j in 0..win.fw {
                let r = (ch * win.fh + i) * win.fw + j;
                for img in 0..images {
                    for y in 0..oh {
                        for xo in 0..ow {
                            let (yy, xx) = (
                                (y * win.sh + i) as isize - win.ph as isize,
                                (xo * win.sw + j) as isize - win.pw as isize,
                            );
                            if (0..h as isize).contains(&yy) && (0..w as isize).contains(&xx) {
                                col[r * n + (img * oh + y) * ow + xo] =
                                    x[((img * c + ch) * h + yy as usize) * w + xx as usize];
                            }
                        }
                    }
                }
            }
        }
    }
    col
}

/// The product with windows packed from the images against the same
/// product on the written columns: the same bits, on values that round,
/// for strides, padding, several images, and depths across `KC`.
fn windows_match_written_columns(isa: Isa) -> Result<(), Failed> {
    let case = (
        (
            1usize..4,
            prop_oneof![1usize..5, 30usize..40],
            1usize..4,
            1usize..4,
        ),
        (1usize..9, 1usize..21, 1usize..3, 1usize..3, 0usize..3, 0usize..3),
        (
            prop_oneof![1usize..14, 60usize..80],
            any::<bool>(),
            prop_oneof![Just(0.0f32), Just(1.0)],
            0u64..1000,
        ),
        any::<bool>(),
    );
    let mut runner = TestRunner::new(Config::with_cases(96));
    runner
        .run(
            &case,
            |((images, c, fh, fw), (oh, ow, sh, sw, ph, pw), (m, ccols, beta, seed), tw)| {
                let win = Window::new(fh, fw).with_strides(sh, sw).with_pads(ph, pw);
                // An input whose output is oh x ow, where the padding allows one.
                let (h, w) = ((oh - 1) * sh + fh, (ow - 1) * sw + fw);
                prop_assume!(h > 2 * ph && w > 2 * pw);
                let (h, w) = (h - 2 * ph, w - 2 * pw);
                let x = reals(images * c * h * w, seed);
                let (depth, pixels) = (c * fh * fw, images * oh * ow);
                // The windows, or (tw) their transpose.
                let (k, n) = if tw { (pixels, depth) } else { (depth, pixels) };
                let a = reals(m * k, seed + 1);
                let old = reals(m * n, seed + 2);
                fn cm(c: &mut [f32], m: usize, n: usize, ccols: bool) -> MatMut<'_, f32> {
                    if ccols {
                        MatMut::new(c, m, n, 1, m)
                    } else {
                        MatMut::row_major(c, m, n)
                    }
                }
                let col = written_columns(&x, images, (c, h, w), win);
                let col = MatRef::row_major(&col, depth, pixels);
                let mut want = old.clone();
                let mut scratch = GemmScratch::default();
                let am = MatRef::row_major(&a, m, k);
                isa.gemm_with(
                    &mut scratch,
                    1.5,
                    am,
                    if tw { col.t() } else { col },
                    beta,
                    cm(&mut want, m, n, ccols),
                );
                let mut got = old;
                let windows = Windows::new(&x, (c, h, w), win).unwrap();
                let windows = if tw { windows.t() } else { windows };
                isa.gemm_windows_with(&mut scratch, 1.5, am, windows, beta, cm(&mut got, m, n, ccols));
                let same = got.iter().zip(&want).all(|(x, y)| x.to_bits() == y.to_bits());
                prop_assert!(
                    same,
                    "{} windows (transposed: {}) and columns differ for {} images {}x{}x{}, {}, {} rows",
                    isa,
                    tw,
                    images,
                    c,
                    h,
                    w,
                    win,
                    m
                );
                Ok(())
            },
        )
        .map_err(|e| format!("{isa}: {e}").into())
}

/// Planes for the 2x2 pooling kernels: values on a coarse grid (ties),
/// signed zeros, and, when `nan` says where, one NaN.
fn pool_planes(len: usize, seed: u64, nan: Option<usize>) -> Vec<f32> {
    let mut x: Vec<f32> = (0..len)
        .map(
            |i| match ((i as u64 * 2_654_435_761).wrapping_add(seed.wrapping_mul(40_503)) >> 7) % 7 {
                0 => -0.0,
                k => k as f32 - 3.0,
            },
        )
        .collect();
    if let Some(at) = nan {
        x[at % len] = f32::NAN;
    }
    x
}

/// 2x2 pooling at stride 2 against the definition, written out here: the
/// window's elements in row order, a strict `>` (the first of equals
/// wins), sums from +0; backward by adding to a cleared gradient. Rows
/// from 1 to 40 outputs wide (whole vector blocks, a block moved back to
/// overlap, scalar rows), odd sizes for forward, bits compared, in `f32`
/// and through the generic loop in `f64`.
fn pooling_matches_the_definition(isa: Isa) -> Result<(), Failed> {
    let case = (
        1usize..4,
        1usize..5,
        0usize..2,
        1usize..41,
        0usize..2,
        any::<u64>(),
        any::<bool>(),
    );
    let mut runner = TestRunner::new(Config::with_cases(256));
    runner
        .run(&case, |(planes, oh, odd_h, ow, odd_w, seed, nan)| {
            let (h, w) = (2 * oh + odd_h, 2 * ow + odd_w);
            let x = pool_planes(planes * h * w, seed, nan.then_some(seed as usize));
            let n = planes * oh * ow;
            let at = |p: usize, i: usize, j: usize, k: usize| p * h * w + (2 * i + k / 2) * w + 2 * j + k % 2;
            // The definition: outputs, positions, and whether a NaN was met.
            let (mut want, mut want_k, mut any_nan) = (vec![0.0f32; n], vec![0u16; n], false);
            let mut want_avg = vec![0.0f32; n];
            for p in 0..planes {
                for i in 0..oh {
                    for j in 0..ow {
                        let o = (p * oh + i) * ow + j;
                        let v: Vec<f32> = (0..4).map(|k| x[at(p, i, j, k)]).collect();
                        (want[o], want_k[o]) = (v[0], 0);
                        for (k, &e) in v.iter().enumerate().skip(1) {
                            if e > want[o] {
                                (want[o], want_k[o]) = (e, k as u16);
                            }
                        }
                        any_nan |= v.iter().any(|e| e.is_nan());
                        want_avg[o] = (0.0 + v[0] + v[1] + v[2] + v[3]) * 0.25;
                    }
                }
            }
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            let (mut out, mut args) = (vec![7.0f32; n], vec![9u16; n]);
            let whole = isa.max_pool_2x2(&x, (h, w), &mut out, &mut args);
            prop_assert_eq!(whole, !any_nan, "NaN reported");
            if whole {
                prop_assert_eq!(bits(&out), bits(&want), "max");
                prop_assert_eq!(&args, &want_k, "positions");
            }
            isa.avg_pool_2x2(&x, (h, w), 0.25, &mut out);
            prop_assert_eq!(bits(&out), bits(&want_avg), "average");
            // f64 through the generic loop: the same values and positions.
            let wide = |v: &[f32]| v.iter().map(|&x| f64::from(x).to_bits()).collect::<Vec<_>>();
            let bits64 = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            let x64: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
            let (mut out64, mut args64) = (vec![7.0f64; n], vec![9u16; n]);
            prop_assert_eq!(
                isa.max_pool_2x2(&x64, (h, w), &mut out64, &mut args64),
                !any_nan,
                "NaN reported, f64"
            );
            if !any_nan {
                prop_assert_eq!(bits64(&out64), wide(&want), "max f64");
                prop_assert_eq!(&args64, &want_k, "positions f64");
            }
            // Small integers and quarters: exact in both precisions.
            isa.avg_pool_2x2(&x64, (h, w), 0.25, &mut out64);
            prop_assert_eq!(bits64(&out64), wide(&want_avg), "average f64");
            if odd_h + odd_w > 0 {
                return Ok(());
            }
            // Backward: the gradient added to a cleared dx, over the windows
            // that won (max) or all four (average).
            let g = pool_planes(n, seed ^ 1, None);
            let (mut want_max, mut want_avg) = (vec![0.0f32; x.len()], vec![0.0f32; x.len()]);
            for p in 0..planes {
                for i in 0..oh {
                    for j in 0..ow {
                        let o = (p * oh + i) * ow + j;
                        want_max[at(p, i, j, usize::from(want_k[o]))] += g[o];
                        for k in 0..4 {
                            want_avg[at(p, i, j, k)] += g[o] * 0.25;
                        }
                    }
                }
            }
            // dx starts as garbage each time: every element must be written.
            let mut dx = vec![5.0f32; x.len()];
            isa.max_pool_2x2_backward(&mut dx, (h, w), &g, &want_k);
            prop_assert_eq!(bits(&dx), bits(&want_max), "max backward");
            dx.fill(5.0);
            isa.avg_pool_2x2_backward(&mut dx, (h, w), &g, 0.25);
            prop_assert_eq!(bits(&dx), bits(&want_avg), "average backward");
            let g64: Vec<f64> = g.iter().map(|&v| f64::from(v)).collect();
            let mut dx64 = vec![5.0f64; x.len()];
            isa.max_pool_2x2_backward(&mut dx64, (h, w), &g64, &want_k);
            prop_assert_eq!(bits64(&dx64), wide(&want_max), "max backward f64");
            dx64.fill(5.0);
            isa.avg_pool_2x2_backward(&mut dx64, (h, w), &g64, 0.25);
            prop_assert_eq!(bits64(&dx64), wide(&want_avg), "average backward f64");
            Ok(())
        })
        .map_err(|e| format!("{isa}: {e}").into())
}

/// A kernel's test, run on one path.
type PathTest = fn(Isa) -> Result<(), Failed>;

fn main() {
    let args = Arguments::from_args();
    let kernels: [(&str, PathTest); 5] = [
        ("gemm_matches_triple_loop", gemm_matches_triple_loop),
        ("windows_match_written_columns", windows_match_written_columns),
        ("few_rows_matches_triple_loop", few_rows_matches_triple_loop),
        ("dots_match_triple_loop", dots_match_triple_loop),
        ("pooling_matches_the_definition", pooling_matches_the_definition),
    ];
    let mut trials = Vec::new();
    for isa in Isa::ALL {
        let missing = !isa.is_available();
        let note = |t: Trial| {
            if missing {
                t.with_ignored_flag(true)
                    .with_kind(format!("skipped: this CPU lacks the {isa} instructions"))
            } else {
                t
            }
        };
        for (name, test) in kernels {
            trials.push(note(Trial::test(format!("{isa}/{name}"), move || test(isa))));
        }
        if isa == Isa::Avx512 {
            // Needs AVX2 too, which AVX-512 implies here.
            trials.push(note(Trial::test(
                format!("{isa}/gemm_bits_equal_avx2s"),
                move || gemm_paths_agree(isa),
            )));
        }
    }
    libtest_mimic::run(&args, trials).exit();
}
