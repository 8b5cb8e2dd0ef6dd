//! The Pooling layer (section 7.4.4) and the one place that decides how it
//! computes: the chapter's method (`chapter.rs`, the book's code line by
//! line) or the direct one (`direct.rs`, the same arithmetic read straight
//! from the input).

mod chapter;
mod direct;

use ndarray::{ArrayD, ArrayViewD};
use tensor4d::{Float, Window, as_nchw, reuse};

use crate::{Error, Layer, LayerHooks, Mode, Parameters, check_dout, expect_nchw, shape_error};

/// Max or average pooling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    /// The largest value of each window (the first one on ties; NaN if any is NaN).
    Max,
    /// The mean of each window; padding counts as zeros in the mean.
    Average,
}

/// How [`Pooling`] computes. Both give the same bits: each window is
/// reduced with the same operations in the same order (tests hold them to
/// it, NaN and ties included).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PoolMethod {
    /// Section 7.4.4 as the book writes it ([`Pooling::forward_chapter`]):
    /// `im2col` of the whole batch, reshaped to one row per window and
    /// channel, a max (or mean) per row, transposed back to NCHW; backward
    /// scatters into those rows and folds them back with `col2im`.
    Chapter,
    /// The same reductions read straight from each input plane, in
    /// parallel, without the expanded matrix (several times faster).
    #[default]
    Direct,
}

impl PoolMethod {
    /// Both methods, [`PoolMethod::Direct`] first.
    pub const ALL: [PoolMethod; 2] = [PoolMethod::Direct, PoolMethod::Chapter];

    /// Its name in lower case: `direct`, `chapter`.
    pub fn name(self) -> &'static str {
        match self {
            PoolMethod::Chapter => "chapter",
            PoolMethod::Direct => "direct",
        }
    }
}

impl std::fmt::Display for PoolMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for PoolMethod {
    type Err = Error;

    /// The method of that [`PoolMethod::name`].
    fn from_str(s: &str) -> Result<Self, Error> {
        PoolMethod::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                Error::invalid(
                    "Pooling",
                    format!("unknown method {s:?}; expected direct or chapter"),
                )
            })
    }
}

/// Pooling (section 7.4.4).
///
/// Padding, if any, pads with zeros as im2col does (so a max over a window
/// that overhangs the edge sees those zeros); the chapter's networks pool
/// without padding. Max pooling keeps, for each output, which element of
/// its window won: what backward needs.
///
/// ```
/// use layers::{Layer, Mode, PoolMethod, Pooling};
/// use ndarray::ArrayD;
/// use tensor4d::Window;
/// let x = ArrayD::from_shape_vec(vec![1, 1, 2, 4], vec![1.0, 5.0, 2.0, 0.0, 3.0, 4.0, 8.0, 6.0]).unwrap();
/// let mut max = Pooling::<f32>::max(Window::square(2).with_stride(2));
/// assert_eq!(max.forward(x.view(), Mode::Train)?.as_slice().unwrap(), &[5.0, 8.0]);
/// // Backward sends each gradient to its window's maximum.
/// let dout = ArrayD::from_shape_vec(vec![1, 1, 1, 2], vec![1.0, 2.0]).unwrap();
/// assert_eq!(max.backward(dout.view())?.as_slice().unwrap(), &[0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 2.0, 0.0]);
/// let mut avg = Pooling::<f32>::average(Window::square(2).with_stride(2)).with_method(PoolMethod::Chapter);
/// assert_eq!(avg.forward(x.view(), Mode::Train)?.as_slice().unwrap(), &[3.25, 4.0]);
/// # Ok::<(), layers::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Pooling<T> {
    kind: PoolKind,
    method: PoolMethod,
    win: Window,
    /// Shape of the last input, `None` before the first forward.
    x_shape: Option<[usize; 4]>,
    /// The method of the last forward, whose layout `argmax` is in.
    kept_by: PoolMethod,
    /// For max pooling, the winning position within each window, one per
    /// output: in NCHW order (Direct) or the chapter's `(N, OH, OW, C)`.
    /// `u16`: windows have at most 65,536 elements, half the memory of `u32`.
    argmax: Vec<u16>,
    out: ArrayD<T>,
    dx: ArrayD<T>,
}

