//! The general `f32` GEMM behind [`crate::gemm_with`]: BLIS's loops around
//! a 6 x 16 register tile (12 AVX2 accumulators), with A and B packed into
//! a [`GemmScratch`] that the caller keeps between calls. `matrixmultiply`
//! allocates its packing buffer on every call; here a warm training step,
//! which repeats the same shapes with the same scratches, allocates nothing.
//!
//! Blocking, for a core with 32 KiB of L1 and 1 MiB of L2: a 16-column
//! panel of packed B, `KC` deep (16 KiB), stays in L1 while the tiles of
//! packed A (`MC` x `KC`, 144 KiB) stream from L2.

use std::cell::RefCell;

use tensor4d::grow;

use crate::small::madd;
use crate::{MatRef, TILE_COLS as NR, TILE_ROWS as MR};

/// Depth of one packed block: each element of C gets its sum in blocks of
/// this many products, added to C in order.
const KC: usize = 256;
/// Rows of A packed at a time (a multiple of `MR`).
const MC: usize = 24 * MR;
/// Columns of B packed at a time (a multiple of `NR`).
const NC: usize = 255 * NR;

/// Packing space for [`crate::gemm_with`]: grown to the largest block it
/// has served and never shrunk, so a caller that keeps one (a layer keeps
/// one per parallel part of its work) repeats products of the same shapes
/// without allocating. `f64` products do not use it.
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
    a: Vec<[f32; MR]>,
    b: Vec<[f32; NR]>,
}

thread_local! {
    /// The scratch of [`crate::gemm`], for callers that keep none.
    static SCRATCH: RefCell<GemmScratch> = const { RefCell::new(GemmScratch { a: Vec::new(), b: Vec::new() }) };
}

/// Runs `f` with this thread's own scratch.
pub(crate) fn with_thread_scratch<R>(f: impl FnOnce(&mut GemmScratch) -> R) -> R {
    // Nothing that runs under the borrow calls back into this function.
    SCRATCH.with(|s| f(&mut s.borrow_mut()))
}

/// `C <- alpha A B + beta C` for `f32`; with `beta == 0` the old contents
/// of C are ignored (NaN included). Each element is summed over `k` in
/// order within blocks of `KC`, the blocks added to C in order, so the
/// result depends on the shapes and the CPU (FMA or not), never on threads.
///
/// # Safety
/// C at `c` with strides `(rsc, csc)` must hold `a.rows x b.cols` valid,
/// distinct elements that alias neither A nor B.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn sgemm(
    scratch: &mut GemmScratch,
    alpha: f32,
    a: MatRef<'_, f32>,
    b: MatRef<'_, f32>,
    beta: f32,
    c: *mut f32,
    rsc: isize,
    csc: isize,
) {
    // SAFETY: forwarded; the caller upholds the contract.
    unsafe { sgemm_on(true, scratch, alpha, a, b, beta, c, rsc, csc) }
}

/// [`sgemm`], with the AVX2 kernels only if `simd` and the CPU has them
/// (tests run the portable kernels on any machine through `simd = false`).
///
/// # Safety
/// As [`sgemm`].
#[allow(clippy::too_many_arguments)]
unsafe fn sgemm_on(
    simd: bool,
    scratch: &mut GemmScratch,
    alpha: f32,
    a: MatRef<'_, f32>,
    b: MatRef<'_, f32>,
    beta: f32,
    c: *mut f32,
    rsc: isize,
    csc: isize,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if m == 0 || n == 0 {
        return;
    }
    let at = |i: usize, j: usize| i as isize * rsc + j as isize * csc;
    if k == 0 {
        for i in 0..m {
            for j in 0..n {
                // SAFETY: (i, j) lies in C, which the caller vouches for.
                unsafe {
                    let p = c.offset(at(i, j));
                    *p = if beta == 0.0 { 0.0 } else { beta * *p };
                }
            }
        }
        return;
    }
    let GemmScratch { a: pa, b: pb } = scratch;
    crate::with_simd(
        #[inline(always)]
        |fma| {
            // SAFETY: forwarded; the caller upholds the contract.
            unsafe {
                if fma && simd {
                    blocked::<true>(alpha, a, b, beta, c, rsc, csc, pa, pb)
                } else {
                    blocked::<false>(alpha, a, b, beta, c, rsc, csc, pa, pb)
                }
            }
        },
    )
}

