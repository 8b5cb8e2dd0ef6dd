use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{AddAssign, DivAssign, MulAssign, SubAssign};

/// The element type of every tensor and layer: `f32` (training) and `f64`
/// (gradient checks), and no other type (the trait is sealed, so the GEMM
/// engine can give each of the two its own kernel).
///
/// ```
/// use tensor4d::Float;
/// fn half<T: Float>(x: T) -> T { x * T::of(0.5) }
/// assert_eq!(half(3.0f32), 1.5);
/// assert_eq!(half(3.0f64), 1.5);
/// ```
pub trait Float:
    sealed::Sealed
    + num_traits::Float
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

    /// `e^self`, in a form the compiler can vectorise over a slice: for
    /// `f32` a polynomial with no branch and no library call (within 2 ulp
    /// of the true value; 0 below -87 and infinity above 88, NaN stays
    /// NaN); for `f64`, which gradient checks use as the reference, the
    /// standard library's `exp`.
    ///
    /// ```
    /// use tensor4d::Float;
    /// let e = 1.0f32.exp_fast();
    /// assert!((e - std::f32::consts::E).abs() <= 2.0 * f32::EPSILON * e);
    /// assert_eq!((-100.0f32).exp_fast(), 0.0);
    /// assert!(f32::NAN.exp_fast().is_nan());
    /// assert_eq!(1.0f64.exp_fast(), 1.0f64.exp());
    /// ```
    fn exp_fast(self) -> Self;
}

mod sealed {
    /// Keeps [`super::Float`] to the two types implemented here.
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

macro_rules! impl_float {
    ($t:ty, $name:literal, $exp:path) => {
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

            #[inline(always)]
            fn exp_fast(self) -> Self {
                $exp(self)
            }
        }
    };
}

impl_float!(f32, "f32", exp_f32);
impl_float!(f64, "f64", f64::exp);

/// Cephes' `expf`: `e^x = 2^n e^r` with `n = round(x / ln 2)` and
/// `|r| <= ln(2) / 2`, `e^r` by a degree-7 polynomial. Every step is
/// arithmetic or a select (no `floor`, which is a library call on baseline
/// x86-64), so loops over slices vectorise.
#[inline(always)]
fn exp_f32(x: f32) -> f32 {
    // Inside [LO, HI], 2^n is a normal float.
    const LO: f32 = -87.0;
    const HI: f32 = 88.0;
    // Adding 1.5 * 2^23 rounds to an integer held in the low mantissa bits.
    const SHIFTER: f32 = 12_582_912.0;
    // ln 2 split in two so that n * LN2_HI is exact.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // `clamp` passes NaN through (min/max would not).
    let c = x.clamp(LO, HI);
    let t = c * std::f32::consts::LOG2_E + SHIFTER;
    let n = t - SHIFTER;
    let r = c - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4_f32;
    let p = p * r + 1.398_2e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let er = p * r * r + r + 1.0;
    // 2^n from n's bits in t, moved into the exponent field.
    let n_bits = t.to_bits().wrapping_sub(SHIFTER.to_bits());
    let scale = f32::from_bits(n_bits.wrapping_add(127) << 23);
    let y = er * scale;
    if x < LO {
        0.0
    } else if x > HI {
        f32::INFINITY
    } else {
        y
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_fast_f32_is_within_two_ulp_of_f64_exp() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x <= 88.0 {
            let got = x.exp_fast() as f64;
            let want = (x as f64).exp();
            // One ulp at the f32 nearest the true value.
            let w = want as f32;
            let ulp = (f32::from_bits(w.to_bits() + 1) - w) as f64;
            worst = worst.max((got - want).abs() / ulp);
            x += 0.000_731;
        }
        assert!(worst <= 2.0, "worst error {worst} ulp");
    }

    #[test]
    fn exp_fast_f32_edges() {
        assert_eq!(0.0f32.exp_fast(), 1.0);
        assert_eq!((-87.5f32).exp_fast(), 0.0);
        assert_eq!(f32::NEG_INFINITY.exp_fast(), 0.0);
        assert_eq!(88.5f32.exp_fast(), f32::INFINITY);
        assert_eq!(f32::INFINITY.exp_fast(), f32::INFINITY);
        assert!(f32::NAN.exp_fast().is_nan());
        assert!(88.0f32.exp_fast().is_finite());
        assert!((-87.0f32).exp_fast() > 0.0);
    }
}
