//! The general `f32` GEMM behind [`crate::gemm_with`]: BLIS's loops
//! around a register tile, with A and B packed into a [`GemmScratch`] that
//! the caller keeps between calls. `matrixmultiply` allocates its packing
//! buffer on every call; here a warm training step, which repeats the same
//! shapes with the same scratches, allocates nothing.
//!
//! Three tiles ([`MicroKernel`]): 12 x 32 (24 AVX-512 accumulators of the 32
//! registers), 6 x 16 (12 AVX2 accumulators of 16), and the portable 6 x 16
//! in arrays the compiler vectorises. The AVX-512 path takes the wide tile
//! unless the CPU runs 512-bit operations as two halves (AMD's Zen 4),
//! where the narrow one is faster. Every element's sum runs over `k` in
//! `KC`-deep blocks in the same order whatever the tile, so AVX-512 and
//! AVX2 give the same bits (both fuse multiply-adds); the portable path,
//! without FMA, rounds differently.
//!
//! Packing copies A and B into the tiles' order; an operand stored
//! across that order (A row-major, B transposed, as in a weight gradient)
//! is transposed in 8 x 8 blocks in AVX registers on the vector paths. A
//! small product (at most [`SMALL`] multiply-adds: an affine layer's last
//! 10 scores) would spend as long packing as computing, so on the x86
//! paths it runs on the 6 x 16 tile reading A, and B's whole tiles of
//! contiguous rows, where they lie: the same sums in the same order.
//!
//! Blocking, for a core with 32 KiB of L1 and 1 MiB of L2: a panel of
//! packed B, `KC` deep (16 or 32 KiB), stays in L1 while the tiles of
//! packed A (`MC` x `KC`, 144 KiB) stream from L2.

use std::cell::RefCell;

use tensor4d::grow;

use crate::small::madd;
use crate::windows::{WindowPanels, Windows};
use crate::{Isa, MatRef};

/// Depth of one packed block: each element of C gets its sum in blocks of
/// this many products, added to C in order. Part of the results' bits:
/// every path must use the same.
const KC: usize = 256;
/// Rows of A packed at a time (a multiple of every tile's rows).
const MC: usize = 144;
/// Columns of B packed at a time (a multiple of every tile's columns).
const NC: usize = 4096;
/// Products of at most this many multiply-adds are computed without
/// packing A (nor B where its rows are contiguous): for them, packing
/// costs as much as the arithmetic.
const SMALL: usize = 1 << 20;

/// Packing space for [`crate::gemm_with`], and for
/// [`crate::gemm_windows_with`] its padded copy of the images: grown to
/// the largest block it has served and never shrunk, so a caller that
/// keeps one (a layer keeps one per parallel part of its work) repeats
/// products of the same shapes without allocating. `f64` products do not
/// use it.
///
/// ```
/// use kernels::{gemm_with, GemmScratch, MatMut, MatRef};
/// let mut scratch = GemmScratch::default();
/// let (a, b) = ([1.0f32, 2.0], [3.0f32, 4.0]);
/// let mut c = [0.0f32; 1];
/// for _ in 0..3 {
///     // After the first call, the same shapes reuse the same space.
///     gemm_with(&mut scratch, 1.0, MatRef::row_major(&a, 1, 2), MatRef::row_major(&b, 2, 1), 0.0,
///               MatMut::row_major(&mut c, 1, 1));
/// }
/// assert_eq!(c, [11.0]);
/// ```
#[derive(Clone, Debug, Default)]
pub struct GemmScratch {
    a: Vec<f32>,
    b: Vec<f32>,
    /// Padded images whose windows are packed as B ([`crate::gemm_windows_with`]).
    x: Vec<f32>,
}

thread_local! {
    /// The scratch of [`crate::gemm`], for callers that keep none.
    static SCRATCH: RefCell<GemmScratch> = const { RefCell::new(GemmScratch { a: Vec::new(), b: Vec::new(), x: Vec::new() }) };
}

/// Runs `f` with this thread's own scratch.
pub(crate) fn with_thread_scratch<R>(f: impl FnOnce(&mut GemmScratch) -> R) -> R {
    // Nothing that runs under the borrow calls back into this function.
    SCRATCH.with(|s| f(&mut s.borrow_mut()))
}

/// The register tiles, rows by columns: AVX-512's, and the one that AVX2
/// and the portable path share.
const AVX512_TILE: (usize, usize) = (12, 32);
const AVX2_TILE: (usize, usize) = (6, 16);

/// Which register tile computes a product.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MicroKernel {
    /// 12 x 32 in AVX-512 registers.
    Avx512,
    /// 6 x 16 in AVX2 registers, with FMA.
    Avx2,
    /// 6 x 16 in arrays, without FMA.
    Portable,
}

impl MicroKernel {
    /// The tile of `isa`: for AVX-512, the wide one unless 512-bit
    /// operations run as two halves, where it does not pay.
    pub(crate) fn of(isa: Isa) -> MicroKernel {
        match isa {
            Isa::Avx512 if !crate::halves_512_bit_operations() => MicroKernel::Avx512,
            Isa::Avx512 | Isa::Avx2 => MicroKernel::Avx2,
            Isa::Portable => MicroKernel::Portable,
        }
    }

    /// Rows by columns.
    pub(crate) fn size(self) -> (usize, usize) {
        match self {
            MicroKernel::Avx512 => AVX512_TILE,
            MicroKernel::Avx2 | MicroKernel::Portable => AVX2_TILE,
        }
    }

    /// Whether this CPU has the tile's instructions.
    #[cfg(test)]
    fn is_available(self) -> bool {
        match self {
            MicroKernel::Avx512 => Isa::Avx512.is_available(),
            MicroKernel::Avx2 => Isa::Avx2.is_available(),
            MicroKernel::Portable => true,
        }
    }
}

/// The operands of one product, as the blocked loops take them: B a
/// matrix, or anything else whose panels can be packed.
#[derive(Clone, Copy)]
pub(crate) struct Product<'a, B = MatRef<'a, f32>> {
    pub(crate) alpha: f32,
    pub(crate) a: MatRef<'a, f32>,
    pub(crate) b: B,
    pub(crate) beta: f32,
    pub(crate) c: *mut f32,
    pub(crate) rsc: isize,
    pub(crate) csc: isize,
}

