use ndarray::{ArrayD, ArrayViewD};
use tensor4d::{Float, reuse};

use crate::{Activation, Error, Layer, LayerHooks, Mode, Parameters, check_dout};

/// `max(0, x)` (section 5.5.1). Keeps its output: `x > 0` exactly where the
/// output is, so the output is the mask backward needs. NaN propagates.
///
/// ```
/// use layers::{Layer, Mode, Relu};
/// use ndarray::ArrayD;
/// let mut relu = Relu::new();
/// let x = ArrayD::from_shape_vec(vec![1, 3], vec![-1.0, 0.0, 2.0]).unwrap();
/// assert_eq!(relu.forward(x.view(), Mode::Train)?.as_slice().unwrap(), &[0.0, 0.0, 2.0]);
/// let dout = ArrayD::from_shape_vec(vec![1, 3], vec![5.0, 5.0, 5.0]).unwrap();
/// assert_eq!(relu.backward(dout.view())?.as_slice().unwrap(), &[0.0, 0.0, 5.0]);
/// # Ok::<(), layers::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Relu<T> {
    /// The output, then (after backward) the input gradient.
    out: ArrayD<T>,
    /// Whether `out` holds a forward output that backward may use.
    ran: bool,
}

/// `1 / (1 + exp(-x))` (section 5.5.2). Keeps its output `y`, since
/// `dy/dx = y (1 - y)`.
///
/// ```
/// use layers::{Layer, Mode, Sigmoid};
/// use ndarray::{ArrayD, IxDyn};
///
/// let mut sigmoid = Sigmoid::<f64>::new();
/// let x = ArrayD::from_shape_vec(IxDyn(&[1, 3]), vec![-1.0, 0.0, 2.0])?;
/// let y = sigmoid.forward(x.view(), Mode::Train)?.clone();
/// for (&x, &y) in x.iter().zip(&y) {
///     assert!((y - 1.0 / (1.0 + (-x).exp())).abs() < 1e-15);
/// }
/// let dx = sigmoid.backward(ArrayD::ones(vec![1, 3]).view())?;
/// assert_eq!(dx[[0, 1]], 0.25); // y (1 - y) at y = 1/2
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Sigmoid<T> {
    /// The output, then (after backward) the input gradient.
    out: ArrayD<T>,
    /// Whether `out` holds a forward output that backward may use.
    ran: bool,
}

macro_rules! elementwise {
    ($name:ident, $label:literal, |$x:ident| $f:expr, |$y:ident, $d:ident| $df:expr, $kinks:expr) => {
        impl<T: Float> $name<T> {
            /// A new layer; it has no parameters.
            pub fn new() -> Self {
                $name {
                    out: ArrayD::zeros(vec![0]),
                    ran: false,
                }
            }
        }

        impl<T: Float> Default for $name<T> {
            fn default() -> Self {
                Self::new()
            }
        }

        impl<T: Float> Parameters<T> for $name<T> {}

        impl<T: Float> Layer<T> for $name<T> {
            fn describe(&self) -> String {
                $label.to_string()
            }

            fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, Error> {
                Ok(input.to_vec())
            }

            fn forward(&mut self, x: ArrayViewD<'_, T>, _mode: Mode) -> Result<&ArrayD<T>, Error> {
                reuse(&mut self.out, x.shape());
                let x = tensor4d::contiguous(&x);
                let out = self
                    .out
                    .as_slice_mut()
                    .unwrap_or_else(|| unreachable!("owned"));
                crate::par::par_map(out, &x, |$x| $f);
                self.ran = true;
                Ok(&self.out)
            }

            /// Computes the input gradient in place of the kept output (which
            /// nothing needs after backward): one activation-sized buffer
            /// fewer. A second backward therefore needs a new forward.
            fn backward(&mut self, dout: ArrayViewD<'_, T>) -> Result<&ArrayD<T>, Error> {
                check_dout(
                    &|| self.describe(),
                    self.ran,
                    self.out.shape(),
                    dout.shape(),
                )?;
                let dout = tensor4d::contiguous(&dout);
                let out = self
                    .out
                    .as_slice_mut()
                    .unwrap_or_else(|| unreachable!("owned"));
                crate::par::par_update(out, &dout, |$y, $d| $df);
                self.ran = false;
                Ok(&self.out)
            }
        }

        impl<T: Float> LayerHooks<T> for $name<T> {
            fn operator(&self) -> Option<crate::Operator> {
                Some(crate::Operator::Activation(Activation::$name))
            }

            /// One elementwise function per element.
            fn forward_flops(&self, input: &[usize]) -> Option<u64> {
                crate::elements(input)
            }

            fn kink_state(&self) -> u64 {
                let kinks: fn(&ArrayD<T>) -> u64 = $kinks;
                kinks(&self.out)
            }
        }
    };
}

