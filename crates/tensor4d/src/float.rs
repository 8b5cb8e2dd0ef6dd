use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{AddAssign, DivAssign, MulAssign, SubAssign};

/// The element type of every tensor and layer: implemented for `f32`
/// (training) and `f64` (gradient checks).
///
/// Beyond `num_traits::Float` it carries the one thing that differs by type
/// at the machine level, the GEMM kernel, so generic layer code can call
/// [`crate::gemm`] without knowing which precision it runs in.
///
/// ```
/// use tensor4d::Float;
/// fn half<T: Float>(x: T) -> T { x * T::of(0.5) }
/// assert_eq!(half(3.0f32), 1.5);
/// assert_eq!(half(3.0f64), 1.5);
/// ```
pub trait Float:
    num_traits::Float
    + num_traits::FromPrimitive
    + ndarray::LinalgScalar
    + ndarray::ScalarOperand
    + Sum
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + Debug
    + Display
    + Default
    + Send
    + Sync
    + 'static
{
    /// `"f32"` or `"f64"`, as the safetensors dtype and error messages spell it.
    const NAME: &'static str;

    /// Converts an `f64` constant (a hyper-parameter, a literal) to this type,
    /// rounding to nearest for `f32`.
    fn of(v: f64) -> Self;

    /// Widens to `f64` (exact for both implementations).
    fn as_f64(self) -> f64;

    /// `C <- alpha * A B + beta * C` with arbitrary strides, in elements.
    ///
    /// # Safety
    /// The pointers must be valid for every element that the sizes and
    /// strides address, and `c` must not alias `a`, `b` or itself. Use the
    /// checked [`crate::gemm`] instead.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm_unchecked(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: *const Self,
        rsa: isize,
        csa: isize,
        b: *const Self,
        rsb: isize,
        csb: isize,
        beta: Self,
        c: *mut Self,
        rsc: isize,
        csc: isize,
    );
}

macro_rules! impl_float {
    ($t:ty, $name:literal, $gemm:path) => {
        impl Float for $t {
            const NAME: &'static str = $name;

            #[inline]
            fn of(v: f64) -> Self {
                v as $t
            }

            #[inline]
            fn as_f64(self) -> f64 {
                self as f64
            }

            unsafe fn gemm_unchecked(
                m: usize,
                k: usize,
                n: usize,
                alpha: Self,
                a: *const Self,
                rsa: isize,
                csa: isize,
                b: *const Self,
                rsb: isize,
                csb: isize,
                beta: Self,
                c: *mut Self,
                rsc: isize,
                csc: isize,
            ) {
                // SAFETY: forwarded verbatim; the caller upholds the contract.
                unsafe { $gemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc) }
            }
        }
    };
}

impl_float!(f32, "f32", matrixmultiply::sgemm);
impl_float!(f64, "f64", matrixmultiply::dgemm);
