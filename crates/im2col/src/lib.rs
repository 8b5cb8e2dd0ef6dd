//! `im2col` and `col2im` (section 7.4.2 of the chapter): unroll every window
//! of an NCHW input into a matrix, so that a convolution becomes one matrix
//! product with the filter matrix instead of nested loops over windows, and
//! fold such a matrix back, summing where windows overlap and dropping what
//! falls in the padding. Any stride >= 1, padding >= 0 and rectangular
//! windows.
//!
//! Two layouts:
//! - [`im2col`], the chapter's: a batch `(N, C, H, W)` becomes one row per
//!   output position `(n, oh, ow)` and one column per filter element
//!   `(c, ki, kj)`, shape `(N*OH*OW, C*FH*FW)` (see [`col_shape`]).
//! - [`im2col_t`]: one image `(C, H, W)` with its windows as *columns*,
//!   shape `(C*FH*FW, OH*OW)` (see [`col_shape_t`]), the transpose of that
//!   image's rows in the chapter's layout (Caffe's arrangement). The
//!   `(FN, C*FH*FW)` filter matrix times it is the image's output already in
//!   NCHW order, and [`im2col_t_into`] can write it as a column block of a
//!   wider matrix, so several images side by side make one larger product.
//!
//! Each layout has an owned variant, which allocates its result, and an
//! `_into` variant, which overwrites every element of a caller's buffer so
//! that a layer can reuse its memory from one step to the next. [`col2im`]
//! and [`col2im_t`] (with [`col2im_into`] and [`col2im_t_into`]) fold back;
//! each is the adjoint of its `im2col`: `<im2col(x), c> == <x, col2im(c)>`
//! for all `x` and `c`, which is what a convolution's backward pass needs.
//!
//! Arguments always come in the same order: source, window, destination,
//! where the destination is a shape for the owned variants and a buffer for
//! the `_into` ones. Sizes that do not fit together are a [`ShapeError`]
//! that names what is at fault and the sizes involved, never a panic. This
//! crate knows nothing of layers; it only moves numbers.
//!
//! The chapter's shapes: one 3-channel 7x7 image and a 5x5 filter give 3x3
//! output positions of 3*5*5 values each, and a batch of 10 gives ten times
//! the rows.
//!
//! ```
//! use ndarray::{Array4, Axis, s};
//! use tensor4d::Window;
//! let win = Window::square(5);
//! let x = Array4::from_shape_fn((1, 3, 7, 7), |(_, c, i, j)| (100 * c + 10 * i + j) as f32);
//! let col = im2col::im2col(x.view(), win)?;
//! assert_eq!(col.dim(), (9, 75));
//! // Row 0 is the window at output (0, 0): channel by channel, row-major.
//! assert_eq!(col.row(0).to_vec(), x.slice(s![0, .., ..5, ..5]).iter().copied().collect::<Vec<_>>());
//!
//! let batch = Array4::<f32>::zeros((10, 3, 7, 7));
//! let col = im2col::im2col(batch.view(), win)?;
//! assert_eq!(col.dim(), (90, 75));
//! let back = im2col::col2im(col.view(), win, (10, 3, 7, 7))?;
//! assert_eq!(back.dim(), (10, 3, 7, 7));
//!
//! // The second layout, one image at a time: the transpose of its rows.
//! let col_t = im2col::im2col_t(x.index_axis(Axis(0), 0), win)?;
//! assert_eq!(col_t.dim(), (75, 9));
//! assert_eq!(col_t, im2col::im2col(x.view(), win)?.t());
//! # Ok::<(), tensor4d::ShapeError>(())
//! ```

#![deny(unsafe_code)]
#![deny(missing_docs)]

// The README's examples run as doctests, so it cannot drift from the code.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

use std::ops::AddAssign;

use ndarray::{
    Array2, Array3, Array4, ArrayView2, ArrayView3, ArrayView4, ArrayViewMut, ArrayViewMut2, ArrayViewMut3,
    ArrayViewMut4, Dimension,
};
use num_traits::Zero;
use tensor4d::{ShapeError, Window};