impl<'a> Product<'a, ()> {
    /// The same product with `b` for B.
    pub(crate) fn with_b<B>(self, b: B) -> Product<'a, B> {
        let Product {
            alpha,
            a,
            beta,
            c,
            rsc,
            csc,
            ..
        } = self;
        Product {
            alpha,
            a,
            b,
            beta,
            c,
            rsc,
            csc,
        }
    }
}

/// `C <- alpha A B + beta C` for `f32` on `tile`, whose instructions the
/// CPU must have (checked by the caller); with `beta == 0` the old contents of
/// C are ignored (NaN included). Each element is summed over `k` in order
/// within blocks of `KC`, the blocks added to C in order, so the result
/// depends on the shapes and on FMA or not, never on threads or tile.
///
/// # Safety
/// C at `p.c` with strides `(p.rsc, p.csc)` must hold `a.rows x b.cols`
/// valid, distinct elements that alias neither A nor B; this CPU must have
/// the tile's instructions.
pub(crate) unsafe fn sgemm(tile: MicroKernel, scratch: &mut GemmScratch, p: Product<'_>) {
    let (m, k, n) = (p.a.rows, p.a.cols, p.b.cols);
    if m == 0 || n == 0 {
        return;
    }
    let at = |i: usize, j: usize| i as isize * p.rsc + j as isize * p.csc;
    if k == 0 {
        for i in 0..m {
            for j in 0..n {
                // SAFETY: (i, j) lies in C, which the caller vouches for.
                unsafe {
                    let c = p.c.offset(at(i, j));
                    *c = if p.beta == 0.0 { 0.0 } else { p.beta * *c };
                }
            }
        }
        return;
    }
    // A product narrower than one tile runs as its transpose where that
    // fills the tiles better (a layer's 10 scores: C^T = B^T A^T): each
    // element is the same products summed in the same order. Read in
    // place, B's rows had better be contiguous.
    let in_place = cfg!(target_arch = "x86_64")
        && tile != MicroKernel::Portable
        && m.saturating_mul(n).saturating_mul(k) <= SMALL;
    let (mr, nr) = if in_place { AVX2_TILE } else { tile.size() };
    let fill = |rows: usize, cols: usize| {
        rows * cols * 1024 / (rows.next_multiple_of(mr) * cols.next_multiple_of(nr))
    };
    let transposed = Product {
        a: p.b.t(),
        b: p.a.t(),
        rsc: p.csc,
        csc: p.rsc,
        ..p
    };
    let rank = |q: &Product<'_>, fill: usize| (in_place && q.b.cs == 1, fill);
    let p = if n < nr && rank(&transposed, fill(n, m)) > rank(&p, fill(m, n)) {
        transposed
    } else {
        p
    };
    #[cfg(target_arch = "x86_64")]
    if in_place {
        // SAFETY: as this function's contract; every tile but the portable
        // one comes with AVX2 and FMA.
        unsafe { x86::sgemm_in_place(p, &mut scratch.b) };
        return;
    }
    // SAFETY: as this function's contract.
    unsafe { packed_on(tile, &mut scratch.a, &mut scratch.b, p) }
}

