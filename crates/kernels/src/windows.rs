//! A convolution's column matrix as an operand that is never written.
//! [`Windows`] is the `(C*FH*FW, N*OH*OW)` matrix whose column `q` is the
//! window under output pixel `q` of `N` images side by side: what
//! `im2col`'s transposed layout writes. [`gemm_windows_with`] multiplies by
//! it; for `f32` it packs each panel of B straight from a padded copy of
//! the images, so the columns are neither written nor read back, and the
//! packed panels hold the numbers that packing written columns would: the
//! same bits as [`gemm_with`](crate::gemm_with) on them.

use tensor4d::{Float, ShapeError, Window, grow};

use crate::packed::{Panels, Transpose};
use crate::{GemmScratch, Isa, MatMut, MatRef};

/// Zeros before and after the padded images: a panel row's vector loads
/// start and end up to 7 elements beyond the elements they keep. The
/// widest tile's columns, so that a lane's source is never before its
/// lane number (loads start at a source minus its lane).
const SLACK: usize = 32;

/// The windows of a [`Window`] over `N` images stored one after another
/// (each `C x H x W`, row-major) as the `(C*FH*FW, N*OH*OW)` matrix of
/// their columns: row `(c, i, j)` of column `(n, oh, ow)` is the input at
/// `(n, c, oh*SH + i - PH, ow*SW + j - PW)`, zero in the padding. A GEMM
/// operand for [`gemm_windows_with`].
///
/// ```
/// use kernels::Windows;
/// use tensor4d::Window;
/// let x = [0.0f32; 2 * 3 * 8 * 8]; // two 3x8x8 images
/// let w = Windows::new(&x, (3, 8, 8), Window::square(3).with_pad(1))?;
/// assert_eq!((w.rows(), w.cols()), (3 * 3 * 3, 2 * 8 * 8));
/// # Ok::<(), tensor4d::ShapeError>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Windows<'a, T> {
    x: &'a [T],
    images: usize,
    chw: (usize, usize, usize),
    win: Window,
    out: (usize, usize),
    /// Whether this is the transpose, `(N*OH*OW, C*FH*FW)`.
    transposed: bool,
}

impl<'a, T> Windows<'a, T> {
    /// The windows of `win` over the images of shape `(c, h, w)` that fill
    /// `x`. An error if the window does not tile the padded image (the
    /// book's output size is not whole), if an image is empty, or if `x`
    /// is not a whole number of images.
    pub fn new(x: &'a [T], (c, h, w): (usize, usize, usize), win: Window) -> Result<Self, ShapeError> {
        let out = win.output_size(h, w)?;
        let too_large = |what| ShapeError::TooLarge {
            what,
            detail: format!("images of {c}x{h}x{w} under a {win} window"),
        };
        let chw = c
            .checked_mul(h)
            .and_then(|v| v.checked_mul(w))
            .ok_or_else(|| too_large("image"))?;
        if chw == 0 {
            return Err(ShapeError::Empty { shape: vec![c, h, w] });
        }
        if !x.len().is_multiple_of(chw) {
            return Err(ShapeError::mismatch(
                "input length",
                format!("a multiple of C*H*W = {chw}"),
                x.len(),
            ));
        }
        let images = x.len() / chw;
        // Every size the products and the padded copy need must be
        // addressable, whatever the number of images.
        let (hp, wp) = (h + 2 * win.ph, w + 2 * win.pw);
        let padded = c
            .checked_mul(hp)
            .and_then(|v| v.checked_mul(wp))
            .and_then(|image| images.checked_mul(image))
            .and_then(|v| v.checked_add(2 * SLACK));
        padded.ok_or_else(|| too_large("padded copy"))?;
        let depth = c.checked_mul(win.area());
        let pixels = (out.0.checked_mul(out.1)).and_then(|ohw| images.checked_mul(ohw));
        depth
            .zip(pixels)
            .and_then(|(d, p)| d.checked_mul(p))
            .ok_or_else(|| too_large("column matrix"))?;
        Ok(Windows {
            x,
            images,
            chw: (c, h, w),
            win,
            out,
            transposed: false,
        })
    }