/// The largest window: positions within it are kept as `u16`.
const MAX_AREA: usize = 1 << 16;

impl<T: Float> Pooling<T> {
    /// Pooling of the given kind over `window` (size, stride, padding);
    /// [`Pooling::max`] and [`Pooling::average`] say the kind in the name.
    ///
    /// ```
    /// use layers::{Layer, Mode, PoolKind, Pooling, Window};
    /// use ndarray::ArrayD;
    ///
    /// // AlexNet's overlapping pooling: 3x3 windows, stride 2.
    /// let mut pool = Pooling::<f32>::new(PoolKind::Max, Window::square(3).with_stride(2));
    /// let x = ArrayD::zeros(vec![2, 4, 13, 13]);
    /// assert_eq!(pool.forward(x.view(), Mode::Inference)?.shape(), &[2, 4, 6, 6]);
    /// # Ok::<(), layers::Error>(())
    /// ```
    pub fn new(kind: PoolKind, window: Window) -> Self {
        Pooling {
            kind,
            method: PoolMethod::Direct,
            win: window,
            x_shape: None,
            kept_by: PoolMethod::Direct,
            argmax: Vec::new(),
            out: ArrayD::zeros(vec![0]),
            dx: ArrayD::zeros(vec![0]),
        }
    }

    /// Max pooling over `window` (section 7.3): each window's largest
    /// value; backward sends each gradient to the element that won.
    ///
    /// ```
    /// use layers::{Layer, Mode, Pooling, Window};
    /// use ndarray::{ArrayD, IxDyn};
    ///
    /// let mut pool = Pooling::max(Window::square(2).with_stride(2));
    /// let x = ArrayD::from_shape_vec(IxDyn(&[1, 1, 4, 4]), vec![
    ///     1.0, 2.0, 1.0, 0.0,
    ///     0.0, 1.0, 2.0, 3.0,
    ///     3.0, 0.0, 1.0, 2.0,
    ///     2.0, 4.0, 0.0, 1.0,
    /// ])?;
    /// // Figure 7-14's example.
    /// assert_eq!(pool.forward(x.view(), Mode::Train)?.as_slice().unwrap(), &[2.0, 3.0, 4.0, 2.0]);
    /// let dx = pool.backward(ArrayD::ones(vec![1, 1, 2, 2]).view())?;
    /// assert_eq!(dx.sum(), 4.0);
    /// assert_eq!((dx[[0, 0, 0, 1]], dx[[0, 0, 1, 3]], dx[[0, 0, 3, 1]]), (1.0, 1.0, 1.0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn max(window: Window) -> Self {
        Self::new(PoolKind::Max, window)
    }

    /// Average pooling over `window`: each window's mean; backward spreads
    /// each gradient evenly over its window.
    ///
    /// ```
    /// use layers::{Layer, Mode, Pooling, Window};
    /// use ndarray::{ArrayD, IxDyn};
    ///
    /// let mut pool = Pooling::average(Window::square(2).with_stride(2));
    /// let x = ArrayD::from_shape_vec(IxDyn(&[1, 1, 2, 4]), vec![1.0, 3.0, 0.0, 4.0, 5.0, 7.0, 8.0, 0.0])?;
    /// assert_eq!(pool.forward(x.view(), Mode::Train)?.as_slice().unwrap(), &[4.0, 3.0]);
    /// let dx = pool.backward(ArrayD::from_elem(vec![1, 1, 1, 2], 4.0).view())?;
    /// assert!(dx.iter().all(|&g| g == 1.0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn average(window: Window) -> Self {
        Self::new(PoolKind::Average, window)
    }

    /// The same layer computing by `method`; what the last forward kept is
    /// dropped, so backward needs a new forward.
    pub fn with_method(self, method: PoolMethod) -> Self {
        Pooling {
            method,
            x_shape: None,
            ..self
        }
    }

    /// How this layer computes.
    pub fn method(&self) -> PoolMethod {
        self.method
    }

    /// Max or average.
    pub fn kind(&self) -> PoolKind {
        self.kind
    }

    /// The window (size, stride, padding).
    pub fn window(&self) -> Window {
        self.win
    }

    /// [`Layer::output_shape`] without allocating, for every forward.
    fn out_dims(&self, input: &[usize]) -> Result<[usize; 4], Error> {
        let err = |e| shape_error(self, e);
        let [n, c, h, w] = expect_nchw(self, input)?;
        if self.win.area() > MAX_AREA {
            let m = format!("a window of {} elements; at most {MAX_AREA}", self.win.area());
            return Err(Error::invalid(self.describe(), m));
        }
        let (oh, ow) = self.win.output_size(h, w).map_err(err)?;
        Ok([n, c, oh, ow])
    }
}

