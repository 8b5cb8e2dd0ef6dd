//! `im2col` and `col2im` (section 7.4.2 of the chapter): unroll every window
//! of a batched NCHW input into a row of a matrix, so a convolution becomes
//! one matrix product, and fold such a matrix back, summing where windows
//! overlap. Any stride >= 1, padding >= 0 and rectangular windows.
//!
//! Two layouts:
//! - [`im2col`]: the chapter's, one row per output position `(n, oh, ow)` and
//!   one column per `(c, ki, kj)`, shape `(N*OH*OW, C*FH*FW)`; the rows of one
//!   image are contiguous, so a convolution can work image by image.
//! - [`im2col_per_channel`]: the expansion pooling uses, one row per
//!   `(n, c, oh, ow)` and one column per `(ki, kj)`, shape
//!   `(N*C*OH*OW, FH*FW)`. The chapter reshapes the first layout to get it and
//!   then transposes the pooled result back to NCHW; ordering rows by channel
//!   first makes the pooled column already NCHW, with no transpose.
//!
//! - [`im2col_t_into`]: one image's windows as *columns*, shape
//!   `(C*FH*FW, OH*OW)`, the transpose of that image's rows in the first
//!   layout (Caffe's arrangement). Multiplying the `(FN, C*FH*FW)` filter
//!   matrix by it gives the image's output already in NCHW order, and it is
//!   filled by contiguous runs along each output row, so it is what
//!   `layers::Convolution` uses.
//!
//! Each has a `col2im` adjoint and `_into` variants that write into a caller's
//! buffer so that layers reuse memory across training steps. This crate knows
//! nothing of layers; it only moves numbers.
//!
//! ```
//! use ndarray::Array4;
//! use tensor4d::Window;
//! let x = Array4::from_shape_fn((1, 1, 3, 3), |(_, _, i, j)| (3 * i + j) as f32);
//! let col = im2col::im2col(x.view(), Window::square(2)).unwrap();
//! assert_eq!(col.dim(), (4, 4)); // 2x2 output positions, 2x2 window
//! assert_eq!(col.row(0).to_vec(), vec![0.0, 1.0, 3.0, 4.0]);
//! ```

use std::ops::AddAssign;

use ndarray::{
    Array2, Array4, ArrayView2, ArrayView3, ArrayView4, ArrayViewMut2, ArrayViewMut3, ArrayViewMut4,
};
use num_traits::Zero;
use tensor4d::{ShapeError, Window};

/// Sizes shared by every function here, checked once.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    win: Window,
}

impl Geometry {
    fn new(shape: (usize, usize, usize, usize), win: Window) -> Result<Self, ShapeError> {
        let (n, c, h, w) = shape;
        tensor4d::check_nonempty(&[n, c, h, w])?;
        let (oh, ow) = win.output_size(h, w)?;
        let g = Geometry {
            n,
            c,
            h,
            w,
            oh,
            ow,
            win,
        };
        // Refuse sizes whose column matrix could not even be indexed.
        [n, c, oh, ow, win.fh, win.fw, h, w]
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d.max(1)))
            .ok_or_else(|| ShapeError::TooLarge {
                what: "column matrix",
                detail: format!("input {shape:?} with window {win}"),
            })?;
        Ok(g)
    }

    fn rows(&self) -> usize {
        self.n * self.oh * self.ow
    }

    fn cols(&self) -> usize {
        self.c * self.win.area()
    }

    fn plane(&self) -> usize {
        self.h * self.w
    }
}

/// Copies the window at output position (oh, ow) of one H x W plane into
/// `dst` (FH*FW values, row-major), zero where it overhangs the padding.
#[inline]
fn copy_window<T: Copy + Zero>(plane: &[T], g: &Geometry, oh: usize, ow: usize, dst: &mut [T]) {
    let Window {
        fh,
        fw,
        sh,
        sw,
        ph,
        pw,
    } = g.win;
    let x0 = (ow * sw) as isize - pw as isize;
    let inside = x0 >= 0 && x0 as usize + fw <= g.w;
    for ki in 0..fh {
        let y = (oh * sh + ki) as isize - ph as isize;
        let out = &mut dst[ki * fw..(ki + 1) * fw];
        if y < 0 || y as usize >= g.h {
            out.fill(T::zero());
        } else if inside {
            let start = y as usize * g.w + x0 as usize;
            out.copy_from_slice(&plane[start..start + fw]);
        } else {
            let row = &plane[y as usize * g.w..(y as usize + 1) * g.w];
            for (kj, o) in out.iter_mut().enumerate() {
                let x = x0 + kj as isize;
                *o = if x >= 0 && (x as usize) < g.w {
                    row[x as usize]
                } else {
                    T::zero()
                };
            }
        }
    }
}

