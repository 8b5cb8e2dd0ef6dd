//! Section 7.4.3's Convolution as the book writes it (`common/layers.py`),
//! each numpy line as a comment above its Rust: the batch unrolled by
//! `im2col`, one matrix product, a reshape and a transpose. It is the
//! reference the engine's methods are tested against, and what
//! [`ConvMethod::Chapter`](super::ConvMethod::Chapter) runs.

use im2col::{col2im, im2col};
use ndarray::{Array4, ArrayView4, Axis};
use tensor4d::Float;

use super::Convolution;
use crate::{Error, Layer};

impl<T: Float> Convolution<T> {
    /// The book's `forward(x)`: `col = im2col(x)` of shape
    /// `(N*OH*OW, C*FH*FW)`, times the filters as `(C*FH*FW, FN)`, plus the
    /// bias, reshaped to `(N, OH, OW, FN)` and transposed to NCHW. Keeps
    /// `col` for backward (and the input's shape), as the book does.
    ///
    /// ```
    /// use layers::{Convolution, Init};
    /// use rand::SeedableRng;
    /// use tensor4d::Window;
    /// let mut rng = rand_pcg::Pcg64::seed_from_u64(0);
    /// let mut conv = Convolution::<f64>::new(3, 10, Window::square(5), Init::He, &mut rng)?;
    /// let x = ndarray::Array4::zeros((2, 3, 7, 7));
    /// assert_eq!(conv.forward_chapter(x.view())?.dim(), (2, 10, 3, 3));
    /// # Ok::<(), layers::Error>(())
    /// ```
    pub fn forward_chapter(&mut self, x: ArrayView4<'_, T>) -> Result<Array4<T>, Error> {
        // FN, C, FH, FW = self.W.shape; N, C, H, W = x.shape; out_h = ...; out_w = ...
        let [n, fnum, out_h, out_w] = self.out_dims(x.shape())?;

        // col = im2col(x, FH, FW, self.stride, self.pad)
        let col = im2col(x, self.win).map_err(|e| self.shape_error(e))?;
        // col_W = self.W.reshape(FN, -1).T
        let col_w = self.weight.to_shape((fnum, col.ncols())).expect("FN x C*FH*FW");
        let col_w = col_w.t();

        // out = np.dot(col, col_W) + self.b
        let out = col.dot(&col_w) + &self.bias;
        // out = out.reshape(N, out_h, out_w, -1).transpose(0, 3, 1, 2)
        let out = out.to_shape((n, out_h, out_w, fnum)).expect("N*OH*OW x FN");
        let out = out.permuted_axes([0, 3, 1, 2]);

        // self.x = x; self.col = col (col_W is the weights, reshaped again in backward)
        let (_, c, h, w) = x.dim();
        self.kept.shape = Some([n, c, h, w]);
        self.kept.by_chapter = true;
        self.kept.col = col;
        self.kept.x = Vec::new();
        Ok(out.as_standard_layout().into_owned())
    }

    /// The book's `backward(dout)`: `dout` transposed to `(N, OH, OW, FN)`
    /// and flattened to `(N*OH*OW, FN)`; `db` its column sums, `dW = col^T
    /// dout` reshaped to `(FN, C, FH, FW)`, and `dx = col2im(dout col_W^T)`.
    /// Needs [`Convolution::forward_chapter`] before it, on a batch of the
    /// shape that `dout` is the gradient for.
    pub fn backward_chapter(&mut self, dout: ArrayView4<'_, T>) -> Result<Array4<T>, Error> {
        // FN, C, FH, FW = self.W.shape
        let (fnum, c, fh, fw) = self.weight.dim();
        let x_shape = self.kept.shape.filter(|_| self.kept.by_chapter);
        let Some([n, _, h, w]) = x_shape else {
            return Err(Error::invalid(
                self.describe(),
                "backward_chapter needs forward_chapter first",
            ));
        };
        let expected = self.out_dims(&[n, c, h, w])?;
        if dout.shape() != expected {
            let e = tensor4d::ShapeError::mismatch(
                "gradient shape",
                format!("{expected:?}"),
                format!("{:?}", dout.shape()),
            );
            return Err(self.shape_error(e));
        }

        // dout = dout.transpose(0,2,3,1).reshape(-1, FN)
        let dout = dout.permuted_axes([0, 2, 3, 1]);
        let dout = dout.to_shape((dout.len() / fnum, fnum)).expect("N*OH*OW x FN");

        // self.db = np.sum(dout, axis=0)
        self.db = dout.sum_axis(Axis(0));
        // self.dW = np.dot(self.col.T, dout)
        let dw = self.kept.col.t().dot(&dout);
        // self.dW = self.dW.transpose(1, 0).reshape(FN, C, FH, FW)
        self.dw = dw
            .t()
            .to_shape((fnum, c, fh, fw))
            .expect("FN x C*FH*FW")
            .into_owned();

        // dcol = np.dot(dout, self.col_W.T)
        let col_w = self.weight.to_shape((fnum, c * fh * fw)).expect("FN x C*FH*FW");
        let dcol = dout.dot(&col_w);
        // dx = col2im(dcol, self.x.shape, FH, FW, self.stride, self.pad)
        col2im(dcol.view(), self.win, (n, c, h, w)).map_err(|e| self.shape_error(e))
    }
}
