//! The Direct method: pooling read straight from each input plane, planes
//! shared among threads, without the chapter's expanded matrix. Each
//! window is reduced with the same comparisons (or additions) in the same
//! order as the chapter's row of `col`, so the results are the same bits.

use rayon::prelude::*;
use tensor4d::{Float, Window};

use super::{PoolKind, Pooling};
use crate::par::per_part;

impl<T: Float> Pooling<T> {
    /// Forward from `xs` (the contiguous input) into `self.out` and
    /// `self.argmax`, already of the output's size.
    pub(super) fn forward_direct(&mut self, xs: &[T]) {
        let [n, c, h, w] = self.x_shape.unwrap_or_else(|| unreachable!("set by forward"));
        let (oh, ow) = (self.out.shape()[2], self.out.shape()[3]);
        let (area, kind, win) = (self.win.area(), self.kind, self.win);
        let inv = T::one() / T::of(area as f64);
        let finish = move |(v, _): (T, u32)| if kind == PoolKind::Average { v * inv } else { v };
        // 2x2 windows at stride 2, unpadded: the kernels' vector loops.
        let fast = is_2x2_stride_2(win) && (win.ph, win.pw) == (0, 0);
        let out = self
            .out
            .as_slice_mut()
            .unwrap_or_else(|| unreachable!("owned buffers are contiguous"));
        let per = per_part(n * c);
        xs.par_chunks(per * h * w)
            .zip(out.par_chunks_mut(per * oh * ow))
            .zip(self.argmax.par_chunks_mut(per * oh * ow))
            .for_each(|((xs, outs), args)| {
                if fast {
                    let done = match kind {
                        // A part holding a NaN goes on to the general loop.
                        PoolKind::Max => kernels::max_pool_2x2(xs, (h, w), outs, args),
                        PoolKind::Average => {
                            kernels::avg_pool_2x2(xs, (h, w), inv, outs);
                            args.fill(0);
                            true
                        }
                    };
                    if done {
                        return;
                    }
                }
                let planes = xs.chunks_exact(h * w).zip(outs.chunks_exact_mut(oh * ow));
                for ((plane, out), args) in planes.zip(args.chunks_exact_mut(oh * ow)) {
                    if win.ph == 0 && win.pw == 0 {
                        // Compiled for AVX2 where the CPU has it (no FMA: same bits).
                        kernels::with_simd(
                            #[inline(always)]
                            |_| forward_unpadded(kind, win, plane, (w, ow), out, args, finish),
                        );
                        continue;
                    }
                    for (p, (o, arg)) in out.iter_mut().zip(args.iter_mut()).enumerate() {
                        let (i, j) = (p / ow, p % ow);
                        let r = match inside(win, h, w, i, j) {
                            Some(base) => reduce_inside(kind, plane, base, w, win),
                            None => reduce(kind, area, |k| {
                                source(win, h, w, i, j, k).map_or(T::zero(), |s| plane[s])
                            }),
                        };
                        (*o, *arg) = (finish(r), r.1 as u16);
                    }
                }
            });
    }

    /// Backward from `dout` (contiguous) into `self.dx`, already of the
    /// input's shape.
    pub(super) fn backward_direct(&mut self, dout: &[T]) {
        let [n, c, h, w] = self
            .x_shape
            .unwrap_or_else(|| unreachable!("checked by backward"));
        let (oh, ow) = (self.out.shape()[2], self.out.shape()[3]);
        let (area, kind, win) = (self.win.area(), self.kind, self.win);
        let inv = T::one() / T::of(area as f64);
        // 2x2 windows at stride 2 that cover the input exactly.
        let tiles = is_2x2_stride_2(win) && (win.ph, win.pw) == (0, 0) && (h, w) == (2 * oh, 2 * ow);
        let dx = self.dx.as_slice_mut().unwrap_or_else(|| unreachable!());
        let per = per_part(n * c);
        dx.par_chunks_mut(per * h * w)
            .zip(dout.par_chunks(per * oh * ow))
            .zip(self.argmax.par_chunks(per * oh * ow))
            .for_each(|((dxs, douts), args)| {
                if tiles {
                    // Every element lies in one window: written, not cleared first.
                    match kind {
                        PoolKind::Max => kernels::max_pool_2x2_backward(dxs, (h, w), douts, args),
                        PoolKind::Average => kernels::avg_pool_2x2_backward(dxs, (h, w), douts, inv),
                    }
                    return;
                }
                let planes = dxs.chunks_exact_mut(h * w).zip(douts.chunks_exact(oh * ow));
                for ((plane, d), args) in planes.zip(args.chunks_exact(oh * ow)) {
                    // Cleared plane by plane, while it is in cache.
                    plane.fill(T::zero());
                    if win.ph == 0 && win.pw == 0 {
                        backward_unpadded(kind, win, plane, (w, ow), d, args, inv);
                        continue;
                    }
                    for (p, (&g, &k)) in d.iter().zip(args).enumerate() {
                        let (i, j) = (p / ow, p % ow);
                        match kind {
                            PoolKind::Max => {
                                let k = k as usize;
                                let at = match inside(win, h, w, i, j) {
                                    Some(base) => Some(base + (k / win.fw) * w + k % win.fw),
                                    None => source(win, h, w, i, j, k),
                                };
                                if let Some(s) = at {
                                    plane[s] += g;
                                }
                            }
                            PoolKind::Average => {
                                for k in 0..area {
                                    if let Some(s) = source(win, h, w, i, j, k) {
                                        plane[s] += g * inv;
                                    }
                                }
                            }
                        }
                    }
                }
            });
    }
}

