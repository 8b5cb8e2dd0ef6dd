//! The layers of chapter 7 and the optimizers that train them, generic over
//! [`Float`] (f32 for training, f64 for gradient checks).
//!
//! Each layer is a struct whose `forward` keeps exactly what its `backward`
//! needs, as in the book's classes: [`Convolution`] its input (or, by the
//! chapter's method, its `col`), [`Pooling`] the argmax, [`Relu`] and
//! [`Sigmoid`] their output, [`Affine`] its input. Outputs and input
//! gradients live in buffers the layer owns and reuses, so a steady
//! training loop does not allocate: `forward` and `backward` return
//! references to them. Parameter gradients stay in the layer
//! ([`Convolution::dw`], [`Affine::db`], ...: the book's `dW` and `db`).
//!
//! Where a layer computes faster than the book, the book's algorithm sits
//! beside the fast one as a method of its own, in a file of its own, and
//! one `match` picks between them: [`Convolution::forward_chapter`]
//! (`src/conv/chapter.rs`, chosen by [`ConvMethod::Chapter`]) and
//! [`Pooling::forward_chapter`] (`src/pooling/chapter.rs`,
//! [`PoolMethod::Chapter`]). The fast methods are tested against them.
//!
//! A network is a list of layers ([`Layer`], plus the [`LayerHooks`] a
//! network uses for fusion, gradient checks and resuming). Parameters are
//! reached by name through [`Parameters`], which the optimizers ([`Sgd`],
//! [`Momentum`], [`AdaGrad`], [`Adam`]), the [`gradcheck`] module and a
//! checkpoint writer all use. [`SoftmaxWithLoss`] ends a network; it takes
//! labels, so it is not a `Layer`. The matrix products run on the
//! `kernels` crate; the unrolling on `im2col`.
//!
//! This crate does no I/O and prints nothing; every shape it cannot handle
//! is an [`Error`] naming the layer and the sizes.
//!
//! ```
//! use layers::{Convolution, Init, Layer, Mode, Pooling, Relu};
//! use ndarray::ArrayD;
//! use rand::SeedableRng;
//! use tensor4d::Window;
//!
//! let mut rng = rand::rngs::StdRng::seed_from_u64(0);
//! let mut conv = Convolution::<f32>::new(1, 30, Window::square(5), Init::Normal { std: 0.01 }, &mut rng)?;
//! let mut relu = Relu::new();
//! let mut pool = Pooling::max(Window::square(2).with_stride(2));
//!
//! let x = ArrayD::<f32>::ones(vec![2, 1, 28, 28]);
//! let y = conv.forward(x.view(), Mode::Train)?;
//! let y = relu.forward(y.view(), Mode::Train)?;
//! let y = pool.forward(y.view(), Mode::Train)?;
//! assert_eq!(y.shape(), &[2, 30, 12, 12]);
//!
//! // A 5x5 filter with stride 2 does not tile 28 pixels: an error, not a floor.
//! let mut bad = Convolution::<f32>::new(1, 4, Window::square(5).with_stride(2), Init::He, &mut rng)?;
//! let err = bad.forward(x.view(), Mode::Train).unwrap_err();
//! assert!(err.to_string().starts_with("Convolution 4@5x5 p0/s2"));
//! # Ok::<(), layers::Error>(())
//! ```

#![deny(unsafe_code)]
#![deny(missing_docs)]

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

mod activation;
mod affine;
mod conv;
mod dropout;
pub mod gradcheck;
mod init;
mod lrn;
mod optim;
mod par;
mod pooling;
mod softmax;

pub use activation::{Relu, Sigmoid};
pub use affine::Affine;
pub use conv::{ConvMethod, Convolution};
pub use dropout::Dropout;
pub use init::Init;
pub use lrn::Lrn;
pub use optim::{AdaGrad, Adam, Momentum, Optimizer, OptimizerSpec, OptimizerState, Sgd};
pub use par::in_pool;
pub use pooling::{PoolKind, PoolMethod, Pooling};
pub use softmax::SoftmaxWithLoss;
pub use tensor4d::{Float, ShapeError, Window};

use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD};

/// Whether a forward pass is for training (dropout draws masks) or for
/// inference (dropout is the identity).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Training: keep what backward needs, draw dropout masks.
    Train,
    /// Inference: deterministic.
    Inference,
}

