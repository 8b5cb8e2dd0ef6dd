//! How the engine's methods share a batch among threads: parts of the
//! batch in parallel, each with a workspace of its own that grows to its
//! largest use and stays (so warm steps allocate nothing), and backward in
//! groups of images whose weight-gradient shares are summed in group
//! order. No sum is ever split across threads, so results are the same
//! bits for any thread count.

use kernels::{GemmScratch, MatRef};
use ndarray::{Array1, Array4, ArrayD};
use rayon::prelude::*;
use tensor4d::{Float, ShapeError, grow, reuse};

use super::Kept;
use crate::par::per_part;

/// The per-thread state of the engine's methods, kept between steps.
#[derive(Clone, Debug, Default)]
pub(super) struct Workspace<T> {
    /// One per parallel part.
    pub(super) parts: Vec<Work<T>>,
    /// Each backward group's `dW` and `db`, before they are summed in order.
    pub(super) partial: Vec<T>,
    /// Where each window row starts in a padded image (the Direct method).
    pub(super) starts: Vec<usize>,
    /// The filters flipped, channels swapped, as the `(C, FN*FH*FW)`
    /// matrix of the transposed convolution (the Implicit method's dx).
    pub(super) flipped: Vec<T>,
}

/// A parallel part's workspace: buffers cut to each use, and the GEMM's
/// packing space.
#[derive(Clone, Debug, Default)]
pub(super) struct Work<T> {
    pub(super) buf: Vec<T>,
    pub(super) gemm: GemmScratch,
}

/// The weights `(FN, C, FH, FW)` as the `(FN, C*FH*FW)` matrix the
/// products use.
pub(super) fn weight_mat<T: Float>(w: &Array4<T>) -> MatRef<'_, T> {
    let f = w.dim().0;
    let w = w.as_slice().unwrap_or_else(|| unreachable!("kept contiguous"));
    MatRef::row_major(w, f, w.len() / f)
}

/// Columns a group of images aims for: products with fewer columns than
/// this spend more on fixed costs (packing, edge tiles) than on arithmetic.
const GROUP_COLUMNS: usize = 1024;

/// Images per group for outputs of `ohw` pixels in a batch of `n`. Only
/// small outputs are grouped: for larger ones the copies into a group cost
/// what grouping saves.
pub(super) fn group_size(ohw: usize, n: usize) -> usize {
    if ohw > GROUP_COLUMNS / 8 {
        return 1;
    }
    let most = (GROUP_COLUMNS / ohw.max(1)).clamp(1, n.max(1));
    // An even number of groups of about equal size, so that two threads
    // share them evenly.
    let groups = n.div_ceil(most);
    let groups = if groups > 1 { groups + groups % 2 } else { groups };
    n.div_ceil(groups)
}

/// One group of images in backward: its slices of `dout`, of the output
/// (the fused activation's mask), of the input, its share of dW and db,
/// and its slice of dx (`None` without an input gradient).
pub(super) struct Group<'a, T> {
    pub(super) dout: &'a [T],
    pub(super) out: &'a [T],
    pub(super) x: &'a [T],
    pub(super) partial: &'a mut [T],
    pub(super) dx: Option<&'a mut [T]>,
}

/// The batch that backward's groups are cut from.
pub(super) struct Batch<'a, T> {
    /// Images per group.
    pub(super) g: usize,
    pub(super) n: usize,
    pub(super) chw: usize,
    pub(super) fnum: usize,
    pub(super) ckk: usize,
    pub(super) ohw: usize,
    pub(super) x: &'a [T],
    pub(super) out: &'a [T],
    pub(super) dout: &'a [T],
    pub(super) dx: Option<&'a mut [T]>,
}

impl<'a, T: Float> Batch<'a, T> {
    /// The batch that the last forward kept, with its output, `dout`, and,
    /// if `input_grad`, `dx` (given the input's shape) to write into.
    pub(super) fn kept(
        kept: &'a Kept<T>,
        out: &'a ArrayD<T>,
        dout: &'a [T],
        dx: &'a mut ArrayD<T>,
        (fnum, c, fh, fw): (usize, usize, usize, usize),
        input_grad: bool,
    ) -> Self {
        let [n, _, h, w] = kept.shape.unwrap_or_else(|| unreachable!("checked by backward"));
        let ohw = out.len() / (n * fnum);
        if input_grad {
            reuse(dx, &[n, c, h, w]);
        }
        Batch {
            g: group_size(ohw, n),
            n,
            chw: c * h * w,
            fnum,
            ckk: c * fh * fw,
            ohw,
            x: &kept.x,
            out: out.as_slice().unwrap_or_else(|| unreachable!("owned")),
            dout,
            dx: input_grad.then(|| dx.as_slice_mut().unwrap_or_else(|| unreachable!("owned"))),
        }
    }
}

/// Backward's frame, shared by the engine's methods: the batch in groups
/// of `g` images (a size fixed by the shapes, never by the thread count),
/// groups in parallel parts with a workspace each, `body` run on every
/// group in order; then dW and db are the groups' shares summed in group
/// order.
pub(super) fn backward_groups<T: Float>(
    (parts, partial): (&mut Vec<Work<T>>, &mut Vec<T>),
    f: Batch<'_, T>,
    (dw, db): (&mut Array4<T>, &mut Array1<T>),
    body: impl Fn(&mut Work<T>, Group<'_, T>) -> Result<(), ShapeError> + Sync,
) -> Result<(), ShapeError> {
    let (g, chw, fnum, ohw) = (f.g, f.chw, f.fnum, f.ohw);
    let share = f.fnum * f.ckk + f.fnum;
    let groups = f.n.div_ceil(g);
    let per = per_part(groups);
    let work = grow(parts, groups.div_ceil(per));
    partial.resize(groups * share, T::zero());
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
        .zip(f.dout.par_chunks(per * g * fnum * ohw))
        .zip(f.out.par_chunks(per * g * fnum * ohw))
        .zip(f.x.par_chunks(per * g * chw))
        .zip(partial.par_chunks_mut(per * share));
    match f.dx {
        Some(dx) => parts
            .zip(dx.par_chunks_mut(per * g * chw))
            .try_for_each(|(((((ws, d), o), x), p), dx)| run(ws, d, o, x, p, Some(dx))),
        None => parts.try_for_each(|((((ws, d), o), x), p)| run(ws, d, o, x, p, None)),
    }?;
    sum_partials(partial, groups, dw, db);
    Ok(())
}

/// dW, db = the `groups` groups' shares in `partial` summed in group
/// order, split by elements: the same sums whatever the number of threads.
fn sum_partials<T: Float>(partial: &[T], groups: usize, dw: &mut Array4<T>, db: &mut Array1<T>) {
    let (fnum, ckk) = (db.len(), dw.len() / db.len());
    let sum_into = |dst: &mut [T], offset: usize| {
        let stride = fnum * ckk + fnum;
        let chunk = per_part(dst.len()).max(1024);
        dst.par_chunks_mut(chunk).enumerate().for_each(|(k, dst)| {
            let at = offset + k * chunk;
            dst.copy_from_slice(&partial[at..at + dst.len()]);
            for grp in 1..groups {
                let src = &partial[grp * stride + at..grp * stride + at + dst.len()];
                for (d, &s) in dst.iter_mut().zip(src) {
                    *d += s;
                }
            }
        });
    };
    sum_into(dw.as_slice_mut().unwrap_or_else(|| unreachable!("owned")), 0);
    sum_into(
        db.as_slice_mut().unwrap_or_else(|| unreachable!("owned")),
        fnum * ckk,
    );
}