/// Adds `src` (FH*FW values) back onto the window at (oh, ow) of a plane,
/// dropping what falls in the padding: the adjoint of [`copy_window`].
#[inline]
fn add_window<T: Copy + AddAssign>(plane: &mut [T], g: &Geometry, oh: usize, ow: usize, src: &[T]) {
    let Window {
        fh,
        fw,
        sh,
        sw,
        ph,
        pw,
    } = g.win;
    let x0 = (ow * sw) as isize - pw as isize;
    for ki in 0..fh {
        let y = (oh * sh + ki) as isize - ph as isize;
        if y < 0 || y as usize >= g.h {
            continue;
        }
        let row = &mut plane[y as usize * g.w..(y as usize + 1) * g.w];
        for (kj, &v) in src[ki * fw..(ki + 1) * fw].iter().enumerate() {
            let x = x0 + kj as isize;
            if x >= 0 && (x as usize) < g.w {
                row[x as usize] += v;
            }
        }
    }
}

fn check_dim(what: &str, expected: (usize, usize), found: (usize, usize)) -> Result<(), ShapeError> {
    if expected != found {
        return Err(ShapeError::mismatch(
            what,
            format!("{expected:?}"),
            format!("{found:?}"),
        ));
    }
    Ok(())
}

fn check_len(what: &str, expected: usize, found: usize) -> Result<(), ShapeError> {
    if expected != found {
        return Err(ShapeError::mismatch(what, expected, found));
    }
    Ok(())
}

fn contiguous2<'a, 'b, T>(what: &str, v: &'a mut ArrayViewMut2<'b, T>) -> Result<&'a mut [T], ShapeError> {
    v.as_slice_mut()
        .ok_or_else(|| ShapeError::mismatch(what, "a contiguous row-major buffer", "a strided view"))
}

fn contiguous4<'a, 'b, T>(what: &str, v: &'a mut ArrayViewMut4<'b, T>) -> Result<&'a mut [T], ShapeError> {
    v.as_slice_mut()
        .ok_or_else(|| ShapeError::mismatch(what, "a contiguous row-major buffer", "a strided view"))
}

/// Output height and width of `win` over an input of shape `shape` (NCHW),
/// and the shape of its [`im2col`] matrix.
///
/// ```
/// let (oh, ow, rows, cols) = im2col::col_shape((100, 1, 28, 28), tensor4d::Window::square(5)).unwrap();
/// assert_eq!((oh, ow, rows, cols), (24, 24, 100 * 24 * 24, 25));
/// ```
pub fn col_shape(
    shape: (usize, usize, usize, usize),
    win: Window,
) -> Result<(usize, usize, usize, usize), ShapeError> {
    let g = Geometry::new(shape, win)?;
    Ok((g.oh, g.ow, g.rows(), g.cols()))
}

/// Unrolls every window of `x` into a row: shape `(N*OH*OW, C*FH*FW)`, rows
/// ordered `(n, oh, ow)`, columns `(c, ki, kj)`, as in the chapter.
pub fn im2col<T: Copy + Zero>(x: ArrayView4<'_, T>, win: Window) -> Result<Array2<T>, ShapeError> {
    let g = Geometry::new(x.dim(), win)?;
    let mut col = Array2::zeros((g.rows(), g.cols()));
    im2col_into(x, win, col.view_mut())?;
    Ok(col)
}

/// [`im2col`] into a contiguous buffer of shape `(N*OH*OW, C*FH*FW)`; every
/// element is overwritten.
pub fn im2col_into<T: Copy + Zero>(
    x: ArrayView4<'_, T>,
    win: Window,
    mut col: ArrayViewMut2<'_, T>,
) -> Result<(), ShapeError> {
    let g = Geometry::new(x.dim(), win)?;
    check_dim("im2col buffer shape", (g.rows(), g.cols()), col.dim())?;
    let dst = contiguous2("im2col buffer", &mut col)?;
    let src = tensor4d::contiguous(&x);
    let area = win.area();
    for (r, row) in dst.chunks_exact_mut(g.cols()).enumerate() {
        let (n, pos) = (r / (g.oh * g.ow), r % (g.oh * g.ow));
        let (oh, ow) = (pos / g.ow, pos % g.ow);
        for (c, out) in row.chunks_exact_mut(area).enumerate() {
            let p = (n * g.c + c) * g.plane();
            copy_window(&src[p..p + g.plane()], &g, oh, ow, out);
        }
    }
    Ok(())
}

