use kernels::{GemmScratch, MatMut, MatRef, Rows, gemm_dots, gemm_few_rows, gemm_with};
use ndarray::{Array1, Array4, ArrayD, ArrayViewD};
use rand::Rng;
use rayon::prelude::*;
use tensor4d::{Float, ShapeError, Window, grow, reuse};

use crate::activation::Fused;
use crate::par::{lane_sum, per_part};
use crate::{Error, Init, Layer, Mode, check_dout, check_weight_bias, expect_nchw, shape_error};

/// Convolution by im2col and matrix product (section 7.4.3).
///
/// Weights have shape `(FN, C, FH, FW)` and biases `(FN,)`, as in the book
/// (and PyTorch). For each image, forward unrolls the input's windows into
/// the columns of a `(C*FH*FW, OH*OW)` matrix ([`im2col::im2col_t_slice`],
/// the per-image transpose of the chapter's `im2col`) and multiplies the
/// weights viewed as `(FN, C*FH*FW)` by it: the product `(FN, OH*OW)` is
/// the image's output already in NCHW order, so nothing is transposed or
/// copied after the GEMM. Forward keeps its input, not the columns
/// (`FH*FW` times larger): backward unrolls it again, into a workspace the
/// product then reads from cache, for the weight gradient
/// (`dW += dout_n col_n^T`, the transpose being a stride swap for the
/// GEMM), and folds `W^T dout_n` back with `col2im` for the
/// input gradient.
///
/// Backward batches small outputs: when `OH*OW` is small, `G` images'
/// columns and gradients are put side by side, so that one larger product
/// replaces `G` small ones (whose fixed costs dominate); `G` depends only on
/// the shapes. Images and groups are processed in parallel on rayon's pool;
/// each group's share of the weight gradient is kept apart and the shares
/// are summed in group order, so results do not depend on the number of
/// threads.
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
    /// The last input, contiguous: what backward needs (it unrolls the
    /// input again rather than keep the columns, `FH*FW` times larger).
    x: Vec<T>,
    /// Shape of the last input, `None` before the first forward.
    x_shape: Option<[usize; 4]>,
    out: ArrayD<T>,
    input_grad: bool,
    /// A following ReLU or sigmoid applied to `out` ([`Layer::fuse_relu`],
    /// [`Layer::fuse_sigmoid`]); `out` is
    /// then also the mask backward needs.
    act: Fused,
    /// One workspace per parallel part: an image's columns (forward); a
    /// group's `dout` and columns side by side, and `W^T dout` (backward);
    /// and the part's GEMM packing space.
    work: Vec<Work<T>>,
    /// Each image group's `dW` and `db`, before they are summed in order.
    partial: Vec<T>,
    /// Where each window row starts in a padded image ([`Wide`]).
    starts: Vec<usize>,
    dx: ArrayD<T>,
}

impl<T: Float> Convolution<T> {
    /// `out_channels` filters over `in_channels` channels, of the size,
    /// stride and padding of `window`, weights (and biases, for
    /// [`Init::PyTorch`]) drawn by `init` with fan-in `in_channels * FH * FW`.
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
            x: Vec::new(),
            x_shape: None,
            out: ArrayD::zeros(vec![0]),
            input_grad: true,
            act: Fused::Identity,
            work: Vec::new(),
            partial: Vec::new(),
            starts: Vec::new(),
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

    /// [`Layer::output_shape`] without allocating, for every forward.
    fn out_dims(&self, input: &[usize]) -> Result<[usize; 4], Error> {
        let err = |e| shape_error(self, e);
        let [n, c, h, w] = expect_nchw(self, input)?;
        let want_c = self.weight.dim().1;
        if c != want_c {
            return Err(err(ShapeError::mismatch("input channels", want_c, c)));
        }
        let (oh, ow) = self.win.output_size(h, w).map_err(err)?;
        Ok([n, self.filters(), oh, ow])
    }
}