/// The packed loops on `tile`, packing A into `pa` and B into `pb`.
///
/// # Safety
/// As [`sgemm`].
unsafe fn packed_on<B: Panels>(tile: MicroKernel, pa: &mut Vec<f32>, pb: &mut Vec<f32>, p: Product<'_, B>) {
    match tile {
        // SAFETY: the caller checked that the CPU has the tile's features.
        #[cfg(target_arch = "x86_64")]
        MicroKernel::Avx512 => unsafe { x86::sgemm_avx512(p, pa, pb) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        MicroKernel::Avx2 => unsafe { x86::sgemm_avx2(p, pa, pb) },
        // SAFETY: C as the caller vouches; the portable tile needs nothing.
        _ => unsafe {
            blocked::<{ AVX2_TILE.0 }, { AVX2_TILE.1 }, _>(p, pa, pb, Transpose::Scalar, |t, ap, bp| {
                t.run_portable(ap, bp)
            })
        },
    }
}

/// `C <- alpha A W + beta C` for the windows `W` of `w`: as [`sgemm`], but
/// each panel of B packed straight from a padded copy of the images (kept
/// in the scratch), never from a written column matrix. Every product
/// runs the packed loops, whose sums are those of [`sgemm`] on the written
/// columns: the same bits.
///
/// # Safety
/// As [`sgemm`], with `w` for B.
pub(crate) unsafe fn sgemm_windows(
    tile: MicroKernel,
    scratch: &mut GemmScratch,
    w: &Windows<'_, f32>,
    p: Product<'_, ()>,
) {
    let GemmScratch { a: pa, b: pb, x } = scratch;
    let p = p.with_b(WindowPanels::new(w, x));
    // SAFETY: as this function's contract.
    unsafe { packed_on(tile, pa, pb, p) }
}

/// BLIS's five loops: B in `NC`-column slabs, the sum in `KC`-deep blocks
/// (B's block packed once), A in `MC`-row blocks (packed once), then the
/// `MR x NR` register tiles, each computed by `tile`; packing transposes
/// as `tr` says.
///
/// # Safety
/// As [`sgemm`]; `tile` must write only the valid part of its tile; the CPU
/// must have what `tr` needs.
#[inline(always)]
unsafe fn blocked<const MR: usize, const NR: usize, B: Panels>(
    p: Product<'_, B>,
    pa: &mut Vec<f32>,
    pb: &mut Vec<f32>,
    tr: Transpose,
    tile: impl Fn(&Tile, &[[f32; MR]], &[[f32; NR]]),
) {
    let Product {
        alpha,
        a,
        b,
        beta,
        c,
        rsc,
        csc,
    } = p;
    let (m, k, n) = (a.rows, a.cols, b.cols());
    for jc in (0..n).step_by(NC) {
        let nc = (n - jc).min(NC);
        let ntiles = nc.div_ceil(NR);
        for pc in (0..k).step_by(KC) {
            let kc = (k - pc).min(KC);
            let pb = grow(pb, ntiles * kc * NR).as_chunks_mut::<NR>().0;
            // SAFETY: the CPU has what `tr` needs, per this function's contract.
            unsafe { b.pack_panels(pb, kc, pc, jc, tr) };
            let update = Update::of_block(pc, beta);
            for ic in (0..m).step_by(MC) {
                let mtiles = (m - ic).min(MC).div_ceil(MR);
                let pa = grow(pa, mtiles * kc * MR).as_chunks_mut::<MR>().0;
                for (t, panel) in pa.chunks_exact_mut(kc).enumerate() {
                    let i0 = ic + t * MR;
                    // SAFETY: as above.
                    unsafe {
                        pack(
                            panel,
                            a.data,
                            i0 * a.rs + pc * a.cs,
                            (m - i0).min(MR),
                            (a.rs, a.cs),
                            tr,
                        )
                    };
                }
                for (tj, bp) in pb.chunks_exact(kc).enumerate() {
                    let j0 = jc + tj * NR;
                    for (ti, ap) in pa.chunks_exact(kc).enumerate() {
                        let i0 = ic + ti * MR;
                        let (rows, cols) = ((m - i0).min(MR), (n - j0).min(NR));
                        // SAFETY: the tile's valid part lies in C.
                        let c = unsafe { c.offset(i0 as isize * rsc + j0 as isize * csc) };
                        let t = Tile {
                            c,
                            rsc,
                            csc,
                            rows,
                            cols,
                            alpha,
                            update,
                        };
                        tile(&t, ap, bp);
                    }
                }
            }
        }
    }
}

/// A B operand as the blocked loops see it: its columns, and how to pack
/// one of its panels.
pub(crate) trait Panels: Copy {
    /// Columns of B.
    fn cols(&self) -> usize;

    /// Packs B's `NR`-column panel at depth `pc` and column `j0`,
    /// `dst.len()` steps deep, the lanes past B's edge zero.
    ///
    /// # Safety
    /// The CPU must have what `tr` needs.
    unsafe fn pack<const NR: usize>(&self, dst: &mut [[f32; NR]], pc: usize, j0: usize, tr: Transpose);

    /// Packs the consecutive panels from column `j0` into `dst`, one
    /// after another, each `kc` steps deep from depth `pc`.
    ///
    /// # Safety
    /// As [`Panels::pack`].
    #[inline(always)]
    unsafe fn pack_panels<const NR: usize>(
        &self,
        dst: &mut [[f32; NR]],
        kc: usize,
        pc: usize,
        j0: usize,
        tr: Transpose,
    ) {
        for (t, panel) in dst.chunks_exact_mut(kc).enumerate() {
            // SAFETY: as this function's contract.
            unsafe { self.pack(panel, pc, j0 + t * NR, tr) };
        }
    }
}

impl Panels for MatRef<'_, f32> {
    fn cols(&self) -> usize {
        self.cols
    }

    #[inline(always)]
    unsafe fn pack<const NR: usize>(&self, dst: &mut [[f32; NR]], pc: usize, j0: usize, tr: Transpose) {
        // SAFETY: as this function's contract.
        unsafe {
            pack(
                dst,
                self.data,
                pc * self.rs + j0 * self.cs,
                (self.cols - j0).min(NR),
                (self.cs, self.rs),
                tr,
            )
        }
    }

    #[inline(always)]
    unsafe fn pack_panels<const NR: usize>(
        &self,
        dst: &mut [[f32; NR]],
        kc: usize,
        pc: usize,
        j0: usize,
        tr: Transpose,
    ) {
        // Where B's rows are contiguous, its whole panels go a group at a
        // time, row by row, so the reads run along memory; panel by panel
        // they step down B a row at a time and wait on each line when B
        // lies beyond L2. Not all panels at once: panels lie a multiple of
        // 4 KiB apart, so a group's stores share L1 sets, and past eight
        // lines a set they outnumber the ways of common L1 caches.
        const GROUP: usize = 8;
        let whole = if self.cs == 1 {
            ((self.cols - j0) / NR).min(dst.len() / kc)
        } else {
            0
        };
        let (groups, rest) = dst.split_at_mut(whole * kc);
        for (g, dst) in groups.chunks_mut(GROUP * kc).enumerate() {
            let from = j0 + g * GROUP * NR;
            let width = dst.len() / kc * NR;
            for p in 0..kc {
                let row = self.data[(pc + p) * self.rs + from..][..width]
                    .as_chunks::<NR>()
                    .0;
                for (t, lanes) in row.iter().enumerate() {
                    dst[t * kc + p] = *lanes;
                }
            }
        }
        for (t, panel) in rest.chunks_exact_mut(kc).enumerate() {
            // SAFETY: as this function's contract.
            unsafe { self.pack(panel, pc, j0 + (whole + t) * NR, tr) };
        }
    }
}

/// How [`pack`] copies lines along k into lanes: eight lines at a time
/// through AVX registers, or element by element.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transpose {
    /// The CPU has AVX (checked by whoever chose it).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    Avx,
    Scalar,
}

/// Copies `dst.len()` steps along k of a `W`-wide strip into `dst`, one
/// array per step: element `(w, p)` is `src[origin + w*sw + p*sk]`, and the
/// `W - valid` lanes past the matrix's edge are zero.
///
/// # Safety
/// The CPU must have what `tr` needs.
#[inline(always)]
unsafe fn pack<const W: usize>(
    dst: &mut [[f32; W]],
    src: &[f32],
    origin: usize,
    valid: usize,
    (sw, sk): (usize, usize),
    tr: Transpose,
) {
    let kc = dst.len();
    if valid == W && sw == 1 {
        // Each step is W contiguous elements (B row-major, A transposed).
        for (p, d) in dst.iter_mut().enumerate() {
            let at = origin + p * sk;
            *d = src[at..at + W].try_into().unwrap_or_else(|_| unreachable!());
        }
        return;
    }
    if valid < W {
        dst.fill([0.0; W]);
    }
    if sk == 1 {
        // Each lane is a contiguous line along k (A row-major, B
        // transposed): a transpose, which element by element would store
        // one float at a time.
        let line = |w: usize| &src[origin + w * sw..][..kc];
        let mut tail = 0;
        #[cfg(not(target_arch = "x86_64"))]
        let _ = tr;
        #[cfg(target_arch = "x86_64")]
        if tr == Transpose::Avx && valid == W && kc > 8 {
            // Eight steps at a time for every lane. A last group of fewer
            // than eight lanes is stored eight wide all the same, first:
            // each step's store spills into the next step's first lanes,
            // which the later stores overwrite, so its blocks must stop a
            // step short of the end.
            let rem = W % 8;
            let end = if rem == 0 { kc / 8 * 8 } else { (kc - 1) / 8 * 8 };
            let groups = (W - rem..W).step_by(8).chain((0..W - rem).step_by(8));
            for w0 in groups {
                let last = (W - w0).min(8) - 1;
                let lines: [&[f32]; 8] = std::array::from_fn(|i| line(w0 + i.min(last)));
                for p0 in (0..end).step_by(8) {
                    // SAFETY: AVX per this function's contract; each line
                    // holds kc >= p0 + 8 elements; steps p0..=p0+8 exist
                    // when the stores spill (end < kc), and hold them.
                    unsafe { x86::transpose_8x8(&lines, p0, &mut dst[p0..(p0 + 9).min(kc)], w0) };
                }
            }
            tail = end;
        }
        for w in 0..valid {
            for (d, &v) in dst[tail..].iter_mut().zip(&line(w)[tail..]) {
                d[w] = v;
            }
        }
    } else if sw == 1 {
        // Steps of fewer than W contiguous elements: a matrix's edge.
        for (p, d) in dst.iter_mut().enumerate() {
            for (d, &v) in d.iter_mut().zip(&src[origin + p * sk..][..valid]) {
                *d = v;
            }
        }
    } else {
        for (p, d) in dst.iter_mut().enumerate() {
            for (w, d) in d[..valid].iter_mut().enumerate() {
                *d = src[origin + w * sw + p * sk];
            }
        }
    }
}