/// BLIS's five loops: B in `NC`-column slabs, the sum in `KC`-deep blocks
/// (B's block packed once), A in `MC`-row blocks (packed once), then the
/// register tiles.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn blocked<const FMA: bool>(
    alpha: f32,
    a: MatRef<'_, f32>,
    b: MatRef<'_, f32>,
    beta: f32,
    c: *mut f32,
    rsc: isize,
    csc: isize,
    pa: &mut Vec<[f32; MR]>,
    pb: &mut Vec<[f32; NR]>,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    for jc in (0..n).step_by(NC) {
        let nc = (n - jc).min(NC);
        let ntiles = nc.div_ceil(NR);
        for pc in (0..k).step_by(KC) {
            let kc = (k - pc).min(KC);
            let pb = grow(pb, ntiles * kc);
            for (t, panel) in pb.chunks_exact_mut(kc).enumerate() {
                let j0 = jc + t * NR;
                pack(panel, b.data, pc * b.rs + j0 * b.cs, (n - j0).min(NR), b.cs, b.rs);
            }
            // The first block meets C's old contents; later ones add to it.
            let update = match (pc, beta) {
                (0, 0.0) => Update::Set,
                (0, beta) => Update::Beta(beta),
                _ => Update::Add,
            };
            for ic in (0..m).step_by(MC) {
                let mtiles = (m - ic).min(MC).div_ceil(MR);
                let pa = grow(pa, mtiles * kc);
                for (t, panel) in pa.chunks_exact_mut(kc).enumerate() {
                    let i0 = ic + t * MR;
                    pack(panel, a.data, i0 * a.rs + pc * a.cs, (m - i0).min(MR), a.rs, a.cs);
                }
                for (tj, bp) in pb.chunks_exact(kc).enumerate() {
                    let j0 = jc + tj * NR;
                    for (ti, ap) in pa.chunks_exact(kc).enumerate() {
                        let i0 = ic + ti * MR;
                        let (rows, cols) = ((m - i0).min(MR), (n - j0).min(NR));
                        // SAFETY: the tile's valid part lies in C.
                        let c = unsafe { c.offset(i0 as isize * rsc + j0 as isize * csc) };
                        let tile = Tile {
                            c,
                            rsc,
                            csc,
                            rows,
                            cols,
                            alpha,
                            update,
                        };
                        #[cfg(target_arch = "x86_64")]
                        if FMA {
                            // SAFETY: FMA is true only where the CPU has AVX2 and FMA.
                            unsafe { tile.run_avx2(ap, bp) };
                            continue;
                        }
                        // SAFETY: the tile's valid part lies in C.
                        unsafe { tile.run::<FMA>(ap, bp) };
                    }
                }
            }
        }
    }
}

