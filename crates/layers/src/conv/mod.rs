//! The Convolution layer (section 7.4.3): its weights, what it keeps for
//! backward, and forward and backward dispatching on its method. The one
//! place that picks a method is `method.rs`; the algorithms sit in files
//! of their own: `chapter.rs` (the book's, line by line), `columns.rs` and
//! `direct.rs` (the engine's), `batch.rs` (how the engine's methods share
//! a batch among threads).

mod batch;
mod chapter;
mod columns;
mod direct;
mod method;

use method::Algorithm;
pub use method::ConvMethod;

use ndarray::{Array1, Array2, Array4, ArrayD, ArrayView4, ArrayViewD};
use rand::Rng;
use tensor4d::{Float, ShapeError, Window, as_nchw, reuse};

use crate::activation::Fused;
use crate::{Activation, Error, Init, Layer, LayerHooks, Mode, check_dout, check_weight_bias, expect_nchw};

/// Convolution (section 7.4.3): `FN` filters of shape `(C, FH, FW)` slid
/// over an NCHW input with the stride and padding of a [`Window`].
///
/// Weights have shape `(FN, C, FH, FW)` and biases `(FN,)`, as in the book
/// (and PyTorch); after backward, [`Convolution::dw`] and
/// [`Convolution::db`] hold their gradients (the book's `dW` and `db`).
/// How it computes is its [`ConvMethod`]: by default the engine's choice
/// per shape, or [`ConvMethod::Chapter`], the book's algorithm line by
/// line. The engine's methods keep the input (unrolling it again in
/// backward costs less than keeping columns `FH*FW` times larger); the
/// chapter's keeps its `col`, as the book does.
///
/// ```
/// use layers::{ConvMethod, Convolution, Layer, Mode};
/// use ndarray::{Array1, Array4, ArrayD};
/// use tensor4d::Window;
/// // One 2x2 filter of ones over a 3x3 ramp: each output sums a window.
/// let mut conv = Convolution::from_weights(Array4::ones((1, 1, 2, 2)), Array1::zeros(1), Window::square(2))?;
/// let x = ArrayD::from_shape_vec(vec![1, 1, 3, 3], (0..9).map(|v| v as f64).collect()).unwrap();
/// assert_eq!(conv.forward(x.view(), Mode::Train)?.as_slice().unwrap(), &[8.0, 12.0, 20.0, 24.0]);
/// // The book's algorithm gives the same numbers.
/// let mut book = conv.clone().with_method(ConvMethod::Chapter)?;
/// assert_eq!(book.forward(x.view(), Mode::Train)?.as_slice().unwrap(), &[8.0, 12.0, 20.0, 24.0]);
/// // Backward leaves dW (and db) in the layer, and returns dx.
/// let dout = ArrayD::ones(vec![1, 1, 2, 2]);
/// let dx = conv.backward(dout.view())?;
/// assert_eq!(dx.as_slice().unwrap(), &[1.0, 2.0, 1.0, 2.0, 4.0, 2.0, 1.0, 2.0, 1.0]);
/// assert_eq!(conv.dw().as_slice().unwrap(), &[8.0, 12.0, 20.0, 24.0]);
/// # Ok::<(), layers::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Convolution<T> {
    weight: Array4<T>,
    bias: Array1<T>,
    dw: Array4<T>,
    db: Array1<T>,
    /// Stride and padding; the filter size is the weight's.
    win: Window,
    method: ConvMethod,
    /// A following ReLU or sigmoid applied to `out` ([`LayerHooks::fuse`]);
    /// `out` is then also the mask backward needs.
    act: Fused,
    kept: Kept<T>,
    out: ArrayD<T>,
    dx: ArrayD<T>,
    /// The engine methods' per-thread workspaces, kept between steps.
    work: batch::Workspace<T>,
}

