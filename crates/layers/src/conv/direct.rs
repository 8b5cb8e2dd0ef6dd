//! The Direct method, for stride 1: no `im2col` at all. Outputs are
//! computed on the padded input's width (the [`Wide`] layout), so that
//! every window row is a contiguous run of the padded input, which the
//! small-matrix kernels (`kernels::gemm_few_rows` forward, `gemm_dots` for
//! the weight gradient) read in place; the input gradient is `W^T dout`
//! added back window row by window row, with no `col2im`. Where filters
//! are few (`ConvMethod::Auto` picks it for at most 16), this beats
//! packing them for a GEMM; for a network's first layer, whose backward
//! needs no input gradient, it is all dot products.

use kernels::{MatMut, MatRef, Rows, gemm_dots, gemm_few_rows, gemm_with};
use rayon::prelude::*;
use tensor4d::{Float, Window};

use super::Convolution;
use super::batch::{Batch, Group, Work, backward_groups, weight_mat};
use crate::Error;
use crate::activation::Fused;
use crate::par::{lane_sum, per_part};

impl<T: Float> Convolution<T> {
    /// Forward in the [`Wide`] layout from the kept input into `self.out`
    /// (already of the output's shape): per image, the padded input (or the
    /// input itself), one product of the weights by its windows read in
    /// place, and the valid columns copied out (through the fused activation).
    pub(super) fn forward_direct(&mut self) {
        let [n, c, h, w] = self.kept.shape.unwrap_or_else(|| unreachable!("kept by forward"));
        let wide = Wide::new(self.win, (c, h, w));
        wide.starts(&mut self.work.starts);
        let fnum = self.filters();
        let (oh, ow) = (self.out.shape()[2], self.out.shape()[3]);
        let (chw, ohw) = (c * h * w, oh * ow);
        let (win, bias, act, starts) = (self.win, &self.bias, self.act, &self.work.starts);
        let wmat = weight_mat(&self.weight);
        let out = self.out.as_slice_mut().unwrap_or_else(|| unreachable!("owned"));
        let pad_len = wide.pad_len(c);
        let per = per_part(n);
        let parts = tensor4d::grow(&mut self.work.parts, n.div_ceil(per));
        self.kept
            .x
            .par_chunks(per * chw)
            .zip(out.par_chunks_mut(per * fnum * ohw))
            .zip(parts.par_iter_mut())
            .for_each(|((xs, outs), ws)| {
                let ws = &mut ws.buf;
                // Never shrunk: backward grows the same buffer further.
                let need = pad_len + fnum * wide.width;
                ws.resize(ws.len().max(need), T::zero());
                let (xp, cw) = ws[..need].split_at_mut(pad_len);
                for (x, out) in xs.chunks_exact(chw).zip(outs.chunks_exact_mut(fnum * ohw)) {
                    let xin = wide.padded(x, (c, h, w), win, xp);
                    for (row, &b) in cw.chunks_exact_mut(wide.width).zip(bias.iter()) {
                        row.fill(b);
                    }
                    let rows = Rows::new(xin, starts, wide.width);
                    gemm_few_rows(wmat, rows, MatMut::row_major(cw, fnum, wide.width));
                    // The valid columns, then the fused activation if any over
                    // the whole image at once: row by row, a short row (10 or
                    // 28 outputs) would leave much of it to the scalar tail.
                    kernels::with_simd(
                        #[inline(always)]
                        |_| {
                            let filters = out.chunks_exact_mut(ohw).zip(cw.chunks_exact(wide.width));
                            for (dst, src) in filters {
                                for (dst, src) in dst.chunks_exact_mut(ow).zip(src.chunks(wide.wp)) {
                                    dst.copy_from_slice(&src[..ow]);
                                }
                            }
                            act.apply_in_place(out);
                        },
                    );
                }
            });
    }

