//! Matrix products whose shapes a packed GEMM serves badly: few rows
//! (a convolution with 6 or 16 filters, where packing costs more than the
//! arithmetic it serves), and weight
//! gradients, each element a long dot product. Register-tiled loops that
//! the compiler vectorises, compiled for the [`Isa`] the caller gives
//! (AVX-512, AVX2 and FMA, or baseline).

use tensor4d::Float;

use crate::{Isa, MatMut, MatRef, TILE_ROWS};

/// A matrix given by where each row starts in a slice, every row `cols`
/// long: the rows of a row-major matrix, or, for a stride-1 convolution,
/// the shifted windows of an image that im2col would otherwise copy out.
///
/// ```
/// let data = [1.0f32, 2.0, 3.0, 4.0];
/// // Rows [2, 3] and [1, 2]: overlapping and out of order are both fine.
/// let rows = kernels::Rows::new(&data, &[1, 0], 2);
/// assert_eq!(rows.row(0), &[2.0, 3.0]);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Rows<'a, T> {
    data: &'a [T],
    starts: &'a [usize],
    cols: usize,
}

impl<'a, T> Rows<'a, T> {
    /// Row `k` is `data[starts[k]..starts[k] + cols]`. Panics when a row
    /// runs past the end of `data` (a bug in the caller).
    pub fn new(data: &'a [T], starts: &'a [usize], cols: usize) -> Self {
        if let Some(&max) = starts.iter().max() {
            assert!(
                max + cols <= data.len(),
                "a row of {cols} from {max} runs past {} elements",
                data.len()
            );
        }
        Rows { data, starts, cols }
    }

    /// Row `k`.
    pub fn row(&self, k: usize) -> &'a [T] {
        &self.data[self.starts[k]..self.starts[k] + self.cols]
    }
}

/// Calls `kernel::<T, FMA>(args)` compiled for `isa`, `FMA` as it has.
macro_rules! with_fma {
    ($isa:expr, $kernel:ident::<$t:ty>($($arg:expr),*)) => {
        $isa.run(
            #[inline(always)]
            |fma| {
                if fma {
                    $kernel::<$t, true>($($arg),*)
                } else {
                    $kernel::<$t, false>($($arg),*)
                }
            },
        )
    };
}

/// `acc + w * v`, fused (one rounding) when `FMA`.
#[inline(always)]
pub(crate) fn madd<T: Float, const FMA: bool>(w: T, v: T, acc: T) -> T {
    if FMA { w.mul_add(v, acc) } else { acc + w * v }
}

/// Output columns per tile of [`gemm_few_rows`]; a product narrower than
/// this runs one element at a time.
pub const FEW_ROWS_COLS: usize = 16;
const COLS: usize = FEW_ROWS_COLS;
// `few_rows` below spells out tiles of 1 to 6 rows.
const _: () = assert!(TILE_ROWS == 6);

/// `C <- C + A B` for an A with few rows (a convolution's filters times its
/// columns), reading B's rows where they are and writing C in place (no
/// packing). C must have unit column stride; A any strides.
///
/// Each element's sum runs over `k` in order (fused multiply-adds where the
/// CPU has them), so results depend on the machine but not on threads.
///
/// ```
/// use kernels::{gemm_few_rows, MatMut, MatRef, Rows};
/// let a = [1.0f32, 2.0]; // 1x2
/// let b = [1.0f32, 2.0, 3.0, 10.0, 20.0, 30.0]; // 2x3
/// let mut c = [0.5f32; 3];
/// let b = Rows::new(&b, &[0, 3], 3);
/// gemm_few_rows(MatRef::row_major(&a, 1, 2), b, MatMut::row_major(&mut c, 1, 3));
/// assert_eq!(c, [21.5, 42.5, 63.5]);
/// ```
pub fn gemm_few_rows<T: Float>(a: MatRef<'_, T>, b: Rows<'_, T>, c: MatMut<'_, T>) {
    Isa::active().gemm_few_rows(a, b, c)
}

