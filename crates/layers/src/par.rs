//! Work splitting on rayon's pool. Every parallel loop here gives each
//! thread its own outputs (images, rows, planes), and no sum is ever split
//! across threads, so results are bit-identical whatever the thread count.

use rayon::prelude::*;
use tensor4d::{Float, MatMut, MatRef, gemm};

/// Items per part when `n` items are shared among rayon's threads.
pub(crate) fn per_part(n: usize) -> usize {
    n.div_ceil(rayon::current_num_threads().clamp(1, n.max(1))).max(1)
}

/// `C <- alpha A B + beta C` with C row-major `(m, n)`, the rows of A and C
/// shared among the threads (each element's sum over k stays whole).
pub(crate) fn par_gemm<T: Float>(alpha: T, a: MatRef<'_, T>, b: MatRef<'_, T>, beta: T, c: &mut [T]) {
    let (m, n) = (a.rows(), b.cols());
    if m == 0 || n == 0 {
        return;
    }
    let per = per_part(m);
    c[..m * n].par_chunks_mut(per * n).enumerate().for_each(|(k, c)| {
        let rows = k * per..k * per + c.len() / n;
        gemm(
            alpha,
            a.row_range(rows.clone()),
            b,
            beta,
            MatMut::row_major(c, rows.len(), n),
        );
    });
}