/// What forward keeps for backward.
#[derive(Clone, Debug)]
struct Kept<T> {
    /// Shape of the last input; `None` before the first forward.
    shape: Option<[usize; 4]>,
    /// Whether the chapter's method kept it (`col`) rather than the
    /// engine's (`x`).
    by_chapter: bool,
    /// The last input, contiguous (the engine's methods).
    x: Vec<T>,
    /// The last input's columns (the chapter's method).
    col: Array2<T>,
}

impl<T: Float> Convolution<T> {
    /// `out_channels` filters over `in_channels` channels, of the size,
    /// stride and padding of `window`, weights (and biases, for
    /// [`Init::PyTorch`]) drawn by `init` with fan-in `in_channels * FH * FW`.
    ///
    /// ```
    /// use layers::{Convolution, Init};
    /// use rand::SeedableRng;
    /// use tensor4d::Window;
    /// let mut rng = rand_pcg::Pcg64::seed_from_u64(0);
    /// // SimpleConvNet's first layer: 30 filters of 5x5 over one channel.
    /// let conv = Convolution::<f32>::new(1, 30, Window::square(5), Init::Normal { std: 0.01 }, &mut rng)?;
    /// assert_eq!(conv.weight().dim(), (30, 1, 5, 5));
    /// # Ok::<(), layers::Error>(())
    /// ```
    pub fn new<R: Rng + ?Sized>(
        in_channels: usize,
        out_channels: usize,
        window: Window,
        init: Init,
        rng: &mut R,
    ) -> Result<Self, Error> {
        let shape = [out_channels, in_channels, window.fh, window.fw];
        let fan_in = in_channels
            .checked_mul(window.fh)
            .and_then(|n| n.checked_mul(window.fw))
            .ok_or_else(|| {
                Error::invalid(
                    "Convolution",
                    format!("weights of shape {shape:?} are too many to address"),
                )
            })?;
        let w = init
            .sample::<T, R>(&shape, fan_in, rng)
            .map_err(|m| Error::invalid("Convolution", m))?;
        let w = w
            .into_dimensionality()
            .unwrap_or_else(|_| unreachable!("sampled with a 4-D shape"));
        let b = init.sample_bias(out_channels, fan_in, rng);
        Self::from_weights(w, b, window)
    }

    /// A convolution with the given weights `(FN, C, FH, FW)` and biases
    /// `(FN,)`, using the stride and padding of `window` (its filter size
    /// must match the weights').
    pub fn from_weights(weight: Array4<T>, bias: Array1<T>, window: Window) -> Result<Self, Error> {
        let (f, c, fh, fw) = weight.dim();
        let layer = || format!("Convolution {f}@{fh}x{fw}");
        check_weight_bias(&layer, weight.shape(), f, bias.len())?;
        if (window.fh, window.fw) != (fh, fw) {
            return Err(Error::Shape {
                layer: layer(),
                error: ShapeError::mismatch(
                    "window size",
                    format!("{fh}x{fw} (the weights')"),
                    format!("{}x{}", window.fh, window.fw),
                ),
            });
        }
        if window.sh == 0 || window.sw == 0 {
            return Err(Error::Shape {
                layer: layer(),
                error: ShapeError::Zero { what: "stride" },
            });
        }
        // Keep the weights contiguous whatever the caller passed.
        let weight = weight.as_standard_layout().into_owned();
        Ok(Convolution {
            dw: Array4::zeros((f, c, fh, fw)),
            db: Array1::zeros(f),
            weight,
            bias,
            win: window,
            method: ConvMethod::Auto,
            act: Fused::Identity,
            kept: Kept {
                shape: None,
                by_chapter: false,
                x: Vec::new(),
                col: Array2::zeros((0, 0)),
            },
            out: ArrayD::zeros(vec![0]),
            dx: ArrayD::zeros(vec![0]),
            work: batch::Workspace::default(),
        })
    }