/// How a tile's sums meet C.
#[derive(Clone, Copy)]
enum Update {
    /// `C <- alpha S`, ignoring C (NaN included): `beta == 0`.
    Set,
    /// `C <- alpha S + beta C`.
    Beta(f32),
    /// `C <- C + alpha S`.
    Add,
}

impl Update {
    /// The update of the `KC` block starting at depth `pc`: the first
    /// meets C's old contents, later ones add to it.
    fn of_block(pc: usize, beta: f32) -> Update {
        match (pc, beta) {
            (0, 0.0) => Update::Set,
            (0, beta) => Update::Beta(beta),
            _ => Update::Add,
        }
    }
}

/// Where one register tile of C lies, its valid `rows x cols`, and how
/// its sums meet C.
struct Tile {
    c: *mut f32,
    rsc: isize,
    csc: isize,
    rows: usize,
    cols: usize,
    alpha: f32,
    update: Update,
}

/// The `MR x W` sums of a tile over a packed block (edge rows are zeros in
/// the packed A), without FMA. Returned by value, so the accumulators live
/// in registers through the loop (a caller that indexes them by a run-time
/// count would keep them in memory).
#[inline(always)]
fn sums<const MR: usize, const NR: usize, const W: usize>(
    ap: &[[f32; MR]],
    bp: &[[f32; NR]],
) -> [[f32; W]; MR] {
    let mut acc = [[0.0f32; W]; MR];
    for (&a, b) in ap.iter().zip(bp) {
        let v: [f32; W] = std::array::from_fn(|j| b[j]);
        for (acc, w) in acc.iter_mut().zip(a) {
            for (s, &v) in acc.iter_mut().zip(&v) {
                *s = madd::<f32, false>(w, v, *s);
            }
        }
    }
    acc
}

impl Tile {
    /// The portable tile: the sums in arrays the compiler vectorises, 8 or
    /// 16 columns as the tile needs, then written to C.
    ///
    /// # Safety
    /// The valid part of the tile must lie in C and be aliased by nothing
    /// else.
    #[inline(always)]
    unsafe fn run_portable(&self, ap: &[[f32; 6]], bp: &[[f32; 16]]) {
        // SAFETY: as this function's contract.
        unsafe {
            if self.cols <= 8 {
                self.store(&sums::<6, 16, 8>(ap, bp))
            } else {
                self.store(&sums::<6, 16, 16>(ap, bp))
            }
        }
    }

    /// Writes the valid part of the sums `acc` to C, element by element.
    ///
    /// # Safety
    /// As [`Tile::run_portable`]; `acc` covers the valid part.
    #[inline(always)]
    unsafe fn store<const W: usize>(&self, acc: &[[f32; W]]) {
        let (alpha, update) = (self.alpha, self.update);
        let f = |old: f32, s: f32| match update {
            Update::Set => alpha * s,
            Update::Beta(beta) => alpha * s + beta * old,
            Update::Add => old + alpha * s,
        };
        for (r, acc) in acc[..self.rows].iter().enumerate() {
            // SAFETY: row r of the tile's valid part lies in C.
            let row = unsafe { self.c.offset(r as isize * self.rsc) };
            if self.csc == 1 {
                // SAFETY: `cols` contiguous elements of C, borrowed by nobody else.
                let out = unsafe { std::slice::from_raw_parts_mut(row, self.cols) };
                for (o, &s) in out.iter_mut().zip(acc) {
                    *o = f(*o, s);
                }
            } else {
                for (j, &s) in acc[..self.cols].iter().enumerate() {
                    // SAFETY: element (r, j) of the valid part lies in C.
                    unsafe {
                        let p = row.offset(j as isize * self.csc);
                        *p = f(*p, s);
                    }
                }
            }
        }
    }
}