    /// The transpose, `(N*OH*OW, C*FH*FW)`: one window per row, as a
    /// weight gradient `dout col^T` multiplies by it.
    pub fn t(self) -> Self {
        Windows {
            transposed: !self.transposed,
            ..self
        }
    }

    /// Rows: `C*FH*FW` (`N*OH*OW` for the transpose).
    pub fn rows(&self) -> usize {
        if self.transposed {
            self.pixels()
        } else {
            self.depth()
        }
    }

    /// Columns: `N*OH*OW` (`C*FH*FW` for the transpose).
    pub fn cols(&self) -> usize {
        if self.transposed {
            self.depth()
        } else {
            self.pixels()
        }
    }

    /// `C*FH*FW`: a window's elements.
    fn depth(&self) -> usize {
        self.chw.0 * self.win.area()
    }

    /// `N*OH*OW`: the windows.
    fn pixels(&self) -> usize {
        self.images * self.out.0 * self.out.1
    }

    /// The same windows over the same memory as elements of type `U`,
    /// which must be `T` itself (checked).
    fn cast<U: 'static>(self) -> Windows<'a, U>
    where
        T: 'static,
    {
        Windows {
            x: MatRef::new(self.x, 1, self.x.len(), 0, 1).cast::<U>().data,
            images: self.images,
            chw: self.chw,
            win: self.win,
            out: self.out,
            transposed: self.transposed,
        }
    }
}

/// Where the windows' elements lie in the padded copy: `SLACK` zeros,
/// then each image `C x HP x WP` with its border of zeros.
#[derive(Clone, Copy, Debug)]
struct Layout {
    /// One padded channel (`HP*WP`), one padded image (`C*HP*WP`).
    plane: usize,
    image: usize,
    /// Padded width.
    wp: usize,
    win: Window,
    /// Output width and pixels per image.
    ow: usize,
    ohw: usize,
}

impl Layout {
    fn of<T>(w: &Windows<'_, T>) -> Layout {
        let (c, h, wd) = w.chw;
        let (hp, wp) = (h + 2 * w.win.ph, wd + 2 * w.win.pw);
        Layout {
            plane: hp * wp,
            image: c * hp * wp,
            wp,
            win: w.win,
            ow: w.out.1,
            ohw: w.out.0 * w.out.1,
        }
    }

    /// Where window `q` starts (its element 0).
    fn start(&self, q: usize) -> usize {
        let (img, p) = (q / self.ohw, q % self.ohw);
        let (y, x) = (p / self.ow, p % self.ow);
        SLACK + img * self.image + y * self.win.sh * self.wp + x * self.win.sw
    }

    /// The starts of windows `from..`, in order.
    fn starts_from(&self, from: usize) -> impl Iterator<Item = usize> + '_ {
        let (mut q, mut at) = (from % self.ohw, self.start(from));
        std::iter::from_fn(move || {
            let now = at;
            q += 1;
            at = if q % self.ow != 0 {
                at + self.win.sw
            } else if q < self.ohw {
                // The next output row: back to its first window.
                at + self.win.sh * self.wp - (self.ow - 1) * self.win.sw
            } else {
                q = 0;
                // The next image's first window.
                at + self.image
                    - (self.ohw / self.ow - 1) * self.win.sh * self.wp
                    - (self.ow - 1) * self.win.sw
            };
            Some(now)
        })
    }

    /// The offset of a window's element `r` from its start.
    fn offset(&self, r: usize) -> usize {
        let (fh, fw) = (self.win.fh, self.win.fw);
        let (c, k) = (r / (fh * fw), r % (fh * fw));
        c * self.plane + k / fw * self.wp + k % fw
    }

    /// The offsets of a window's elements `from..` from its start, in order.
    fn offsets_from(&self, from: usize) -> impl Iterator<Item = usize> + '_ {
        let (fh, fw) = (self.win.fh, self.win.fw);
        let area = fh * fw;
        let (mut c, mut i, mut j) = (from / area, from % area / fw, from % fw);
        std::iter::from_fn(move || {
            let at = c * self.plane + i * self.wp + j;
            j += 1;
            if j == fw {
                j = 0;
                i += 1;
                if i == fh {
                    i = 0;
                    c += 1;
                }
            }
            Some(at)
        })
    }

    /// The padded copy of `w`'s images in `dst`, grown as needed.
    fn pad<'d, T: Float>(&self, w: &Windows<'_, T>, dst: &'d mut Vec<T>) -> &'d [T] {
        let (c, h, wd) = w.chw;
        let xp = grow(dst, 2 * SLACK + w.images * self.image);
        xp.fill(T::zero());
        let (ph, pw) = (w.win.ph, w.win.pw);
        for (img, x) in w.x.chunks_exact(c * h * wd).enumerate() {
            for (ch, x) in x.chunks_exact(h * wd).enumerate() {
                for (y, row) in x.chunks_exact(wd).enumerate() {
                    let at = SLACK + img * self.image + ch * self.plane + (y + ph) * self.wp + pw;
                    xp[at..at + wd].copy_from_slice(row);
                }
            }
        }
        xp
    }
}