/// Sizes of a column matrix: output height and width, and the matrix's rows
/// and columns.
///
/// ```
/// use im2col::ColShape;
/// use tensor4d::Window;
/// // A batch of 100 MNIST images and a 5x5 filter, in the chapter's layout.
/// let s = im2col::col_shape((100, 1, 28, 28), Window::square(5))?;
/// assert_eq!(s, ColShape { oh: 24, ow: 24, rows: 100 * 24 * 24, cols: 25 });
/// // One of those images with its windows as columns.
/// let s = im2col::col_shape_t((1, 28, 28), Window::square(5))?;
/// assert_eq!((s.rows, s.cols), (25, 24 * 24));
/// # Ok::<(), tensor4d::ShapeError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ColShape {
    /// Output height: window positions down the (padded) input.
    pub oh: usize,
    /// Output width: window positions across the (padded) input.
    pub ow: usize,
    /// Rows of the column matrix.
    pub rows: usize,
    /// Columns of the column matrix.
    pub cols: usize,
}

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
        // Refuse sizes whose column matrix could not even be indexed, before
        // anything is allocated; every product below is then safe.
        [n, c, oh, ow, win.fh, win.fw, h, w]
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d.max(1)))
            .ok_or_else(|| ShapeError::TooLarge {
                what: "column matrix",
                detail: format!("input {shape:?} with window {win}"),
            })?;
        Ok(g)
    }

    /// One image `(C, H, W)`, for the transposed layout.
    fn image(shape: (usize, usize, usize), win: Window) -> Result<Self, ShapeError> {
        let (c, h, w) = shape;
        Geometry::new((1, c, h, w), win)
    }

    /// Output positions per image.
    fn ohw(&self) -> usize {
        self.oh * self.ow
    }

    /// Values per window: `C*FH*FW`.
    fn ckk(&self) -> usize {
        self.c * self.win.area()
    }

    fn plane(&self) -> usize {
        self.h * self.w
    }

    /// The chapter's layout: `(N*OH*OW, C*FH*FW)`.
    fn rows_layout(&self) -> ColShape {
        ColShape {
            oh: self.oh,
            ow: self.ow,
            rows: self.n * self.ohw(),
            cols: self.ckk(),
        }
    }

    /// One image's windows as columns: `(C*FH*FW, OH*OW)`.
    fn columns_layout(&self) -> ColShape {
        ColShape {
            oh: self.oh,
            ow: self.ow,
            rows: self.ckk(),
            cols: self.ohw(),
        }
    }
}

impl ColShape {
    fn dim(&self) -> (usize, usize) {
        (self.rows, self.cols)
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

/// The elements of an output buffer as one slice; the fast loops index it
/// directly, so a strided view is refused rather than silently copied.
fn standard<'a, T, D: Dimension>(
    what: &str,
    v: &'a mut ArrayViewMut<'_, T, D>,
) -> Result<&'a mut [T], ShapeError> {
    v.as_slice_mut()
        .ok_or_else(|| ShapeError::mismatch(what, "a contiguous row-major buffer", "a strided view"))
}

/// A column block's rows must each be one slice (column stride 1, or a
/// single column); the stride between rows is free, so that the block may
/// sit inside a wider matrix.
fn check_rows_contiguous(what: &str, strides: &[isize], cols: usize) -> Result<(), ShapeError> {
    if cols > 1 && strides[1] != 1 {
        return Err(ShapeError::mismatch(
            what,
            "contiguous rows (column stride 1)",
            format!("column stride {}", strides[1]),
        ));
    }
    Ok(())
}

/// Output height and width of `win` over a batch of shape `x` (NCHW), and
/// the shape `(N*OH*OW, C*FH*FW)` of its [`im2col`] matrix.
///
/// ```
/// let s = im2col::col_shape((10, 3, 7, 7), tensor4d::Window::square(5))?;
/// assert_eq!((s.oh, s.ow, s.rows, s.cols), (3, 3, 90, 75));
/// # Ok::<(), tensor4d::ShapeError>(())
/// ```
pub fn col_shape(x: (usize, usize, usize, usize), win: Window) -> Result<ColShape, ShapeError> {
    Ok(Geometry::new(x, win)?.rows_layout())
}

