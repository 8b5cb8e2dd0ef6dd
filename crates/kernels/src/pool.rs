//! 2x2 pooling at stride 2 (SimpleConvNet's max pool, LeNet's average
//! subsampling) over whole planes. Their rows of 12 or 14 outputs leave
//! the compiler's own vectors a scalar tail as long as their body, so on
//! the x86 paths the `f32` loops are written in AVX2 intrinsics, 8 outputs
//! a block, a row's last block moved back to end with the row (it computes
//! a few outputs again, to the same values). Every path makes the same
//! comparisons, and the same additions in the same order, as the generic
//! loops: the same bits.

use tensor4d::Float;

use crate::Isa;

/// Outputs of one block of the vector loops.
#[cfg(target_arch = "x86_64")]
const BLOCK: usize = 8;

/// Where each block of [`BLOCK`] outputs starts in a row of `len >= BLOCK`.
#[cfg(target_arch = "x86_64")]
fn blocks(len: usize) -> impl Iterator<Item = usize> {
    (0..len.div_ceil(BLOCK)).map(move |b| (b * BLOCK).min(len - BLOCK))
}

/// The output size `(oh, ow)` of 2x2 windows at stride 2 over `h x w`
/// planes, after checking that `x` and `out` hold the same number of
/// planes (and, for a backward, `exact`, that the windows cover the planes
/// exactly).
fn planes(x: usize, (h, w): (usize, usize), out: usize, exact: bool) -> (usize, usize) {
    let (oh, ow) = (h / 2, w / 2);
    let count = x.checked_div(h * w).unwrap_or(0);
    assert!(
        oh > 0
            && ow > 0
            && x == count * h * w
            && out == count * oh * ow
            && (!exact || (h, w) == (2 * oh, 2 * ow)),
        "2x2 pooling: {x} inputs of {h}x{w} planes for {out} outputs"
    );
    (oh, ow)
}

/// Whether the `f32` vector loops serve `T` on path `isa`.
#[cfg(target_arch = "x86_64")]
fn vectors<T: 'static>(isa: Isa, ow: usize) -> bool {
    ow >= BLOCK && std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() && isa != Isa::Portable
}

/// 2x2 max pooling at stride 2 over `h x w` planes (`x`, one after
/// another): output `(i, j)` of a plane is the max of its elements
/// `(2i, 2j), (2i, 2j+1), (2i+1, 2j), (2i+1, 2j+1)`, and `args` its
/// position (0 to 3, in that order; the first of equals wins). Returns
/// `false` if a window holds a NaN: `out` and `args` are then unspecified,
/// for the caller's general loop to redo. Panics if `out` and `args` do
/// not hold the same planes' `h/2 x w/2` outputs.
///
/// ```
/// let x = [1.0f32, 5.0, 2.0, 2.0,
///          3.0, 4.0, 2.0, 0.0];
/// let (mut out, mut args) = ([0.0f32; 2], [0u16; 2]);
/// assert!(kernels::max_pool_2x2(&x, (2, 4), &mut out, &mut args));
/// assert_eq!((out, args), ([5.0, 2.0], [1, 0]));
/// ```
pub fn max_pool_2x2<T: Float>(x: &[T], (h, w): (usize, usize), out: &mut [T], args: &mut [u16]) -> bool {
    Isa::active().max_pool_2x2(x, (h, w), out, args)
}

/// The backward of [`max_pool_2x2`] over planes that its windows cover
/// exactly (`h` and `w` even): writes `dx` whole, each element
/// `0 + dout` of its window if it was the window's max (`args`), else
/// `+0`: the bits of adding the gradients to a cleared `dx`, with no
/// clearing first. Panics on sizes that disagree.
///
/// ```
/// let mut dx = [9.0f32; 8];
/// kernels::max_pool_2x2_backward(&mut dx, (2, 4), &[0.5, -1.0], &[1, 2]);
/// assert_eq!(dx, [0.0, 0.5, 0.0, 0.0,
///                 0.0, 0.0, -1.0, 0.0]);
/// ```
pub fn max_pool_2x2_backward<T: Float>(dx: &mut [T], (h, w): (usize, usize), dout: &[T], args: &[u16]) {
    Isa::active().max_pool_2x2_backward(dx, (h, w), dout, args)
}