/// Folds a matrix in [`im2col`]'s layout back into an NCHW tensor of shape
/// `shape`, summing the values that overlapping windows put on one pixel and
/// dropping those that fall in the padding. It is the adjoint of `im2col`:
/// `<im2col(x), c> == <x, col2im(c)>` for all `x` and `c`.
pub fn col2im<T: Copy + Zero + AddAssign>(
    col: ArrayView2<'_, T>,
    shape: (usize, usize, usize, usize),
    win: Window,
) -> Result<Array4<T>, ShapeError> {
    Geometry::new(shape, win)?;
    let mut x = Array4::zeros(shape);
    col2im_into(col, win, x.view_mut())?;
    Ok(x)
}

/// [`col2im`] into a contiguous NCHW buffer, which is overwritten (not added to).
pub fn col2im_into<T: Copy + Zero + AddAssign>(
    col: ArrayView2<'_, T>,
    win: Window,
    mut x: ArrayViewMut4<'_, T>,
) -> Result<(), ShapeError> {
    let g = Geometry::new(x.dim(), win)?;
    check_dim("col2im column shape", (g.rows(), g.cols()), col.dim())?;
    let dst = contiguous4("col2im output", &mut x)?;
    dst.fill(T::zero());
    let col = col.as_standard_layout();
    let src = col
        .as_slice()
        .unwrap_or_else(|| unreachable!("standard layout is contiguous"));
    let area = win.area();
    for (r, row) in src.chunks_exact(g.cols()).enumerate() {
        let (n, pos) = (r / (g.oh * g.ow), r % (g.oh * g.ow));
        let (oh, ow) = (pos / g.ow, pos % g.ow);
        for (c, vals) in row.chunks_exact(area).enumerate() {
            let p = (n * g.c + c) * g.plane();
            add_window(&mut dst[p..p + g.plane()], &g, oh, ow, vals);
        }
    }
    Ok(())
}

/// Output height and width of `win` over `shape` (NCHW), and the shape of
/// its [`im2col_per_channel`] matrix.
pub fn col_shape_per_channel(
    shape: (usize, usize, usize, usize),
    win: Window,
) -> Result<(usize, usize, usize, usize), ShapeError> {
    let g = Geometry::new(shape, win)?;
    Ok((g.oh, g.ow, g.rows() * g.c, win.area()))
}

/// The pooling expansion: one row per `(n, c, oh, ow)` holding that
/// channel's window, shape `(N*C*OH*OW, FH*FW)`. A reduction along each row
/// (max, mean) is then already in NCHW order.
///
/// ```
/// use ndarray::Array4;
/// use tensor4d::Window;
/// let x = Array4::from_shape_fn((1, 2, 2, 2), |(_, c, i, j)| (10 * c + 2 * i + j) as f32);
/// let col = im2col::im2col_per_channel(x.view(), Window::square(2).with_stride(2)).unwrap();
/// assert_eq!(col.dim(), (2, 4));
/// assert_eq!(col.row(1).to_vec(), vec![10.0, 11.0, 12.0, 13.0]);
/// ```
pub fn im2col_per_channel<T: Copy + Zero>(
    x: ArrayView4<'_, T>,
    win: Window,
) -> Result<Array2<T>, ShapeError> {
    let (_, _, rows, cols) = col_shape_per_channel(x.dim(), win)?;
    let mut col = Array2::zeros((rows, cols));
    im2col_per_channel_into(x, win, col.view_mut())?;
    Ok(col)
}

