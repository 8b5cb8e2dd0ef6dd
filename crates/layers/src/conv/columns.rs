//! The Columns method: each image's windows unrolled as the *columns* of
//! a `(C*FH*FW, OH*OW)` matrix (`im2col::im2col_t_into`, the transpose of
//! that image's rows in the chapter's layout), so that the filters
//! `(FN, C*FH*FW)` times it is the image's output already in NCHW order:
//! nothing is transposed after the product, and images are shared among
//! threads. Small outputs put several images side by side in one matrix,
//! so one larger product replaces several small ones; each output is still
//! its own sum, so grouping changes no bit. Backward unrolls the kept
//! input again (for `dW = dout col^T`) and folds `W^T dout` back with
//! `col2im_t_into` (for dx). The Implicit method is the same code with
//! the columns never written: the GEMM packs them from the input
//! ([`kernels::gemm_windows_with`]) for the forward product and for dW,
//! and, where [`ConvMethod::transposed_input_grad`] says so, from `dout`
//! for dx, the convolution of `dout` with the flipped filters.

use kernels::{MatMut, MatRef, Windows, gemm_windows_with, gemm_with};
use ndarray::{Array4, ArrayView3, ArrayViewMut2, ArrayViewMut3, s};
use rayon::prelude::*;
use tensor4d::{Float, ShapeError, Window};

use super::batch::{Batch, Group, Work, backward_groups, group_size, weight_mat};
use super::{ConvMethod, Convolution};
use crate::Error;
use crate::activation::Fused;
use crate::par::{lane_sum, per_part};

/// Image `j`'s columns into its `(CKK, OHW)` block of a group's
/// `(CKK, ld)` matrix `col`.
fn unroll<T: Float>(
    x: &[T],
    (c, h, w): (usize, usize, usize),
    win: Window,
    col: &mut [T],
    (ckk, ld): (usize, usize),
    (j, ohw): (usize, usize),
) -> Result<(), ShapeError> {
    let x = ArrayView3::from_shape((c, h, w), x).unwrap_or_else(|_| unreachable!("C*H*W elements"));
    let mut col = ArrayViewMut2::from_shape((ckk, ld), col).unwrap_or_else(|_| unreachable!("CKK rows"));
    im2col::im2col_t_into(x, win, col.slice_mut(s![.., j * ohw..(j + 1) * ohw]))
}

/// The adjoint of [`unroll`]: image `j`'s block of `dcol` folded into its dx.
fn fold<T: Float>(
    dcol: &[T],
    (ckk, ld): (usize, usize),
    (j, ohw): (usize, usize),
    win: Window,
    dx: &mut [T],
    (c, h, w): (usize, usize, usize),
) -> Result<(), ShapeError> {
    let dcol = ndarray::ArrayView2::from_shape((ckk, ld), dcol).unwrap_or_else(|_| unreachable!("CKK rows"));
    let dx = ArrayViewMut3::from_shape((c, h, w), dx).unwrap_or_else(|_| unreachable!("C*H*W elements"));
    im2col::col2im_t_into(dcol.slice(s![.., j * ohw..(j + 1) * ohw]), win, dx)
}