/// What [`backward_groups`] needs of a layer, its fields borrowed one by
/// one (a macro, not a method, so that a group's work may still read the
/// weights and settings).
macro_rules! frame {
    ($conv:ident, $g:expr) => {{
        let [n, c, h, w] = $conv
            .x_shape
            .unwrap_or_else(|| unreachable!("checked by the caller"));
        let fnum = $conv.filters();
        let dx_shape: &[usize] = if $conv.input_grad { &[n, c, h, w] } else { &[0] };
        reuse(&mut $conv.dx, dx_shape);
        Frame {
            g: $g,
            n,
            chw: c * h * w,
            fnum,
            ckk: $conv.weight.len() / fnum,
            ohw: $conv.out.len() / (n * fnum),
            work: &mut $conv.work,
            partial: &mut $conv.partial,
            x: &$conv.x,
            out: $conv.out.as_slice().unwrap_or_else(|| unreachable!("owned")),
            dx: $conv
                .input_grad
                .then(|| $conv.dx.as_slice_mut().unwrap_or_else(|| unreachable!())),
        }
    }};
}

/// The weights `(FN, C, FH, FW)` as the `(FN, C*FH*FW)` matrix the
/// products use (a function, not a method, so other fields stay free).
fn weight_mat<T: Float>(w: &Array4<T>) -> MatRef<'_, T> {
    let f = w.dim().0;
    let w = w.as_slice().unwrap_or_else(|| unreachable!("kept contiguous"));
    MatRef::row_major(w, f, w.len() / f)
}

/// `v = f(v)` for a fused activation, in place.
#[inline(always)]
fn fused_in_place<T: Float>(act: Fused, v: &mut [T]) {
    match act {
        Fused::Identity => {}
        Fused::Relu => v.iter_mut().for_each(|v| *v = crate::activation::relu(*v)),
        Fused::Sigmoid => v.iter_mut().for_each(|v| *v = crate::activation::sigmoid(*v)),
    }
}

impl<T: Float> Convolution<T> {
    /// Takes over the activation `act` if none is fused yet.
    fn fuse(&mut self, act: Fused) -> bool {
        if self.act != Fused::Identity {
            return false;
        }
        self.act = act;
        true
    }

    /// dW, db = the `groups` groups' shares in `partial` summed in group
    /// order, split by elements: the same sums whatever the number of threads.
    fn sum_partials(&mut self, groups: usize) {
        let (fnum, ckk) = (self.filters(), self.weight.len() / self.filters());
        let (dw, db) = (&mut self.dweight, &mut self.dbias);
        let parts = &self.partial;
        let sum_into = |dst: &mut [T], offset: usize| {
            let stride = fnum * ckk + fnum;
            let chunk = per_part(dst.len()).max(1024);
            dst.par_chunks_mut(chunk).enumerate().for_each(|(k, dst)| {
                let at = offset + k * chunk;
                dst.copy_from_slice(&parts[at..at + dst.len()]);
                for grp in 1..groups {
                    let src = &parts[grp * stride + at..grp * stride + at + dst.len()];
                    for (d, &s) in dst.iter_mut().zip(src) {
                        *d += s;
                    }
                }
            });
        };
        sum_into(dw.as_slice_mut().unwrap_or_else(|| unreachable!()), 0);
        sum_into(db.as_slice_mut().unwrap_or_else(|| unreachable!()), fnum * ckk);
    }

    /// Forward in the [`Wide`] layout: per image, the padded input (or the
    /// input itself), one product of the weights by its windows read in
    /// place, and the valid columns copied out (through the fused activation).
    fn forward_wide(&mut self, wide: &Wide, [_, c, h, w]: [usize; 4], per: usize) -> Result<(), Error> {
        let fnum = self.filters();
        let [_, _, oh, ow] = self.out_dims(&[1, c, h, w])?;
        let (chw, ohw) = (c * h * w, oh * ow);
        let (win, bias, act, starts) = (self.win, &self.bias, self.act, &self.starts);
        let wmat = weight_mat(&self.weight);
        let out = self.out.as_slice_mut().unwrap_or_else(|| unreachable!("owned"));
        let pad_len = wide.pad_len(c);
        self.x
            .par_chunks(per * chw)
            .zip(out.par_chunks_mut(per * fnum * ohw))
            .zip(self.work.par_iter_mut())
            .for_each(|((xs, outs), ws)| {
                let ws = &mut ws.buf;
                ws.resize(pad_len + fnum * wide.width, T::zero());
                let (xp, cw) = ws.split_at_mut(pad_len);
                for (x, out) in xs.chunks_exact(chw).zip(outs.chunks_exact_mut(fnum * ohw)) {
                    let xin = wide.padded(x, (c, h, w), win, xp);
                    for (row, &b) in cw.chunks_exact_mut(wide.width).zip(bias.iter()) {
                        row.fill(b);
                    }
                    let rows = Rows::new(xin, starts, wide.width);
                    gemm_few_rows(wmat, rows, MatMut::row_major(cw, fnum, wide.width));
                    // The valid columns, through the fused activation if any.
                    kernels::with_simd(
                        #[inline(always)]
                        |_| {
                            let filters = out.chunks_exact_mut(ohw).zip(cw.chunks_exact(wide.width));
                            for (dst, src) in filters {
                                for (dst, src) in dst.chunks_exact_mut(ow).zip(src.chunks(wide.wp)) {
                                    act.apply(dst, &src[..ow]);
                                }
                            }
                        },
                    );
                }
            });
        Ok(())
    }