/// `C <- A B^T + beta C` where every element is a long dot product of a
/// row of A `(m, n)`, with unit column stride, and a row of B `(q, n)`:
/// `n` large, `m` and `q` small (a weight gradient `dout col^T`, B being
/// the columns). With `beta == 0` the old contents of C are ignored.
///
/// Each dot product is summed in 8 interleaved lanes, combined in a fixed
/// order, so results depend on the machine but not on threads.
///
/// ```
/// use kernels::{gemm_dots, MatMut, MatRef, Rows};
/// let a = [1.0f32, 2.0, 3.0]; // 1x3
/// let b = [1.0f32, 1.0, 1.0, 0.0, 1.0, 0.0]; // 2x3
/// let mut c = [9.0f32; 2];
/// gemm_dots(MatRef::row_major(&a, 1, 3), Rows::new(&b, &[0, 3], 3), 0.0, MatMut::row_major(&mut c, 1, 2));
/// assert_eq!(c, [6.0, 2.0]);
/// gemm_dots(MatRef::row_major(&a, 1, 3), Rows::new(&b, &[0, 3], 3), 1.0, MatMut::row_major(&mut c, 1, 2));
/// assert_eq!(c, [12.0, 4.0]);
/// ```
pub fn gemm_dots<T: Float>(a: MatRef<'_, T>, b: Rows<'_, T>, beta: T, c: MatMut<'_, T>) {
    Isa::active().gemm_dots(a, b, beta, c)
}

impl Isa {
    /// [`gemm_few_rows`] compiled for this path. Panics if this CPU lacks
    /// its instructions.
    ///
    /// ```
    /// use kernels::{Isa, MatMut, MatRef, Rows};
    /// // 3 filters of 2x2 over a 1x5 image: each row of B one shifted
    /// // window position, read in place (what im2col would copy out).
    /// let image = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]; // 2x5
    /// let starts = [0, 1, 5, 6]; // filter elements (0,0) (0,1) (1,0) (1,1)
    /// let b = Rows::new(&image, &starts, 4); // 4 output columns
    /// let w = [1.0f32, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0];
    /// for isa in Isa::ALL.into_iter().filter(|i| i.is_available()) {
    ///     let mut c = [0.0f32; 12];
    ///     isa.gemm_few_rows(MatRef::row_major(&w, 3, 4), b, MatMut::row_major(&mut c, 3, 4));
    ///     assert_eq!(&c[..4], &image[..4]); // top-left element
    ///     assert_eq!(&c[4..8], &image[6..10]); // bottom-right element
    ///     assert_eq!(&c[8..], &[16.0, 20.0, 24.0, 28.0]); // window sums
    /// }
    /// ```
    pub fn gemm_few_rows<T: Float>(self, a: MatRef<'_, T>, b: Rows<'_, T>, c: MatMut<'_, T>) {
        assert_eq!(a.cols, b.starts.len(), "inner dimensions of A and B");
        assert_eq!((a.rows, b.cols), (c.rows, c.cols), "shape of C");
        assert!(c.cs == 1 || c.cols <= 1, "C needs unit column stride");
        if c.rows == 0 || c.cols == 0 {
            return;
        }
        with_fma!(self, few_rows::<T>(a, b, c))
    }

    /// [`gemm_dots`] compiled for this path. Panics if this CPU lacks its
    /// instructions.
    ///
    /// ```
    /// use kernels::{Isa, MatMut, MatRef, Rows};
    /// let n = 1000; // long dot products, past whole lanes
    /// let a: Vec<f32> = (0..2 * n).map(|i| (i % 3) as f32).collect(); // 2 x n
    /// let b: Vec<f32> = (0..3 * n).map(|i| (i % 4) as f32).collect(); // 3 x n
    /// for isa in Isa::ALL.into_iter().filter(|i| i.is_available()) {
    ///     let mut c = [0.0f32; 6];
    ///     isa.gemm_dots(MatRef::row_major(&a, 2, n), Rows::new(&b, &[0, n, 2 * n], n), 0.0,
    ///                   MatMut::row_major(&mut c, 2, 3));
    ///     for (rq, &got) in c.iter().enumerate() {
    ///         let (r, q) = (rq / 3, rq % 3);
    ///         let want: f32 = (0..n).map(|p| a[r * n + p] * b[q * n + p]).sum();
    ///         assert_eq!(got, want, "{isa}"); // integers: exact in any order
    ///     }
    /// }
    /// ```
    pub fn gemm_dots<T: Float>(self, a: MatRef<'_, T>, b: Rows<'_, T>, beta: T, c: MatMut<'_, T>) {
        assert_eq!(a.cols, b.cols, "inner dimensions of A and B");
        assert_eq!((a.rows, b.starts.len()), (c.rows, c.cols), "shape of C");
        assert!(a.cs == 1 || a.cols <= 1, "A needs unit column stride");
        if c.rows == 0 || c.cols == 0 {
            return;
        }
        with_fma!(self, dots::<T>(a, b, beta, c))
    }
}