/// 2x2 average pooling at stride 2 over `h x w` planes: output `(i, j)`
/// is `(((0 + x(2i, 2j)) + x(2i, 2j+1)) + x(2i+1, 2j)) + x(2i+1, 2j+1)`
/// times `inv` (a quarter), summed in that order. Panics on sizes that
/// disagree.
///
/// ```
/// let mut out = [0.0f32; 1];
/// kernels::avg_pool_2x2(&[1.0f32, 2.0, 3.0, 6.0], (2, 2), 0.25, &mut out);
/// assert_eq!(out, [3.0]);
/// ```
pub fn avg_pool_2x2<T: Float>(x: &[T], (h, w): (usize, usize), inv: T, out: &mut [T]) {
    Isa::active().avg_pool_2x2(x, (h, w), inv, out)
}

/// The backward of [`avg_pool_2x2`] over planes that its windows cover
/// exactly: every element of `dx` is `0 + dout * inv` of its window, the
/// bits of adding to a cleared `dx`. Panics on sizes that disagree.
///
/// ```
/// let mut dx = [9.0f32; 4];
/// kernels::avg_pool_2x2_backward(&mut dx, (2, 2), &[2.0], 0.25);
/// assert_eq!(dx, [0.5; 4]);
/// ```
pub fn avg_pool_2x2_backward<T: Float>(dx: &mut [T], (h, w): (usize, usize), dout: &[T], inv: T) {
    Isa::active().avg_pool_2x2_backward(dx, (h, w), dout, inv)
}

impl Isa {
    /// [`max_pool_2x2`] on this path. Panics if this CPU lacks the path's
    /// instructions.
    pub fn max_pool_2x2<T: Float>(
        self,
        x: &[T],
        (h, w): (usize, usize),
        out: &mut [T],
        args: &mut [u16],
    ) -> bool {
        self.assert_available();
        let (oh, ow) = planes(x.len(), (h, w), out.len(), false);
        assert_eq!(args.len(), out.len(), "2x2 pooling: a position for each output");
        let rows = x.chunks_exact(h * w).flat_map(|p| p.chunks_exact(2 * w).take(oh));
        let mut whole = true;
        #[cfg(target_arch = "x86_64")]
        if vectors::<T>(self, ow) {
            // SAFETY: T is f32 (`vectors`); a path other than the portable one
            // has AVX2.
            unsafe { x86::max_f32(rows.map(|r| cast(r)), w, cast_mut(out), args, &mut whole) };
            return whole;
        }
        // Compiled for this path's instructions, as the layers' own loops are.
        self.run(
            #[inline(always)]
            |_| {
                let outs = out.chunks_exact_mut(ow).zip(args.chunks_exact_mut(ow));
                for (rows, (out, args)) in rows.zip(outs) {
                    let windows = rows[..w].chunks_exact(2).zip(rows[w..].chunks_exact(2));
                    for ((o, arg), (a, b)) in out.iter_mut().zip(args.iter_mut()).zip(windows) {
                        let (mut best, mut k) = (a[0], 0u16);
                        for (v, i) in [(a[1], 1), (b[0], 2), (b[1], 3)] {
                            let gt = v > best;
                            k = if gt { i } else { k };
                            best = if gt { v } else { best };
                        }
                        whole &= !(a[0].is_nan() | a[1].is_nan() | b[0].is_nan() | b[1].is_nan());
                        (*o, *arg) = (best, k);
                    }
                }
            },
        );
        whole
    }

    /// [`max_pool_2x2_backward`] on this path. Panics if this CPU lacks the path's
    /// instructions.
    pub fn max_pool_2x2_backward<T: Float>(
        self,
        dx: &mut [T],
        (h, w): (usize, usize),
        dout: &[T],
        args: &[u16],
    ) {
        self.assert_available();
        let (_, ow) = planes(dx.len(), (h, w), dout.len(), true);
        assert_eq!(args.len(), dout.len(), "2x2 pooling: a position for each output");
        let rows = dx.chunks_exact_mut(2 * w);
        #[cfg(target_arch = "x86_64")]
        if vectors::<T>(self, ow) {
            // SAFETY: as in `max_pool_2x2`.
            return unsafe { x86::max_back_f32(rows.map(|r| cast_mut(r)), w, cast(dout), args) };
        }
        // Compiled for this path's instructions, as the layers' own loops are.
        self.run(
            #[inline(always)]
            |_| {
                let pick = |g: T, k: u16, at: u16| if k == at { T::zero() + g } else { T::zero() };
                for (rows, (dout, args)) in rows.zip(dout.chunks_exact(ow).zip(args.chunks_exact(ow))) {
                    let (r0, r1) = rows.split_at_mut(w);
                    for (j, (&g, &k)) in dout.iter().zip(args).enumerate() {
                        (r0[2 * j], r0[2 * j + 1]) = (pick(g, k, 0), pick(g, k, 1));
                        (r1[2 * j], r1[2 * j + 1]) = (pick(g, k, 2), pick(g, k, 3));
                    }
                }
            },
        );
    }