/// Copies `dst.len()` steps along k of a `W`-wide strip into `dst`, one
/// array per step: element `(w, p)` is `src[origin + w*sw + p*sk]`, and the
/// `W - valid` lanes past the matrix's edge are zero.
#[inline(always)]
fn pack<const W: usize>(
    dst: &mut [[f32; W]],
    src: &[f32],
    origin: usize,
    valid: usize,
    sw: usize,
    sk: usize,
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
        // Each lane is a contiguous line along k (A row-major, B transposed).
        for w in 0..valid {
            let line = &src[origin + w * sw..][..kc];
            for (d, &v) in dst.iter_mut().zip(line) {
                d[w] = v;
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
/// the packed A). Returned by value, so the accumulators live in registers
/// through the loop (a caller that indexes them by a run-time count would
/// keep them in memory).
#[inline(always)]
fn sums<const W: usize, const FMA: bool>(ap: &[[f32; MR]], bp: &[[f32; NR]]) -> [[f32; W]; MR] {
    let mut acc = [[0.0f32; W]; MR];
    for (&a, b) in ap.iter().zip(bp) {
        let v: [f32; W] = std::array::from_fn(|j| b[j]);
        for (acc, w) in acc.iter_mut().zip(a) {
            for (s, &v) in acc.iter_mut().zip(&v) {
                *s = madd::<f32, FMA>(w, v, *s);
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
    unsafe fn run<const FMA: bool>(&self, ap: &[[f32; MR]], bp: &[[f32; NR]]) {
        // SAFETY: as this function's contract.
        unsafe {
            if self.cols <= NR / 2 {
                self.store(&sums::<{ NR / 2 }, FMA>(ap, bp))
            } else {
                self.store(&sums::<NR, FMA>(ap, bp))
            }
        }
    }

    /// Writes the valid part of the sums `acc` to C, element by element.
    ///
    /// # Safety
    /// As [`Tile::run`]; `acc` covers the valid part.
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

/// The register tile written with AVX2 intrinsics: 12 (or, for a last
/// panel at most 8 wide, 6) accumulators, each a named vector, so nothing
/// of the tile ever goes through memory before C.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{MR, NR, Tile, Update};

    impl Tile {
        /// [`Tile::run`] for a CPU with AVX2 and FMA, all `MR` rows (edge
        /// rows are zeros in the packed A) and 8 or 16 columns.
        ///
        /// # Safety
        /// The CPU must have AVX2 and FMA; the rest as [`Tile::run`].
        #[inline(always)]
        pub(super) unsafe fn run_avx2(&self, ap: &[[f32; MR]], bp: &[[f32; NR]]) {
            // SAFETY: as this function's contract.
            unsafe {
                if self.cols <= 8 {
                    self.finish(&sums::<1>(ap, bp))
                } else {
                    self.finish(&sums::<2>(ap, bp))
                }
            }
        }

        /// Applies the update to C: straight from the vectors for a whole
        /// tile over rows of C, through a small array at the edges.
        #[inline(always)]
        unsafe fn finish<const V: usize>(&self, acc: &[[__m256; V]; MR]) {
            let (alpha, update) = (self.alpha, self.update);
            if self.rows == MR && self.cols == 8 * V && self.csc == 1 {
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
            let mut sums = [[0.0f32; NR]; MR];
            for (out, acc) in sums.iter_mut().zip(acc) {
                for (v, &s) in acc.iter().enumerate() {
                    // SAFETY: 8 floats at 8v of a 16-float row; AVX per contract.
                    unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(8 * v), s) };
                }
            }
            // SAFETY: as this function's contract.
            unsafe { self.store(&sums) }
        }
    }

    /// The `MR x 8V` sums of a tile over a packed block.
    #[inline(always)]
    unsafe fn sums<const V: usize>(ap: &[[f32; MR]], bp: &[[f32; NR]]) -> [[__m256; V]; MR] {
        // SAFETY: AVX2 and FMA per the caller's contract; every load reads
        // within one packed array.
        unsafe {
            let mut acc = [[_mm256_setzero_ps(); V]; MR];
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Small integers: every product and sum below 2^24 is exact in f32,
    /// so the triple loop is an exact oracle whatever the summation order.
    fn ints(len: usize, seed: u64) -> Vec<f32> {
        (0..len)
            .map(|i| ((i as u64 * 2_654_435_761 + seed * 40_503) % 9) as f32 - 4.0)
            .collect()
    }

    proptest! {
        #[test]
        fn sgemm_matches_triple_loop(
            m in prop_oneof![1usize..20, 140usize..300],
            k in prop_oneof![0usize..20, 250usize..530],
            n in prop_oneof![1usize..40, 4070usize..4110],
            ta in any::<bool>(), tb in any::<bool>(), ccols in any::<bool>(), simd in any::<bool>(),
            beta in prop_oneof![Just(0.0f32), Just(1.0), Just(-2.0)],
            seed in 0u64..1000,
        ) {
            // Keep the work of one case small: big m, k and n never all at once.
            prop_assume!(m * k * n <= 3_000_000);
            let (a, b) = (ints(m * k, seed), ints(k * n, seed + 1));
            let am = if ta { MatRef::row_major(&a, k, m).t() } else { MatRef::row_major(&a, m, k) };
            let bm = if tb { MatRef::row_major(&b, n, k).t() } else { MatRef::row_major(&b, k, n) };
            let ael = |i: usize, p: usize| if ta { a[p * m + i] } else { a[i * k + p] };
            let bel = |p: usize, j: usize| if tb { b[j * k + p] } else { b[p * n + j] };
            // C row-major or column-major, old contents NaN when beta is 0.
            let old = ints(m * n, seed + 2);
            let mut c: Vec<f32> = if beta == 0.0 { vec![f32::NAN; m * n] } else { old.clone() };
            let (rsc, csc) = if ccols { (1, m as isize) } else { (n as isize, 1) };
            // SAFETY: C is m x n in `c` with those strides and its own buffer.
            unsafe { sgemm_on(simd, &mut GemmScratch::default(), 2.0, am, bm, beta, c.as_mut_ptr(), rsc, csc) };
            for i in 0..m {
                for j in 0..n {
                    let at = (i as isize * rsc + j as isize * csc) as usize;
                    let sum: f32 = (0..k).map(|p| ael(i, p) * bel(p, j)).sum();
                    let want = 2.0 * sum + if beta == 0.0 { 0.0 } else { beta * old[at] };
                    prop_assert_eq!(c[at], want, "element ({}, {})", i, j);
                }
            }
        }
    }

    #[test]
    fn strided_operands_and_a_block_of_c() {
        // A read with a row gap, B column-major, C a 3x5 block of a 4x8 matrix.
        let (m, k, n) = (3, 7, 5);
        let a = ints(m * 9, 3);
        let b = ints(k * n, 4);
        let am = MatRef::new(&a, m, k, 9, 1);
        let bm = MatRef::new(&b, k, n, 1, k);
        let mut c = vec![7.0f32; 4 * 8];
        // SAFETY: rows 1..4, columns 2..7 of the 4x8 row-major `c`.
        unsafe {
            sgemm(
                &mut GemmScratch::default(),
                1.0,
                am,
                bm,
                0.0,
                c.as_mut_ptr().add(8 + 2),
                8,
                1,
            )
        };
        for i in 0..4 {
            for j in 0..8 {
                let want = if (1..4).contains(&i) && (2..7).contains(&j) {
                    (0..k).map(|p| a[(i - 1) * 9 + p] * b[(j - 2) * k + p]).sum()
                } else {
                    7.0
                };
                assert_eq!(c[i * 8 + j], want, "({i}, {j})");
            }
        }
    }

    #[test]
    fn warm_calls_reuse_the_packing_space() {
        let (a, b) = (ints(300 * 300, 5), ints(300 * 300, 6));
        let mut c = vec![0.0f32; 300 * 300];
        let mut scratch = GemmScratch::default();
        let mut run = |scratch: &mut GemmScratch| unsafe {
            // SAFETY: C is 300x300 row-major in its own buffer.
            sgemm(
                scratch,
                1.0,
                MatRef::row_major(&a, 300, 300),
                MatRef::row_major(&b, 300, 300),
                0.0,
                c.as_mut_ptr(),
                300,
                1,
            )
        };
        run(&mut scratch);
        let at = |s: &GemmScratch| (s.a.as_ptr(), s.a.capacity(), s.b.as_ptr(), s.b.capacity());
        let before = at(&scratch);
        assert!(before.1 > 0 && before.3 > 0);
        run(&mut scratch);
        assert_eq!(at(&scratch), before);
    }
}
