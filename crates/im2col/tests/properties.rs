//! im2col/col2im checked against oracles that share no code with them: an
//! element-by-element definition, the chapter's slice-per-filter-offset
//! algorithm on an explicitly padded image, the adjoint identity, and a
//! count of the windows covering each pixel. The transposed layout is then
//! checked against the chapter's layout, image by image.

use im2col::{ColShape, col_shape, col2im, col2im_into, im2col, im2col_into};
use ndarray::{Array2, Array4, s};
use proptest::prelude::*;
use tensor4d::{ShapeError, Window};

/// Random shapes and windows for which the output size is exact: choose the
/// output size first, then the input size that the window tiles exactly
/// (H + 2P - F = (OH - 1) * S), with padding small enough to keep H >= 1.
fn case() -> impl Strategy<Value = ((usize, usize, usize, usize), Window)> {
    (
        1usize..4,
        1usize..4,
        1usize..6,
        1usize..6,
        1usize..4,
        1usize..3,
        1usize..5,
        // Output rows up to 19 wide: runs shorter than 4, 4 to 7, and 8 or
        // more, which the column layouts copy by blocks of 8.
        1usize..20,
    )
        .prop_flat_map(|(n, c, fh, fw, sh, sw, oh, ow)| {
            let span_h = (oh - 1) * sh + fh;
            let span_w = (ow - 1) * sw + fw;
            (0..=((span_h - 1) / 2).min(2), 0..=((span_w - 1) / 2).min(2)).prop_map(move |(ph, pw)| {
                (
                    (n, c, span_h - 2 * ph, span_w - 2 * pw),
                    Window::new(fh, fw).with_strides(sh, sw).with_pads(ph, pw),
                )
            })
        })
}

fn input(shape: (usize, usize, usize, usize), seed: u64) -> Array4<f64> {
    let mut state = seed | 1;
    Array4::from_shape_fn(shape, |_| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % 2001) as f64 / 1000.0 - 1.0
    })
}

fn matrix(dim: (usize, usize), seed: u64) -> Array2<f64> {
    input((1, 1, dim.0, dim.1), seed)
        .into_shape_with_order(dim)
        .unwrap()
}

/// The definition: col[(n, oh, ow), (c, ki, kj)] = padded x at the window's pixel.
fn naive_im2col(x: &Array4<f64>, win: Window) -> Array2<f64> {
    let (n, c, h, w) = x.dim();
    let (oh, ow) = win.output_size(h, w).unwrap();
    let mut col = Array2::zeros((n * oh * ow, c * win.fh * win.fw));
    for b in 0..n {
        for i in 0..oh {
            for j in 0..ow {
                for ch in 0..c {
                    for ki in 0..win.fh {
                        for kj in 0..win.fw {
                            let y = (i * win.sh + ki) as i64 - win.ph as i64;
                            let xx = (j * win.sw + kj) as i64 - win.pw as i64;
                            let v = if y >= 0 && xx >= 0 && (y as usize) < h && (xx as usize) < w {
                                x[[b, ch, y as usize, xx as usize]]
                            } else {
                                0.0
                            };
                            col[[(b * oh + i) * ow + j, (ch * win.fh + ki) * win.fw + kj]] = v;
                        }
                    }
                }
            }
        }
    }
    col
}

/// The chapter's numpy algorithm: pad, then for each filter offset (y, x)
/// take the strided slice img[:, :, y:y_max:stride, x:x_max:stride].
fn chapter_im2col(x: &Array4<f64>, win: Window) -> Array2<f64> {
    let (n, c, h, w) = x.dim();
    let (oh, ow) = win.output_size(h, w).unwrap();
    let mut img = Array4::zeros((n, c, h + 2 * win.ph, w + 2 * win.pw));
    img.slice_mut(s![.., .., win.ph..win.ph + h, win.pw..win.pw + w])
        .assign(x);
    // col6 has shape (N, C, FH, FW, OH, OW) as in the book.
    let mut col6 = ndarray::Array6::zeros((n, c, win.fh, win.fw, oh, ow));
    for y in 0..win.fh {
        let y_max = y + win.sh * (oh - 1) + 1; // numpy's y + S*OH, clipped
        for xx in 0..win.fw {
            let x_max = xx + win.sw * (ow - 1) + 1;
            let src = img.slice(s![.., .., y..y_max;win.sh, xx..x_max;win.sw]);
            col6.slice_mut(s![.., .., y, xx, .., ..]).assign(&src);
        }
    }
    // transpose(0, 4, 5, 1, 2, 3).reshape(N*OH*OW, -1)
    let t = col6.permuted_axes([0, 4, 5, 1, 2, 3]);
    let t = t.as_standard_layout().into_owned();
    t.into_shape_with_order((n * oh * ow, c * win.fh * win.fw))
        .unwrap()
}

