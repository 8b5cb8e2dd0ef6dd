use std::any::TypeId;

use tensor4d::Float;

use crate::{GemmScratch, Isa};

/// A read-only matrix over a slice with row and column strides in elements.
/// Transposing is swapping the strides, so no matrix is ever copied to be
/// transposed.
///
/// Constructors panic when the strides address elements outside the slice:
/// that is a bug in the calling code, not bad user input.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a, T> {
    pub(crate) data: &'a [T],
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) rs: usize,
    pub(crate) cs: usize,
}

/// A mutable matrix over a slice with row and column strides in elements;
/// distinct (row, column) pairs always address distinct elements.
#[derive(Debug)]
pub struct MatMut<'a, T> {
    pub(crate) data: &'a mut [T],
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) rs: usize,
    pub(crate) cs: usize,
}

fn check_bounds(len: usize, rows: usize, cols: usize, rs: usize, cs: usize) {
    if rows == 0 || cols == 0 {
        return;
    }
    let last = (rows - 1)
        .checked_mul(rs)
        .and_then(|r| (cols - 1).checked_mul(cs).and_then(|c| r.checked_add(c)));
    assert!(
        matches!(last, Some(l) if l < len),
        "matrix {rows}x{cols} with strides ({rs}, {cs}) does not fit in {len} elements"
    );
}

impl<'a, T> MatRef<'a, T> {
    /// A `rows` x `cols` matrix whose element (i, j) is `data[i*rs + j*cs]`.
    /// Panics if that addresses an element past the end of `data`.
    ///
    /// ```
    /// use kernels::{gemm, MatMut, MatRef};
    /// // The same 2x3 matrix stored column-major, and row-major every
    /// // fourth element (rows padded to 4).
    /// let col_major = [1.0f32, 4.0, 2.0, 5.0, 3.0, 6.0];
    /// let padded = [1.0f32, 2.0, 3.0, 0.0, 4.0, 5.0, 6.0];
    /// let x = [1.0f32, 1.0, 1.0];
    /// for a in [MatRef::new(&col_major, 2, 3, 1, 2), MatRef::new(&padded, 2, 3, 4, 1)] {
    ///     let mut c = [0.0f32; 2];
    ///     gemm(1.0, a, MatRef::row_major(&x, 3, 1), 0.0, MatMut::row_major(&mut c, 2, 1));
    ///     assert_eq!(c, [6.0, 15.0]); // row sums
    /// }
    /// ```
    pub fn new(data: &'a [T], rows: usize, cols: usize, rs: usize, cs: usize) -> Self {
        check_bounds(data.len(), rows, cols, rs, cs);
        MatRef {
            data,
            rows,
            cols,
            rs,
            cs,
        }
    }

    /// A dense row-major matrix (strides `cols` and 1), the layout of an
    /// `ndarray` array in standard order: `MatRef::row_major(a.as_slice()?, ..)`.
    ///
    /// ```
    /// let a = kernels::MatRef::row_major(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3);
    /// assert_eq!((a.rows(), a.cols()), (2, 3));
    /// ```
    pub fn row_major(data: &'a [T], rows: usize, cols: usize) -> Self {
        Self::new(data, rows, cols, cols, 1)
    }