/// Unrolls every window of `x` into a row, as in the chapter: shape
/// `(N*OH*OW, C*FH*FW)`, rows ordered `(n, oh, ow)`, columns `(c, ki, kj)`,
/// zero where a window overhangs the input into the padding. `x` may be
/// any view.
///
/// ```
/// use ndarray::Array4;
/// use tensor4d::Window;
/// let x = Array4::from_shape_fn((1, 1, 3, 3), |(_, _, i, j)| (3 * i + j) as f32);
/// let col = im2col::im2col(x.view(), Window::square(2))?;
/// assert_eq!(col.dim(), (4, 4)); // 2x2 output positions, 2x2 window
/// assert_eq!(col.row(0).to_vec(), vec![0.0, 1.0, 3.0, 4.0]);
/// # Ok::<(), tensor4d::ShapeError>(())
/// ```
pub fn im2col<T: Copy + Zero>(x: ArrayView4<'_, T>, win: Window) -> Result<Array2<T>, ShapeError> {
    let s = col_shape(x.dim(), win)?;
    let mut col = Array2::zeros(s.dim());
    im2col_into(x, win, col.view_mut())?;
    Ok(col)
}

/// [`im2col`] into `col`, a contiguous row-major buffer of shape
/// `(N*OH*OW, C*FH*FW)` (see [`col_shape`]); every element is overwritten,
/// so one buffer serves every batch of the same shape.
///
/// ```
/// use ndarray::{Array2, Array4};
/// use tensor4d::Window;
/// let win = Window::square(3).with_pad(1);
/// let s = im2col::col_shape((2, 3, 5, 5), win)?;
/// let mut col = Array2::from_elem((s.rows, s.cols), f32::NAN);
/// for seed in 0..2 {
///     let x = Array4::from_shape_fn((2, 3, 5, 5), |(n, c, i, j)| (seed + n + c + i * j) as f32);
///     im2col::im2col_into(x.view(), win, col.view_mut())?;
///     assert_eq!(col, im2col::im2col(x.view(), win)?);
/// }
/// // A buffer of the wrong shape is an error that names both shapes.
/// let x = Array4::<f32>::zeros((1, 3, 5, 5));
/// let err = im2col::im2col_into(x.view(), win, col.view_mut()).unwrap_err();
/// assert!(err.to_string().contains("(25, 27)"), "{err}");
/// # Ok::<(), tensor4d::ShapeError>(())
/// ```
pub fn im2col_into<T: Copy + Zero>(
    x: ArrayView4<'_, T>,
    win: Window,
    mut col: ArrayViewMut2<'_, T>,
) -> Result<(), ShapeError> {
    let g = Geometry::new(x.dim(), win)?;
    let s = g.rows_layout();
    check_dim("im2col column matrix", s.dim(), col.dim())?;
    let dst = standard("im2col column matrix", &mut col)?;
    let src = tensor4d::contiguous(&x);
    let (ohw, area) = (g.ohw(), win.area());
    for (r, row) in dst.chunks_exact_mut(s.cols).enumerate() {
        let (n, pos) = (r / ohw, r % ohw);
        let (oh, ow) = (pos / g.ow, pos % g.ow);
        for (c, out) in row.chunks_exact_mut(area).enumerate() {
            let p = (n * g.c + c) * g.plane();
            copy_window(&src[p..p + g.plane()], &g, oh, ow, out);
        }
    }
    Ok(())
}

/// Folds `col`, a matrix in [`im2col`]'s layout, back into an NCHW tensor
/// of shape `shape`, summing the values that overlapping windows put on one
/// pixel and dropping those that fall in the padding. It is the adjoint of
/// `im2col`: `<im2col(x), c> == <x, col2im(c)>` for all `x` and `c`. `col`
/// may be any view.
///
/// ```
/// use ndarray::Array2;
/// use tensor4d::Window;
/// // Four 2x2 windows over a 3x3 image: the centre pixel is in all four.
/// let col = Array2::<f32>::ones((4, 4));
/// let x = im2col::col2im(col.view(), Window::square(2), (1, 1, 3, 3))?;
/// assert_eq!(x[[0, 0, 1, 1]], 4.0);
/// assert_eq!(x[[0, 0, 0, 0]], 1.0);
/// # Ok::<(), tensor4d::ShapeError>(())
/// ```
pub fn col2im<T: Copy + Zero + AddAssign>(
    col: ArrayView2<'_, T>,
    win: Window,
    shape: (usize, usize, usize, usize),
) -> Result<Array4<T>, ShapeError> {
    // Check the sizes before allocating `shape`.
    Geometry::new(shape, win)?;
    let mut x = Array4::zeros(shape);
    col2im_into(col, win, x.view_mut())?;
    Ok(x)
}