/// What went wrong, and in which layer or optimizer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An input or gradient whose shape the layer cannot handle.
    #[error("{layer}: {error}")]
    Shape {
        /// The layer, as [`Layer::describe`] writes it.
        layer: String,
        /// The sizes at fault.
        error: ShapeError,
    },
    /// Anything else: a hyper-parameter out of range, a label out of range,
    /// backward before forward.
    #[error("{layer}: {message}")]
    Invalid {
        /// The layer or optimizer.
        layer: String,
        /// What is wrong.
        message: String,
    },
}

impl Error {
    /// The layer or optimizer the error comes from.
    pub fn layer(&self) -> &str {
        match self {
            Error::Shape { layer, .. } | Error::Invalid { layer, .. } => layer,
        }
    }

    pub(crate) fn invalid(layer: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            layer: layer.into(),
            message: message.into(),
        }
    }
}

/// Visitor over named parameters: `(name, value, gradient)`.
pub type ParamVisitor<'v, T> = dyn FnMut(&str, ArrayViewD<'_, T>, ArrayViewD<'_, T>) + 'v;
/// Visitor over named parameters with mutable values: `(name, value, gradient)`.
pub type ParamVisitorMut<'v, T> = dyn FnMut(&str, ArrayViewMutD<'_, T>, ArrayViewD<'_, T>) + 'v;

/// Anything holding named parameters and the gradients that the last
/// backward pass left for them: a layer, a model.
///
/// Visiting goes in a fixed order, the same on every call; optimizers keep
/// their state by position in that order. The default visits nothing.
pub trait Parameters<T: Float> {
    /// Calls `f(name, value, gradient)` for each parameter tensor. Layers
    /// name theirs `weight` and `bias`; models prefix the layer, as in
    /// `conv1.weight`.
    fn visit_params(&self, f: &mut ParamVisitor<'_, T>) {
        let _ = f;
    }

    /// As [`Parameters::visit_params`], with mutable values (for optimizers
    /// and checkpoint loading).
    fn visit_params_mut(&mut self, f: &mut ParamVisitorMut<'_, T>) {
        let _ = f;
    }

    /// Total number of scalar parameters.
    fn param_count(&self) -> usize {
        let mut n = 0;
        self.visit_params(&mut |_, v, _| n += v.len());
        n
    }
}

/// One layer of a network: forward and backward side by side, as in the
/// chapter's classes.
///
/// `forward` returns the layer's output buffer, and `backward` the gradient
/// with respect to the input, also a buffer the layer owns; both are reused
/// on the next call. Parameter gradients are overwritten (not accumulated)
/// by each `backward`, and read through [`Parameters`] or the layer's own
/// accessors (such as [`Convolution::dw`], the book's `dW`).
///
/// What a network (`models::Network`) needs of its layers beyond this
/// (fusion, gradient-check and resume hooks) is [`LayerHooks`], whose
/// methods all have defaults.
///
/// ```
/// use layers::{Layer, Mode, Relu};
/// use ndarray::{ArrayD, IxDyn};
///
/// // Any layer, driven as a network drives it: forward, then backward.
/// fn round_trip(layer: &mut dyn Layer<f64>, x: &ArrayD<f64>) -> (ArrayD<f64>, ArrayD<f64>) {
///     let y = layer.forward(x.view(), Mode::Train).unwrap().clone();
///     let dout = ArrayD::ones(y.raw_dim());
///     let dx = layer.backward(dout.view()).unwrap().clone();
///     (y, dx)
/// }
///
/// let x = ArrayD::from_shape_vec(IxDyn(&[1, 4]), vec![-2.0, -0.5, 0.5, 2.0]).unwrap();
/// let (y, dx) = round_trip(&mut Relu::new(), &x);
/// assert_eq!(y.as_slice().unwrap(), &[0.0, 0.0, 0.5, 2.0]);
/// // The gradient passes where the input was positive (section 5.5.1).
/// assert_eq!(dx.as_slice().unwrap(), &[0.0, 0.0, 1.0, 1.0]);
/// ```
pub trait Layer<T: Float>: Parameters<T> + Send {
    /// Short description used in errors and summaries, e.g.
    /// `Convolution 30@5x5 p0/s1`.
    fn describe(&self) -> String;

    /// The output shape for an input of shape `input`, or why the layer
    /// refuses that input. Lets a model check a whole network's shapes
    /// before allocating anything.
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, Error>;

