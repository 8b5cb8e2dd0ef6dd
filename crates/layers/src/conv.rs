use ndarray::{Array1, Array4, ArrayD, ArrayViewD};
use rand::Rng;
use rayon::prelude::*;
use tensor4d::{Float, MatMut, MatRef, ShapeError, Window, gemm, reuse};

use crate::par::per_part;
use crate::{Error, Init, Layer, Mode, check_dout, check_weight_bias, expect_nchw, shape_error};

/// Convolution by im2col and matrix product (section 7.4.3).
///
/// Weights have shape `(FN, C, FH, FW)` and biases `(FN,)`, as in the book
/// (and PyTorch). For each image, forward unrolls the input's windows into
/// the columns of a `(C*FH*FW, OH*OW)` matrix ([`im2col::im2col_t_slice`],
/// the per-image transpose of the chapter's `im2col`) and multiplies the
/// weights viewed as `(FN, C*FH*FW)` by it: the product `(FN, OH*OW)` is
/// the image's output already in NCHW order, so nothing is transposed or
/// copied after the GEMM. Backward reuses those columns for the weight
/// gradient (`dW += dout_n col_n^T`, the transpose being a stride swap for
/// `matrixmultiply`) and folds `W^T dout_n` back with `col2im` for the input
/// gradient.
///
/// Images are processed in parallel on rayon's pool, and the weight
/// gradient is split by filter rows, so results do not depend on the number
/// of threads.
///
/// ```
/// use layers::{Convolution, Layer, Mode};
/// use ndarray::{Array1, Array4, ArrayD};
/// use tensor4d::Window;
/// // One 2x2 filter of ones over a 3x3 ramp: each output sums a window.
/// let mut conv = Convolution::from_weights(Array4::ones((1, 1, 2, 2)), Array1::zeros(1), Window::square(2))?;
/// let x = ArrayD::from_shape_vec(vec![1, 1, 3, 3], (0..9).map(|v| v as f64).collect()).unwrap();
/// let y = conv.forward(x.view(), Mode::Inference)?;
/// assert_eq!(y.as_slice().unwrap(), &[8.0, 12.0, 20.0, 24.0]);
/// # Ok::<(), layers::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Convolution<T> {
    weight: Array4<T>,
    bias: Array1<T>,
    dweight: Array4<T>,
    dbias: Array1<T>,
    /// Stride and padding; the filter size is the weight's.
    win: Window,
    /// Each image's columns, `N x (C*FH*FW, OH*OW)`: what backward needs
    /// for the weight gradient.
    col: Vec<T>,
    /// Shape of the last input, `None` before the first forward.
    x_shape: Option<[usize; 4]>,
    out: ArrayD<T>,
    input_grad: bool,
    /// One `(C*FH*FW, OH*OW)` workspace per parallel part, for `W^T dout_n`.
    dcol: Vec<Vec<T>>,
    dx: ArrayD<T>,
}

impl<T: Float> Convolution<T> {
    /// `out_channels` filters over `in_channels` channels, of the size,
    /// stride and padding of `window`, weights drawn by `init` with
    /// fan-in `in_channels * FH * FW`.
    pub fn new<R: Rng + ?Sized>(
        in_channels: usize,
        out_channels: usize,
        window: Window,
        init: Init,
        rng: &mut R,
    ) -> Result<Self, Error> {
        let shape = [out_channels, in_channels, window.fh, window.fw];
        let fan_in = in_channels * window.fh * window.fw;
        let w = init
            .sample::<T, R>(&shape, fan_in, rng)
            .map_err(|m| Error::invalid("Convolution", m))?;
        let w = w
            .into_dimensionality()
            .unwrap_or_else(|_| unreachable!("sampled with a 4-D shape"));
        Self::from_weights(w, Array1::zeros(out_channels), window)
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
                source: ShapeError::mismatch(
                    "window size",
                    format!("{fh}x{fw} (the weights')"),
                    format!("{}x{}", window.fh, window.fw),
                ),
            });
        }
        if window.sh == 0 || window.sw == 0 {
            return Err(Error::Shape {
                layer: layer(),
                source: ShapeError::Zero { what: "stride" },
            });
        }
        // Keep the weights contiguous whatever the caller passed.
        let weight = weight.as_standard_layout().into_owned();
        Ok(Convolution {
            dweight: Array4::zeros((f, c, fh, fw)),
            dbias: Array1::zeros(f),
            weight,
            bias,
            win: window,
            col: Vec::new(),
            x_shape: None,
            out: ArrayD::zeros(vec![0]),
            input_grad: true,
            dcol: Vec::new(),
            dx: ArrayD::zeros(vec![0]),
        })
    }

    /// The filters, `(FN, C, FH, FW)`: what section 7.6.1 draws.
    pub fn weight(&self) -> &Array4<T> {
        &self.weight
    }

    /// The biases, `(FN,)`.
    pub fn bias(&self) -> &Array1<T> {
        &self.bias
    }

    /// The window (filter size, stride, padding).
    pub fn window(&self) -> Window {
        self.win
    }

    fn filters(&self) -> usize {
        self.weight.dim().0
    }
}

crate::weight_and_bias_params!(Convolution);