    /// The same layer computing by `method`; what the last forward kept is
    /// dropped, so backward needs a new forward. [`ConvMethod::Direct`]
    /// needs stride 1, and [`ConvMethod::Chapter`] a layer with no fused
    /// activation (the chapter's network keeps each a layer of its own):
    /// either is an error otherwise.
    pub fn with_method(mut self, method: ConvMethod) -> Result<Self, Error> {
        if method == ConvMethod::Direct && (self.win.sh, self.win.sw) != (1, 1) {
            return Err(Error::invalid(
                self.describe(),
                "the Direct method needs stride 1; use Columns or Auto",
            ));
        }
        if method == ConvMethod::Chapter && self.act != Fused::Identity {
            return Err(Error::invalid(
                self.describe(),
                "the chapter's method computes no fused activation; build the layer without one",
            ));
        }
        self.method = method;
        self.kept.shape = None;
        Ok(self)
    }

    /// How this layer computes.
    pub fn method(&self) -> ConvMethod {
        self.method
    }

    /// The filters, `(FN, C, FH, FW)`: what section 7.6.1 draws.
    pub fn weight(&self) -> &Array4<T> {
        &self.weight
    }

    /// The biases, `(FN,)`.
    pub fn bias(&self) -> &Array1<T> {
        &self.bias
    }

    /// The gradient of the loss with respect to the filters, `(FN, C, FH,
    /// FW)`, as the last backward left it: the book's `dW`.
    #[doc(alias = "dW")]
    pub fn dw(&self) -> &Array4<T> {
        &self.dw
    }

    /// The gradient with respect to the biases, `(FN,)`: the book's `db`.
    pub fn db(&self) -> &Array1<T> {
        &self.db
    }

    /// The window (filter size, stride, padding).
    pub fn window(&self) -> Window {
        self.win
    }

    fn filters(&self) -> usize {
        self.weight.dim().0
    }

    /// How this layer computes: see [`ConvMethod::algorithm`].
    fn algorithm(&self) -> Algorithm {
        self.method
            .algorithm(self.filters(), self.weight.dim().1, self.win)
    }

    /// [`Layer::output_shape`] without allocating, for every forward.
    fn out_dims(&self, input: &[usize]) -> Result<[usize; 4], Error> {
        let err = |e| self.shape_error(e);
        let [n, c, h, w] = expect_nchw(self, input)?;
        let want_c = self.weight.dim().1;
        if c != want_c {
            return Err(err(ShapeError::mismatch("input channels", want_c, c)));
        }
        let (oh, ow) = self.win.output_size(h, w).map_err(err)?;
        Ok([n, self.filters(), oh, ow])
    }

    fn shape_error(&self, source: ShapeError) -> Error {
        crate::shape_error(self, source)
    }

    /// Backward by the layer's algorithm, leaving dW and db in the layer
    /// and, with `input_grad`, dx in `self.dx`.
    fn backward_pass(&mut self, dout: ArrayViewD<'_, T>, input_grad: bool) -> Result<(), Error> {
        let algorithm = self.algorithm();
        // What the last forward kept must be what this backward reads: a
        // `forward_chapter` called alone keeps columns, not the input.
        let by_chapter = algorithm == Algorithm::Chapter;
        if self.kept.shape.is_some() && self.kept.by_chapter != by_chapter {
            let last = if by_chapter {
                "an engine method"
            } else {
                "forward_chapter"
            };
            let message =
                format!("backward by {algorithm:?} needs a forward by the same method; the last was {last}");
            return Err(Error::invalid(self.describe(), message));
        }
        check_dout(
            &|| self.describe(),
            self.kept.shape.is_some(),
            self.out.shape(),
            dout.shape(),
        )?;
        match algorithm {
            Algorithm::Chapter => {
                let dout = as_nchw(dout).map_err(|e| self.shape_error(e))?;
                let dx = self.backward_chapter(dout)?;
                if input_grad {
                    reuse(&mut self.dx, dx.shape());
                    self.dx.assign(&dx);
                }
                Ok(())
            }
            Algorithm::Columns => self.backward_columns(&tensor4d::contiguous(&dout), input_grad, false),
            Algorithm::Implicit => self.backward_columns(&tensor4d::contiguous(&dout), input_grad, true),
            Algorithm::Direct => self.backward_direct(&tensor4d::contiguous(&dout), input_grad),
        }
    }
}