    /// The transpose, by swapping strides.
    ///
    /// ```
    /// use kernels::{gemm, MatMut, MatRef};
    /// let a = MatRef::row_major(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3);
    /// assert_eq!((a.t().rows(), a.t().cols()), (3, 2));
    /// // A^T x with x = (1, 1): the column sums of A.
    /// let mut c = [0.0f32; 3];
    /// gemm(1.0, a.t(), MatRef::row_major(&[1.0, 1.0], 2, 1), 0.0, MatMut::row_major(&mut c, 3, 1));
    /// assert_eq!(c, [5.0, 7.0, 9.0]);
    /// ```
    pub fn t(self) -> Self {
        MatRef {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    /// Rows `range` of this matrix, as a matrix of its own (no copy).
    /// Panics if `range` runs past the last row.
    ///
    /// ```
    /// use kernels::{gemm, MatMut, MatRef};
    /// let a = MatRef::row_major(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], 3, 2);
    /// let mut c = [0.0f32; 2];
    /// // Rows 1..3 times (1, 1): the sums of the last two rows.
    /// gemm(1.0, a.row_range(1..3), MatRef::row_major(&[1.0, 1.0], 2, 1), 0.0,
    ///      MatMut::row_major(&mut c, 2, 1));
    /// assert_eq!(c, [7.0, 11.0]);
    /// ```
    pub fn row_range(self, range: std::ops::Range<usize>) -> Self {
        assert!(
            range.start <= range.end && range.end <= self.rows,
            "rows {range:?} of a {}-row matrix",
            self.rows
        );
        let rows = range.end - range.start;
        if rows == 0 {
            return MatRef { rows: 0, ..self };
        }
        MatRef::new(
            &self.data[range.start * self.rs..],
            rows,
            self.cols,
            self.rs,
            self.cs,
        )
    }

    /// Columns `range` of this matrix, as a matrix of its own (no copy).
    /// Panics if `range` runs past the last column.
    ///
    /// ```
    /// use kernels::MatRef;
    /// let a = MatRef::row_major(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3);
    /// let right = a.col_range(1..3);
    /// assert_eq!((right.rows(), right.cols()), (2, 2));
    /// ```
    pub fn col_range(self, range: std::ops::Range<usize>) -> Self {
        self.t().row_range(range).t()
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }
}

impl<'a, T> MatMut<'a, T> {
    /// A `rows` x `cols` mutable matrix whose element (i, j) is
    /// `data[i*rs + j*cs]`; the strides must keep elements distinct (a
    /// row-major or column-major arrangement, possibly with gaps). Panics
    /// otherwise, or if an element lies past the end of `data`.
    ///
    /// ```
    /// use kernels::{gemm, MatMut, MatRef};
    /// let a = MatRef::row_major(&[1.0f32, 2.0, 3.0, 4.0], 2, 2);
    /// let i = MatRef::row_major(&[1.0f32, 0.0, 0.0, 1.0], 2, 2);
    /// // A I written column-major, that is A^T in row-major order.
    /// let mut c = [0.0f32; 4];
    /// gemm(1.0, a, i, 0.0, MatMut::new(&mut c, 2, 2, 1, 2));
    /// assert_eq!(c, [1.0, 3.0, 2.0, 4.0]);
    /// ```
    pub fn new(data: &'a mut [T], rows: usize, cols: usize, rs: usize, cs: usize) -> Self {
        check_bounds(data.len(), rows, cols, rs, cs);
        let distinct = rows <= 1 && (cols <= 1 || cs >= 1)
            || cols <= 1 && rs >= 1
            || cs >= 1 && rs >= cols * cs
            || rs >= 1 && cs >= rows * rs;
        assert!(
            distinct,
            "strides ({rs}, {cs}) make elements of a {rows}x{cols} matrix overlap"
        );
        MatMut {
            data,
            rows,
            cols,
            rs,
            cs,
        }
    }

    /// A dense row-major matrix (strides `cols` and 1).
    pub fn row_major(data: &'a mut [T], rows: usize, cols: usize) -> Self {
        Self::new(data, rows, cols, cols, 1)
    }
}

/// `C <- alpha * A B + beta * C` for any strides: for `f32` this crate's
/// packed GEMM, packing into `scratch` (keep one per parallel part of the
/// work and repeated products allocate nothing), for `f64`
/// `matrixmultiply`'s dgemm. With `beta == 0` the old contents of C are
/// ignored (NaN included).
///
/// Panics if the inner dimensions disagree (a bug in the caller).
///
/// ```
/// use kernels::{gemm_with, GemmScratch, MatMut, MatRef};
/// let mut scratch = GemmScratch::default();
/// let a = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]; // 2x3
/// let b = [1.0f32, 0.0, 0.0, 1.0, 1.0, 1.0]; // 3x2
/// let mut c = [0.0f32; 4];
/// gemm_with(&mut scratch, 1.0, MatRef::row_major(&a, 2, 3), MatRef::row_major(&b, 3, 2), 0.0,
///           MatMut::row_major(&mut c, 2, 2));
/// assert_eq!(c, [4.0, 5.0, 10.0, 11.0]);
/// // A^T A without copying A: transposing swaps strides.
/// let mut g = [0.0f32; 9];
/// let a = MatRef::row_major(&a, 2, 3);
/// gemm_with(&mut scratch, 1.0, a.t(), a, 0.0, MatMut::row_major(&mut g, 3, 3));
/// assert_eq!(g[0], 17.0);
/// ```
pub fn gemm_with<T: Float>(
    scratch: &mut GemmScratch,
    alpha: T,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    beta: T,
    c: MatMut<'_, T>,
) {
    Isa::active().gemm_with(scratch, alpha, a, b, beta, c)
}

impl Isa {
    /// [`gemm_with`] on this path's `f32` tile (`f64` products run on
    /// `matrixmultiply` whatever the path). Panics if this CPU lacks the
    /// path's instructions.
    ///
    /// ```
    /// use kernels::{GemmScratch, Isa, MatMut, MatRef};
    /// // Sizes that leave partial tiles on every path, against a triple loop.
    /// let (m, k, n) = (13, 70, 37);
    /// let a: Vec<f32> = (0..m * k).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
    /// let b: Vec<f32> = (0..k * n).map(|i| ((i * 3) % 13) as f32 * 0.25).collect();
    /// let mut scratch = GemmScratch::default();
    /// for isa in Isa::ALL.into_iter().filter(|i| i.is_available()) {
    ///     let mut c = vec![f32::NAN; m * n]; // beta = 0: old contents ignored
    ///     isa.gemm_with(&mut scratch, 1.0, MatRef::row_major(&a, m, k), MatRef::row_major(&b, k, n),
    ///                   0.0, MatMut::row_major(&mut c, m, n));
    ///     for (ij, &got) in c.iter().enumerate() {
    ///         let (i, j) = (ij / n, ij % n);
    ///         let want: f32 = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
    ///         assert_eq!(got, want, "{isa}: C[{i}, {j}]"); // exact: small multiples of 1/4
    ///     }
    /// }
    /// ```
    pub fn gemm_with<T: Float>(
        self,
        scratch: &mut GemmScratch,
        alpha: T,
        a: MatRef<'_, T>,
        b: MatRef<'_, T>,
        beta: T,
        c: MatMut<'_, T>,
    ) {
        self.assert_available();
        if !fits(&a, &b, (c.rows, c.cols)) {
            return;
        }
        // SAFETY: the constructors checked that every addressed element lies
        // in its slice and that C's elements are distinct; `&mut` excludes
        // aliasing between C and the inputs; the path is available.
        unsafe {
            gemm_unchecked(
                self,
                scratch,
                alpha,
                a,
                b,
                beta,
                c.data.as_mut_ptr(),
                c.rs as isize,
                c.cs as isize,
            )
        }
    }
}

/// Panics unless A B has the shape `(rows, cols)` of C (a bug in the
/// caller); returns whether there is anything to compute.
fn fits<T>(a: &MatRef<'_, T>, b: &MatRef<'_, T>, (rows, cols): (usize, usize)) -> bool {
    assert!(
        a.cols == b.rows && a.rows == rows && b.cols == cols,
        "gemm: ({}x{}) * ({}x{}) into ({rows}x{cols})",
        a.rows,
        a.cols,
        b.rows,
        b.cols,
    );
    rows > 0 && cols > 0
}

/// [`gemm_with`] packing into a scratch that belongs to the calling
/// thread (allocated on the thread's first use and grown as needed).
///
/// ```
/// use kernels::{gemm, MatMut, MatRef};
/// let a = [1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0]; // 2x3
/// let b = [1.0f64, 0.0, 0.0, 1.0, 1.0, 1.0]; // 3x2
/// let mut c = [0.0f64; 4];
/// gemm(1.0, MatRef::row_major(&a, 2, 3), MatRef::row_major(&b, 3, 2), 0.0,
///      MatMut::row_major(&mut c, 2, 2));
/// assert_eq!(c, [4.0, 5.0, 10.0, 11.0]);
/// ```
pub fn gemm<T: Float>(alpha: T, a: MatRef<'_, T>, b: MatRef<'_, T>, beta: T, c: MatMut<'_, T>) {
    crate::packed::with_thread_scratch(|s| gemm_with(s, alpha, a, b, beta, c))
}

/// [`gemm_with`] into an `ndarray` view of C, which may be a block of a
/// larger matrix (such as a range of its columns, whose elements are not
/// one contiguous slice): parallel callers can split C with ndarray's
/// `axis_chunks_iter_mut` and give each part its own block.
///
/// ```
/// use ndarray::{s, Array2};
/// use kernels::{gemm_view_with, GemmScratch, MatRef};
/// let a = [1.0f32, 2.0]; // 1x2
/// let b = [1.0f32, 0.0, 0.0, 1.0]; // identity 2x2
/// let mut c = Array2::zeros((1, 4));
/// gemm_view_with(&mut GemmScratch::default(), 1.0, MatRef::row_major(&a, 1, 2),
///                MatRef::row_major(&b, 2, 2), 0.0, c.slice_mut(s![.., 1..3]));
/// assert_eq!(c.as_slice().unwrap(), &[0.0, 1.0, 2.0, 0.0]);
/// ```
pub fn gemm_view_with<T: Float>(
    scratch: &mut GemmScratch,
    alpha: T,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    beta: T,
    mut c: ndarray::ArrayViewMut2<'_, T>,
) {
    if !fits(&a, &b, c.dim()) {
        return;
    }
    let (rsc, csc) = (c.strides()[0], c.strides()[1]);
    // SAFETY: A and B were checked by their constructors; a mutable ndarray
    // view addresses distinct elements that it borrows exclusively, so C
    // aliases neither itself nor the inputs; `active` gives an available path.
    unsafe {
        gemm_unchecked(
            Isa::active(),
            scratch,
            alpha,
            a,
            b,
            beta,
            c.as_mut_ptr(),
            rsc,
            csc,
        )
    }
}

impl<'a, T: 'static> MatRef<'a, T> {
    /// The same matrix over the same memory as elements of type `U`, which
    /// must be `T` itself (checked): how the generic entry points reach the
    /// kernel of their precision.
    pub(crate) fn cast<U: 'static>(self) -> MatRef<'a, U> {
        assert_eq!(
            TypeId::of::<T>(),
            TypeId::of::<U>(),
            "a matrix cast to another type"
        );
        // SAFETY: `U` is `T` (checked above), so the slice is unchanged.
        let data = unsafe { std::slice::from_raw_parts(self.data.as_ptr().cast::<U>(), self.data.len()) };
        MatRef {
            data,
            rows: self.rows,
            cols: self.cols,
            rs: self.rs,
            cs: self.cs,
        }
    }
}

/// For `T = f32`, the scalars, A and C (at `c` with strides `(rsc, csc)`)
/// of a product as the packed loops take them, B to be supplied
/// ([`Product::with_b`](crate::packed::Product::with_b)); `None` for `f64`.
pub(crate) fn as_f32<'a, T: Float>(
    alpha: T,
    a: MatRef<'a, T>,
    beta: T,
    (c, rsc, csc): (*mut T, isize, isize),
) -> Option<crate::packed::Product<'a, ()>> {
    (TypeId::of::<T>() == TypeId::of::<f32>()).then(|| crate::packed::Product {
        // Exact: an f32 widened to f64 and back.
        alpha: alpha.as_f64() as f32,
        a: a.cast(),
        b: (),
        beta: beta.as_f64() as f32,
        c: c.cast(),
        rsc,
        csc,
    })
}