/// B's panels packed from padded images: what [`crate::packed`]'s loops
/// take for [`Windows`].
#[derive(Clone, Copy)]
pub(crate) struct WindowPanels<'a> {
    xp: &'a [f32],
    layout: Layout,
    cols: usize,
    transposed: bool,
}

impl<'a> WindowPanels<'a> {
    /// The panels of `w`, its images padded into `x`.
    pub(crate) fn new(w: &Windows<'_, f32>, x: &'a mut Vec<f32>) -> WindowPanels<'a> {
        let layout = Layout::of(w);
        WindowPanels {
            xp: layout.pad(w, x),
            layout,
            cols: w.cols(),
            transposed: w.transposed,
        }
    }
}

impl Panels for WindowPanels<'_> {
    fn cols(&self) -> usize {
        self.cols
    }

    #[inline(always)]
    unsafe fn pack<const NR: usize>(&self, dst: &mut [[f32; NR]], pc: usize, j0: usize, tr: Transpose) {
        let valid = (self.cols - j0).min(NR);
        let l = &self.layout;
        // Element (p, lane) is at a step's offset plus a lane's: windows'
        // starts along the lanes and their elements' offsets along the
        // steps, or the other way round for the transpose.
        let lane = |j| if self.transposed { l.offset(j) } else { l.start(j) };
        let lanes: [usize; NR] = std::array::from_fn(|t| if t < valid { lane(j0 + t) } else { 0 });
        // SAFETY: as this function's contract.
        unsafe {
            if self.transposed {
                pack_lanes(dst, self.xp, l.starts_from(pc), &lanes, valid, tr)
            } else {
                pack_lanes(dst, self.xp, l.offsets_from(pc), &lanes, valid, tr)
            }
        }
    }
}