    /// [`avg_pool_2x2`] on this path. Panics if this CPU lacks the path's
    /// instructions.
    pub fn avg_pool_2x2<T: Float>(self, x: &[T], (h, w): (usize, usize), inv: T, out: &mut [T]) {
        self.assert_available();
        let (oh, ow) = planes(x.len(), (h, w), out.len(), false);
        let rows = x.chunks_exact(h * w).flat_map(|p| p.chunks_exact(2 * w).take(oh));
        #[cfg(target_arch = "x86_64")]
        if vectors::<T>(self, ow) {
            // SAFETY: as in `max_pool_2x2` (`inv` is an f32, so exact through f64).
            return unsafe { x86::avg_f32(rows.map(|r| cast(r)), w, inv.as_f64() as f32, cast_mut(out)) };
        }
        // Compiled for this path's instructions, as the layers' own loops are.
        self.run(
            #[inline(always)]
            |_| {
                for (rows, out) in rows.zip(out.chunks_exact_mut(ow)) {
                    let windows = rows[..w].chunks_exact(2).zip(rows[w..].chunks_exact(2));
                    for (o, (a, b)) in out.iter_mut().zip(windows) {
                        *o = (T::zero() + a[0] + a[1] + b[0] + b[1]) * inv;
                    }
                }
            },
        );
    }

    /// [`avg_pool_2x2_backward`] on this path. Panics if this CPU lacks the path's
    /// instructions.
    pub fn avg_pool_2x2_backward<T: Float>(self, dx: &mut [T], (h, w): (usize, usize), dout: &[T], inv: T) {
        self.assert_available();
        let (_, ow) = planes(dx.len(), (h, w), dout.len(), true);
        let rows = dx.chunks_exact_mut(2 * w);
        #[cfg(target_arch = "x86_64")]
        if vectors::<T>(self, ow) {
            // SAFETY: as in `max_pool_2x2`.
            return unsafe {
                x86::avg_back_f32(rows.map(|r| cast_mut(r)), w, cast(dout), inv.as_f64() as f32)
            };
        }
        // Compiled for this path's instructions, as the layers' own loops are.
        self.run(
            #[inline(always)]
            |_| {
                for (rows, dout) in rows.zip(dout.chunks_exact(ow)) {
                    for (j, &g) in dout.iter().enumerate() {
                        let v = T::zero() + g * inv;
                        for at in [2 * j, 2 * j + 1, w + 2 * j, w + 2 * j + 1] {
                            rows[at] = v;
                        }
                    }
                }
            },
        );
    }
}

/// `s` as the `f32` slice it is.
///
/// # Safety
/// `T` must be `f32`.
#[cfg(target_arch = "x86_64")]
unsafe fn cast<T>(s: &[T]) -> &[f32] {
    // SAFETY: T is f32, as the caller vouches.
    unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<f32>(), s.len()) }
}