impl<T: Float> Layer<T> for Convolution<T> {
    fn describe(&self) -> String {
        format!("Convolution {}@{}", self.filters(), self.win)
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, Error> {
        let err = |e| shape_error(self, e);
        let [n, c, h, w] = expect_nchw(self, input)?;
        let want_c = self.weight.dim().1;
        if c != want_c {
            return Err(err(ShapeError::mismatch("input channels", want_c, c)));
        }
        let (oh, ow) = self.win.output_size(h, w).map_err(err)?;
        Ok(vec![n, self.filters(), oh, ow])
    }

    fn forward(&mut self, x: ArrayViewD<'_, T>, _mode: Mode) -> Result<&ArrayD<T>, Error> {
        let out_shape = self.output_shape(x.shape())?;
        let (n, c, h, w) = (x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]);
        let (fnum, ohw) = (out_shape[1], out_shape[2] * out_shape[3]);
        let (chw, ckk) = (c * h * w, c * self.win.area());
        let xs = tensor4d::contiguous(&x);
        self.col.resize(n * ckk * ohw, T::zero());
        reuse(&mut self.out, &out_shape);
        self.x_shape = Some([n, c, h, w]);

        let per = per_part(n);
        let (win, wmat, bias) = (self.win, &self.weight, &self.bias);
        let wmat = MatRef::row_major(
            wmat.as_slice().unwrap_or_else(|| unreachable!("kept contiguous")),
            fnum,
            ckk,
        );
        let out = self
            .out
            .as_slice_mut()
            .unwrap_or_else(|| unreachable!("owned buffers are contiguous"));
        xs.par_chunks(per * chw)
            .zip(self.col.par_chunks_mut(per * ckk * ohw))
            .zip(out.par_chunks_mut(per * fnum * ohw))
            .try_for_each(|((xs, cols), outs)| {
                let images = xs.chunks_exact(chw).zip(cols.chunks_exact_mut(ckk * ohw));
                for ((x, col), out) in images.zip(outs.chunks_exact_mut(fnum * ohw)) {
                    im2col::im2col_t_slice(x, (c, h, w), win, col)?;
                    // Start from the bias, then out += W (FN x CKK) * col (CKK x OHW).
                    for (row, &b) in out.chunks_exact_mut(ohw).zip(bias.iter()) {
                        row.fill(b);
                    }
                    gemm(
                        T::one(),
                        wmat,
                        MatRef::row_major(col, ckk, ohw),
                        T::one(),
                        MatMut::row_major(out, fnum, ohw),
                    );
                }
                Ok(())
            })
            .map_err(|e| shape_error(self, e))?;
        Ok(&self.out)
    }

    fn backward(&mut self, dout: ArrayViewD<'_, T>) -> Result<&ArrayD<T>, Error> {
        check_dout(
            &|| self.describe(),
            self.x_shape.is_some(),
            self.out.shape(),
            dout.shape(),
        )?;
        let [n, c, h, w] = self.x_shape.unwrap_or_else(|| unreachable!("checked above"));
        let fnum = self.filters();
        let ohw = self.out.len() / (n * fnum);
        let (chw, ckk) = (c * h * w, c * self.win.area());
        let dout = tensor4d::contiguous(&dout);
        let col = &self.col;

        // dW (FN x CKK) = sum_n dout_n (FN x OHW) col_n^T, and db = sum of dout,
        // split by filter rows so that no sum is divided between threads.
        let fper = per_part(fnum);
        let dw = self.dweight.as_slice_mut().unwrap_or_else(|| unreachable!());
        let db = self.dbias.as_slice_mut().unwrap_or_else(|| unreachable!());
        dw.par_chunks_mut(fper * ckk)
            .zip(db.par_chunks_mut(fper))
            .enumerate()
            .for_each(|(k, (dw, db))| {
                let (f0, rows) = (k * fper, db.len());
                db.fill(T::zero());
                for b in 0..n {
                    let d = &dout[(b * fnum + f0) * ohw..(b * fnum + f0 + rows) * ohw];
                    let col_b = MatRef::row_major(&col[b * ckk * ohw..(b + 1) * ckk * ohw], ckk, ohw);
                    let beta = if b == 0 { T::zero() } else { T::one() };
                    gemm(
                        T::one(),
                        MatRef::row_major(d, rows, ohw),
                        col_b.t(),
                        beta,
                        MatMut::row_major(dw, rows, ckk),
                    );
                    for (s, row) in db.iter_mut().zip(d.chunks_exact(ohw)) {
                        *s += row.iter().copied().sum::<T>();
                    }
                }
            });

        if !self.input_grad {
            reuse(&mut self.dx, &[0]);
            return Ok(&self.dx);
        }
        // dx_n = col2im(W^T (CKK x FN) dout_n (FN x OHW)), image by image.
        let per = per_part(n);
        let parts = n.div_ceil(per);
        self.dcol.resize_with(parts, Vec::new);
        reuse(&mut self.dx, &[n, c, h, w]);
        let win = self.win;
        let wt = MatRef::row_major(
            self.weight.as_slice().unwrap_or_else(|| unreachable!()),
            fnum,
            ckk,
        )
        .t();
        let dx = self.dx.as_slice_mut().unwrap_or_else(|| unreachable!());
        self.dcol
            .par_iter_mut()
            .zip(dout.par_chunks(per * fnum * ohw))
            .zip(dx.par_chunks_mut(per * chw))
            .try_for_each(|((ws, douts), dxs)| {
                ws.resize(ckk * ohw, T::zero());
                for (d, dx) in douts.chunks_exact(fnum * ohw).zip(dxs.chunks_exact_mut(chw)) {
                    gemm(
                        T::one(),
                        wt,
                        MatRef::row_major(d, fnum, ohw),
                        T::zero(),
                        MatMut::row_major(ws, ckk, ohw),
                    );
                    im2col::col2im_t_slice(ws, (c, h, w), win, dx)?;
                }
                Ok(())
            })
            .map_err(|e| shape_error(self, e))?;
        Ok(&self.dx)
    }

    fn set_input_grad(&mut self, needed: bool) {
        self.input_grad = needed;
    }
}