    /// Backward in the [`Wide`] layout, images grouped as in the general
    /// path: `dout` laid out wide (zeros in the columns between rows, so
    /// they add nothing), the weight gradient as dot products with the
    /// windows read in place, and the input gradient as `W^T dout` added
    /// back window row by window row (contiguous adds, no `col2im`).
    pub(super) fn backward_direct(&mut self, dout: &[T], input_grad: bool) -> Result<(), Error> {
        let [_, c, h, w] = self
            .kept
            .shape
            .unwrap_or_else(|| unreachable!("checked by the caller"));
        let wide = Wide::new(self.win, (c, h, w));
        wide.starts(&mut self.work.starts);
        let (fnum, ckk) = (self.filters(), self.weight.len() / self.filters());
        let (oh, ow) = (self.out.shape()[2], self.out.shape()[3]);
        let (chw, ohw, width) = (c * h * w, oh * ow, wide.width);
        let (win, act) = (self.win, self.act);
        let wt = weight_mat(&self.weight).t();
        let pad_len = wide.pad_len(c);
        let starts = &self.work.starts;
        let body = |ws: &mut Work<T>, grp: Group<'_, T>| {
            let Work {
                buf: ws,
                gemm: scratch,
            } = ws;
            let count = grp.x.len() / chw;
            let ld = count * width;
            let dcol_len = if input_grad { ckk * ld } else { 0 };
            let need = fnum * ld + dcol_len + (count + 1) * pad_len + fnum * ohw;
            ws.resize(ws.len().max(need), T::zero());
            let (dg, rest) = ws.split_at_mut(fnum * ld);
            let (dcol, rest) = rest.split_at_mut(dcol_len);
            let (xp, rest) = rest.split_at_mut(count * pad_len);
            let (dxp, rest) = rest.split_at_mut(pad_len);
            let grad = &mut rest[..fnum * ohw];
            // dout wide, images side by side, zeros in the columns between
            // rows: the fused activation's backward over each whole image
            // first, as a row (10 or 28 outputs) would leave much of it to
            // the scalar tail.
            let images = grp
                .dout
                .chunks_exact(fnum * ohw)
                .zip(grp.out.chunks_exact(fnum * ohw));
            kernels::with_simd(
                #[inline(always)]
                |_| {
                    for (j, (d, out)) in images.enumerate() {
                        let g: &[T] = match act {
                            Fused::Identity => d,
                            _ => {
                                act.grad(grad, d, out);
                                grad
                            }
                        };
                        for (f, g) in g.chunks_exact(ohw).enumerate() {
                            let dst = &mut dg[f * ld + j * width..][..width];
                            for (dst, src) in dst.chunks_mut(wide.wp).zip(g.chunks_exact(ow)) {
                                let (dst, gap) = dst.split_at_mut(ow);
                                dst.copy_from_slice(src);
                                gap.fill(T::zero());
                            }
                        }
                    }
                },
            );
            let dg = &dg[..];
            let (dw, db) = grp.partial.split_at_mut(fnum * ckk);
            // The group's windows as blocks side by side, as dout is: each
            // weight's gradient is one dot product over the whole group.
            let (xs, step) = if wide.padded {
                for (x, xp) in grp.x.chunks_exact(chw).zip(xp.chunks_exact_mut(pad_len)) {
                    wide.padded(x, (c, h, w), win, xp);
                }
                (&xp[..], pad_len)
            } else {
                (grp.x, chw)
            };
            gemm_dots(
                MatRef::row_major(dg, fnum, ld),
                Rows::new(xs, starts, width).blocks(count, step),
                T::zero(),
                MatMut::row_major(dw, fnum, ckk),
            );
            for (s, row) in db.iter_mut().zip(dg.chunks_exact(ld)) {
                *s = lane_sum(row);
            }
            if let Some(dxs) = grp.dx {
                gemm_with(
                    scratch,
                    T::one(),
                    wt,
                    MatRef::row_major(dg, fnum, ld),
                    T::zero(),
                    MatMut::row_major(dcol, ckk, ld),
                );
                for (j, dx) in dxs.chunks_exact_mut(chw).enumerate() {
                    wide.add_back(dcol, ld, j * width, starts, (c, h, w), win, dx, dxp);
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

/// The layout that lets a stride-1 convolution skip im2col: outputs are
/// computed on the padded input's width `WP` (row `oy` of the output at
/// `oy*WP`, the `WP - OW` columns between rows computed and dropped), so
/// that each window row `(c, ky, kx)` is one contiguous run of the padded
/// input, starting at `c*HP*WP + ky*WP + kx`, read in place by the
/// small-matrix kernels; `WIDTH = (OH-1)*WP + OW` columns.
struct Wide {
    c: usize,
    fh: usize,
    fw: usize,
    hp: usize,
    wp: usize,
    width: usize,
    /// Whether the window pads the input at all.
    padded: bool,
}

impl Wide {
    /// The layout of a stride-1 `win` over `(c, h, w)` images, whose
    /// output size the caller has checked.
    fn new(win: Window, (c, h, w): (usize, usize, usize)) -> Wide {
        debug_assert_eq!((win.sh, win.sw), (1, 1), "the Direct method is for stride 1");
        let (hp, wp) = (h + 2 * win.ph, w + 2 * win.pw);
        let (oh, ow) = (hp - win.fh + 1, wp - win.fw + 1);
        Wide {
            c,
            fh: win.fh,
            fw: win.fw,
            hp,
            wp,
            width: (oh - 1) * wp + ow,
            padded: win.ph != 0 || win.pw != 0,
        }
    }

    /// Where each window row starts, in the order of the weights' columns.
    fn starts(&self, starts: &mut Vec<usize>) {
        starts.clear();
        for ch in 0..self.c {
            for ky in 0..self.fh {
                starts.extend((0..self.fw).map(|kx| (ch * self.hp + ky) * self.wp + kx));
            }
        }
    }

    /// Elements of a padded image; 0 when there is no padding (the input
    /// is then read as it is).
    fn pad_len(&self, c: usize) -> usize {
        if self.padded { c * self.hp * self.wp } else { 0 }
    }

    /// `x` itself when unpadded, else `x` copied into the middle of `xp`
    /// (borders zero).
    fn padded<'a, T: Float>(
        &self,
        x: &'a [T],
        (c, h, w): (usize, usize, usize),
        win: Window,
        xp: &'a mut [T],
    ) -> &'a [T] {
        if !self.padded {
            return x;
        }
        let xp = &mut xp[..c * self.hp * self.wp];
        xp.fill(T::zero());
        for (src, dst) in x.chunks_exact(h * w).zip(xp.chunks_exact_mut(self.hp * self.wp)) {
            for (src, dst) in src
                .chunks_exact(w)
                .zip(dst[win.ph * self.wp..].chunks_mut(self.wp))
            {
                dst[win.pw..win.pw + w].copy_from_slice(src);
            }
        }
        xp
    }

    /// `dx` of one image from its `W^T dout` columns (`ckk` rows, `ld`
    /// apart, this image's from column `at`): each window row added back
    /// where it was read, on the padded image `dxp` (then cropped) or on
    /// `dx` itself when unpadded.
    #[allow(clippy::too_many_arguments)]
    fn add_back<T: Float>(
        &self,
        dcol: &[T],
        ld: usize,
        at: usize,
        starts: &[usize],
        (c, h, w): (usize, usize, usize),
        win: Window,
        dx: &mut [T],
        dxp: &mut [T],
    ) {
        let padded = self.padded;
        let target: &mut [T] = if padded {
            &mut dxp[..c * self.hp * self.wp]
        } else {
            dx
        };
        target.fill(T::zero());
        kernels::with_simd(
            #[inline(always)]
            |_| {
                for (k, &s) in starts.iter().enumerate() {
                    let src = &dcol[k * ld + at..k * ld + at + self.width];
                    for (d, &v) in target[s..s + self.width].iter_mut().zip(src) {
                        *d += v;
                    }
                }
            },
        );
        if padded {
            for (dst, src) in dx
                .chunks_exact_mut(h * w)
                .zip(dxp.chunks_exact(self.hp * self.wp))
            {
                for (dst, src) in dst
                    .chunks_exact_mut(w)
                    .zip(src[win.ph * self.wp..].chunks(self.wp))
                {
                    dst.copy_from_slice(&src[win.pw..win.pw + w]);
                }
            }
        }
    }
}