crate::weight_and_bias_params!(Convolution);

impl<T: Float> Layer<T> for Convolution<T> {
    fn describe(&self) -> String {
        let method = match self.method {
            ConvMethod::Auto => String::new(),
            m => format!(" ({m} method)"),
        };
        format!(
            "Convolution {}@{}{}{method}",
            self.filters(),
            self.win,
            self.act.suffix()
        )
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, Error> {
        self.out_dims(input).map(|d| d.to_vec())
    }

    fn forward(&mut self, x: ArrayViewD<'_, T>, _mode: Mode) -> Result<&ArrayD<T>, Error> {
        let out_shape = self.out_dims(x.shape())?;
        let x = as_nchw(x).map_err(|e| self.shape_error(e))?;
        match self.algorithm() {
            Algorithm::Chapter => {
                let y = self.forward_chapter(x)?;
                reuse(&mut self.out, &out_shape);
                self.out.assign(&y);
            }
            Algorithm::Columns => {
                self.keep_input(x, &out_shape);
                self.forward_columns(false)?;
            }
            Algorithm::Implicit => {
                self.keep_input(x, &out_shape);
                self.forward_columns(true)?;
            }
            Algorithm::Direct => {
                self.keep_input(x, &out_shape);
                self.forward_direct();
            }
        }
        Ok(&self.out)
    }

    fn backward(&mut self, dout: ArrayViewD<'_, T>) -> Result<&ArrayD<T>, Error> {
        self.backward_pass(dout, true)?;
        Ok(&self.dx)
    }
}

impl<T: Float> LayerHooks<T> for Convolution<T> {
    fn backward_params(&mut self, dout: ArrayViewD<'_, T>) -> Result<(), Error> {
        self.backward_pass(dout, false)
    }

    /// Takes over the activation if none is fused yet, unless the layer
    /// computes by the chapter's method, whose network keeps each
    /// activation a layer of its own.
    fn fuse(&mut self, act: Activation) -> bool {
        if self.act != Fused::Identity || self.method == ConvMethod::Chapter {
            return false;
        }
        self.act = Fused::from(act);
        true
    }

    fn window(&self) -> Option<Window> {
        Some(self.win)
    }

    fn operator(&self) -> Option<crate::Operator> {
        Some(crate::Operator::Convolution {
            window: self.win,
            then: self.act.activation(),
        })
    }

    /// A multiply-add per weight and output position, one addition per
    /// output for the bias, and one operation per output for a fused activation.
    fn forward_flops(&self, input: &[usize]) -> Option<u64> {
        let out = crate::elements(&self.output_shape(input).ok()?)?;
        let per_output = 2 * crate::elements(&self.weight.shape()[1..])? + 1;
        let act = u64::from(self.act != Fused::Identity);
        out.checked_mul(per_output + act)
    }

    fn kink_state(&self) -> u64 {
        if self.act != Fused::Relu {
            return 0;
        }
        crate::activation::relu_kinks(self.out.as_slice().unwrap_or_else(|| unreachable!("owned")))
    }
}

impl<T: Float> Convolution<T> {
    /// Keeps a contiguous copy of the input for the engine's methods, and
    /// gives the output buffer its shape.
    fn keep_input(&mut self, x: ArrayView4<'_, T>, out_shape: &[usize]) {
        reuse(&mut self.out, out_shape);
        let (n, c, h, w) = x.dim();
        self.kept.x.clear();
        self.kept.x.extend_from_slice(&tensor4d::contiguous(&x));
        self.kept.shape = Some([n, c, h, w]);
        self.kept.by_chapter = false;
        self.kept.col = Array2::zeros((0, 0));
    }
}