/// [`col2im`] into `x`, a contiguous row-major NCHW buffer whose shape
/// gives the image size; `x` is overwritten, not added to.
///
/// ```
/// use ndarray::{Array2, Array4};
/// use tensor4d::Window;
/// // 2x2 windows with stride 2 do not overlap: folding back undoes im2col.
/// let win = Window::square(2).with_stride(2);
/// let x = Array4::from_shape_fn((2, 1, 4, 4), |(n, _, i, j)| (16 * n + 4 * i + j) as f32);
/// let col = im2col::im2col(x.view(), win)?;
/// let mut back = Array4::from_elem((2, 1, 4, 4), 7.0f32); // old contents are ignored
/// im2col::col2im_into(col.view(), win, back.view_mut())?;
/// assert_eq!(back, x);
/// # Ok::<(), tensor4d::ShapeError>(())
/// ```
pub fn col2im_into<T: Copy + Zero + AddAssign>(
    col: ArrayView2<'_, T>,
    win: Window,
    mut x: ArrayViewMut4<'_, T>,
) -> Result<(), ShapeError> {
    let g = Geometry::new(x.dim(), win)?;
    let s = g.rows_layout();
    check_dim("col2im column matrix", s.dim(), col.dim())?;
    let dst = standard("col2im output", &mut x)?;
    dst.fill(T::zero());
    let col = col.as_standard_layout();
    let src = col
        .as_slice()
        .unwrap_or_else(|| unreachable!("standard layout is contiguous"));
    let (ohw, area) = (g.ohw(), win.area());
    for (r, row) in src.chunks_exact(s.cols).enumerate() {
        let (n, pos) = (r / ohw, r % ohw);
        let (oh, ow) = (pos / g.ow, pos % g.ow);
        for (c, vals) in row.chunks_exact(area).enumerate() {
            let p = (n * g.c + c) * g.plane();
            add_window(&mut dst[p..p + g.plane()], &g, oh, ow, vals);
        }
    }
    Ok(())
}

/// Output height and width of `win` over one image of shape `x` (CHW), and
/// the shape `(C*FH*FW, OH*OW)` of its [`im2col_t`] matrix.
///
/// ```
/// let s = im2col::col_shape_t((3, 7, 7), tensor4d::Window::square(5))?;
/// assert_eq!((s.oh, s.ow, s.rows, s.cols), (3, 3, 75, 9));
/// # Ok::<(), tensor4d::ShapeError>(())
/// ```
pub fn col_shape_t(x: (usize, usize, usize), win: Window) -> Result<ColShape, ShapeError> {
    Ok(Geometry::image(x, win)?.columns_layout())
}

/// One image's windows as columns: shape `(C*FH*FW, OH*OW)`, with in row
/// `(c, ki, kj)` and column `(oh, ow)` the padded input pixel that filter
/// element `(ki, kj)` of channel `c` sees at output `(oh, ow)`. It is the
/// transpose of the rows [`im2col`] gives this image. `x` may be any view.
///
/// ```
/// use ndarray::Array3;
/// use tensor4d::Window;
/// let x = Array3::from_shape_fn((1, 3, 3), |(_, i, j)| (3 * i + j) as f32);
/// let col = im2col::im2col_t(x.view(), Window::square(2))?;
/// assert_eq!(col.dim(), (4, 4));
/// assert_eq!(col.column(0).to_vec(), vec![0.0, 1.0, 3.0, 4.0]); // output (0, 0)
/// assert_eq!(col.row(3).to_vec(), vec![4.0, 5.0, 7.0, 8.0]); // element (1, 1)
/// # Ok::<(), tensor4d::ShapeError>(())
/// ```
pub fn im2col_t<T: Copy + Zero>(x: ArrayView3<'_, T>, win: Window) -> Result<Array2<T>, ShapeError> {
    let s = col_shape_t(x.dim(), win)?;
    let mut col = Array2::zeros(s.dim());
    im2col_t_into(x, win, col.view_mut())?;
    Ok(col)
}