impl<T: Float> Convolution<T> {
    /// Forward by columns from the kept input into `self.out` (already of
    /// the output's shape), through the fused activation; with `implicit`,
    /// the columns are packed into the GEMM's panels straight from the
    /// input ([`kernels::Windows`]) instead of written by `im2col` first.
    pub(super) fn forward_columns(&mut self, implicit: bool) -> Result<(), Error> {
        let [n, c, h, w] = self.kept.shape.unwrap_or_else(|| unreachable!("kept by forward"));
        let fnum = self.filters();
        let ohw = self.out.len() / (n * fnum);
        let (chw, ckk) = (c * h * w, c * self.win.area());
        let (win, bias, act) = (self.win, &self.bias, self.act);
        let wmat = weight_mat(&self.weight);
        let out = self.out.as_slice_mut().unwrap_or_else(|| unreachable!("owned"));
        let most = group_size(ohw, n);
        let per = per_part(n);
        let parts = tensor4d::grow(&mut self.work.parts, n.div_ceil(per));
        self.kept
            .x
            .par_chunks(per * chw)
            .zip(out.par_chunks_mut(per * fnum * ohw))
            .zip(parts.par_iter_mut())
            .try_for_each(|((xs, outs), ws)| {
                let Work {
                    buf: ws,
                    gemm: scratch,
                } = ws;
                // Groups of about equal size, the images side by side.
                let images = xs.len() / chw;
                let gs = images.div_ceil(images.div_ceil(most));
                let product = if gs > 1 { fnum * gs * ohw } else { 0 };
                let columns = if implicit { 0 } else { ckk * gs * ohw };
                // Never shrunk: backward grows the same buffer further.
                let need = columns + product;
                ws.resize(ws.len().max(need), T::zero());
                let (col, prod) = ws[..need].split_at_mut(columns);
                for (xg, outg) in xs.chunks(gs * chw).zip(outs.chunks_mut(gs * fnum * ohw)) {
                    let count = xg.len() / chw;
                    let ld = count * ohw;
                    let prod = &mut prod[..product.min(fnum * ld)];
                    // The product's destination: the output itself for one
                    // image, else the group's (FN, count*OHW) matrix.
                    let dst = if count == 1 { &mut *outg } else { &mut *prod };
                    // Start from the bias, then += W (FN x CKK) * col (CKK x ld).
                    for (row, &b) in dst.chunks_exact_mut(ld).zip(bias.iter()) {
                        row.fill(b);
                    }
                    let dst = MatMut::row_major(dst, fnum, ld);
                    if implicit {
                        let windows = Windows::new(xg, (c, h, w), win)?;
                        gemm_windows_with(scratch, T::one(), wmat, windows, T::one(), dst);
                    } else {
                        let col = &mut col[..ckk * ld];
                        for (j, x) in xg.chunks_exact(chw).enumerate() {
                            unroll(x, (c, h, w), win, col, (ckk, ld), (j, ohw))?;
                        }
                        gemm_with(
                            scratch,
                            T::one(),
                            wmat,
                            MatRef::row_major(col, ckk, ld),
                            T::one(),
                            dst,
                        );
                    }
                    // The activation's own function, while the group is in cache.
                    kernels::with_simd(
                        #[inline(always)]
                        |_| {
                            if count == 1 {
                                act.apply_in_place(outg);
                                return;
                            }
                            for (j, out) in outg.chunks_exact_mut(fnum * ohw).enumerate() {
                                for (f, dst) in out.chunks_exact_mut(ohw).enumerate() {
                                    act.apply(dst, &prod[f * ld + j * ohw..f * ld + (j + 1) * ohw]);
                                }
                            }
                        },
                    );
                }
                Ok(())
            })
            .map_err(|e| crate::shape_error(&*self, e))
    }