/// Step `p` of `dst` as `xp[steps[p] + lanes[t]]` for lane `t < valid`,
/// the other lanes zero.
///
/// # Safety
/// The CPU must have what `tr` needs.
#[inline(always)]
unsafe fn pack_lanes<const NR: usize>(
    dst: &mut [[f32; NR]],
    xp: &[f32],
    steps: impl Iterator<Item = usize>,
    lanes: &[usize; NR],
    valid: usize,
    tr: Transpose,
) {
    // Runs of lanes whose elements lie side by side in the input: each
    // step copies every run from one place.
    let mut runs = [(0usize, 0usize); NR];
    let mut count = 0;
    for t in 0..valid {
        if t > 0 && lanes[t] == lanes[t - 1] + 1 {
            runs[count - 1].1 = t + 1;
        } else {
            runs[count] = (t, t + 1);
            count += 1;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = tr;
    #[cfg(target_arch = "x86_64")]
    if tr == Transpose::Avx && count <= NR / 2 {
        // SAFETY: AVX per this function's contract.
        unsafe { x86::pack_runs(dst, xp, steps, lanes, &runs[..count]) };
        return;
    }
    for (d, at) in dst.iter_mut().zip(steps) {
        for (d, &l) in d.iter_mut().zip(&lanes[..valid]) {
            *d = xp[at + l];
        }
        d[valid..].fill(0.0);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Each row of a panel as vector loads of its runs of lanes, blended:
    /// run `(a, b)` takes lanes `a..b` of the `NR` elements that start
    /// `a` before lane `a`'s source, `at + lanes[a]`, for the row at offset
    /// `at`. Each 8-lane vector blends only the runs that reach it; lanes
    /// past the runs stay zero.
    ///
    /// # Safety
    /// The CPU must have AVX.
    #[inline(always)]
    pub(super) unsafe fn pack_runs<const NR: usize>(
        dst: &mut [[f32; NR]],
        xp: &[f32],
        rows: impl Iterator<Item = usize>,
        lanes: &[usize; NR],
        runs: &[(usize, usize)],
    ) {
        const { assert!(NR.is_multiple_of(8) && NR <= 32, "whole vectors, at most four") };
        // Per vector, the runs that reach it: where its load starts at row
        // 0, and the mask of its lanes.
        let mut parts = [[(0usize, [0.0f32; 8]); 8]; 4];
        let mut count = [0usize; 4];
        let mut last = 0;
        for &(a, b) in runs {
            let from = lanes[a] - a;
            last = last.max(from);
            for v in a / 8..=(b - 1) / 8 {
                let mut mask = [0.0f32; 8];
                mask[a.max(8 * v) - 8 * v..b.min(8 * v + 8) - 8 * v].fill(f32::from_bits(u32::MAX));
                parts[v][count[v]] = (from + 8 * v, mask);
                count[v] += 1;
            }
        }
        for (d, at) in dst.iter_mut().zip(rows) {
            // The loads of this row lie in the padded copy (which ends
            // `SLACK >= NR` zeros past its last element).
            assert!(
                at.checked_add(last + NR).is_some_and(|end| end <= xp.len()),
                "a window's row lies in the input"
            );
            for (v, parts) in parts.iter().enumerate().take(NR / 8) {
                // SAFETY: every load lies in xp (asserted) or in a mask;
                // AVX per this function's contract.
                unsafe {
                    let mut acc = _mm256_setzero_ps();
                    for (from, mask) in &parts[..count[v]] {
                        let m = _mm256_loadu_ps(mask.as_ptr());
                        let x = _mm256_loadu_ps(xp.as_ptr().add(at + from));
                        acc = _mm256_blendv_ps(acc, x, m);
                    }
                    _mm256_storeu_ps(d.as_mut_ptr().add(8 * v), acc);
                }
            }
        }
    }
}

/// `C <- alpha * A W + beta * C` for the windows `W` of a [`Windows`]: a
/// convolution's forward product without writing its columns. For `f32`
/// this crate's packed GEMM, with each panel of B packed from a padded
/// copy of the images kept in `scratch`: the same bits as
/// [`gemm_with`](crate::gemm_with) on the written columns. For `f64`
/// (gradient checks) the columns are written and multiplied by
/// `matrixmultiply`.
///
/// Panics if the inner dimensions disagree (a bug in the caller).
///
/// ```
/// use kernels::{gemm_windows_with, GemmScratch, MatMut, MatRef, Windows};
/// use tensor4d::Window;
/// // One 2x2 filter of ones over a 3x3 ramp: each output sums a window.
/// let x: Vec<f32> = (0..9).map(|v| v as f32).collect();
/// let w = [1.0f32; 4];
/// let mut out = [0.0f32; 4];
/// gemm_windows_with(&mut GemmScratch::default(), 1.0, MatRef::row_major(&w, 1, 4),
///                   Windows::new(&x, (1, 3, 3), Window::square(2))?, 0.0,
///                   MatMut::row_major(&mut out, 1, 4));
/// assert_eq!(out, [8.0, 12.0, 20.0, 24.0]);
/// # Ok::<(), tensor4d::ShapeError>(())
/// ```
pub fn gemm_windows_with<T: Float>(
    scratch: &mut GemmScratch,
    alpha: T,
    a: MatRef<'_, T>,
    b: Windows<'_, T>,
    beta: T,
    c: MatMut<'_, T>,
) {
    Isa::active().gemm_windows_with(scratch, alpha, a, b, beta, c)
}

impl Isa {
    /// [`gemm_windows_with`] on this path's `f32` tile. Panics if this CPU
    /// lacks the path's instructions.
    pub fn gemm_windows_with<T: Float>(
        self,
        scratch: &mut GemmScratch,
        alpha: T,
        a: MatRef<'_, T>,
        b: Windows<'_, T>,
        beta: T,
        c: MatMut<'_, T>,
    ) {
        self.assert_available();
        let (k, n) = (b.rows(), b.cols());
        assert!(
            a.cols == k && a.rows == c.rows && n == c.cols,
            "gemm_windows: ({}x{}) * windows ({k}x{n}) into ({}x{})",
            a.rows,
            a.cols,
            c.rows,
            c.cols,
        );
        if c.rows == 0 || n == 0 {
            return;
        }
        if k == 0 {
            // No windows (the transpose over no images): C <- beta C, as
            // the GEMM has it.
            return self.gemm_with(scratch, alpha, a, MatRef::new(&[], 0, n, n, 1), beta, c);
        }
        let c_at = (c.data.as_mut_ptr(), c.rs as isize, c.cs as isize);
        if let Some(product) = crate::gemm::as_f32(alpha, a, beta, c_at) {
            // SAFETY: `as_f32` checked T; A and C were checked by their
            // constructors, and `&mut` excludes aliasing between C and the
            // inputs; the path is available.
            unsafe {
                crate::packed::sgemm_windows(
                    crate::packed::MicroKernel::of(self),
                    scratch,
                    &b.cast(),
                    product,
                )
            };
            return;
        }
        // f64: the columns written out, as `matrixmultiply` reads them.
        let layout = Layout::of(&b);
        let mut padded = Vec::new();
        let xp = layout.pad(&b, &mut padded);
        let (depth, pixels) = (b.depth(), b.pixels());
        let mut col = vec![T::zero(); depth * pixels];
        let starts: Vec<usize> = layout.starts_from(0).take(pixels).collect();
        for (row, at) in col.chunks_exact_mut(pixels).zip(layout.offsets_from(0)) {
            for (d, &s) in row.iter_mut().zip(&starts) {
                *d = xp[at + s];
            }
        }
        let col = MatRef::row_major(&col, depth, pixels);
        let col = if b.transposed { col.t() } else { col };
        self.gemm_with(scratch, alpha, a, col, beta, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_shapes_are_errors_naming_the_size() {
        let x = [0.0f32; 10];
        let err = |r: Result<Windows<'_, f32>, ShapeError>| r.unwrap_err().to_string();
        assert!(err(Windows::new(&x, (1, 3, 3), Window::square(2))).contains("multiple of C*H*W = 9"));
        assert!(err(Windows::new(&x, (0, 3, 3), Window::square(2))).contains("empty axis"));
        assert!(err(Windows::new(&x, (1, 2, 5), Window::square(3))).contains("larger than the input"));
        let huge = Window::square(1).with_pad(usize::MAX / 8);
        assert!(err(Windows::new(&x, (1, 2, 5), huge)).contains("too large"));
    }

    #[test]
    fn no_images_leave_beta_c() {
        // The transpose over no images is a product of depth 0: C <- beta C.
        fn check<T: Float>(old: T, beta: T, want: T) {
            let w = Windows::<T>::new(&[], (2, 3, 3), Window::square(2)).unwrap().t();
            assert_eq!((w.rows(), w.cols()), (0, 8));
            let mut c = [old; 16];
            let (a, c_mat) = (MatRef::new(&[], 2, 0, 0, 1), MatMut::row_major(&mut c, 2, 8));
            gemm_windows_with(&mut GemmScratch::default(), T::one(), a, w, beta, c_mat);
            assert!(c.iter().all(|&v| v == want), "{}", T::NAME);
        }
        check(f32::NAN, 0.0, 0.0);
        check(3.0f64, 0.5, 1.5);
    }
}