/// [`im2col_per_channel`] into a contiguous buffer of shape `(N*C*OH*OW, FH*FW)`.
pub fn im2col_per_channel_into<T: Copy + Zero>(
    x: ArrayView4<'_, T>,
    win: Window,
    mut col: ArrayViewMut2<'_, T>,
) -> Result<(), ShapeError> {
    let g = Geometry::new(x.dim(), win)?;
    check_dim(
        "per-channel im2col buffer shape",
        (g.rows() * g.c, win.area()),
        col.dim(),
    )?;
    let dst = contiguous2("per-channel im2col buffer", &mut col)?;
    let src = tensor4d::contiguous(&x);
    let per_plane = g.oh * g.ow * win.area();
    for (plane, out) in src.chunks_exact(g.plane()).zip(dst.chunks_exact_mut(per_plane)) {
        for (pos, o) in out.chunks_exact_mut(win.area()).enumerate() {
            copy_window(plane, &g, pos / g.ow, pos % g.ow, o);
        }
    }
    Ok(())
}

/// The adjoint of [`im2col_per_channel`]: folds `(N*C*OH*OW, FH*FW)` rows
/// back into an NCHW tensor of shape `shape`, summing overlaps.
pub fn col2im_per_channel<T: Copy + Zero + AddAssign>(
    col: ArrayView2<'_, T>,
    shape: (usize, usize, usize, usize),
    win: Window,
) -> Result<Array4<T>, ShapeError> {
    Geometry::new(shape, win)?;
    let mut x = Array4::zeros(shape);
    col2im_per_channel_into(col, win, x.view_mut())?;
    Ok(x)
}

/// [`col2im_per_channel`] into a contiguous NCHW buffer, which is overwritten.
pub fn col2im_per_channel_into<T: Copy + Zero + AddAssign>(
    col: ArrayView2<'_, T>,
    win: Window,
    mut x: ArrayViewMut4<'_, T>,
) -> Result<(), ShapeError> {
    let g = Geometry::new(x.dim(), win)?;
    check_dim(
        "per-channel col2im column shape",
        (g.rows() * g.c, win.area()),
        col.dim(),
    )?;
    let dst = contiguous4("per-channel col2im output", &mut x)?;
    dst.fill(T::zero());
    let col = col.as_standard_layout();
    let src = col
        .as_slice()
        .unwrap_or_else(|| unreachable!("standard layout is contiguous"));
    let per_plane = g.oh * g.ow * win.area();
    for (plane, vals) in dst.chunks_exact_mut(g.plane()).zip(src.chunks_exact(per_plane)) {
        for (pos, v) in vals.chunks_exact(win.area()).enumerate() {
            add_window(plane, &g, pos / g.ow, pos % g.ow, v);
        }
    }
    Ok(())
}

/// One image's windows as columns: `col` of shape `(C*FH*FW, OH*OW)` gets,
/// in row `(c, ki, kj)` and column `(oh, ow)`, the padded input pixel that
/// filter offset `(ki, kj)` of channel `c` sees at output `(oh, ow)`. It is
/// the transpose of the rows [`im2col`] gives this image. Every element of
/// `col` is overwritten.
///
/// ```
/// use ndarray::{Array2, Array3};
/// use tensor4d::Window;
/// let x = Array3::from_shape_fn((1, 3, 3), |(_, i, j)| (3 * i + j) as f32);
/// let mut col = Array2::zeros((4, 4));
/// im2col::im2col_t_into(x.view(), Window::square(2), col.view_mut()).unwrap();
/// assert_eq!(col.column(0).to_vec(), vec![0.0, 1.0, 3.0, 4.0]); // output (0, 0)
/// assert_eq!(col.row(3).to_vec(), vec![4.0, 5.0, 7.0, 8.0]);    // offset (1, 1)
/// ```
pub fn im2col_t_into<T: Copy + Zero>(
    x: ArrayView3<'_, T>,
    win: Window,
    mut col: ArrayViewMut2<'_, T>,
) -> Result<(), ShapeError> {
    let (c, h, w) = x.dim();
    let g = Geometry::new((1, c, h, w), win)?;
    check_dim("im2col_t buffer shape", (g.cols(), g.oh * g.ow), col.dim())?;
    let dst = contiguous2("im2col_t buffer", &mut col)?;
    let src = tensor4d::contiguous(&x);
    im2col_t_slices(&src, &g, dst, g.oh * g.ow);
    Ok(())
}