fn dot<'a>(a: impl IntoIterator<Item = &'a f64>, b: impl IntoIterator<Item = &'a f64>) -> f64 {
    a.into_iter().zip(b).map(|(x, y)| x * y).sum()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn im2col_equals_definition_and_chapter((shape, win) in case(), seed in any::<u64>()) {
        let x = input(shape, seed);
        let col = im2col(x.view(), win).unwrap();
        prop_assert_eq!(&col, &naive_im2col(&x, win));
        prop_assert_eq!(&col, &chapter_im2col(&x, win));
    }

    #[test]
    fn col_shape_is_the_shape_im2col_gives((shape, win) in case()) {
        let (n, c, h, w) = shape;
        let (oh, ow) = win.output_size(h, w).unwrap();
        let s = col_shape(shape, win).unwrap();
        prop_assert_eq!(s, ColShape { oh, ow, rows: n * oh * ow, cols: c * win.fh * win.fw });
        let col = im2col(Array4::<f64>::zeros(shape).view(), win).unwrap();
        prop_assert_eq!(col.dim(), (s.rows, s.cols));
    }

    #[test]
    fn col2im_is_adjoint_of_im2col((shape, win) in case(), seed in any::<u64>()) {
        let x = input(shape, seed);
        let col = im2col(x.view(), win).unwrap();
        let c = matrix(col.dim(), seed ^ 0x9e37);
        let back = col2im(c.view(), win, shape).unwrap();
        let lhs = dot(&col, &c);
        let rhs = dot(&x, &back);
        let scale = lhs.abs().max(rhs.abs()).max(1e-300);
        prop_assert!((lhs - rhs).abs() <= 1e-9 * scale.max(1.0), "{} vs {}", lhs, rhs);
    }

    #[test]
    fn col2im_of_im2col_counts_coverage((shape, win) in case(), seed in any::<u64>()) {
        let x = input(shape, seed);
        let back = col2im(im2col(x.view(), win).unwrap().view(), win, shape).unwrap();
        let (_, _, h, w) = shape;
        let (oh, ow) = win.output_size(h, w).unwrap();
        // How many windows cover pixel (y, x): count by brute force.
        let cover = |y: usize, xx: usize| {
            let mut k = 0.0;
            for i in 0..oh {
                for j in 0..ow {
                    let (y0, x0) = (i * win.sh, j * win.sw);
                    let (py, px) = (y + win.ph, xx + win.pw);
                    if py >= y0 && py < y0 + win.fh && px >= x0 && px < x0 + win.fw {
                        k += 1.0;
                    }
                }
            }
            k
        };
        for ((b, c, y, xx), v) in back.indexed_iter() {
            let want = x[[b, c, y, xx]] * cover(y, xx);
            prop_assert!((v - want).abs() <= 1e-12 * want.abs().max(1.0), "pixel {:?}", (b, c, y, xx));
        }
    }

    // The `_into` variants overwrite their destination: a NaN left anywhere
    // (or added to) would show.
    #[test]
    fn into_variants_overwrite_their_destination((shape, win) in case(), seed in any::<u64>()) {
        let x = input(shape, seed);
        let want = im2col(x.view(), win).unwrap();
        let mut col = Array2::from_elem(want.dim(), f64::NAN);
        im2col_into(x.view(), win, col.view_mut()).unwrap();
        prop_assert_eq!(&col, &want);
        let c = matrix(want.dim(), seed ^ 5);
        let mut back = Array4::from_elem(shape, f64::NAN);
        col2im_into(c.view(), win, back.view_mut()).unwrap();
        prop_assert_eq!(back, col2im(c.view(), win, shape).unwrap());
    }

    #[test]
    fn strided_views_are_read_correctly((shape, win) in case(), seed in any::<u64>()) {
        // A transposed-and-back view is not contiguous; results must not change.
        let x = input(shape, seed);
        let xt = x.clone().permuted_axes([0, 1, 3, 2]).as_standard_layout().into_owned();
        let view = xt.view().permuted_axes([0, 1, 3, 2]);
        let col = im2col(x.view(), win).unwrap();
        prop_assert_eq!(im2col(view, win).unwrap(), col.clone());
        // col2im reads any column matrix too, here a transposed one.
        let c = matrix(col.dim(), seed ^ 11);
        let ct = c.t().as_standard_layout().into_owned();
        prop_assert_eq!(col2im(ct.t(), win, shape).unwrap(), col2im(c.view(), win, shape).unwrap());
    }
}