    /// Computes the output for `x` and keeps what backward needs.
    fn forward(&mut self, x: ArrayViewD<'_, T>, mode: Mode) -> Result<&ArrayD<T>, Error>;

    /// Given the gradient of the loss with respect to the last forward
    /// output, computes the parameter gradients and returns the gradient with
    /// respect to the input.
    fn backward(&mut self, dout: ArrayViewD<'_, T>) -> Result<&ArrayD<T>, Error>;
}

/// An activation that a layer may take over from the layer after it
/// ([`LayerHooks::fuse`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Activation {
    /// [`Relu`].
    Relu,
    /// [`Sigmoid`].
    Sigmoid,
}

/// What a layer computes at inference, in the terms other frameworks use,
/// so a network can be exported (as ONNX, by `models`) or described
/// without knowing the layer's type ([`LayerHooks::operator`]). The
/// weights are the layer's [`Parameters`]; this is the rest.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Operator {
    /// A [`Convolution`]: `weight` `(FN, C, FH, FW)` and `bias` `(FN,)`
    /// over `window` (zero padding), then `then` if an activation is fused.
    Convolution {
        /// Size, stride and padding.
        window: Window,
        /// The activation fused into it, if any.
        then: Option<Activation>,
    },
    /// A [`Pooling`] over `window`; its padding counts as zeros, for the
    /// max as for the mean.
    Pooling {
        /// Max or average.
        kind: PoolKind,
        /// Size, stride and padding.
        window: Window,
    },
    /// An [`Affine`] layer, `x W + b` with `weight` `(inputs, outputs)`,
    /// over its input flattened to `(N, inputs)` in row-major order.
    Affine,
    /// A [`Relu`] or a [`Sigmoid`].
    Activation(Activation),
    /// [`Lrn`]: `b = a / (k + alpha * sum of a^2 over the size channels
    /// centred on a's)^beta` (`size` odd).
    Lrn {
        /// Channels summed, odd.
        size: usize,
        /// The sum's factor (not divided by `size`).
        alpha: f64,
        /// The power.
        beta: f64,
        /// The additive constant.
        k: f64,
    },
    /// A [`Dropout`]: the identity at inference.
    Dropout,
}

/// What a network asks of its layers beyond [`Layer`]: a backward without
/// the input gradient, fusion with a following activation, and the hooks
/// that gradient checks and resumed training use. Every method has a
/// default that suits a layer with none of these, so a layer of one's own
/// needs only `impl<T: Float> LayerHooks<T> for MyLayer<T> {}`.
pub trait LayerHooks<T: Float>: Layer<T> {
    /// Backward for a layer with nothing below it (a network's first):
    /// the parameter gradients alone. A convolution skips a third of its
    /// backward this way. The default runs [`Layer::backward`] and drops
    /// its result.
    fn backward_params(&mut self, dout: ArrayViewD<'_, T>) -> Result<(), Error> {
        self.backward(dout).map(|_| ())
    }

    /// Takes over the activation `act` that follows this layer, applying it
    /// to its own output (and its derivative to the incoming gradient) when
    /// that saves the activation's buffer and a pass over memory; returns
    /// whether it did. The numbers are those of the two layers in
    /// sequence, bit for bit.
    fn fuse(&mut self, act: Activation) -> bool {
        let _ = act;
        false
    }

    /// A fingerprint of the discrete choices the last forward made (which
    /// ReLU inputs were positive, which element won each max-pooling
    /// window); 0 for smooth layers. Two forward passes with equal
    /// fingerprints lie on the same linear piece, which is what a numerical
    /// gradient check needs to know. Read it after forward and before
    /// backward (activations compute their gradient in place of their output).
    fn kink_state(&self) -> u64 {
        0
    }

    /// Makes layers that draw random noise in training (dropout) reuse the
    /// noise of their last forward pass while `hold` is true, so a numerical
    /// gradient sees one fixed function. Other layers ignore it.
    fn hold_noise(&mut self, hold: bool) {
        let _ = hold;
    }

    /// The state of the layer's random noise (how many masks a dropout
    /// layer has drawn), so a stopped training run can resume exactly; 0
    /// for layers without noise.
    fn noise_state(&self) -> u64 {
        0
    }

    /// Restores what [`LayerHooks::noise_state`] returned.
    fn set_noise_state(&mut self, state: u64) {
        let _ = state;
    }

    /// The window the layer slides over its input's height and width (a
    /// convolution's or a pooling's), from which a network works out what
    /// part of the image each output sees (its receptive field); `None` for
    /// layers that see one position at a time.
    fn window(&self) -> Option<Window> {
        None
    }

    /// The floating-point operations of one inference forward pass over an
    /// input of shape `input`, for summaries: a multiply-add counts two, an
    /// addition, comparison or elementwise function one (see each layer).
    /// `None`, the default, when the layer does not say, or when it
    /// refuses the shape.
    fn forward_flops(&self, input: &[usize]) -> Option<u64> {
        let _ = input;
        None
    }