    /// Backward by columns: per group, `dout_g` (FN x gs*OHW) and `col_g`
    /// (CKK x gs*OHW), the group's images side by side; `dW_g = dout_g
    /// col_g^T`, `db_g` the row sums of `dout_g`, and, if `input_grad`,
    /// dx = col2im(W^T dout_g) image by image. With `implicit`, `col_g`
    /// is never written: the GEMM packs its windows from the input.
    pub(super) fn backward_columns(
        &mut self,
        dout: &[T],
        input_grad: bool,
        implicit: bool,
    ) -> Result<(), Error> {
        let [n, c, h, w] = self
            .kept
            .shape
            .unwrap_or_else(|| unreachable!("checked by the caller"));
        let fnum = self.filters();
        let ohw = self.out.len() / (n * fnum);
        let (chw, ckk) = (c * h * w, c * self.win.area());
        let (win, act) = (self.win, self.act);
        let wt = weight_mat(&self.weight).t();
        // dx as the transposed convolution: dout's windows under `twin`
        // (output H x W again) times the flipped filters.
        let transposed = implicit && input_grad && ConvMethod::transposed_input_grad(c, win);
        let (oh, ow) = (self.out.shape()[2], self.out.shape()[3]);
        let twin = Window {
            ph: win.fh.saturating_sub(1 + win.ph),
            pw: win.fw.saturating_sub(1 + win.pw),
            ..win
        };
        if transposed {
            flip(&self.weight, &mut self.work.flipped);
        }
        let flipped = MatRef::row_major(&self.work.flipped, c, self.work.flipped.len() / c.max(1));
        let body = |ws: &mut Work<T>, grp: Group<'_, T>| {
            let Work {
                buf: ws,
                gemm: scratch,
            } = ws;
            let ld = grp.dout.len() / fnum;
            let count = ld / ohw;
            let columns = if implicit { 0 } else { ckk * ld };
            // With a fused activation, its backward on the way.
            let fused = (act != Fused::Identity).then_some((act, grp.out));
            // The transposed convolution reads dout image by image (with
            // the activation's backward applied first, if fused), and
            // writes dx side by side when the group has several images.
            let masked = if transposed && fused.is_some() {
                fnum * ld
            } else {
                0
            };
            let tail = match (transposed, count) {
                (false, _) => ckk * ld,
                (true, 1) => 0,
                (true, _) => c * count * h * w,
            };
            ws.resize(ws.len().max(masked + fnum * ld + columns + tail), T::zero());
            let (dn, rest) = ws.split_at_mut(masked);
            let (dg, rest) = rest.split_at_mut(fnum * ld);
            let (col, dcol) = rest.split_at_mut(columns);
            let (dn, d): (&[T], &[T]) = if transposed {
                let dn: &[T] = match fused {
                    Some((act, out)) => {
                        act.grad(dn, grp.dout, out);
                        dn
                    }
                    None => grp.dout,
                };
                (dn, side_by_side(dn, None, dg, (fnum, ohw)))
            } else {
                (&[], side_by_side(grp.dout, fused, dg, (fnum, ohw)))
            };
            let (dw, db) = grp.partial.split_at_mut(fnum * ckk);
            let (d_mat, dw_mat) = (MatRef::row_major(d, fnum, ld), MatMut::row_major(dw, fnum, ckk));
            if implicit {
                let windows = Windows::new(grp.x, (c, h, w), win)?;
                gemm_windows_with(scratch, T::one(), d_mat, windows.t(), T::zero(), dw_mat);
            } else {
                for (j, img) in grp.x.chunks_exact(chw).enumerate() {
                    unroll(img, (c, h, w), win, col, (ckk, ld), (j, ohw))?;
                }
                let col = MatRef::row_major(col, ckk, ld);
                gemm_with(scratch, T::one(), d_mat, col.t(), T::zero(), dw_mat);
            }
            for (s, row) in db.iter_mut().zip(d.chunks_exact(ld)) {
                *s = lane_sum(row);
            }
            let Some(dxs) = grp.dx else {
                return Ok(());
            };
            if transposed {
                let windows = Windows::new(dn, (fnum, oh, ow), twin)?;
                let (hw, dx_ld) = (h * w, count * h * w);
                // The product's destination: dx itself for one image, else
                // the group's (C, count*H*W) matrix, copied out after.
                let dst = if count == 1 {
                    &mut *dxs
                } else {
                    &mut dcol[..c * dx_ld]
                };
                gemm_windows_with(
                    scratch,
                    T::one(),
                    flipped,
                    windows,
                    T::zero(),
                    MatMut::row_major(dst, c, dx_ld),
                );
                if count > 1 {
                    for (j, dx) in dxs.chunks_exact_mut(c * hw).enumerate() {
                        for (ch, dst) in dx.chunks_exact_mut(hw).enumerate() {
                            let at = ch * dx_ld + j * hw;
                            dst.copy_from_slice(&dcol[at..at + hw]);
                        }
                    }
                }
            } else {
                let dcol = &mut dcol[..ckk * ld];
                gemm_with(
                    scratch,
                    T::one(),
                    wt,
                    MatRef::row_major(d, fnum, ld),
                    T::zero(),
                    MatMut::row_major(dcol, ckk, ld),
                );
                for (j, dx) in dxs.chunks_exact_mut(chw).enumerate() {
                    fold(dcol, (ckk, ld), (j, ohw), win, dx, (c, h, w))?;
                }
            }
            Ok(())
        };
        let weight_dim = self.weight.dim();
        let batch = Batch::kept(&self.kept, &self.out, dout, &mut self.dx, weight_dim, input_grad);
        backward_groups(
            (&mut self.work.parts, &mut self.work.partial),
            batch,
            (&mut self.dw, &mut self.db),
            body,
        )
        .map_err(|e| crate::shape_error(&*self, e))
    }
}

/// The filters `(FN, C, FH, FW)` turned by half a turn in each window and
/// their channels swapped, into `dst` as the `(C, FN*FH*FW)` matrix of the
/// transposed convolution: `dst[c][f][i][j] = w[f][c][FH-1-i][FW-1-j]`.
fn flip<T: Float>(w: &Array4<T>, dst: &mut Vec<T>) {
    let (fnum, c, fh, fw) = w.dim();
    dst.resize(fnum * c * fh * fw, T::zero());
    for ((ch, f, i, j), d) in ndarray::indices((c, fnum, fh, fw))
        .into_iter()
        .zip(dst.iter_mut())
    {
        *d = w[[f, ch, fh - 1 - i, fw - 1 - j]];
    }
}

/// A group's per-image `(rows, ohw)` matrices, stored one after another in
/// `src`, as one `(rows, count*ohw)` matrix with the images side by side:
/// `src` itself for one image, else copied into `ws` (long enough). With a
/// fused activation and its output (laid out as `src`), the activation's
/// backward is applied on the way, so the result is always the copy.
fn side_by_side<'a, T: Float>(
    src: &'a [T],
    fused: Option<(Fused, &[T])>,
    ws: &'a mut [T],
    (rows, ohw): (usize, usize),
) -> &'a [T] {
    let count = src.len() / (rows * ohw);
    if count == 1 && fused.is_none() {
        return src;
    }
    let ld = count * ohw;
    for (r, dst) in ws[..rows * ld].chunks_exact_mut(ld).enumerate() {
        for (i, dst) in dst.chunks_exact_mut(ohw).enumerate() {
            let at = (i * rows + r) * ohw;
            let src = &src[at..at + ohw];
            match fused {
                Some((act, out)) => act.grad(dst, src, &out[at..at + ohw]),
                None => dst.copy_from_slice(src),
            }
        }
    }
    &ws[..rows * ld]
}