/// `s` as the `f32` slice it is.
///
/// # Safety
/// `T` must be `f32`.
#[cfg(target_arch = "x86_64")]
unsafe fn cast_mut<T>(s: &mut [T]) -> &mut [f32] {
    // SAFETY: T is f32, as the caller vouches.
    unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr().cast::<f32>(), s.len()) }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{BLOCK, blocks};

    /// Elements 0, 2, .. 14 (`odd` false) or 1, 3, .. 15 of the 16 in `x`
    /// then `y`, in order.
    #[inline(always)]
    unsafe fn deinterleave<const ODD: bool>(x: __m256, y: __m256) -> __m256 {
        // SAFETY: AVX2 per the caller's contract.
        unsafe {
            // Per 128-bit lane: x's pair then y's; the lanes' middles swapped.
            let s = if ODD {
                _mm256_shuffle_ps::<0xDD>(x, y)
            } else {
                _mm256_shuffle_ps::<0x88>(x, y)
            };
            _mm256_castpd_ps(_mm256_permute4x64_pd::<0xD8>(_mm256_castps_pd(s)))
        }
    }

    /// The windows of outputs `j..j + 8`: their elements by position (row
    /// 0 even, row 0 odd, row 1 even, row 1 odd columns), and the four
    /// loads they came from (row 0's two, then row 1's).
    ///
    /// # Safety
    /// AVX2; both rows hold `2 * j + 16` elements.
    #[inline(always)]
    unsafe fn windows(r0: &[f32], r1: &[f32], j: usize) -> ([__m256; 4], [__m256; 4]) {
        // SAFETY: 16 elements of each row from 2j, as the caller vouches;
        // AVX2 per contract.
        unsafe {
            let load = |r: &[f32], at: usize| _mm256_loadu_ps(r.as_ptr().add(at));
            let raw = [
                load(r0, 2 * j),
                load(r0, 2 * j + 8),
                load(r1, 2 * j),
                load(r1, 2 * j + 8),
            ];
            let by_position = [
                deinterleave::<false>(raw[0], raw[1]),
                deinterleave::<true>(raw[0], raw[1]),
                deinterleave::<false>(raw[2], raw[3]),
                deinterleave::<true>(raw[2], raw[3]),
            ];
            (by_position, raw)
        }
    }

    /// `(e, o)` interleaved: `e0 o0 e1 o1 ..`, as two vectors of 8.
    #[inline(always)]
    unsafe fn interleave(e: __m256, o: __m256) -> (__m256, __m256) {
        // SAFETY: AVX per the caller's contract.
        unsafe {
            let (lo, hi) = (_mm256_unpacklo_ps(e, o), _mm256_unpackhi_ps(e, o));
            (
                _mm256_permute2f128_ps::<0x20>(lo, hi),
                _mm256_permute2f128_ps::<0x31>(lo, hi),
            )
        }
    }

    /// [`super::max_pool_2x2`] for `f32`: `rows` yields each output row's
    /// two input rows (`2 * w` elements), `out` and `args` rows of
    /// `ow >= BLOCK`; `whole` is cleared if a window holds a NaN.
    ///
    /// # Safety
    /// AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn max_f32<'a>(
        rows: impl Iterator<Item = &'a [f32]>,
        w: usize,
        out: &mut [f32],
        args: &mut [u16],
        whole: &mut bool,
    ) {
        let ow = w / 2;
        let mut nan = _mm256_setzero_ps();
        for (rows, (out, args)) in rows.zip(out.chunks_exact_mut(ow).zip(args.chunks_exact_mut(ow))) {
            let (r0, r1) = (&rows[..w], &rows[w..2 * w]);
            for j in blocks(out.len()) {
                assert!(2 * j + 2 * BLOCK <= w && j + BLOCK <= out.len() && j + BLOCK <= args.len());
                // SAFETY: 16 elements of each row from 2j, 8 outputs and
                // positions from j, all within their rows (asserted).
                unsafe {
                    let (v, [a0, a1, b0, b1]) = windows(r0, r1, j);
                    let (mut best, mut k) = (v[0], _mm256_setzero_si256());
                    for (i, &x) in v.iter().enumerate().skip(1) {
                        // Ordered: false with a NaN, as `>` is.
                        let gt = _mm256_cmp_ps::<_CMP_GT_OQ>(x, best);
                        best = _mm256_blendv_ps(best, x, gt);
                        k = _mm256_blendv_epi8(k, _mm256_set1_epi32(i as i32), _mm256_castps_si256(gt));
                    }
                    let unordered = _mm256_or_ps(
                        _mm256_cmp_ps::<_CMP_UNORD_Q>(a0, b0),
                        _mm256_cmp_ps::<_CMP_UNORD_Q>(a1, b1),
                    );
                    nan = _mm256_or_ps(nan, unordered);
                    _mm256_storeu_ps(out.as_mut_ptr().add(j), best);
                    // The 8 positions (0 to 3) narrowed to u16, in order.
                    let k16 = _mm256_permute4x64_epi64::<0x08>(_mm256_packus_epi32(k, k));
                    _mm_storeu_si128(args.as_mut_ptr().add(j).cast(), _mm256_castsi256_si128(k16));
                }
            }
        }
        *whole = _mm256_movemask_ps(nan) == 0;
    }

    /// [`super::max_pool_2x2_backward`] for `f32`: `rows` yields each
    /// output row's two input rows (`2 * w` elements, `w / 2 >= BLOCK`).
    ///
    /// # Safety
    /// AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn max_back_f32<'a>(
        rows: impl Iterator<Item = &'a mut [f32]>,
        w: usize,
        dout: &[f32],
        args: &[u16],
    ) {
        let ow = w / 2;
        for (rows, (dout, args)) in rows.zip(dout.chunks_exact(ow).zip(args.chunks_exact(ow))) {
            let (r0, r1) = rows[..2 * w].split_at_mut(w);
            for j in blocks(ow) {
                assert!(2 * j + 2 * BLOCK <= w && j + BLOCK <= dout.len() && j + BLOCK <= args.len());
                // SAFETY: 8 gradients and positions from j, 16 elements of
                // each row from 2j, all within their rows (asserted).
                unsafe {
                    let g = _mm256_add_ps(_mm256_setzero_ps(), _mm256_loadu_ps(dout.as_ptr().add(j)));
                    let k = _mm256_cvtepu16_epi32(_mm_loadu_si128(args.as_ptr().add(j).cast()));
                    let won = |at: i32| {
                        _mm256_and_ps(
                            _mm256_castsi256_ps(_mm256_cmpeq_epi32(k, _mm256_set1_epi32(at))),
                            g,
                        )
                    };
                    for (row, (e, o)) in [
                        (r0.as_mut_ptr(), (won(0), won(1))),
                        (r1.as_mut_ptr(), (won(2), won(3))),
                    ] {
                        let (first, second) = interleave(e, o);
                        _mm256_storeu_ps(row.add(2 * j), first);
                        _mm256_storeu_ps(row.add(2 * j + BLOCK), second);
                    }
                }
            }
        }
    }

    /// [`super::avg_pool_2x2`] for `f32`, rows as in [`max_f32`].
    ///
    /// # Safety
    /// AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn avg_f32<'a>(
        rows: impl Iterator<Item = &'a [f32]>,
        w: usize,
        inv: f32,
        out: &mut [f32],
    ) {
        let ow = w / 2;
        for (rows, out) in rows.zip(out.chunks_exact_mut(ow)) {
            let (r0, r1) = (&rows[..w], &rows[w..2 * w]);
            for j in blocks(out.len()) {
                assert!(2 * j + 2 * BLOCK <= w && j + BLOCK <= out.len());
                // SAFETY: as in `max_f32`.
                unsafe {
                    let (v, _) = windows(r0, r1, j);
                    let mut sum = _mm256_setzero_ps();
                    for v in v {
                        sum = _mm256_add_ps(sum, v);
                    }
                    _mm256_storeu_ps(out.as_mut_ptr().add(j), _mm256_mul_ps(sum, _mm256_set1_ps(inv)));
                }
            }
        }
    }

    /// [`super::avg_pool_2x2_backward`] for `f32`, rows as in [`max_back_f32`].
    ///
    /// # Safety
    /// AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn avg_back_f32<'a>(
        rows: impl Iterator<Item = &'a mut [f32]>,
        w: usize,
        dout: &[f32],
        inv: f32,
    ) {
        let ow = w / 2;
        for (rows, dout) in rows.zip(dout.chunks_exact(ow)) {
            let (r0, r1) = rows[..2 * w].split_at_mut(w);
            for j in blocks(ow) {
                assert!(2 * j + 2 * BLOCK <= w && j + BLOCK <= dout.len());
                // SAFETY: as in `max_back_f32`.
                unsafe {
                    let g = _mm256_mul_ps(_mm256_loadu_ps(dout.as_ptr().add(j)), _mm256_set1_ps(inv));
                    let (first, second) = interleave(
                        _mm256_add_ps(_mm256_setzero_ps(), g),
                        _mm256_add_ps(_mm256_setzero_ps(), g),
                    );
                    for row in [r0.as_mut_ptr(), r1.as_mut_ptr()] {
                        _mm256_storeu_ps(row.add(2 * j), first);
                        _mm256_storeu_ps(row.add(2 * j + BLOCK), second);
                    }
                }
            }
        }
    }
}
