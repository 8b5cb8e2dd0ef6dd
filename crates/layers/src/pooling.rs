use ndarray::{Array2, ArrayD, ArrayViewD};
use tensor4d::{Float, ShapeError, Window, as_nchw, reuse, reuse2};

use crate::{Error, Layer, Mode, Parameters, check_dout, shape_error};

/// Max or average pooling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    /// The largest value of each window (the first one on ties; NaN if any is NaN).
    Max,
    /// The mean of each window; padding counts as zeros in the mean.
    Average,
}

/// Pooling (section 7.4.4), built as the chapter builds it: expand each
/// channel's windows into rows with [`im2col::im2col_per_channel`], reduce
/// each row, and in backward scatter the gradient into those rows and fold
/// them back with `col2im`.
///
/// Padding, if any, pads with zeros as im2col does (so a max over a window
/// that overhangs the edge sees those zeros); the chapter's networks pool
/// without padding.
///
/// ```
/// use layers::{Layer, Mode, Pooling};
/// use ndarray::ArrayD;
/// use tensor4d::Window;
/// let x = ArrayD::from_shape_vec(vec![1, 1, 2, 4], vec![1.0, 5.0, 2.0, 0.0, 3.0, 4.0, 8.0, 6.0]).unwrap();
/// let mut max = Pooling::<f32>::max(Window::square(2).with_stride(2));
/// assert_eq!(max.forward(x.view(), Mode::Train)?.as_slice().unwrap(), &[5.0, 8.0]);
/// let mut avg = Pooling::<f32>::average(Window::square(2).with_stride(2));
/// assert_eq!(avg.forward(x.view(), Mode::Train)?.as_slice().unwrap(), &[3.25, 4.0]);
/// # Ok::<(), layers::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Pooling<T> {
    kind: PoolKind,
    win: Window,
    /// Shape of the last input, `None` before the first forward.
    x_shape: Option<[usize; 4]>,
    /// For max pooling, the winning column of each row: what backward needs.
    argmax: Vec<usize>,
    /// Workspace for the expansion (forward) and its gradient (backward).
    col: Array2<T>,
    out: ArrayD<T>,
    dx: ArrayD<T>,
}

impl<T: Float> Pooling<T> {
    /// Pooling of the given kind over `window` (size, stride, padding).
    pub fn new(kind: PoolKind, window: Window) -> Self {
        Pooling {
            kind,
            win: window,
            x_shape: None,
            argmax: Vec::new(),
            col: Array2::zeros((0, 0)),
            out: ArrayD::zeros(vec![0]),
            dx: ArrayD::zeros(vec![0]),
        }
    }

    /// Max pooling over `window`.
    pub fn max(window: Window) -> Self {
        Self::new(PoolKind::Max, window)
    }

    /// Average pooling over `window`.
    pub fn average(window: Window) -> Self {
        Self::new(PoolKind::Average, window)
    }

    /// Max or average.
    pub fn kind(&self) -> PoolKind {
        self.kind
    }
}

impl<T: Float> Parameters<T> for Pooling<T> {}

impl<T: Float> Layer<T> for Pooling<T> {
    fn describe(&self) -> String {
        let kind = match self.kind {
            PoolKind::Max => "max",
            PoolKind::Average => "average",
        };
        format!("Pooling {kind} {}", self.win)
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, Error> {
        let err = |e| shape_error(self, e);
        let &[n, c, h, w] = input else {
            return Err(err(ShapeError::Rank {
                expected: "4 (N, C, H, W)",
                found: input.to_vec(),
            }));
        };
        tensor4d::check_nonempty(input).map_err(err)?;
        let (oh, ow) = self.win.output_size(h, w).map_err(err)?;
        Ok(vec![n, c, oh, ow])
    }

    fn forward(&mut self, x: ArrayViewD<'_, T>, _mode: Mode) -> Result<&ArrayD<T>, Error> {
        let out_shape = self.output_shape(x.shape())?;
        let x = as_nchw(x).map_err(|e| shape_error(self, e))?;
        let (n, c, h, w) = x.dim();
        let area = self.win.area();
        let rows = out_shape.iter().product::<usize>();
        reuse2(&mut self.col, (rows, area));
        im2col::im2col_per_channel_into(x, self.win, self.col.view_mut())
            .map_err(|e| shape_error(self, e))?;
        self.x_shape = Some([n, c, h, w]);

        reuse(&mut self.out, &out_shape);
        let out = self
            .out
            .as_slice_mut()
            .unwrap_or_else(|| unreachable!("owned buffers are contiguous"));
        let col = self.col.as_slice().unwrap_or_else(|| unreachable!());
        match self.kind {
            PoolKind::Max => {
                self.argmax.resize(rows, 0);
                for ((o, arg), row) in out.iter_mut().zip(&mut self.argmax).zip(col.chunks_exact(area)) {
                    let (mut best, mut at) = (row[0], 0);
                    for (k, &v) in row.iter().enumerate().skip(1) {
                        // A NaN wins, so divergence shows in the loss.
                        if v > best || v.is_nan() && !best.is_nan() {
                            (best, at) = (v, k);
                        }
                    }
                    (*o, *arg) = (best, at);
                }
            }
            PoolKind::Average => {
                let inv = T::one() / T::of(area as f64);
                for (o, row) in out.iter_mut().zip(col.chunks_exact(area)) {
                    *o = row.iter().copied().sum::<T>() * inv;
                }
            }
        }
        Ok(&self.out)
    }

    fn backward(&mut self, dout: ArrayViewD<'_, T>) -> Result<&ArrayD<T>, Error> {
        check_dout(
            &|| self.describe(),
            self.x_shape.is_some(),
            self.out.shape(),
            dout.shape(),
        )?;
        let x_shape = self.x_shape.unwrap_or_else(|| unreachable!("checked above"));
        let area = self.win.area();
        let dout = tensor4d::contiguous(&dout);
        // The forward expansion is no longer needed: reuse it for dcol.
        reuse2(&mut self.col, (dout.len(), area));
        let dcol = self.col.as_slice_mut().unwrap_or_else(|| unreachable!());
        match self.kind {
            PoolKind::Max => {
                dcol.fill(T::zero());
                for ((row, &d), &k) in dcol.chunks_exact_mut(area).zip(dout.iter()).zip(&self.argmax) {
                    row[k] = d;
                }
            }
            PoolKind::Average => {
                let inv = T::one() / T::of(area as f64);
                for (row, &d) in dcol.chunks_exact_mut(area).zip(dout.iter()) {
                    row.fill(d * inv);
                }
            }
        }
        reuse(&mut self.dx, &x_shape);
        let dx = self
            .dx
            .view_mut()
            .into_dimensionality()
            .unwrap_or_else(|_| unreachable!("shaped 4-D above"));
        im2col::col2im_per_channel_into(self.col.view(), self.win, dx).map_err(|e| shape_error(self, e))?;
        Ok(&self.dx)
    }
}