    /// What the layer computes at inference ([`Operator`]), so a network
    /// holding it can be exported; `None`, the default, for a layer that
    /// is none of this crate's kinds.
    fn operator(&self) -> Option<Operator> {
        None
    }
}

/// The number of elements of `shape` as a `u64`, `None` on overflow.
pub(crate) fn elements(shape: &[usize]) -> Option<u64> {
    shape.iter().try_fold(1u64, |p, &d| p.checked_mul(d as u64))
}

/// Checks that `dout` has the shape of the forward output, and that forward ran.
pub(crate) fn check_dout(
    layer: &dyn Fn() -> String,
    forward_ran: bool,
    out_shape: &[usize],
    dout: &[usize],
) -> Result<(), Error> {
    if !forward_ran {
        return Err(Error::invalid(layer(), "backward called before forward"));
    }
    if out_shape != dout {
        return Err(Error::Shape {
            layer: layer(),
            error: ShapeError::mismatch(
                "gradient shape",
                format!("{out_shape:?} (the forward output)"),
                format!("{dout:?}"),
            ),
        });
    }
    Ok(())
}

/// The `(N, C, H, W)` of an input shape, or the error naming the layer:
/// wrong rank or an empty axis.
pub(crate) fn expect_nchw<T: Float, L: Layer<T> + ?Sized>(
    layer: &L,
    input: &[usize],
) -> Result<[usize; 4], Error> {
    let &[n, c, h, w] = input else {
        return Err(shape_error(
            layer,
            ShapeError::Rank {
                expected: "4 (N, C, H, W)",
                found: input.to_vec(),
            },
        ));
    };
    tensor4d::check_nonempty(input).map_err(|e| shape_error(layer, e))?;
    Ok([n, c, h, w])
}

/// Checks a layer's weights and biases: the weight tensor has no empty axis
/// and there is one bias per output. `layer` names the layer in errors.
pub(crate) fn check_weight_bias(
    layer: &dyn Fn() -> String,
    weight: &[usize],
    outputs: usize,
    bias_len: usize,
) -> Result<(), Error> {
    tensor4d::check_nonempty(weight).map_err(|source| Error::Shape {
        layer: layer(),
        error: source,
    })?;
    if bias_len != outputs {
        return Err(Error::Shape {
            layer: layer(),
            error: ShapeError::mismatch("bias length", outputs, bias_len),
        });
    }
    Ok(())
}

/// `Parameters` for a layer with fields `weight`, `bias` and their
/// gradients `dw`, `db` (Convolution, Affine).
macro_rules! weight_and_bias_params {
    ($layer:ident) => {
        impl<T: Float> $crate::Parameters<T> for $layer<T> {
            fn visit_params(&self, f: &mut $crate::ParamVisitor<'_, T>) {
                f(
                    "weight",
                    self.weight.view().into_dyn(),
                    self.dw.view().into_dyn(),
                );
                f(
                    "bias",
                    self.bias.view().into_dyn(),
                    self.db.view().into_dyn(),
                );
            }

            fn visit_params_mut(&mut self, f: &mut $crate::ParamVisitorMut<'_, T>) {
                f(
                    "weight",
                    self.weight.view_mut().into_dyn(),
                    self.dw.view().into_dyn(),
                );
                f(
                    "bias",
                    self.bias.view_mut().into_dyn(),
                    self.db.view().into_dyn(),
                );
            }
        }
    };
}
pub(crate) use weight_and_bias_params;

/// Wraps a shape error with the layer's description; call it inside
/// `map_err` so the description is only formatted when there is an error.
pub(crate) fn shape_error<T: Float, L: Layer<T> + ?Sized>(layer: &L, source: ShapeError) -> Error {
    Error::Shape {
        layer: layer.describe(),
        error: source,
    }
}

/// `x`, or zero where `x` is subnormal. Each operation on a subnormal
/// costs some CPUs a hundred cycles, and training makes them in two
/// places: state that decays geometrically (Momentum's `v`, Adam's `m`
/// and `v`) under a gradient that stays zero (weights behind a dead ReLU)
/// spends hundreds of steps as subnormals, and the tails of a confident
/// softmax are subnormal. Flushing where they arise, rather than setting the
/// FPU's flush-to-zero mode, gives the same bits on every CPU and thread,
/// and leaves the caller's floating-point environment alone.
#[inline(always)]
pub(crate) fn flush<T: Float>(x: T) -> T {
    if x.abs() < T::min_positive_value() {
        T::zero()
    } else {
        x
    }
}