impl<T: Float> Parameters<T> for Pooling<T> {}

impl<T: Float> Layer<T> for Pooling<T> {
    fn describe(&self) -> String {
        let kind = match self.kind {
            PoolKind::Max => "max",
            PoolKind::Average => "average",
        };
        let method = match self.method {
            PoolMethod::Chapter => " (chapter method)",
            PoolMethod::Direct => "",
        };
        format!("Pooling {kind} {}{method}", self.win)
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, Error> {
        self.out_dims(input).map(|d| d.to_vec())
    }

    fn forward(&mut self, x: ArrayViewD<'_, T>, _mode: Mode) -> Result<&ArrayD<T>, Error> {
        let out_shape = self.out_dims(x.shape())?;
        let x = as_nchw(x).map_err(|e| shape_error(self, e))?;
        match self.method {
            PoolMethod::Chapter => {
                let y = self.forward_chapter(x)?;
                reuse(&mut self.out, &out_shape);
                self.out.assign(&y);
            }
            PoolMethod::Direct => {
                let (n, c, h, w) = x.dim();
                self.x_shape = Some([n, c, h, w]);
                self.kept_by = PoolMethod::Direct;
                reuse(&mut self.out, &out_shape);
                self.argmax.resize(self.out.len(), 0);
                self.forward_direct(&tensor4d::contiguous(&x));
            }
        }
        Ok(&self.out)
    }

    fn backward(&mut self, dout: ArrayViewD<'_, T>) -> Result<&ArrayD<T>, Error> {
        // `argmax` is in the layout of the method that filled it: a
        // `forward_chapter` called alone leaves the chapter's.
        if self.x_shape.is_some() && self.kept_by != self.method {
            let message = format!(
                "backward by {:?} needs a forward by the same method; the last was {:?}",
                self.method, self.kept_by
            );
            return Err(Error::invalid(self.describe(), message));
        }
        check_dout(
            &|| self.describe(),
            self.x_shape.is_some(),
            self.out.shape(),
            dout.shape(),
        )?;
        let x_shape = self.x_shape.unwrap_or_else(|| unreachable!("checked above"));
        match self.method {
            PoolMethod::Chapter => {
                let dout = as_nchw(dout).map_err(|e| shape_error(self, e))?;
                let dx = self.backward_chapter(dout)?;
                reuse(&mut self.dx, dx.shape());
                self.dx.assign(&dx);
            }
            PoolMethod::Direct => {
                reuse(&mut self.dx, &x_shape);
                self.backward_direct(&tensor4d::contiguous(&dout));
            }
        }
        Ok(&self.dx)
    }
}

impl<T: Float> LayerHooks<T> for Pooling<T> {
    fn window(&self) -> Option<Window> {
        Some(self.win)
    }

    fn operator(&self) -> Option<crate::Operator> {
        Some(crate::Operator::Pooling {
            kind: self.kind,
            window: self.win,
        })
    }

    /// One comparison (max) or addition (average) per window element and
    /// output, and for average pooling one division per output.
    fn forward_flops(&self, input: &[usize]) -> Option<u64> {
        let out = crate::elements(&self.output_shape(input).ok()?)?;
        let divide = u64::from(self.kind == PoolKind::Average);
        out.checked_mul((self.win.fh * self.win.fw) as u64 + divide)
    }

    fn kink_state(&self) -> u64 {
        match self.kind {
            PoolKind::Max => crate::gradcheck::fingerprint(self.argmax.iter().map(|&k| k as u64)),
            PoolKind::Average => 0,
        }
    }
}