/// `C <- alpha A B + beta C` into C at `c` with strides `(rsc, csc)`, in
/// elements: for `f32` this crate's packed GEMM, packing into `scratch`;
/// for `f64` (gradient checks) `matrixmultiply`'s dgemm, which allocates
/// its own packing space. [`Float`] is implemented for these two alone.
///
/// # Safety
/// C's elements must be valid, distinct, and alias neither A nor B; `isa`
/// must be available.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_unchecked<T: Float>(
    isa: Isa,
    scratch: &mut GemmScratch,
    alpha: T,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    beta: T,
    c: *mut T,
    rsc: isize,
    csc: isize,
) {
    if let Some(product) = as_f32(alpha, a, beta, (c, rsc, csc)) {
        // SAFETY: T is f32 (checked by `as_f32`); the caller upholds the rest.
        unsafe {
            crate::packed::sgemm(
                crate::packed::MicroKernel::of(isa),
                scratch,
                product.with_b(b.cast()),
            )
        }
    } else if TypeId::of::<T>() == TypeId::of::<f64>() {
        let (alpha, beta) = (alpha.as_f64(), beta.as_f64());
        let (a, b) = (a.cast::<f64>(), b.cast::<f64>());
        // SAFETY: T is f64; A and B were checked by their constructors, C
        // by the caller.
        unsafe {
            matrixmultiply::dgemm(
                a.rows,
                a.cols,
                b.cols,
                alpha,
                a.data.as_ptr(),
                a.rs as isize,
                a.cs as isize,
                b.data.as_ptr(),
                b.rs as isize,
                b.cs as isize,
                beta,
                c.cast(),
                rsc,
                csc,
            )
        }
    } else {
        unreachable!("Float is sealed: f32 and f64 only")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        // Oracle: a triple loop over ordinary indices.
        #[test]
        fn gemm_matches_triple_loop(m in 1usize..7, k in 0usize..7, n in 1usize..7,
                                    ta in any::<bool>(), tb in any::<bool>(), seed in any::<u64>()) {
            let val = |i: usize| (((i as u64 + 1).wrapping_mul(seed | 1) >> 7) % 17) as f64 - 8.0;
            let a: Vec<f64> = (0..m * k).map(val).collect();
            let b: Vec<f64> = (0..k * n).map(|i| val(i + 1000)).collect();
            // Store A (and B) either row-major or as the transpose of a row-major matrix.
            let am = if ta { MatRef::row_major(&a, k, m).t() } else { MatRef::row_major(&a, m, k) };
            let bm = if tb { MatRef::row_major(&b, n, k).t() } else { MatRef::row_major(&b, k, n) };
            let at = |i: usize, p: usize| if ta { a[p * m + i] } else { a[i * k + p] };
            let bt = |p: usize, j: usize| if tb { b[j * k + p] } else { b[p * n + j] };
            let mut c = vec![1.0; m * n];
            gemm(2.0, am, bm, 0.5, MatMut::row_major(&mut c, m, n));
            for i in 0..m {
                for j in 0..n {
                    let want: f64 = 2.0 * (0..k).map(|p| at(i, p) * bt(p, j)).sum::<f64>() + 0.5;
                    prop_assert_eq!(c[i * n + j], want);
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "does not fit")]
    fn out_of_bounds_view_panics() {
        let a = [0.0f32; 5];
        let _ = MatRef::row_major(&a, 2, 3);
    }
}