/// ReLU of `x`. `x < 0` rather than `x > 0` so that NaN passes through: a
/// diverging network must show a NaN loss, not be silently clipped back to
/// zero. Shared with the ReLU a `Convolution` fuses, so the two agree bit
/// for bit by construction.
#[inline(always)]
pub(crate) fn relu<T: Float>(x: T) -> T {
    if x < T::zero() { T::zero() } else { x }
}

/// ReLU's backward from its output `y`: `dout` where `y > 0`, else 0.
#[inline(always)]
pub(crate) fn relu_grad<T: Float>(y: T, dout: T) -> T {
    if y > T::zero() { dout } else { T::zero() }
}

/// ReLU's [`LayerHooks::kink_state`] from its output: which inputs were positive.
pub(crate) fn relu_kinks<T: Float>(out: &[T]) -> u64 {
    crate::gradcheck::fingerprint(out.iter().map(|&y| (y > T::zero()) as u64))
}

elementwise!(Relu, "ReLU", |x| relu(x), |y, d| relu_grad(y, d), |out| {
    relu_kinks(out.as_slice().unwrap_or_else(|| unreachable!("owned")))
});

/// The sigmoid of `x`, shared with the sigmoid a `Convolution` fuses.
#[inline(always)]
pub(crate) fn sigmoid<T: Float>(x: T) -> T {
    T::one() / (T::one() + (-x).exp_fast())
}

/// Sigmoid's backward from its output: `dout * y * (1 - y)`.
#[inline(always)]
pub(crate) fn sigmoid_grad<T: Float>(y: T, dout: T) -> T {
    dout * y * (T::one() - y)
}

elementwise!(
    Sigmoid,
    "Sigmoid",
    |x| sigmoid(x),
    |y, d| sigmoid_grad(y, d),
    |_| 0
);

/// The activation a layer applies to its own output ([`LayerHooks::fuse`]),
/// if any, with the very functions of `Relu` and `Sigmoid`, so fused and
/// separate layers agree bit for bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fused {
    /// Nothing fused.
    Identity,
    Relu,
    Sigmoid,
}

impl Fused {
    /// The activation fused, if any.
    pub(crate) fn activation(self) -> Option<Activation> {
        match self {
            Fused::Identity => None,
            Fused::Relu => Some(Activation::Relu),
            Fused::Sigmoid => Some(Activation::Sigmoid),
        }
    }
}

impl From<Activation> for Fused {
    fn from(act: Activation) -> Self {
        match act {
            Activation::Relu => Fused::Relu,
            Activation::Sigmoid => Fused::Sigmoid,
        }
    }
}

impl Fused {
    /// `v[i] = f(v[i])`, in place.
    #[inline(always)]
    pub(crate) fn apply_in_place<T: Float>(self, v: &mut [T]) {
        match self {
            Fused::Identity => {}
            Fused::Relu => v.iter_mut().for_each(|v| *v = relu(*v)),
            Fused::Sigmoid => v.iter_mut().for_each(|v| *v = sigmoid(*v)),
        }
    }

    /// `dst[i] = f(src[i])`; one loop per activation, so each vectorises.
    #[inline(always)]
    pub(crate) fn apply<T: Float>(self, dst: &mut [T], src: &[T]) {
        match self {
            Fused::Identity => dst.copy_from_slice(src),
            Fused::Relu => dst.iter_mut().zip(src).for_each(|(d, &v)| *d = relu(v)),
            Fused::Sigmoid => dst.iter_mut().zip(src).for_each(|(d, &v)| *d = sigmoid(v)),
        }
    }

    /// `dst[i] = f'(x_i) dout[i]` from the outputs `y`.
    #[inline(always)]
    pub(crate) fn grad<T: Float>(self, dst: &mut [T], dout: &[T], y: &[T]) {
        match self {
            Fused::Identity => dst.copy_from_slice(dout),
            Fused::Relu => {
                for ((d, &g), &y) in dst.iter_mut().zip(dout).zip(y) {
                    *d = relu_grad(y, g);
                }
            }
            Fused::Sigmoid => {
                for ((d, &g), &y) in dst.iter_mut().zip(dout).zip(y) {
                    *d = sigmoid_grad(y, g);
                }
            }
        }
    }

    /// What `describe` adds: `" + ReLU"`, `" + Sigmoid"` or nothing.
    pub(crate) fn suffix(self) -> &'static str {
        match self {
            Fused::Identity => "",
            Fused::Relu => " + ReLU",
            Fused::Sigmoid => " + Sigmoid",
        }
    }
}