/// [`im2col_t`] into `col` of shape `(C*FH*FW, OH*OW)`; every element of
/// `col` is overwritten and nothing else is touched.
///
/// `col` may be a column block of a wider matrix: each of its rows must be
/// contiguous (column stride 1), but the stride between rows is free. `G`
/// images side by side in a `(C*FH*FW, G*OH*OW)` matrix make one larger
/// matrix product instead of `G` small ones. Nothing is allocated when `x`
/// is contiguous.
///
/// ```
/// use ndarray::{Array2, Array3, s};
/// use tensor4d::Window;
/// // Two 1x2x2 images and a 1x1 filter: each image's 4 pixels side by side.
/// let a = Array3::from_shape_vec((1, 2, 2), vec![1.0, 2.0, 3.0, 4.0]).unwrap();
/// let b = Array3::from_shape_vec((1, 2, 2), vec![5.0, 6.0, 7.0, 8.0]).unwrap();
/// let win = Window::square(1);
/// let ohw = im2col::col_shape_t(a.dim(), win)?.cols;
/// let mut big = Array2::zeros((1, 2 * ohw));
/// for (j, x) in [a, b].iter().enumerate() {
///     im2col::im2col_t_into(x.view(), win, big.slice_mut(s![.., j * ohw..(j + 1) * ohw]))?;
/// }
/// assert_eq!(big.row(0).to_vec(), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
/// # Ok::<(), tensor4d::ShapeError>(())
/// ```
pub fn im2col_t_into<T: Copy + Zero>(
    x: ArrayView3<'_, T>,
    win: Window,
    mut col: ArrayViewMut2<'_, T>,
) -> Result<(), ShapeError> {
    let g = Geometry::image(x.dim(), win)?;
    check_dim("im2col_t column block", g.columns_layout().dim(), col.dim())?;
    check_rows_contiguous("im2col_t column block rows", col.strides(), col.ncols())?;
    let src = tensor4d::contiguous(&x);
    let rows = col.rows_mut().into_iter().map(|r| {
        r.into_slice()
            .unwrap_or_else(|| unreachable!("rows checked contiguous"))
    });
    im2col_t_rows(&src, &g, rows);
    Ok(())
}

/// Folds `col`, one image's windows as columns in [`im2col_t`]'s layout,
/// back into a `(C, H, W)` image of shape `shape`, summing overlaps and
/// dropping padding: the adjoint of `im2col_t`. `col` may have any layout
/// (it is copied to row-major if it is not already).
///
/// ```
/// use ndarray::Array2;
/// use tensor4d::Window;
/// let col = Array2::<f32>::ones((4, 4));
/// let x = im2col::col2im_t(col.view(), Window::square(2), (1, 3, 3))?;
/// assert_eq!(x[[0, 1, 1]], 4.0); // the centre pixel is in all four windows
/// # Ok::<(), tensor4d::ShapeError>(())
/// ```
pub fn col2im_t<T: Copy + Zero + AddAssign>(
    col: ArrayView2<'_, T>,
    win: Window,
    shape: (usize, usize, usize),
) -> Result<Array3<T>, ShapeError> {
    // Check the sizes before allocating `shape`.
    Geometry::image(shape, win)?;
    let mut x = Array3::zeros(shape);
    col2im_t_into(col.as_standard_layout().view(), win, x.view_mut())?;
    Ok(x)
}