#[inline(always)]
fn few_rows<T: Float, const FMA: bool>(a: MatRef<'_, T>, b: Rows<'_, T>, mut c: MatMut<'_, T>) {
    let mut r0 = 0;
    while r0 < c.rows {
        let left = c.rows - r0;
        match left.min(TILE_ROWS) {
            6 => few_rows_tile::<T, 6, FMA>(a, b, &mut c, r0),
            5 => few_rows_tile::<T, 5, FMA>(a, b, &mut c, r0),
            4 => few_rows_tile::<T, 4, FMA>(a, b, &mut c, r0),
            3 => few_rows_tile::<T, 3, FMA>(a, b, &mut c, r0),
            2 => few_rows_tile::<T, 2, FMA>(a, b, &mut c, r0),
            _ => few_rows_tile::<T, 1, FMA>(a, b, &mut c, r0),
        }
        r0 += left.min(TILE_ROWS);
    }
}

/// Rows `r0..r0+R` of C, `COLS` columns at a time; when `COLS` does not
/// divide the width, a last tile overlaps the one before and stores only
/// its new columns. The sum over `k` runs in blocks of `KB`: each block's
/// weights are first copied into a small array, `[w_r0, .., w_rR]` per
/// `kk`, so the inner loop reads them with no index arithmetic, and the
/// accumulators go back to C between blocks (exactly, so the sums are
/// those of one pass). Only fixed-size arrays are indexed in the loop over
/// `k`, so the compiler keeps the accumulators in registers.
#[inline(always)]
fn few_rows_tile<T: Float, const R: usize, const FMA: bool>(
    a: MatRef<'_, T>,
    b: Rows<'_, T>,
    c: &mut MatMut<'_, T>,
    r0: usize,
) {
    const KB: usize = 64;
    let (k, n) = (a.cols, c.cols);
    let w = |r: usize, kk: usize| a.data[(r0 + r) * a.rs + kk * a.cs];
    if n < COLS {
        // Too narrow for a tile: one element at a time, same order.
        for r in 0..R {
            for p in 0..n {
                let mut s = c.data[(r0 + r) * c.rs + p];
                for kk in 0..k {
                    s = madd::<T, FMA>(w(r, kk), b.data[b.starts[kk] + p], s);
                }
                c.data[(r0 + r) * c.rs + p] = s;
            }
        }
        return;
    }
    let full = n - n % COLS;
    let mut block = [[T::zero(); R]; KB];
    for k0 in (0..k).step_by(KB) {
        let starts = &b.starts[k0..(k0 + KB).min(k)];
        let block = &mut block[..starts.len()];
        for (kk, ws) in block.iter_mut().enumerate() {
            *ws = std::array::from_fn(|r| w(r, k0 + kk));
        }
        let tiles = (0..full).step_by(COLS).chain((full < n).then_some(n - COLS));
        for p0 in tiles {
            let mut acc: [[T; COLS]; R] = std::array::from_fn(|r| {
                let at = (r0 + r) * c.rs + p0;
                c.data[at..at + COLS]
                    .try_into()
                    .unwrap_or_else(|_| unreachable!())
            });
            for (&start, ws) in starts.iter().zip(&*block) {
                let at = start + p0;
                let v: [T; COLS] = b.data[at..at + COLS]
                    .try_into()
                    .unwrap_or_else(|_| unreachable!());
                for (acc, &w) in acc.iter_mut().zip(ws) {
                    for (s, &v) in acc.iter_mut().zip(&v) {
                        *s = madd::<T, FMA>(w, v, *s);
                    }
                }
            }
            // The overlapping last tile recomputed columns already done.
            let fresh = if p0 + COLS > full { full - p0 } else { 0 };
            for (r, acc) in acc.iter().enumerate() {
                let at = (r0 + r) * c.rs + p0;
                c.data[at + fresh..at + COLS].copy_from_slice(&acc[fresh..]);
            }
        }
    }
}

