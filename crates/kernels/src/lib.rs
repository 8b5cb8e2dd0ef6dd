//! The engine under the `layers` crate: matrix products for the shapes a
//! convolutional network meets, chosen by the CPU at run time.
//!
//! - [`gemm_with`] (and [`gemm`], [`gemm_view_with`]): a bounds-checked
//!   strided GEMM. For `f32` it is this crate's own packed GEMM, BLIS's
//!   loops around a [`TILE_ROWS`] x [`TILE_COLS`] register tile, packing
//!   into a [`GemmScratch`] the caller keeps, so repeated products of the
//!   same shapes allocate nothing; for `f64` (gradient checks) it is
//!   `matrixmultiply`'s dgemm. Transposes are stride swaps on [`MatRef`],
//!   never copies.
//! - [`gemm_few_rows`] and [`gemm_dots`]: the two products a packed GEMM
//!   serves badly, a few rows of A (a convolution's few filters) and long
//!   dot products (a weight gradient), reading B as [`Rows`] wherever its
//!   rows start, so a stride-1 convolution can read its windows in place.
//! - [`with_simd`]: runs a closure compiled for AVX2 and FMA when the CPU
//!   has them; every kernel here has a portable path beside it.
//!
//! Results depend on the shapes and the CPU path (FMA or not), never on
//! the number of threads: every element's sum runs in a fixed order.
//!
//! ```
//! use kernels::{gemm_with, GemmScratch, MatMut, MatRef};
//! let mut scratch = GemmScratch::default();
//! let a = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]; // 2x3
//! let mut c = [0.0f32; 4];
//! // A A^T without copying A: the transpose swaps strides.
//! let a = MatRef::row_major(&a, 2, 3);
//! gemm_with(&mut scratch, 1.0, a, a.t(), 0.0, MatMut::row_major(&mut c, 2, 2));
//! assert_eq!(c, [14.0, 32.0, 32.0, 77.0]);
//! ```

mod gemm;
mod packed;
mod small;

pub use gemm::{MatMut, MatRef, gemm, gemm_view_with, gemm_with};
pub use packed::GemmScratch;
pub use small::{Rows, gemm_dots, gemm_few_rows};

/// Rows of the register tile, in the packed GEMM and in [`gemm_few_rows`]:
/// 6 rows of 2 vectors are 12 AVX2 accumulators, which fit the 16
/// registers beside a loaded row of B and a broadcast element of A.
/// Callers whose cost depends on whole tiles (a convolution choosing how
/// to compute for its number of filters) read it here.
pub const TILE_ROWS: usize = 6;

/// Columns of the register tile: two AVX2 vectors of `f32`. The packed
/// GEMM packs B in panels this wide, so a caller that splits C's columns
/// among threads splits them in multiples of it.
pub const TILE_COLS: usize = 16;

/// Runs `f`, compiled for AVX2 and FMA when the CPU has both (then `f`
/// receives `true`): loops inlined into `f` are vectorised 8 `f32` wide
/// instead of baseline x86-64's 4. The compiler never fuses a multiply and
/// an add on its own, so a loop that does not ask for `mul_add` gives the
/// same bits either way.
///
/// ```
/// let sum: f32 = kernels::with_simd(|_| (1..=4).map(|v| v as f32).sum());
/// assert_eq!(sum, 10.0);
/// ```
#[inline(always)]
pub fn with_simd<R>(f: impl FnOnce(bool) -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2,fma")]
        fn avx2_fma<R>(f: impl FnOnce(bool) -> R) -> R {
            f(true)
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU was just seen to support AVX2 and FMA.
            return unsafe { avx2_fma(f) };
        }
    }
    f(false)
}