/// [`col2im_t`] into `x`, a contiguous row-major `(C, H, W)` buffer whose
/// shape gives the image size; `x` is overwritten, not added to.
///
/// `col` may be a column block of a wider matrix, as for
/// [`im2col_t_into`]: each of its rows must be contiguous (column stride 1),
/// the stride between rows is free. Nothing is allocated.
///
/// ```
/// use ndarray::{Array2, Array3, s};
/// use tensor4d::Window;
/// // Gradients of two 1x2x2 images side by side, 1x1 filter: each image
/// // gets its own block back.
/// let big = Array2::from_shape_vec((1, 8), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]).unwrap();
/// let win = Window::square(1);
/// let mut dx = Array3::zeros((1, 2, 2));
/// im2col::col2im_t_into(big.slice(s![.., 4..8]), win, dx.view_mut())?;
/// assert_eq!(dx.iter().copied().collect::<Vec<_>>(), vec![5.0, 6.0, 7.0, 8.0]);
/// im2col::col2im_t_into(big.slice(s![.., 0..4]), win, dx.view_mut())?;
/// assert_eq!(dx.iter().copied().collect::<Vec<_>>(), vec![1.0, 2.0, 3.0, 4.0]);
/// # Ok::<(), tensor4d::ShapeError>(())
/// ```
pub fn col2im_t_into<T: Copy + Zero + AddAssign>(
    col: ArrayView2<'_, T>,
    win: Window,
    mut x: ArrayViewMut3<'_, T>,
) -> Result<(), ShapeError> {
    let g = Geometry::image(x.dim(), win)?;
    check_dim("col2im_t column block", g.columns_layout().dim(), col.dim())?;
    check_rows_contiguous("col2im_t column block rows", col.strides(), col.ncols())?;
    let dst = standard("col2im_t output", &mut x)?;
    let rows = col.rows().into_iter().map(|r| {
        r.to_slice()
            .unwrap_or_else(|| unreachable!("rows checked contiguous"))
    });
    col2im_t_rows(rows, &g, dst);
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

/// Fills the `C*FH*FW` rows of one image's columns, each `OH*OW` values,
/// from `src`, the image `(C, H, W)` row-major. Each output row is filled by
/// contiguous runs along the input rows, which is what makes this layout
/// cheap to build. The runs are as short as an output row (7 to 28 values
/// in the networks here), so each row is zeroed once and the runs copied by
/// fixed-size blocks: a library call per run would cost more than its copy.
fn im2col_t_rows<'a, T: Copy + Zero + 'a>(
    src: &[T],
    g: &Geometry,
    mut rows: impl Iterator<Item = &'a mut [T]>,
) {
    let Window {
        fh, fw, sh, sw, ph, ..
    } = g.win;
    let padded = ph > 0 || g.win.pw > 0;
    for plane in src.chunks_exact(g.plane()).take(g.c) {
        for ki in 0..fh {
            for kj in 0..fw {
                let row = rows.next().unwrap_or_else(|| unreachable!("C*FH*FW rows"));
                let (lo, hi, x0) = inside_run(g, kj);
                if padded || lo == hi {
                    row.fill(T::zero());
                }
                if lo == hi {
                    continue; // this filter column sees only padding
                }
                for (oh, out) in row.chunks_exact_mut(g.ow).enumerate() {
                    let y = (oh * sh + ki) as isize - ph as isize;
                    if y < 0 || y as usize >= g.h {
                        continue;
                    }
                    let line = &plane[y as usize * g.w..(y as usize + 1) * g.w];
                    let first = (x0 + (lo * sw) as isize) as usize;
                    if sw == 1 {
                        copy_run(&mut out[lo..hi], &line[first..first + (hi - lo)]);
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

/// The adjoint of [`im2col_t_rows`]: zeroes `dst`, the image `(C, H, W)`
/// row-major, and adds the `C*FH*FW` rows of `OH*OW` values back onto it.
fn col2im_t_rows<'a, T: Copy + Zero + AddAssign + 'a>(
    mut rows: impl Iterator<Item = &'a [T]>,
    g: &Geometry,
    dst: &mut [T],
) {
    let Window {
        fh, fw, sh, sw, ph, ..
    } = g.win;
    dst.fill(T::zero());
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
                    if sw == 1 {
                        add_run(&mut line[first..first + (hi - lo)], &vals[lo..hi]);
                    } else {
                        for (d, &v) in line[first..].iter_mut().step_by(sw).zip(&vals[lo..hi]) {
                            *d += v;
                        }
                    }
                }
            }
        }
    }
}

/// `dst.copy_from_slice(src)` for a short run, by blocks of 8 (the last one
/// overlapping the one before) or 4, which compile to vector moves.
#[inline(always)]
fn copy_run<T: Copy>(dst: &mut [T], src: &[T]) {
    fn block<T: Copy, const B: usize>(dst: &mut [T], src: &[T], at: usize) {
        let s: &[T; B] = src[at..at + B].try_into().unwrap_or_else(|_| unreachable!());
        let d: &mut [T; B] = (&mut dst[at..at + B])
            .try_into()
            .unwrap_or_else(|_| unreachable!());
        *d = *s;
    }
    let n = dst.len().min(src.len());
    if n >= 8 {
        for at in (0..n - 8).step_by(8) {
            block::<T, 8>(dst, src, at);
        }
        block::<T, 8>(dst, src, n - 8);
    } else if n >= 4 {
        block::<T, 4>(dst, src, 0);
        block::<T, 4>(dst, src, n - 4);
    } else {
        for (d, &s) in dst[..n].iter_mut().zip(src) {
            *d = s;
        }
    }
}

/// `dst += src` element by element for a short run, by blocks of 8 that
/// compile to vector adds, then one by one.
#[inline(always)]
fn add_run<T: Copy + AddAssign>(dst: &mut [T], src: &[T]) {
    let mut d = dst.chunks_exact_mut(8);
    let mut s = src.chunks_exact(8);
    for (d, s) in (&mut d).zip(&mut s) {
        for (d, &s) in d.iter_mut().zip(s) {
            *d += s;
        }
    }
    for (d, &s) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *d += s;
    }
}
