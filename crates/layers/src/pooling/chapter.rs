//! Section 7.4.4's Pooling as the book writes it (`common/layers.py`),
//! each numpy line as a comment above its Rust: the batch unrolled by
//! `im2col`, reshaped to one row per window and channel, reduced row by
//! row, transposed back to NCHW. What [`PoolMethod::Chapter`] runs, and
//! the reference the direct method is tested against, bit for bit.
//!
//! [`PoolMethod::Chapter`]: super::PoolMethod::Chapter

use im2col::{col2im, im2col};
use ndarray::{Array2, Array4, ArrayView1, ArrayView4};
use tensor4d::{Float, ShapeError};

use super::{PoolKind, PoolMethod, Pooling};
use crate::{Error, Layer, shape_error};

/// `np.max(row)` and `np.argmax(row)`: the first largest element, or the
/// first NaN (numpy's rule: a NaN is the maximum).
fn max_and_argmax<T: Float>(row: ArrayView1<'_, T>) -> (T, u16) {
    let mut best = 0;
    for (k, &v) in row.iter().enumerate() {
        if row[best].is_nan() {
            break;
        }
        if v.is_nan() || v > row[best] {
            best = k;
        }
    }
    (row[best], best as u16)
}

/// `np.mean(row)`, as the sum from zero in order times `1/len` (the
/// direct method's rounding, which differs from numpy's division in the
/// last bit).
fn mean<T: Float>(row: ArrayView1<'_, T>) -> T {
    row.iter().fold(T::zero(), |s, &v| s + v) * (T::one() / T::of(row.len() as f64))
}

impl<T: Float> Pooling<T> {
    /// The book's `forward(x)`: `col = im2col(x)` reshaped to
    /// `(N*OH*OW*C, FH*FW)`, one row per window and channel; the max of each
    /// row (and, kept for backward, where it is), or its mean for average
    /// pooling; reshaped to `(N, OH, OW, C)` and transposed to NCHW.
    ///
    /// ```
    /// use layers::Pooling;
    /// use tensor4d::Window;
    /// let x = ndarray::Array4::from_shape_fn((1, 2, 4, 4), |(_, c, i, j)| (c * 16 + i * 4 + j) as f32);
    /// let mut pool = Pooling::max(Window::square(2).with_stride(2));
    /// let y = pool.forward_chapter(x.view())?;
    /// assert_eq!(y.as_slice().unwrap(), &[5.0, 7.0, 13.0, 15.0, 21.0, 23.0, 29.0, 31.0]);
    /// # Ok::<(), layers::Error>(())
    /// ```
    pub fn forward_chapter(&mut self, x: ArrayView4<'_, T>) -> Result<Array4<T>, Error> {
        // N, C, H, W = x.shape; out_h = ...; out_w = ...
        let [n, c, out_h, out_w] = self.out_dims(x.shape())?;
        let pool_size = self.win.area();

        // col = im2col(x, self.pool_h, self.pool_w, self.stride, self.pad)
        let col = im2col(x, self.win).map_err(|e| shape_error(self, e))?;
        // col = col.reshape(-1, self.pool_h*self.pool_w)
        let col = col
            .into_shape_with_order((n * out_h * out_w * c, pool_size))
            .expect("a row per window");

        // arg_max = np.argmax(col, axis=1); out = np.max(col, axis=1)
        let (out, arg_max): (Vec<T>, Vec<u16>) = match self.kind {
            PoolKind::Max => col.rows().into_iter().map(max_and_argmax).unzip(),
            PoolKind::Average => (col.rows().into_iter().map(mean).collect(), Vec::new()),
        };
        // out = out.reshape(N, out_h, out_w, C).transpose(0, 3, 1, 2)
        let out = Array4::from_shape_vec((n, out_h, out_w, c), out).expect("an output per row");
        let out = out.permuted_axes([0, 3, 1, 2]);

        // self.x = x; self.arg_max = arg_max
        let (_, _, h, w) = x.dim();
        self.x_shape = Some([n, c, h, w]);
        self.kept_by = PoolMethod::Chapter;
        self.argmax = arg_max;
        Ok(out.as_standard_layout().into_owned())
    }

    /// The book's `backward(dout)`: `dout` transposed to `(N, OH, OW, C)`,
    /// each gradient put in its window's row at the position of the max
    /// (or spread over the row for average pooling), and the rows folded
    /// back by `col2im`. Needs [`Pooling::forward_chapter`] before it.
    pub fn backward_chapter(&mut self, dout: ArrayView4<'_, T>) -> Result<Array4<T>, Error> {
        let kept = self.x_shape.filter(|_| self.kept_by == PoolMethod::Chapter);
        let Some([n, c, h, w]) = kept else {
            return Err(Error::invalid(
                self.describe(),
                "backward_chapter needs forward_chapter first",
            ));
        };
        let expected = self.out_dims(&[n, c, h, w])?;
        if dout.shape() != expected {
            let found = format!("{:?}", dout.shape());
            let e = ShapeError::mismatch("gradient shape", format!("{expected:?}"), found);
            return Err(shape_error(self, e));
        }
        let pool_size = self.win.area();

        // dout = dout.transpose(0, 2, 3, 1)
        let dout = dout.permuted_axes([0, 2, 3, 1]);
        // dmax = np.zeros((dout.size, pool_size))
        let mut dmax = Array2::zeros((dout.len(), pool_size));
        // dmax[np.arange(self.arg_max.size), self.arg_max.flatten()] = dout.flatten()
        let rows = dmax.rows_mut().into_iter().zip(dout.iter());
        match self.kind {
            PoolKind::Max => rows
                .zip(&self.argmax)
                .for_each(|((mut row, &d), &k)| row[k as usize] = d),
            PoolKind::Average => {
                let inv = T::one() / T::of(pool_size as f64);
                rows.for_each(|(mut row, &d)| row.fill(d * inv))
            }
        }
        // dcol = dmax.reshape(dmax.shape[0] * dmax.shape[1] * dmax.shape[2], -1)
        let dcol = dmax
            .into_shape_with_order((dout.len() / c, c * pool_size))
            .expect("a row per position");
        // dx = col2im(dcol, self.x.shape, self.pool_h, self.pool_w, self.stride, self.pad)
        col2im(dcol.view(), self.win, (n, c, h, w)).map_err(|e| shape_error(self, e))
    }
}