/// A running max with its position, written so that the compiler emits
/// `maxss` and `cmov` rather than branches: on real data which element wins
/// is unpredictable, and mispredicted branches would cost more than the
/// arithmetic. NaN is tracked on the side, and a window holding one reduces
/// to NaN at its first NaN, so divergence shows in the loss.
#[derive(Clone, Copy)]
struct RunningMax<T> {
    best: T,
    arg: u32,
    nan: bool,
}

impl<T: Float> RunningMax<T> {
    #[inline(always)]
    fn new(v: T) -> Self {
        RunningMax {
            best: v,
            arg: 0,
            nan: v.is_nan(),
        }
    }

    #[inline(always)]
    fn push(&mut self, v: T, k: u32) {
        let gt = v > self.best;
        self.arg = if gt { k } else { self.arg };
        self.best = if gt { v } else { self.best };
        self.nan |= v.is_nan();
    }

    /// The result; `at` reads window element `k` again, only when a NaN was seen.
    #[inline(always)]
    fn finish(self, area: usize, at: impl Fn(usize) -> T) -> (T, u32) {
        if self.nan {
            let k = (0..area).find(|&k| at(k).is_nan()).unwrap_or(0);
            return (T::nan(), k as u32);
        }
        (self.best, self.arg)
    }
}

/// Reduces one window: (max, its position) or (sum, 0). `at(k)` reads
/// element `k` of the window, zero in the padding.
#[inline]
fn reduce<T: Float>(kind: PoolKind, area: usize, at: impl Fn(usize) -> T) -> (T, u32) {
    match kind {
        PoolKind::Max => {
            let mut m = RunningMax::new(at(0));
            for k in 1..area {
                m.push(at(k), k as u32);
            }
            m.finish(area, at)
        }
        // From +0 as the direct path sums (`Sum` for floats starts at -0,
        // which would keep a window of -0s at -0 here only).
        PoolKind::Average => ((0..area).map(at).fold(T::zero(), |s, v| s + v), 0),
    }
}

/// The input offset of the window of output `(oh, ow)` when it lies wholly
/// inside the plane (no padding read), so rows can be read directly.
#[inline]
fn inside(win: Window, h: usize, w: usize, oh: usize, ow: usize) -> Option<usize> {
    let y0 = (oh * win.sh).checked_sub(win.ph)?;
    let x0 = (ow * win.sw).checked_sub(win.pw)?;
    (y0 + win.fh <= h && x0 + win.fw <= w).then_some(y0 * w + x0)
}

/// [`reduce`] over a window wholly inside the plane, reading its rows in
/// the same order (so with the same result), without per-element index arithmetic.
#[inline]
fn reduce_inside<T: Float>(kind: PoolKind, plane: &[T], base: usize, w: usize, win: Window) -> (T, u32) {
    let rows = (0..win.fh).map(|ki| &plane[base + ki * w..base + ki * w + win.fw]);
    match kind {
        PoolKind::Max => {
            let (mut m, mut k) = (RunningMax::new(plane[base]), 0u32);
            for row in rows {
                for &v in row {
                    if k > 0 {
                        m.push(v, k);
                    }
                    k += 1;
                }
            }
            m.finish(win.area(), |k| plane[base + (k / win.fw) * w + k % win.fw])
        }
        PoolKind::Average => {
            let mut sum = T::zero();
            for row in rows {
                for &v in row {
                    sum += v;
                }
            }
            (sum, 0)
        }
    }
}