/// The register tiles written with intrinsics, each accumulator a named
/// vector, so nothing of the tile goes through memory before C.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{AVX2_TILE, AVX512_TILE, KC, Panels, Product, Tile, Transpose, Update, blocked};

    /// `len` elements of `v` (grown if need be) from a cache line's start,
    /// so that a packed panel's rows do not straddle lines.
    fn grow_aligned(v: &mut Vec<f32>, len: usize) -> &mut [f32] {
        const LINE: usize = 64 / std::mem::size_of::<f32>();
        let v = tensor4d::grow(v, len + LINE - 1);
        let skip = v.as_ptr().align_offset(64).min(LINE - 1);
        &mut v[skip..skip + len]
    }

    /// Element `(i, p0 + j)` of the eight `lines` into lane `w0 + i` of
    /// `dst[j]`, for `j < 8`: an 8x8 transpose in registers. Each step's
    /// eight lanes are stored at once, so with `w0 + 8 > W` they run on
    /// into the next step's first lanes.
    ///
    /// # Safety
    /// The CPU must have AVX; every line must hold `p0 + 8` elements.
    #[inline(always)]
    pub(super) unsafe fn transpose_8x8<const W: usize>(
        lines: &[&[f32]; 8],
        p0: usize,
        dst: &mut [[f32; W]],
        w0: usize,
    ) {
        assert!(7 * W + w0 + 8 <= dst.len() * W, "the stores lie in dst");
        let base = dst.as_mut_ptr().cast::<f32>();
        // SAFETY: the loads stay within the lines as the contract says, the
        // stores within dst as asserted; AVX per contract.
        unsafe {
            let r: [__m256; 8] = std::array::from_fn(|i| _mm256_loadu_ps(lines[i].as_ptr().add(p0)));
            // Pairs of lines interleaved, then quadruples, then halves swapped.
            let t0 = _mm256_unpacklo_ps(r[0], r[1]);
            let t1 = _mm256_unpackhi_ps(r[0], r[1]);
            let t2 = _mm256_unpacklo_ps(r[2], r[3]);
            let t3 = _mm256_unpackhi_ps(r[2], r[3]);
            let t4 = _mm256_unpacklo_ps(r[4], r[5]);
            let t5 = _mm256_unpackhi_ps(r[4], r[5]);
            let t6 = _mm256_unpacklo_ps(r[6], r[7]);
            let t7 = _mm256_unpackhi_ps(r[6], r[7]);
            let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
            let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
            let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
            let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
            let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
            let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
            let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
            let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
            let out = [
                _mm256_permute2f128_ps::<0x20>(u0, u4),
                _mm256_permute2f128_ps::<0x20>(u1, u5),
                _mm256_permute2f128_ps::<0x20>(u2, u6),
                _mm256_permute2f128_ps::<0x20>(u3, u7),
                _mm256_permute2f128_ps::<0x31>(u0, u4),
                _mm256_permute2f128_ps::<0x31>(u1, u5),
                _mm256_permute2f128_ps::<0x31>(u2, u6),
                _mm256_permute2f128_ps::<0x31>(u3, u7),
            ];
            for (j, v) in out.into_iter().enumerate() {
                _mm256_storeu_ps(base.add(j * W + w0), v);
            }
        }
    }

    /// [`super::sgemm`] on the 6 x 16 AVX2 tile.
    ///
    /// # Safety
    /// As [`super::sgemm`]; the CPU must have AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn sgemm_avx2<B: Panels>(p: Product<'_, B>, pa: &mut Vec<f32>, pb: &mut Vec<f32>) {
        // SAFETY: as this function's contract.
        unsafe {
            blocked::<{ AVX2_TILE.0 }, { AVX2_TILE.1 }, _>(p, pa, pb, Transpose::Avx, |t, ap, bp| {
                t.run_avx2(ap, bp)
            })
        }
    }

    /// [`super::sgemm`] on the 12 x 32 AVX-512 tile.
    ///
    /// # Safety
    /// As [`super::sgemm`]; the CPU must have AVX-512F, AVX2 and FMA.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn sgemm_avx512<B: Panels>(p: Product<'_, B>, pa: &mut Vec<f32>, pb: &mut Vec<f32>) {
        // SAFETY: as this function's contract.
        unsafe {
            blocked::<{ AVX512_TILE.0 }, { AVX512_TILE.1 }, _>(p, pa, pb, Transpose::Avx, |t, ap, bp| {
                t.run_avx512(ap, bp)
            })
        }
    }

    /// [`super::sgemm`] on the 6 x 16 AVX2 tile without packing: each tile
    /// broadcasts A's elements from where they are and reads B's rows in
    /// place where they are contiguous and the tile is whole; only B's other
    /// tiles are packed. The sums are the packed path's, in its order.
    ///
    /// # Safety
    /// As [`super::sgemm`]; the CPU must have AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn sgemm_in_place(p: Product<'_>, pb: &mut Vec<f32>) {
        const MR: usize = AVX2_TILE.0;
        const NR: usize = AVX2_TILE.1;
        let Product {
            alpha,
            a,
            b,
            beta,
            c,
            rsc,
            csc,
        } = p;
        let (m, k, n) = (a.rows, a.cols, b.cols);
        let ntiles = n.div_ceil(NR);
        // Whole tiles of contiguous rows are read in place; the others,
        // from this one on, are packed.
        let packed_from = if b.cs == 1 { n / NR } else { 0 };
        for pc in (0..k).step_by(KC) {
            let kc = (k - pc).min(KC);
            let pb = grow_aligned(pb, (ntiles - packed_from) * kc * NR)
                .as_chunks_mut::<NR>()
                .0;
            // SAFETY: AVX per this function's contract.
            unsafe { b.pack_panels(pb, kc, pc, packed_from * NR, Transpose::Avx) };
            let update = Update::of_block(pc, beta);
            for tj in 0..ntiles {
                let j0 = tj * NR;
                let (bp, brs) = if tj < packed_from {
                    (b.data[pc * b.rs + j0..].as_ptr(), b.rs)
                } else {
                    (pb[(tj - packed_from) * kc..].as_ptr().cast::<f32>(), NR)
                };
                for i0 in (0..m).step_by(MR) {
                    let rows = (m - i0).min(MR);
                    let t = Tile {
                        // SAFETY: the tile's valid part lies in C.
                        c: unsafe { c.offset(i0 as isize * rsc + j0 as isize * csc) },
                        rsc,
                        csc,
                        rows,
                        cols: (n - j0).min(NR),
                        alpha,
                        update,
                    };
                    // Only the rows A has: a tile at its edge computes no
                    // more. Whole tiles stay out of the match, which slowed
                    // them.
                    let (at, strides) = (a.data[i0 * a.rs + pc * a.cs..].as_ptr(), (a.rs, a.cs));
                    // SAFETY: A's `rows` rows from `at` hold kc elements at
                    // stride a.cs, and B's (in place or packed) kc rows of NR
                    // at stride brs; AVX2 and FMA per contract.
                    unsafe {
                        if rows == MR {
                            in_place_tile::<MR>(&t, at, strides, bp, brs, kc)
                        } else {
                            match rows {
                                5 => in_place_tile::<5>(&t, at, strides, bp, brs, kc),
                                4 => in_place_tile::<4>(&t, at, strides, bp, brs, kc),
                                3 => in_place_tile::<3>(&t, at, strides, bp, brs, kc),
                                2 => in_place_tile::<2>(&t, at, strides, bp, brs, kc),
                                _ => in_place_tile::<1>(&t, at, strides, bp, brs, kc),
                            }
                        }
                    }
                }
            }
        }
    }

    impl Tile {
        /// The AVX2 tile: all 6 rows (edge rows are zeros in the packed A)
        /// and 8 or 16 columns.
        ///
        /// # Safety
        /// The CPU must have AVX2 and FMA; the valid part of the tile must
        /// lie in C and be aliased by nothing else.
        #[inline(always)]
        unsafe fn run_avx2(&self, ap: &[[f32; 6]], bp: &[[f32; 16]]) {
            // SAFETY: as this function's contract.
            unsafe {
                if self.cols <= 8 {
                    self.finish_avx2(&sums_avx2::<1>(ap, bp))
                } else {
                    self.finish_avx2(&sums_avx2::<2>(ap, bp))
                }
            }
        }

        /// Applies the update to C: straight from the vectors for a whole
        /// tile over rows of C, through a small array at the edges.
        #[inline(always)]
        unsafe fn finish_avx2<const R: usize, const V: usize>(&self, acc: &[[__m256; V]; R]) {
            let (alpha, update) = (self.alpha, self.update);
            if self.rows == R && self.cols == 8 * V && self.csc == 1 {
                // SAFETY: the whole tile lies in C (rows of 8V contiguous
                // elements), which nothing else borrows; AVX per contract.
                unsafe {
                    let va = _mm256_set1_ps(alpha);
                    for (r, acc) in acc.iter().enumerate() {
                        let row = self.c.offset(r as isize * self.rsc);
                        for (v, &s) in acc.iter().enumerate() {
                            let p = row.add(8 * v);
                            let s = _mm256_mul_ps(va, s);
                            let out = match update {
                                Update::Set => s,
                                Update::Beta(beta) => {
                                    _mm256_add_ps(s, _mm256_mul_ps(_mm256_set1_ps(beta), _mm256_loadu_ps(p)))
                                }
                                Update::Add => _mm256_add_ps(_mm256_loadu_ps(p), s),
                            };
                            _mm256_storeu_ps(p, out);
                        }
                    }
                }
                return;
            }
            let mut sums = [[0.0f32; 16]; R];
            for (out, acc) in sums.iter_mut().zip(acc) {
                for (v, &s) in acc.iter().enumerate() {
                    // SAFETY: 8 floats at 8v of a 16-float row; AVX per contract.
                    unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(8 * v), s) };
                }
            }
            // SAFETY: as this function's contract.
            unsafe { self.store(&sums) }
        }

        /// The AVX-512 tile: all 12 rows (edge rows are zeros in the packed
        /// A) and 16 or 32 columns.
        ///
        /// # Safety
        /// The CPU must have AVX-512F; the rest as [`Tile::run_avx2`].
        #[inline(always)]
        unsafe fn run_avx512(&self, ap: &[[f32; 12]], bp: &[[f32; 32]]) {
            // SAFETY: as this function's contract.
            unsafe {
                if self.cols <= 16 {
                    self.finish_avx512(&sums_avx512::<1>(ap, bp))
                } else {
                    self.finish_avx512(&sums_avx512::<2>(ap, bp))
                }
            }
        }

        /// Applies the update to C: over rows of C straight from the
        /// vectors, the columns past the edge masked off; through a small
        /// array for C with a column stride.
        #[inline(always)]
        unsafe fn finish_avx512<const V: usize>(&self, acc: &[[__m512; V]; 12]) {
            let (alpha, update) = (self.alpha, self.update);
            if self.csc == 1 {
                // SAFETY: the masked lanes of each row lie in C's valid part,
                // which nothing else borrows (masked-off lanes are never
                // touched); AVX-512F per contract.
                unsafe {
                    let va = _mm512_set1_ps(alpha);
                    for (r, acc) in acc[..self.rows].iter().enumerate() {
                        let row = self.c.offset(r as isize * self.rsc);
                        for (v, &s) in acc.iter().enumerate() {
                            let lanes = self.cols.saturating_sub(16 * v).min(16);
                            let mask: __mmask16 = ((1u32 << lanes) - 1) as u16;
                            let p = row.add(16 * v);
                            let s = _mm512_mul_ps(va, s);
                            let out = match update {
                                Update::Set => s,
                                Update::Beta(beta) => _mm512_add_ps(
                                    s,
                                    _mm512_mul_ps(_mm512_set1_ps(beta), _mm512_maskz_loadu_ps(mask, p)),
                                ),
                                Update::Add => _mm512_add_ps(_mm512_maskz_loadu_ps(mask, p), s),
                            };
                            _mm512_mask_storeu_ps(p, mask, out);
                        }
                    }
                }
                return;
            }
            let mut sums = [[0.0f32; 32]; 12];
            for (out, acc) in sums.iter_mut().zip(acc) {
                for (v, &s) in acc.iter().enumerate() {
                    // SAFETY: 16 floats at 16v of a 32-float row; AVX-512F per contract.
                    unsafe { _mm512_storeu_ps(out.as_mut_ptr().add(16 * v), s) };
                }
            }
            // SAFETY: as this function's contract.
            unsafe { self.store(&sums) }
        }
    }

    /// The `6 x 8V` sums of a tile over a packed block.
    #[inline(always)]
    unsafe fn sums_avx2<const V: usize>(ap: &[[f32; 6]], bp: &[[f32; 16]]) -> [[__m256; V]; 6] {
        // SAFETY: AVX2 and FMA per the caller's contract; every load reads
        // within one packed array.
        unsafe {
            let mut acc = [[_mm256_setzero_ps(); V]; 6];
            for (a, b) in ap.iter().zip(bp) {
                let v: [__m256; V] = std::array::from_fn(|v| _mm256_loadu_ps(b.as_ptr().add(8 * v)));
                for (acc, w) in acc.iter_mut().zip(a) {
                    let w = _mm256_set1_ps(*w);
                    for (s, &v) in acc.iter_mut().zip(&v) {
                        *s = _mm256_fmadd_ps(w, v, *s);
                    }
                }
            }
            acc
        }
    }

    /// The `R`-row tile `t` read in place: A's rows from `a` (strides
    /// `(ars, acs)`), B's `kc` rows of up to 16 at `b`, `brs` apart.
    ///
    /// # Safety
    /// AVX2 and FMA; `t`'s valid part lies in C, aliased by nothing; every
    /// element read lies in its operand.
    #[inline(always)]
    unsafe fn in_place_tile<const R: usize>(
        t: &Tile,
        a: *const f32,
        (ars, acs): (usize, usize),
        b: *const f32,
        brs: usize,
        kc: usize,
    ) {
        // SAFETY: as this function's contract.
        unsafe {
            let ap: [*const f32; R] = std::array::from_fn(|r| a.add(r * ars));
            if t.cols <= 8 {
                t.finish_avx2(&sums_avx2_in_place::<R, 1>(ap, acs, b, brs, kc))
            } else {
                t.finish_avx2(&sums_avx2_in_place::<R, 2>(ap, acs, b, brs, kc))
            }
        }
    }

    /// The `R x 8V` sums of a tile read in place: step `p` broadcasts
    /// `a[r][p * acs]` for each row pointer and reads `8V` elements at
    /// `b + p * brs`; the same products in the same order as
    /// [`sums_avx2`].
    ///
    /// # Safety
    /// AVX2 and FMA; every element read must lie in its operand.
    #[inline(always)]
    unsafe fn sums_avx2_in_place<const R: usize, const V: usize>(
        a: [*const f32; R],
        acs: usize,
        b: *const f32,
        brs: usize,
        kc: usize,
    ) -> [[__m256; V]; R] {
        // SAFETY: as this function's contract.
        unsafe {
            let mut acc = [[_mm256_setzero_ps(); V]; R];
            for p in 0..kc {
                let row = b.add(p * brs);
                let v: [__m256; V] = std::array::from_fn(|v| _mm256_loadu_ps(row.add(8 * v)));
                for (acc, a) in acc.iter_mut().zip(a) {
                    let w = _mm256_set1_ps(*a.add(p * acs));
                    for (s, &v) in acc.iter_mut().zip(&v) {
                        *s = _mm256_fmadd_ps(w, v, *s);
                    }
                }
            }
            acc
        }
    }

    /// The `12 x 16V` sums of a tile over a packed block.
    #[inline(always)]
    unsafe fn sums_avx512<const V: usize>(ap: &[[f32; 12]], bp: &[[f32; 32]]) -> [[__m512; V]; 12] {
        // SAFETY: AVX-512F per the caller's contract; every load reads
        // within one packed array.
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); V]; 12];
            for (a, b) in ap.iter().zip(bp) {
                let v: [__m512; V] = std::array::from_fn(|v| _mm512_loadu_ps(b.as_ptr().add(16 * v)));
                for (acc, w) in acc.iter_mut().zip(a) {
                    let w = _mm512_set1_ps(*w);
                    for (s, &v) in acc.iter_mut().zip(&v) {
                        *s = _mm512_fmadd_ps(w, v, *s);
                    }
                }
            }
            acc
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tensor4d::Window;

    /// Small integers: every product and sum below 2^24 is exact in f32.
    fn ints(len: usize, seed: u64) -> Vec<f32> {
        (0..len)
            .map(|i| ((i as u64 * 2_654_435_761 + seed * 40_503) % 9) as f32 - 4.0)
            .collect()
    }

    #[test]
    fn strided_operands_and_a_block_of_c() {
        // A read with a row gap, B column-major, C a 3x5 block of a 4x8 matrix.
        let (m, k, n) = (3, 7, 5);
        let a = ints(m * 9, 3);
        let b = ints(k * n, 4);
        for tile in TILES.into_iter().filter(|t| t.is_available()) {
            let mut c = vec![7.0f32; 4 * 8];
            let product = Product {
                alpha: 1.0,
                a: MatRef::new(&a, m, k, 9, 1),
                b: MatRef::new(&b, k, n, 1, k),
                beta: 0.0,
                // SAFETY: element (1, 2) of the 4x8 row-major `c`.
                c: unsafe { c.as_mut_ptr().add(8 + 2) },
                rsc: 8,
                csc: 1,
            };
            // SAFETY: rows 1..4, columns 2..7 of `c`; the tile is available.
            unsafe { sgemm(tile, &mut GemmScratch::default(), product) };
            for i in 0..4 {
                for j in 0..8 {
                    let want = if (1..4).contains(&i) && (2..7).contains(&j) {
                        (0..k).map(|p| a[(i - 1) * 9 + p] * b[(j - 2) * k + p]).sum()
                    } else {
                        7.0
                    };
                    assert_eq!(c[i * 8 + j], want, "{tile:?}: ({i}, {j})");
                }
            }
        }
    }

    #[test]
    fn warm_calls_reuse_the_packing_space() {
        let (a, b) = (ints(300 * 300, 5), ints(300 * 300, 6));
        let mut c = vec![0.0f32; 300 * 300];
        for tile in TILES.into_iter().filter(|t| t.is_available()) {
            let mut scratch = GemmScratch::default();
            let mut run = |scratch: &mut GemmScratch| {
                let product = Product {
                    alpha: 1.0,
                    a: MatRef::row_major(&a, 300, 300),
                    b: MatRef::row_major(&b, 300, 300),
                    beta: 0.0,
                    c: c.as_mut_ptr(),
                    rsc: 300,
                    csc: 1,
                };
                // SAFETY: C is 300x300 row-major in its own buffer; the tile is available.
                unsafe { sgemm(tile, scratch, product) }
            };
            run(&mut scratch);
            let at = |s: &GemmScratch| (s.a.as_ptr(), s.a.capacity(), s.b.as_ptr(), s.b.capacity());
            let before = at(&scratch);
            assert!(before.1 > 0 && before.3 > 0);
            run(&mut scratch);
            assert_eq!(at(&scratch), before, "{tile:?}");
        }
    }

    /// Values with full mantissas, so that any change in the order of a sum
    /// would show in the bits.
    fn reals(len: usize, seed: u64) -> Vec<f32> {
        (0..len)
            .map(|i| ((i as u64 * 2_654_435_761 + seed * 40_503) % 10_007) as f32 / 1_234.567 - 4.0)
            .collect()
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn in_place_products_give_the_packed_bits() {
        // Small products run in place, an edge tile on the rows A has: the
        // packed loops must give the same bits, on values that round, for
        // every row count at the edge (1 to 5), B read in place or packed,
        // each update of C, and more than one block of KC.
        if !MicroKernel::Avx2.is_available() {
            eprintln!("skipped: this CPU lacks the avx2 instructions");
            return;
        }
        let cases = [
            (1, 1, 1),
            (5, 9, 8),
            (7, 300, 17),
            (10, 100, 100),
            (13, 25, 33),
            (30, 576, 25),
            (100, 10, 100),
        ];
        for (m, k, n) in cases {
            for (packed_b, beta) in [(false, 0.0), (true, 1.0), (false, -2.0), (true, 0.0)] {
                let (a, b, old) = (reals(m * k, 1), reals(k * n, 2), reals(m * n, 3));
                let bm = if packed_b {
                    MatRef::new(&b, k, n, 1, k)
                } else {
                    MatRef::row_major(&b, k, n)
                };
                let run = |in_place: bool| {
                    let mut c = old.clone();
                    let p = Product {
                        alpha: 1.0,
                        a: MatRef::row_major(&a, m, k),
                        b: bm,
                        beta,
                        c: c.as_mut_ptr(),
                        rsc: n as isize,
                        csc: 1,
                    };
                    // SAFETY: C is m x n row-major in its own buffer; AVX2
                    // and FMA were checked above.
                    unsafe {
                        if in_place {
                            x86::sgemm_in_place(p, &mut Vec::new())
                        } else {
                            packed_on(MicroKernel::Avx2, &mut Vec::new(), &mut Vec::new(), p)
                        }
                    }
                    c.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
                };
                assert!(
                    run(true) == run(false),
                    "{m}x{k}x{n}, B packed {packed_b}, beta {beta}"
                );
            }
        }
    }

    #[test]
    fn the_avx512_tile_gives_the_avx2_tiles_bits() {
        // The AVX-512 path runs the narrow tile on some CPUs: both must give
        // the same bits, including partial tiles, several blocks of KC,
        // transposed operands and every update of C. Small products run in
        // place on either; the larger ones here reach the tiles themselves.
        if !MicroKernel::Avx512.is_available() {
            eprintln!("skipped: this CPU lacks the avx512 instructions");
            return;
        }
        let cases = [
            (1, 1, 1),
            (13, 7, 17),
            (30, 300, 33),
            (12, 600, 70),
            (5, 257, 10),
            (40, 90, 3),
            (150, 300, 40),
            (40, 530, 70),
            (7, 1100, 150),
        ];
        assert!(cases.iter().filter(|&&(m, k, n)| m * k * n > SMALL).count() >= 3);
        for (m, k, n) in cases {
            for (ta, tb, beta) in [
                (false, false, 0.0),
                (true, false, 1.0),
                (false, true, 0.5),
                (true, true, 0.0),
            ] {
                let (a, b, old) = (reals(m * k, 1), reals(k * n, 2), reals(m * n, 3));
                let am = if ta {
                    MatRef::row_major(&a, k, m).t()
                } else {
                    MatRef::row_major(&a, m, k)
                };
                let bm = if tb {
                    MatRef::row_major(&b, n, k).t()
                } else {
                    MatRef::row_major(&b, k, n)
                };
                let run = |tile: MicroKernel| {
                    let mut c = old.clone();
                    let product = Product {
                        alpha: 1.5,
                        a: am,
                        b: bm,
                        beta,
                        c: c.as_mut_ptr(),
                        rsc: n as isize,
                        csc: 1,
                    };
                    // SAFETY: C is m x n row-major in its own buffer; the tile is available.
                    unsafe { sgemm(tile, &mut GemmScratch::default(), product) };
                    c
                };
                let (wide, narrow) = (run(MicroKernel::Avx512), run(MicroKernel::Avx2));
                let same = wide.iter().zip(&narrow).all(|(x, y)| x.to_bits() == y.to_bits());
                assert!(
                    same,
                    "{m}x{k}x{n} (ta {ta}, tb {tb}, beta {beta}): the tiles differ"
                );
            }
        }
    }

    #[test]
    fn windows_on_the_avx512_tile_give_the_avx2_tiles_bits() {
        // The 12 x 32 tile packs windows 32 lanes wide; `tests/paths.rs`
        // holds the 6 x 16 tile's windows to the written columns.
        if !MicroKernel::Avx512.is_available() {
            eprintln!("skipped: this CPU lacks the avx512 instructions");
            return;
        }
        let cases = [
            (2, (3, 9, 9), Window::square(3).with_pad(1), 13),
            (3, (32, 14, 14), Window::square(5).with_pad(2), 20),
            (5, (4, 7, 7), Window::square(3), 7),
            (2, (3, 13, 13), Window::square(3).with_pad(1).with_stride(2), 30),
            (1, (2, 40, 50), Window::new(2, 3).with_pads(0, 1), 5),
        ];
        for (images, (c, h, w), win, m) in cases {
            let x = reals(images * c * h * w, 4);
            for transposed in [false, true] {
                let windows = Windows::new(&x, (c, h, w), win).unwrap();
                let windows = if transposed { windows.t() } else { windows };
                let (k, n) = (windows.rows(), windows.cols());
                let (a, old) = (reals(m * k, 5), reals(m * n, 6));
                let run = |tile: MicroKernel| {
                    let mut c = old.clone();
                    let product = Product {
                        alpha: 1.5,
                        a: MatRef::row_major(&a, m, k),
                        b: (),
                        beta: 0.5,
                        c: c.as_mut_ptr(),
                        rsc: n as isize,
                        csc: 1,
                    };
                    // SAFETY: C is m x n row-major in its own buffer; the tile is available.
                    unsafe { sgemm_windows(tile, &mut GemmScratch::default(), &windows, product) };
                    c
                };
                let (wide, narrow) = (run(MicroKernel::Avx512), run(MicroKernel::Avx2));
                let same = wide.iter().zip(&narrow).all(|(x, y)| x.to_bits() == y.to_bits());
                assert!(
                    same,
                    "{images} images {c}x{h}x{w}, {win}, transposed {transposed}: the tiles differ"
                );
            }
        }
    }

    /// Every tile, widest first.
    const TILES: [MicroKernel; 3] = [MicroKernel::Avx512, MicroKernel::Avx2, MicroKernel::Portable];
}