/// Which output columns `ow` read inside the image for filter column `kj`
/// (the rest read padding): `ow_lo..ow_hi`, and the first input column.
#[inline]
fn inside_run(g: &Geometry, kj: usize) -> (usize, usize, isize) {
    let x0 = kj as isize - g.win.pw as isize;
    let sw = g.win.sw as isize;
    // Smallest ow with x0 + ow*sw >= 0, and first ow with x0 + ow*sw >= w.
    let lo = if x0 >= 0 {
        0
    } else {
        ((-x0 + sw - 1) / sw) as usize
    };
    let hi = if (g.w as isize) <= x0 {
        0
    } else {
        ((g.w as isize - x0 + sw - 1) / sw) as usize
    };
    (lo.min(g.ow), hi.min(g.ow).max(lo.min(g.ow)), x0)
}

/// `dst` holds `C*FH*FW` rows of `OH*OW` values, `ld` apart.
fn im2col_t_slices<T: Copy + Zero>(src: &[T], g: &Geometry, dst: &mut [T], ld: usize) {
    let Window {
        fh, fw, sh, sw, ph, ..
    } = g.win;
    let ohw = g.oh * g.ow;
    let mut rows = dst.chunks_mut(ld).map(|r| &mut r[..ohw]);
    for plane in src.chunks_exact(g.plane()).take(g.c) {
        for ki in 0..fh {
            for kj in 0..fw {
                let row = rows.next().unwrap_or_else(|| unreachable!("C*FH*FW rows"));
                let (lo, hi, x0) = inside_run(g, kj);
                for (oh, out) in row.chunks_exact_mut(g.ow).enumerate() {
                    let y = (oh * sh + ki) as isize - ph as isize;
                    if y < 0 || y as usize >= g.h {
                        out.fill(T::zero());
                        continue;
                    }
                    let line = &plane[y as usize * g.w..(y as usize + 1) * g.w];
                    out[..lo].fill(T::zero());
                    out[hi..].fill(T::zero());
                    if lo == hi {
                        continue; // this filter column sees only padding
                    }
                    let first = (x0 + (lo * sw) as isize) as usize;
                    if sw == 1 {
                        out[lo..hi].copy_from_slice(&line[first..first + (hi - lo)]);
                    } else {
                        for (o, &v) in out[lo..hi].iter_mut().zip(line[first..].iter().step_by(sw)) {
                            *o = v;
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col_t_into`]: folds one image's `(C*FH*FW, OH*OW)`
/// columns back into `x` of shape `(C, H, W)`, summing overlaps and dropping
/// padding. `x` is overwritten.
pub fn col2im_t_into<T: Copy + Zero + AddAssign>(
    col: ArrayView2<'_, T>,
    win: Window,
    mut x: ArrayViewMut3<'_, T>,
) -> Result<(), ShapeError> {
    let (c, h, w) = x.dim();
    let g = Geometry::new((1, c, h, w), win)?;
    check_dim("col2im_t column shape", (g.cols(), g.oh * g.ow), col.dim())?;
    let dst = x.as_slice_mut().ok_or_else(|| {
        ShapeError::mismatch(
            "col2im_t output",
            "a contiguous row-major buffer",
            "a strided view",
        )
    })?;
    let col = col.as_standard_layout();
    let src = col
        .as_slice()
        .unwrap_or_else(|| unreachable!("standard layout is contiguous"));
    col2im_t_slices(src, &g, dst, g.oh * g.ow);
    Ok(())
}

/// `src` holds `C*FH*FW` rows of `OH*OW` values, `ld` apart.
fn col2im_t_slices<T: Copy + Zero + AddAssign>(src: &[T], g: &Geometry, dst: &mut [T], ld: usize) {
    let Window {
        fh, fw, sh, sw, ph, ..
    } = g.win;
    dst.fill(T::zero());
    let ohw = g.oh * g.ow;
    let mut rows = src.chunks(ld).map(|r| &r[..ohw]);
    for plane in dst.chunks_exact_mut(g.plane()).take(g.c) {
        for ki in 0..fh {
            for kj in 0..fw {
                let row = rows.next().unwrap_or_else(|| unreachable!("C*FH*FW rows"));
                let (lo, hi, x0) = inside_run(g, kj);
                for (oh, vals) in row.chunks_exact(g.ow).enumerate() {
                    let y = (oh * sh + ki) as isize - ph as isize;
                    if y < 0 || y as usize >= g.h || lo == hi {
                        continue;
                    }
                    let line = &mut plane[y as usize * g.w..(y as usize + 1) * g.w];
                    let first = (x0 + (lo * sw) as isize) as usize;
                    for (d, &v) in line[first..].iter_mut().step_by(sw).zip(&vals[lo..hi]) {
                        *d += v;
                    }
                }
            }
        }
    }
}

/// [`im2col_t_into`] on plain slices, for callers that have already checked
/// the shapes (a layer's hot loop): `x` is one image `(C, H, W)` row-major,
/// `col` is `(C*FH*FW, OH*OW)` row-major.
///
/// Slices of the wrong length are an error.
pub fn im2col_t_slice<T: Copy + Zero>(
    x: &[T],
    shape: (usize, usize, usize),
    win: Window,
    col: &mut [T],
) -> Result<(), ShapeError> {
    let g = Geometry::new((1, shape.0, shape.1, shape.2), win)?;
    check_len("im2col_t column length", g.cols() * g.oh * g.ow, col.len())?;
    im2col_t_strided(x, shape, win, col, g.oh * g.ow)
}

/// [`im2col_t_slice`] into a block of a wider matrix: row `r` of the
/// image's `(C*FH*FW, OH*OW)` columns goes to `col[r*ld..r*ld + OH*OW]`, and
/// the elements between rows are left alone. Several images side by side
/// in one matrix (`ld = G*OH*OW`, image `g` starting at `col[g*OH*OW..]`)
/// make one large matrix product instead of `G` small ones.
///
/// ```
/// use tensor4d::Window;
/// // Two 1x2x2 images, 1x1 filter: each image's 4 pixels side by side.
/// let (a, b) = ([1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]);
/// let mut col = [0.0; 8];
/// im2col::im2col_t_strided(&a, (1, 2, 2), Window::square(1), &mut col[..], 8)?;
/// im2col::im2col_t_strided(&b, (1, 2, 2), Window::square(1), &mut col[4..], 8)?;
/// assert_eq!(col, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
/// # Ok::<(), tensor4d::ShapeError>(())
/// ```
pub fn im2col_t_strided<T: Copy + Zero>(
    x: &[T],
    shape: (usize, usize, usize),
    win: Window,
    col: &mut [T],
    ld: usize,
) -> Result<(), ShapeError> {
    let g = Geometry::new((1, shape.0, shape.1, shape.2), win)?;
    check_len("im2col_t input length", g.c * g.plane(), x.len())?;
    check_block("im2col_t", &g, col.len(), ld)?;
    im2col_t_slices(x, &g, col, ld);
    Ok(())
}

/// [`col2im_t_into`] on plain slices; see [`im2col_t_slice`].
pub fn col2im_t_slice<T: Copy + Zero + AddAssign>(
    col: &[T],
    shape: (usize, usize, usize),
    win: Window,
    x: &mut [T],
) -> Result<(), ShapeError> {
    let g = Geometry::new((1, shape.0, shape.1, shape.2), win)?;
    check_len("col2im_t column length", g.cols() * g.oh * g.ow, col.len())?;
    col2im_t_strided(col, shape, win, x, g.oh * g.ow)
}

/// The adjoint of [`im2col_t_strided`]: folds the image's columns, rows
/// `ld` apart in `col`, back into `x` `(C, H, W)` (overwritten).
pub fn col2im_t_strided<T: Copy + Zero + AddAssign>(
    col: &[T],
    shape: (usize, usize, usize),
    win: Window,
    x: &mut [T],
    ld: usize,
) -> Result<(), ShapeError> {
    let g = Geometry::new((1, shape.0, shape.1, shape.2), win)?;
    check_len("col2im_t output length", g.c * g.plane(), x.len())?;
    check_block("col2im_t", &g, col.len(), ld)?;
    col2im_t_slices(col, &g, x, ld);
    Ok(())
}

/// A block of `C*FH*FW` rows of `OH*OW` values, `ld` apart, fits in `len`.
fn check_block(what: &str, g: &Geometry, len: usize, ld: usize) -> Result<(), ShapeError> {
    let ohw = g.oh * g.ow;
    if ld < ohw {
        return Err(ShapeError::mismatch(
            format!("{what} row stride"),
            format!("at least OH*OW = {ohw}"),
            ld,
        ));
    }
    let need = g
        .cols()
        .checked_sub(1)
        .map_or(Some(0), |r| r.checked_mul(ld)?.checked_add(ohw));
    match need {
        Some(need) if need <= len => Ok(()),
        _ => Err(ShapeError::mismatch(
            format!("{what} column block length"),
            format!("at least {} rows {ld} apart", g.cols()),
            len,
        )),
    }
}
