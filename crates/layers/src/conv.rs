use ndarray::{Array1, Array2, Array4, ArrayD, ArrayViewD};
use rand::Rng;
use tensor4d::{Float, MatMut, MatRef, ShapeError, Window, as_nchw, gemm, reuse, reuse2};

use crate::{Error, Init, Layer, Mode, ParamVisitor, ParamVisitorMut, Parameters, check_dout, shape_error};

/// Convolution by im2col and matrix product (section 7.4.3).
///
/// Weights have shape `(FN, C, FH, FW)` and biases `(FN,)`, as in the book
/// (and in PyTorch). Forward unrolls the input with [`im2col::im2col`] into
/// `col` of shape `(N*OH*OW, C*FH*FW)` and, image by image, multiplies the
/// weights viewed as `(FN, C*FH*FW)` by that image's block of `col`
/// transposed. The product is `(FN, OH*OW)`, already the image's NCHW
/// output, so no transpose copy is needed; the transposes are stride swaps
/// handed to `matrixmultiply`. Backward reuses `col` for the weight gradient
/// and folds the column gradient back with `col2im`.
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
    /// im2col of the last input: what backward needs for the weight gradient.
    col: Array2<T>,
    /// Shape of the last input, `None` before the first training forward.
    x_shape: Option<[usize; 4]>,
    out: ArrayD<T>,
    dcol: Array2<T>,
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
        tensor4d::check_nonempty(weight.shape()).map_err(|source| Error::Shape {
            layer: layer(),
            source,
        })?;
        if bias.len() != f {
            return Err(Error::Shape {
                layer: layer(),
                source: ShapeError::mismatch("bias length", f, bias.len()),
            });
        }
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
        Ok(Convolution {
            dweight: Array4::zeros((f, c, fh, fw)),
            dbias: Array1::zeros(f),
            weight,
            bias,
            win: window,
            col: Array2::zeros((0, 0)),
            x_shape: None,
            out: ArrayD::zeros(vec![0]),
            dcol: Array2::zeros((0, 0)),
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

impl<T: Float> Parameters<T> for Convolution<T> {
    fn visit_params(&self, f: &mut ParamVisitor<'_, T>) {
        f(
            "weight",
            self.weight.view().into_dyn(),
            self.dweight.view().into_dyn(),
        );
        f("bias", self.bias.view().into_dyn(), self.dbias.view().into_dyn());
    }

    fn visit_params_mut(&mut self, f: &mut ParamVisitorMut<'_, T>) {
        f(
            "weight",
            self.weight.view_mut().into_dyn(),
            self.dweight.view().into_dyn(),
        );
        f(
            "bias",
            self.bias.view_mut().into_dyn(),
            self.dbias.view().into_dyn(),
        );
    }
}

impl<T: Float> Layer<T> for Convolution<T> {
    fn describe(&self) -> String {
        format!("Convolution {}@{}", self.filters(), self.win)
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
        let want_c = self.weight.dim().1;
        if c != want_c {
            return Err(err(ShapeError::mismatch("input channels", want_c, c)));
        }
        let (oh, ow) = self.win.output_size(h, w).map_err(err)?;
        Ok(vec![n, self.filters(), oh, ow])
    }

    fn forward(&mut self, x: ArrayViewD<'_, T>, _mode: Mode) -> Result<&ArrayD<T>, Error> {
        let out_shape = self.output_shape(x.shape())?;
        let x = as_nchw(x).map_err(|e| shape_error(self, e))?;
        let (n, c, h, w) = x.dim();
        let (fnum, oh, ow) = (out_shape[1], out_shape[2], out_shape[3]);
        let (ohw, ckk) = (oh * ow, c * self.win.area());

        reuse2(&mut self.col, (n * ohw, ckk));
        im2col::im2col_into(x, self.win, self.col.view_mut()).map_err(|e| shape_error(self, e))?;
        self.x_shape = Some([n, c, h, w]);

        reuse(&mut self.out, &out_shape);
        let out = self
            .out
            .as_slice_mut()
            .unwrap_or_else(|| unreachable!("owned buffers are contiguous"));
        let wmat = self
            .weight
            .as_slice()
            .unwrap_or_else(|| unreachable!("owned weights are contiguous"));
        let col = self.col.as_slice().unwrap_or_else(|| unreachable!());
        for (b, out_b) in out.chunks_exact_mut(fnum * ohw).enumerate() {
            // Start from the bias, then out_b += W (FN x CKK) * col_b^T (CKK x OHW).
            for (row, &bias) in out_b.chunks_exact_mut(ohw).zip(self.bias.iter()) {
                row.fill(bias);
            }
            gemm(
                T::one(),
                MatRef::row_major(wmat, fnum, ckk),
                MatRef::row_major(&col[b * ohw * ckk..(b + 1) * ohw * ckk], ohw, ckk).t(),
                T::one(),
                MatMut::row_major(out_b, fnum, ohw),
            );
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
        let [n, c, h, w] = self.x_shape.unwrap_or_else(|| unreachable!("checked above"));
        let (fnum, ohw) = (self.filters(), self.out.len() / (n * self.filters()));
        let ckk = c * self.win.area();
        let dout = tensor4d::contiguous(&dout);

        // db = sum of dout over the batch and positions.
        self.dbias.fill(T::zero());
        for img in dout.chunks_exact(fnum * ohw) {
            for (db, row) in self.dbias.iter_mut().zip(img.chunks_exact(ohw)) {
                *db += row.iter().copied().sum::<T>();
            }
        }

        let col = self.col.as_slice().unwrap_or_else(|| unreachable!());
        let wmat = self.weight.as_slice().unwrap_or_else(|| unreachable!());
        let dw = self.dweight.as_slice_mut().unwrap_or_else(|| unreachable!());
        reuse2(&mut self.dcol, (n * ohw, ckk));
        let dcol = self.dcol.as_slice_mut().unwrap_or_else(|| unreachable!());
        for b in 0..n {
            let dout_b = MatRef::row_major(&dout[b * fnum * ohw..(b + 1) * fnum * ohw], fnum, ohw);
            let cols = b * ohw * ckk..(b + 1) * ohw * ckk;
            // dW (FN x CKK) += dout_b (FN x OHW) * col_b (OHW x CKK)
            let beta = if b == 0 { T::zero() } else { T::one() };
            gemm(
                T::one(),
                dout_b,
                MatRef::row_major(&col[cols.clone()], ohw, ckk),
                beta,
                MatMut::row_major(dw, fnum, ckk),
            );
            // dcol_b (OHW x CKK) = dout_b^T (OHW x FN) * W (FN x CKK)
            gemm(
                T::one(),
                dout_b.t(),
                MatRef::row_major(wmat, fnum, ckk),
                T::zero(),
                MatMut::row_major(&mut dcol[cols], ohw, ckk),
            );
        }

        reuse(&mut self.dx, &[n, c, h, w]);
        let dx = self
            .dx
            .view_mut()
            .into_dimensionality()
            .unwrap_or_else(|_| unreachable!("shaped 4-D above"));
        im2col::col2im_into(self.dcol.view(), self.win, dx).map_err(|e| shape_error(self, e))?;
        Ok(&self.dx)
    }
}