    /// Backward in the [`Wide`] layout, images grouped as in the general
    /// path: `dout` laid out wide (zeros in the columns between rows, so
    /// they add nothing), the weight gradient as dot products with the
    /// windows read in place, and the input gradient as `W^T dout` added
    /// back window row by window row (contiguous adds, no `col2im`).
    fn backward_wide(&mut self, wide: &Wide, dout: &[T]) -> Result<(), Error> {
        let [n, c, h, w] = self
            .x_shape
            .unwrap_or_else(|| unreachable!("checked by the caller"));
        let (fnum, ckk) = (self.filters(), self.weight.len() / self.filters());
        let (oh, ow) = (self.out.shape()[2], self.out.shape()[3]);
        let (chw, ohw, width) = (c * h * w, oh * ow, wide.width);
        let (win, act, input_grad) = (self.win, self.act, self.input_grad);
        let wt = weight_mat(&self.weight).t();
        let pad_len = wide.pad_len(c);
        let starts = &self.starts;
        let body = |ws: &mut Work<T>, grp: Group<'_, T>| {
            let Work {
                buf: ws,
                gemm: scratch,
            } = ws;
            let count = grp.x.len() / chw;
            let ld = count * width;
            let dcol_len = if input_grad { ckk * ld } else { 0 };
            ws.resize(ws.len().max(fnum * ld + dcol_len + 2 * pad_len), T::zero());
            let (dg, rest) = ws.split_at_mut(fnum * ld);
            let (dcol, rest) = rest.split_at_mut(dcol_len);
            let (xp, dxp) = rest.split_at_mut(pad_len);
            // dout wide, images side by side, ReLU's backward on the way if fused.
            let images = grp
                .dout
                .chunks_exact(fnum * ohw)
                .zip(grp.out.chunks_exact(fnum * ohw));
            for (j, (d, out)) in images.enumerate() {
                for f in 0..fnum {
                    let dst = &mut dg[f * ld + j * width..f * ld + (j + 1) * width];
                    let (src, y) = (&d[f * ohw..(f + 1) * ohw], &out[f * ohw..(f + 1) * ohw]);
                    for (r, dst) in dst.chunks_mut(wide.wp).enumerate() {
                        let (src, y) = (&src[r * ow..(r + 1) * ow], &y[r * ow..(r + 1) * ow]);
                        let (dst, gap) = dst.split_at_mut(ow);
                        act.grad(dst, src, y);
                        gap.fill(T::zero());
                    }
                }
            }
            let dg = &dg[..];
            let (dw, db) = grp.partial.split_at_mut(fnum * ckk);
            for (j, x) in grp.x.chunks_exact(chw).enumerate() {
                let xin = wide.padded(x, (c, h, w), win, xp);
                let beta = if j == 0 { T::zero() } else { T::one() };
                gemm_dots(
                    MatRef::new(&dg[j * width..], fnum, width, ld, 1),
                    Rows::new(xin, starts, width),
                    beta,
                    MatMut::row_major(dw, fnum, ckk),
                );
            }
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
        let g = group_size(ohw, n);
        let frame = frame!(self, g);
        let groups = backward_groups(frame, dout, body).map_err(|e| shape_error(self, e))?;
        self.sum_partials(groups);
        Ok(())
    }
}

/// A parallel part's workspace: buffers cut to each use, and the GEMM's
/// packing space. Both grow to their largest use and stay, so warm steps
/// allocate nothing.
#[derive(Clone, Debug, Default)]
struct Work<T> {
    buf: Vec<T>,
    gemm: GemmScratch,
}