#[test]
fn errors_name_the_sizes() {
    let x = Array4::<f32>::zeros((1, 1, 28, 28));
    let e = im2col(x.view(), Window::square(5).with_stride(2)).unwrap_err();
    assert!(
        matches!(
            e,
            ShapeError::NotExact {
                span: 23,
                stride: 2,
                ..
            }
        ),
        "{e}"
    );
    let mut small = Array2::<f32>::zeros((3, 3));
    let e = im2col_into(x.view(), Window::square(2).with_stride(2), small.view_mut()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "im2col column matrix: expected (196, 4), found (3, 3)"
    );
    let e = col2im(small.view(), Window::square(5), (1, 1, 28, 28)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "col2im column matrix: expected (576, 25), found (3, 3)"
    );
    let empty = Array4::<f32>::zeros((0, 1, 4, 4));
    assert!(matches!(
        im2col(empty.view(), Window::square(2)),
        Err(ShapeError::Empty { .. })
    ));
    // The right shape, but a strided buffer: refused, naming the argument.
    let mut col = Array2::<f32>::zeros((4, 9));
    let e = im2col_into(
        Array4::<f32>::zeros((1, 1, 4, 4)).view(),
        Window::square(2),
        col.view_mut().reversed_axes(),
    )
    .unwrap_err();
    assert!(
        e.to_string().starts_with("im2col column matrix") && e.to_string().contains("strided"),
        "{e}"
    );
    let mut x = Array4::<f32>::zeros((1, 1, 4, 4));
    let e = col2im_into(
        Array2::<f32>::zeros((9, 4)).view(),
        Window::square(2),
        x.view_mut().permuted_axes([0, 1, 3, 2]),
    )
    .unwrap_err();
    assert!(e.to_string().starts_with("col2im output"), "{e}");
}

// Sizes whose column matrix could not be indexed are errors before anything
// is allocated, not a panic or an attempt at a huge allocation.
#[test]
fn oversized_shapes_are_errors() {
    let huge = usize::MAX / 4;
    let win = Window::square(1);
    for shape in [(huge, 1, 2, 2), (2, huge, 2, 2), (1, 1, huge, 4)] {
        let e = col_shape(shape, win).unwrap_err();
        assert!(matches!(e, ShapeError::TooLarge { .. }), "{shape:?}: {e}");
        let e = col2im(Array2::<f32>::zeros((1, 1)).view(), win, shape).unwrap_err();
        assert!(matches!(e, ShapeError::TooLarge { .. }), "{shape:?}: {e}");
    }
    for shape in [(huge, 2, 2), (1, huge, 4)] {
        let e = im2col::col_shape_t(shape, win).unwrap_err();
        assert!(matches!(e, ShapeError::TooLarge { .. }), "{shape:?}: {e}");
        let e = im2col::col2im_t(Array2::<f32>::zeros((1, 1)).view(), win, shape).unwrap_err();
        assert!(matches!(e, ShapeError::TooLarge { .. }), "{shape:?}: {e}");
    }
}