/// Lanes of each partial sum in [`gemm_dots`]: one AVX2 register of f32.
const LANES: usize = 8;
/// Rows of A and of B^T per tile of [`gemm_dots`]: 4 x 3 accumulators.
const DOT_ROWS: usize = 4;
const DOT_COLS: usize = 3;

#[inline(always)]
fn dots<T: Float, const FMA: bool>(a: MatRef<'_, T>, b: Rows<'_, T>, beta: T, mut c: MatMut<'_, T>) {
    let mut r0 = 0;
    while r0 < c.rows {
        let rows = (c.rows - r0).min(DOT_ROWS);
        let mut q0 = 0;
        while q0 < c.cols {
            let cols = (c.cols - q0).min(DOT_COLS);
            macro_rules! tiles {
                ($(($r:literal, $q:literal)),*) => {
                    match (rows, cols) {
                        $(($r, $q) => dots_tile::<T, $r, $q, FMA>(a, b, beta, &mut c, r0, q0),)*
                        _ => unreachable!("tiles of at most {DOT_ROWS} x {DOT_COLS}"),
                    }
                };
            }
            tiles!(
                (4, 3),
                (4, 2),
                (4, 1),
                (3, 3),
                (3, 2),
                (3, 1),
                (2, 3),
                (2, 2),
                (2, 1),
                (1, 3),
                (1, 2),
                (1, 1)
            );
            q0 += cols;
        }
        r0 += rows;
    }
}

/// Elements `(r0.., q0..)` of C, `R x Q` dot products of length `n`.
#[inline(always)]
fn dots_tile<T: Float, const R: usize, const Q: usize, const FMA: bool>(
    a: MatRef<'_, T>,
    b: Rows<'_, T>,
    beta: T,
    c: &mut MatMut<'_, T>,
    r0: usize,
    q0: usize,
) {
    let n = a.cols;
    let mut acc = [[[T::zero(); LANES]; Q]; R];
    let rows: [&[T]; R] = std::array::from_fn(|r| &a.data[(r0 + r) * a.rs..][..n]);
    let cols: [&[T]; Q] = std::array::from_fn(|q| b.row(q0 + q));
    // Whole lanes as arrays, every slice cut to the same length, so the
    // loop indexes them with no bounds checks left in it.
    let chunks = n / LANES;
    let full = chunks * LANES;
    let xs: [&[[T; LANES]]; R] = std::array::from_fn(|r| &rows[r].as_chunks::<LANES>().0[..chunks]);
    let ys: [&[[T; LANES]]; Q] = std::array::from_fn(|q| &cols[q].as_chunks::<LANES>().0[..chunks]);
    for i in 0..chunks {
        let x: [[T; LANES]; R] = std::array::from_fn(|r| xs[r][i]);
        let y: [[T; LANES]; Q] = std::array::from_fn(|q| ys[q][i]);
        for (acc, x) in acc.iter_mut().zip(&x) {
            for (acc, y) in acc.iter_mut().zip(&y) {
                for l in 0..LANES {
                    acc[l] = madd::<T, FMA>(x[l], y[l], acc[l]);
                }
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        for (q, acc) in acc.iter().enumerate() {
            let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
            for i in full..n {
                s = madd::<T, FMA>(rows[r][i], cols[q][i], s);
            }
            let at = (r0 + r) * c.rs + (q0 + q) * c.cs;
            c.data[at] = if beta == T::zero() {
                s
            } else {
                beta * c.data[at] + s
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The kernels against triple loops on every path: tests/paths.rs.

    #[test]
    #[should_panic(expected = "runs past")]
    fn rows_past_the_end_panic() {
        Rows::new(&[0.0f32; 4], &[0, 3], 2);
    }
}