/// Where window element `k` of output `(oh, ow)` falls in the input plane,
/// or `None` in the padding.
#[inline]
fn source(win: Window, h: usize, w: usize, oh: usize, ow: usize, k: usize) -> Option<usize> {
    let y = (oh * win.sh + k / win.fw) as isize - win.ph as isize;
    let x = (ow * win.sw + k % win.fw) as isize - win.pw as isize;
    (y >= 0 && x >= 0 && (y as usize) < h && (x as usize) < w).then(|| y as usize * w + x as usize)
}

/// Forward over one plane when no window reads padding (the chapter's
/// networks): rows are walked directly, with no per-output division or
/// bounds test, and 2x2 windows get their four reads spelled out. (At
/// stride 2, every max pool of SimpleConvNet and the first two of
/// AlexNet-lite, the kernels' loops come first; only a part of the batch
/// holding a NaN reaches this one.) Same comparisons in the same order as
/// [`reduce`], so the same bits.
#[inline(always)]
fn forward_unpadded<T: Float>(
    kind: PoolKind,
    win: Window,
    plane: &[T],
    (w, ow): (usize, usize),
    out: &mut [T],
    args: &mut [u16],
    finish: impl Fn((T, u32)) -> T,
) {
    let rows = out.chunks_exact_mut(ow).zip(args.chunks_exact_mut(ow));
    for (i, (out, args)) in rows.enumerate() {
        let top = &plane[i * win.sh * w..];
        if kind == PoolKind::Max && win.fh == 2 && win.fw == 2 {
            let (r0, r1) = (&top[..w], &top[w..2 * w]);
            for (j, (o, arg)) in out.iter_mut().zip(args.iter_mut()).enumerate() {
                let x = j * win.sw;
                let mut m = RunningMax::new(r0[x]);
                m.push(r0[x + 1], 1);
                m.push(r1[x], 2);
                m.push(r1[x + 1], 3);
                let r = m.finish(4, |k| [r0[x], r0[x + 1], r1[x], r1[x + 1]][k]);
                (*o, *arg) = (r.0, r.1 as u16);
            }
        } else if kind == PoolKind::Average && win.fh == 2 && win.fw == 2 {
            let (r0, r1) = (&top[..w], &top[w..2 * w]);
            for (j, (o, arg)) in out.iter_mut().zip(args.iter_mut()).enumerate() {
                let x = j * win.sw;
                // `reduce`'s order, from +0 (which turns a -0 sum into +0).
                let sum = T::zero() + r0[x] + r0[x + 1] + r1[x] + r1[x + 1];
                (*o, *arg) = (finish((sum, 0)), 0);
            }
        } else {
            for (j, (o, arg)) in out.iter_mut().zip(args.iter_mut()).enumerate() {
                let r = reduce_inside(kind, top, j * win.sw, w, win);
                (*o, *arg) = (finish(r), r.1 as u16);
            }
        }
    }
}

/// 2x2 windows at stride 2 (SimpleConvNet's pool): with no padding and the
/// output size whole, they tile the input exactly.
fn is_2x2_stride_2(win: Window) -> bool {
    (win.fh, win.fw, win.sh, win.sw) == (2, 2, 2, 2)
}

/// Backward over one plane when no window reads padding; `dx` arrives zeroed.
fn backward_unpadded<T: Float>(
    kind: PoolKind,
    win: Window,
    dx: &mut [T],
    (w, ow): (usize, usize),
    dout: &[T],
    args: &[u16],
    inv: T,
) {
    let rows = dout.chunks_exact(ow).zip(args.chunks_exact(ow));
    if kind == PoolKind::Average && win.fh == 2 && win.fw == 2 {
        for (i, dout) in dout.chunks_exact(ow).enumerate() {
            let (r0, r1) = dx[i * win.sh * w..].split_at_mut(w);
            for (j, &g) in dout.iter().enumerate() {
                let (x, v) = (j * win.sw, g * inv);
                r0[x] += v;
                r0[x + 1] += v;
                r1[x] += v;
                r1[x + 1] += v;
            }
        }
        return;
    }
    for (i, (dout, args)) in rows.enumerate() {
        let top = i * win.sh * w;
        for (j, (&g, &k)) in dout.iter().zip(args).enumerate() {
            let base = top + j * win.sw;
            match kind {
                PoolKind::Max => {
                    let k = k as usize;
                    // fw is 2 or 3 in practice: a shift-free split for 2.
                    let (ki, kj) = if win.fw == 2 {
                        (k >> 1, k & 1)
                    } else {
                        (k / win.fw, k % win.fw)
                    };
                    dx[base + ki * w + kj] += g;
                }
                PoolKind::Average => {
                    for ki in 0..win.fh {
                        for v in &mut dx[base + ki * w..base + ki * w + win.fw] {
                            *v += g * inv;
                        }
                    }
                }
            }
        }
    }
}