mod transposed {
    use super::*;
    use im2col::{col_shape_t, col2im_t, col2im_t_into, im2col_t, im2col_t_into};
    use ndarray::{Array3, Axis};

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        // The per-image column layout is exactly the transpose of that
        // image's rows in the chapter's layout.
        #[test]
        fn im2col_t_is_the_transpose_of_each_images_rows((shape, win) in case(), seed in any::<u64>()) {
            let x = input(shape, seed);
            let full = im2col(x.view(), win).unwrap();
            let (n, c, h, w) = shape;
            let s = col_shape_t((c, h, w), win).unwrap();
            prop_assert_eq!((s.oh, s.ow), win.output_size(h, w).unwrap());
            let ohw = s.oh * s.ow;
            prop_assert_eq!((s.rows, s.cols), (c * win.fh * win.fw, ohw));
            for b in 0..n {
                let col = im2col_t(x.index_axis(Axis(0), b), win).unwrap();
                let rows = full.slice(s![b * ohw..(b + 1) * ohw, ..]);
                prop_assert_eq!(col.view(), rows.t());
                // The `_into` variant overwrites every element.
                let mut into = Array2::from_elem(col.dim(), f64::NAN);
                im2col_t_into(x.index_axis(Axis(0), b), win, into.view_mut()).unwrap();
                prop_assert_eq!(&into, &col);
            }
        }

        #[test]
        fn col2im_t_is_adjoint_of_im2col_t((shape, win) in case(), seed in any::<u64>()) {
            let (_, c, h, w) = shape;
            let x: Array3<f64> = input((1, c, h, w), seed).index_axis_move(Axis(0), 0);
            let col = im2col_t(x.view(), win).unwrap();
            let cm = matrix(col.dim(), seed ^ 3);
            let back = col2im_t(cm.view(), win, (c, h, w)).unwrap();
            let lhs = dot(&col, &cm);
            let rhs = dot(&x, &back);
            prop_assert!((lhs - rhs).abs() <= 1e-9 * lhs.abs().max(rhs.abs()).max(1.0), "{} vs {}", lhs, rhs);
            let mut into = Array3::from_elem((c, h, w), f64::NAN); // overwritten, not added to
            col2im_t_into(cm.view(), win, into.view_mut()).unwrap();
            prop_assert_eq!(into, back);
        }

        // A block of a wider matrix, G images wide plus spare columns, rows
        // in either order: the block holds exactly the image's columns and
        // nothing outside it is touched.
        #[test]
        fn block_writes_touch_only_their_block(
            (shape, win) in case(),
            seed in any::<u64>(),
            (groups, at) in (1usize..5).prop_flat_map(|g| (Just(g), 0..g)),
            spare in 0usize..3,
            flip in any::<bool>(),
        ) {
            let (_, c, h, w) = shape;
            let x: Array3<f64> = input((1, c, h, w), seed).index_axis_move(Axis(0), 0);
            let own = im2col_t(x.view(), win).unwrap();
            let (rows, ohw) = own.dim();
            let mut wide = Array2::from_elem((rows, groups * ohw + spare), f64::NAN);
            let mut view = wide.view_mut();
            if flip {
                view.invert_axis(Axis(0)); // a negative row stride
            }
            im2col_t_into(x.view(), win, view.slice_mut(s![.., at * ohw..(at + 1) * ohw])).unwrap();
            let view = {
                let mut v = wide.view();
                if flip {
                    v.invert_axis(Axis(0));
                }
                v
            };
            prop_assert_eq!(view.slice(s![.., at * ohw..(at + 1) * ohw]), own.view());
            for ((_, j), v) in wide.indexed_iter() {
                if j < at * ohw || j >= (at + 1) * ohw {
                    prop_assert!(v.is_nan(), "column {} of {} written", j, wide.ncols());
                }
            }
        }

