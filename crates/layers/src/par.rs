//! Work splitting on rayon's pool. Every parallel loop here gives each
//! thread its own outputs (images, rows, planes), and no sum is ever split
//! across threads, so results are bit-identical whatever the thread count.

use kernels::{GemmScratch, MatMut, MatRef, TILE_COLS, gemm_view_with, gemm_with};
use rayon::prelude::*;
use tensor4d::{Float, grow};

/// Runs `f` on a thread of rayon's pool (at once, if this is one): each
/// parallel loop of the layers inside it then starts from a worker, rather
/// than handing its work over from an outside thread and waiting for it
/// to come back, once per layer and pass. Wrap a sequence of passes in it,
/// as `models`' networks do around each forward and backward. Scheduling
/// only: every sum runs as before, so the bits are the same.
///
/// ```
/// let n = layers::in_pool(|| rayon::current_thread_index().is_some());
/// assert!(n);
/// ```
pub fn in_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() {
        f()
    } else {
        rayon::scope(|_| f())
    }
}

/// Items per part when `n` items are shared among rayon's threads.
pub(crate) fn per_part(n: usize) -> usize {
    n.div_ceil(rayon::current_num_threads().clamp(1, n.max(1))).max(1)
}

/// Items per part when a product of `work` multiply-adds is shared among
/// rayon's threads by `n` items: as [`per_part`], but in fewer parts when
/// each would have less than [`kernels::MIN_PART_WORK`].
fn per_product_part(n: usize, work: usize) -> usize {
    let parts = rayon::current_num_threads()
        .min(work / kernels::MIN_PART_WORK)
        .clamp(1, n.max(1));
    n.div_ceil(parts).max(1)
}

/// `C <- alpha A B + beta C` with C row-major `(m, n)`, shared among the
/// threads by rows of A and C, or by columns of B and C where B has more
/// columns than A has rows: each thread packs its share of the larger
/// operand and all of the smaller, so the split that shares the larger
/// packs less twice. Each part packs into its own scratch of `scratch`
/// (grown to the parts, never shrunk). No element's sum over k is ever
/// split, so the bits are those of one GEMM whatever the threads.
pub(crate) fn par_gemm<T: Float>(
    scratch: &mut Vec<GemmScratch>,
    alpha: T,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    beta: T,
    c: &mut [T],
) {
    let (m, n) = (a.rows(), b.cols());
    if m == 0 || n == 0 {
        return;
    }
    let work = m * n * a.cols();
    if n > m {
        // Whole panels of the packed GEMM per part.
        let per = per_product_part(n.div_ceil(TILE_COLS), work) * TILE_COLS;
        let scratch = grow(scratch, n.div_ceil(per));
        let mut c = ndarray::ArrayViewMut2::from_shape((m, n), &mut c[..m * n])
            .unwrap_or_else(|_| unreachable!("m * n elements"));
        c.axis_chunks_iter_mut(ndarray::Axis(1), per)
            .into_par_iter()
            .zip(scratch.par_iter_mut())
            .enumerate()
            .for_each(|(k, (c, scratch))| {
                let cols = k * per..k * per + c.ncols();
                gemm_view_with(scratch, alpha, a, b.col_range(cols), beta, c);
            });
    } else {
        let per = per_product_part(m, work);
        let parts = c[..m * n]
            .par_chunks_mut(per * n)
            .zip(grow(scratch, m.div_ceil(per)));
        parts.enumerate().for_each(|(k, (c, scratch))| {
            let rows = k * per..k * per + c.len() / n;
            let a = a.row_range(rows.clone());
            gemm_with(scratch, alpha, a, b, beta, MatMut::row_major(c, rows.len(), n));
        });
    }
}

/// The sum of `xs` over eight interleaved partial sums, combined in a
/// fixed order: the compiler can vectorise it (a single running sum is a
/// chain of dependent adds that it may not reorder), and the result is the
/// same on every run.
pub(crate) fn lane_sum<T: Float>(xs: &[T]) -> T {
    let mut acc = [T::zero(); 8];
    let mut chunks = xs.chunks_exact(8);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    let tail: T = chunks.remainder().iter().copied().sum();
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// `out[i] = f(a[i])` over contiguous slices, in parallel parts.
pub(crate) fn par_map<T: Float>(out: &mut [T], a: &[T], f: impl Fn(T) -> T + Sync) {
    let per = per_part(out.len()).max(4096);
    out.par_chunks_mut(per).zip(a.par_chunks(per)).for_each(|(o, a)| {
        // Vectorised for AVX2 where the CPU has it: the same bits, wider.
        kernels::with_simd(
            #[inline(always)]
            |_| {
                for (o, &a) in o.iter_mut().zip(a) {
                    *o = f(a);
                }
            },
        )
    });
}

/// `x[i] = f(x[i], b[i])` over contiguous slices, in parallel parts.
pub(crate) fn par_update<T: Float>(x: &mut [T], b: &[T], f: impl Fn(T, T) -> T + Sync) {
    let per = per_part(x.len()).max(4096);
    x.par_chunks_mut(per).zip(b.par_chunks(per)).for_each(|(x, b)| {
        // Vectorised for AVX2 where the CPU has it: the same bits, wider.
        kernels::with_simd(
            #[inline(always)]
            |_| {
                for (x, &b) in x.iter_mut().zip(b) {
                    *x = f(*x, b);
                }
            },
        )
    });
}