/// One group of images in backward: its slices of `dout`, of the output
/// (the fused ReLU's mask), of the input, its share of dW and db, and its
/// slice of dx (`None` without an input gradient).
struct Group<'a, T> {
    dout: &'a [T],
    out: &'a [T],
    x: &'a [T],
    partial: &'a mut [T],
    dx: Option<&'a mut [T]>,
}

/// The buffers and sizes backward's groups are cut from.
struct Frame<'a, T> {
    /// Images per group.
    g: usize,
    n: usize,
    chw: usize,
    fnum: usize,
    ckk: usize,
    ohw: usize,
    work: &'a mut Vec<Work<T>>,
    partial: &'a mut Vec<T>,
    x: &'a [T],
    out: &'a [T],
    dx: Option<&'a mut [T]>,
}

/// Backward's frame, shared by both layouts: the batch in groups of `g`
/// images (a size fixed by the shapes, never by the thread count), groups
/// in parallel parts with a workspace each, `body` run on every group in
/// order. Returns the number of groups, whose dW and db shares the caller
/// sums in group order.
fn backward_groups<T: Float>(
    f: Frame<'_, T>,
    dout: &[T],
    body: impl Fn(&mut Work<T>, Group<'_, T>) -> Result<(), ShapeError> + Sync,
) -> Result<usize, ShapeError> {
    let (g, chw, fnum, ohw) = (f.g, f.chw, f.fnum, f.ohw);
    let share = f.fnum * f.ckk + f.fnum;
    let groups = f.n.div_ceil(g);
    let per = per_part(groups);
    let work = grow(f.work, groups.div_ceil(per));
    f.partial.resize(groups * share, T::zero());
    let run = |ws: &mut Work<T>, d: &[T], o: &[T], x: &[T], p: &mut [T], mut dx: Option<&mut [T]>| {
        let groups = d
            .chunks(g * fnum * ohw)
            .zip(o.chunks(g * fnum * ohw))
            .zip(x.chunks(g * chw))
            .zip(p.chunks_exact_mut(share));
        for (i, (((dout, out), x), partial)) in groups.enumerate() {
            let dx = dx
                .as_deref_mut()
                .map(|dx| &mut dx[i * g * chw..i * g * chw + x.len()]);
            body(
                ws,
                Group {
                    dout,
                    out,
                    x,
                    partial,
                    dx,
                },
            )?;
        }
        Ok(())
    };
    let parts = work
        .par_iter_mut()
        .zip(dout.par_chunks(per * g * fnum * ohw))
        .zip(f.out.par_chunks(per * g * fnum * ohw))
        .zip(f.x.par_chunks(per * g * chw))
        .zip(f.partial.par_chunks_mut(per * share));
    match f.dx {
        Some(dx) => parts
            .zip(dx.par_chunks_mut(per * g * chw))
            .try_for_each(|(((((ws, d), o), x), p), dx)| run(ws, d, o, x, p, Some(dx))),
        None => parts.try_for_each(|((((ws, d), o), x), p)| run(ws, d, o, x, p, None)),
    }?;
    Ok(groups)
}

/// The layout that lets a stride-1 convolution skip im2col: outputs are
/// computed on the padded input's width `WP` (row `oy` of the output at
/// `oy*WP`, the `WP - OW` columns between rows computed and dropped), so
/// that each window row `(c, ky, kx)` is one contiguous run of the padded
/// input, starting at `c*HP*WP + ky*WP + kx`, read in place by the
/// small-matrix kernels; `WIDTH = (OH-1)*WP + OW` columns. Used for up to
/// 16 filters (where a packed GEMM's tiles would run mostly empty), and for
/// the weight gradient of any first layer (no input gradient: the dot
/// products of `gemm_dots` then beat im2col and a packed GEMM, measured on
/// the first convolutions of all three networks).
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
    fn new(filters: usize, most: usize, win: Window, (c, h, w): (usize, usize, usize)) -> Option<Wide> {
        if filters > most || win.sh != 1 || win.sw != 1 {
            return None;
        }
        let (hp, wp) = (h + 2 * win.ph, w + 2 * win.pw);
        let (oh, ow) = (hp.checked_sub(win.fh)? + 1, wp.checked_sub(win.fw)? + 1);
        Some(Wide {
            c,
            fh: win.fh,
            fw: win.fw,
            hp,
            wp,
            width: (oh - 1) * wp + ow,
            padded: win.ph != 0 || win.pw != 0,
        })
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

crate::weight_and_bias_params!(Convolution);

impl<T: Float> Layer<T> for Convolution<T> {
    fn describe(&self) -> String {
        format!("Convolution {}@{}{}", self.filters(), self.win, self.act.suffix())
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, Error> {
        self.out_dims(input).map(|d| d.to_vec())
    }

    fn forward(&mut self, x: ArrayViewD<'_, T>, _mode: Mode) -> Result<&ArrayD<T>, Error> {
        let out_shape = self.out_dims(x.shape())?;
        let (n, c, h, w) = (x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]);
        let (fnum, ohw) = (out_shape[1], out_shape[2] * out_shape[3]);
        let (chw, ckk) = (c * h * w, c * self.win.area());
        // Backward needs the input (to unroll it again), not the columns.
        self.x.clear();
        self.x.extend_from_slice(&tensor4d::contiguous(&x));
        reuse(&mut self.out, &out_shape);
        self.x_shape = Some([n, c, h, w]);

        let per = per_part(n);
        // One workspace per part (zips below stop at the parts' count).
        grow(&mut self.work, n.div_ceil(per));
        if let Some(wide) = Wide::new(fnum, wide_forward_filters(fnum), self.win, (c, h, w)) {
            wide.starts(&mut self.starts);
            self.forward_wide(&wide, [n, c, h, w], per)?;
            return Ok(&self.out);
        }
        let (win, bias, act) = (self.win, &self.bias, self.act);
        let wmat = weight_mat(&self.weight);
        let out = self
            .out
            .as_slice_mut()
            .unwrap_or_else(|| unreachable!("owned buffers are contiguous"));
        let most = group_size(ohw, n);
        self.x
            .par_chunks(per * chw)
            .zip(out.par_chunks_mut(per * fnum * ohw))
            .zip(self.work.par_iter_mut())
            .try_for_each(|((xs, outs), ws)| {
                let Work {
                    buf: ws,
                    gemm: scratch,
                } = ws;
                // Small outputs in groups of about equal size, the images
                // side by side in one product. Each output is its own sum
                // over CKK whatever the group, so grouping changes no bit.
                let images = xs.len() / chw;
                let gs = images.div_ceil(images.div_ceil(most));
                let product = if gs > 1 { fnum * gs * ohw } else { 0 };
                ws.resize(ckk * gs * ohw + product, T::zero());
                let (col, prod) = ws.split_at_mut(ckk * gs * ohw);
                for (xg, outg) in xs.chunks(gs * chw).zip(outs.chunks_mut(gs * fnum * ohw)) {
                    let count = xg.len() / chw;
                    let ld = count * ohw;
                    let (col, prod) = (&mut col[..ckk * ld], &mut prod[..product.min(fnum * ld)]);
                    for (j, x) in xg.chunks_exact(chw).enumerate() {
                        im2col::im2col_t_strided(x, (c, h, w), win, &mut col[j * ohw..], ld)?;
                    }
                    // The product's destination: the output itself for one
                    // image, else the group's (FN, count*OHW) matrix.
                    let dst = if count == 1 { &mut *outg } else { &mut *prod };
                    // Start from the bias, then += W (FN x CKK) * col (CKK x ld).
                    for (row, &b) in dst.chunks_exact_mut(ld).zip(bias.iter()) {
                        row.fill(b);
                    }
                    gemm_with(
                        scratch,
                        T::one(),
                        wmat,
                        MatRef::row_major(col, ckk, ld),
                        T::one(),
                        MatMut::row_major(dst, fnum, ld),
                    );
                    // The activation's own function, while the group is in cache.
                    kernels::with_simd(
                        #[inline(always)]
                        |_| {
                            if count == 1 {
                                fused_in_place(act, outg);
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
        // Without an input gradient, backward is only dot products (see `Wide`).
        let wide_filters = if self.input_grad { 16 } else { usize::MAX };
        if let Some(wide) = Wide::new(fnum, wide_filters, self.win, (c, h, w)) {
            wide.starts(&mut self.starts);
            self.backward_wide(&wide, &dout)?;
            return Ok(&self.dx);
        }
        let win = self.win;
        let wt = weight_mat(&self.weight).t();
        // Per group: dout_g (FN x gs*OHW) and col_g (CKK x gs*OHW), the
        // group's images side by side; dW_g = dout_g col_g^T, db_g = row sums
        // of dout_g, and dx = col2im(W^T dout_g) image by image.
        let act = self.act;
        let body = |ws: &mut Work<T>, grp: Group<'_, T>| {
            let Work {
                buf: ws,
                gemm: scratch,
            } = ws;
            let ld = grp.dout.len() / fnum;
            ws.resize(ws.len().max((fnum + 2 * ckk) * ld), T::zero());
            let (dg, rest) = ws.split_at_mut(fnum * ld);
            let (col, dcol) = rest.split_at_mut(ckk * ld);
            // With a fused ReLU, its backward on the way: dout where out > 0.
            let d = side_by_side(
                grp.dout,
                (act != Fused::Identity).then_some((act, grp.out)),
                dg,
                (fnum, ohw),
            );
            // The group's columns again, side by side: (CKK, gs*OHW).
            for (j, img) in grp.x.chunks_exact(chw).enumerate() {
                im2col::im2col_t_strided(img, (c, h, w), win, &mut col[j * ohw..], ld)?;
            }
            let col = &col[..ckk * ld];
            let (dw, db) = grp.partial.split_at_mut(fnum * ckk);
            gemm_with(
                scratch,
                T::one(),
                MatRef::row_major(d, fnum, ld),
                MatRef::row_major(col, ckk, ld).t(),
                T::zero(),
                MatMut::row_major(dw, fnum, ckk),
            );
            for (s, row) in db.iter_mut().zip(d.chunks_exact(ld)) {
                *s = lane_sum(row);
            }
            if let Some(dxs) = grp.dx {
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
                    im2col::col2im_t_strided(&dcol[j * ohw..], (c, h, w), win, dx, ld)?;
                }
            }
            Ok(())
        };
        let frame = frame!(self, group_size(ohw, n));
        let groups = backward_groups(frame, &dout, body).map_err(|e| shape_error(self, e))?;
        self.sum_partials(groups);
        Ok(&self.dx)
    }

    fn set_input_grad(&mut self, needed: bool) {
        self.input_grad = needed;
    }

    fn fuse_relu(&mut self) -> bool {
        self.fuse(Fused::Relu)
    }

    fn fuse_sigmoid(&mut self) -> bool {
        self.fuse(Fused::Sigmoid)
    }

    fn kink_state(&self) -> u64 {
        if self.act != Fused::Relu {
            return 0;
        }
        crate::activation::relu_kinks(self.out.as_slice().unwrap_or_else(|| unreachable!("owned")))
    }
}

/// The most filters for which forward takes the [`Wide`] layout: 16
/// (where a packed GEMM pays for packing that few rows cannot repay), or up
/// to 30 that fill whole tiles of the small-matrix kernel (measured at
/// batch 100: SimpleConvNet's 30 filters, five tiles, forward 1.28 to 1.11
/// ms on 2 threads; AlexNet-lite's 32, five tiles and a 2-row remainder,
/// 2% slower than im2col and the packed GEMM, so they stay there).
fn wide_forward_filters(filters: usize) -> usize {
    if filters.is_multiple_of(kernels::TILE_ROWS) {
        30
    } else {
        16
    }
}

/// Columns a group of images aims for: products with fewer columns than
/// this spend more on fixed costs (packing, edge tiles) than on arithmetic.
const GROUP_COLUMNS: usize = 1024;

/// Images per group for outputs of `ohw` pixels in a batch of `n`. Only
/// small outputs are grouped: for larger ones the copies cost what grouping
/// saves (measured per layer on one thread: AlexNet-lite's 14x14 conv2
/// backward took 88 ms grouped by 5 against 76 ms image by image, while
/// LeNet's 10x10 conv2 went from 6.5 to 4.3 ms grouped by 10).
fn group_size(ohw: usize, n: usize) -> usize {
    if ohw > GROUP_COLUMNS / 8 {
        return 1;
    }
    let most = (GROUP_COLUMNS / ohw.max(1)).clamp(1, n.max(1));
    // An even number of groups of about equal size, so that two threads
    // share them evenly (AlexNet-lite's 7x7 layers: 6 groups of at most 17
    // images, where 5 of 20 left one thread 3 groups and the other 2).
    let groups = n.div_ceil(most);
    let groups = if groups > 1 { groups + groups % 2 } else { groups };
    n.div_ceil(groups)
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