        // Folding back from a block of a wider matrix equals folding back
        // the same block copied out on its own.
        #[test]
        fn col2im_t_into_from_a_block_equals_col2im_t_of_the_copy(
            (shape, win) in case(),
            seed in any::<u64>(),
            (groups, at) in (1usize..5).prop_flat_map(|g| (Just(g), 0..g)),
            spare in 0usize..3,
        ) {
            let (_, c, h, w) = shape;
            let s = col_shape_t((c, h, w), win).unwrap();
            let wide = matrix((s.rows, groups * s.cols + spare), seed);
            let block = wide.slice(s![.., at * s.cols..(at + 1) * s.cols]);
            let mut x = Array3::from_elem((c, h, w), f64::NAN);
            col2im_t_into(block, win, x.view_mut()).unwrap();
            prop_assert_eq!(x, col2im_t(block.to_owned().view(), win, (c, h, w)).unwrap());
        }
    }

    #[test]
    fn chapter_shapes() {
        let win = Window::square(5);
        let x = Array3::<f32>::zeros((3, 7, 7));
        assert_eq!(im2col_t(x.view(), win).unwrap().dim(), (75, 9));
        assert_eq!(
            col_shape_t((3, 7, 7), win).unwrap(),
            ColShape {
                oh: 3,
                ow: 3,
                rows: 75,
                cols: 9
            }
        );
        assert_eq!(col_shape((10, 3, 7, 7), win).unwrap().rows, 90);
    }

    #[test]
    fn blocks_of_the_wrong_shape_or_with_strided_rows_are_errors() {
        let win = Window::square(3); // over (3, 6, 6): 27 rows of 16 columns
        let x = Array3::<f32>::zeros((3, 6, 6));
        let mut big = Array2::<f32>::zeros((27, 40));
        let e = im2col_t_into(x.view(), win, big.slice_mut(s![.., 0..15])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "im2col_t column block: expected (27, 16), found (27, 15)"
        );
        let e = col2im_t_into(
            big.slice(s![1.., 0..16]),
            win,
            Array3::zeros((3, 6, 6)).view_mut(),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "col2im_t column block: expected (27, 16), found (26, 16)"
        );
        let e = col2im_t(big.slice(s![.., 0..17]), win, (3, 6, 6)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "col2im_t column block: expected (27, 16), found (27, 17)"
        );

        // Rows that are not contiguous: every other column, or a transpose.
        let e = im2col_t_into(x.view(), win, big.slice_mut(s![.., 0..32;2])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "im2col_t column block rows: expected contiguous rows (column stride 1), found column stride 2"
        );
        let mut tall = Array2::<f32>::zeros((16, 27));
        let e = im2col_t_into(x.view(), win, tall.view_mut().reversed_axes()).unwrap_err();
        assert!(e.to_string().starts_with("im2col_t column block rows"), "{e}");
        let e = col2im_t_into(tall.t(), win, Array3::zeros((3, 6, 6)).view_mut()).unwrap_err();
        assert!(e.to_string().starts_with("col2im_t column block rows"), "{e}");
        // The owned variant reads any layout, copying it first.
        tall.iter_mut().enumerate().for_each(|(i, v)| *v = i as f32);
        let copied = tall.t().as_standard_layout().into_owned();
        assert_eq!(
            col2im_t(tall.t(), win, (3, 6, 6)).unwrap(),
            col2im_t(copied.view(), win, (3, 6, 6)).unwrap()
        );

        // A strided output image is refused, not silently copied.
        let mut xt = Array3::<f32>::zeros((3, 6, 6));
        let e = col2im_t_into(
            big.slice(s![.., 0..16]),
            win,
            xt.view_mut().permuted_axes([0, 2, 1]),
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("col2im_t output"), "{e}");

        // One output column: any column stride is a contiguous row.
        let one = Array3::<f32>::ones((1, 3, 3));
        let mut col = Array2::<f32>::zeros((1, 9));
        let view = col.view_mut().reversed_axes();
        assert_eq!((view.dim(), view.strides()), ((9, 1), &[1, 9][..]));
        im2col_t_into(one.view(), win, view).unwrap();
        assert_eq!(col.row(0).to_vec(), vec![1.0; 9]);
    }
}
