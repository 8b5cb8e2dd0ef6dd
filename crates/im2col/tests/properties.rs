//! im2col/col2im checked against oracles that share no code with them: an
//! element-by-element definition, the chapter's slice-per-filter-offset
//! algorithm on an explicitly padded image, the adjoint identity, and a
//! count of the windows covering each pixel.

use im2col::{col2im, col2im_per_channel, im2col, im2col_per_channel, im2col_per_channel_into};
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
        1usize..5,
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

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
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
    fn col2im_is_adjoint_of_im2col((shape, win) in case(), seed in any::<u64>()) {
        let x = input(shape, seed);
        let col = im2col(x.view(), win).unwrap();
        let c = input((1, 1, col.nrows(), col.ncols()), seed ^ 0x9e37).into_shape_with_order(col.dim()).unwrap();
        let back = col2im(c.view(), shape, win).unwrap();
        let lhs = dot(col.as_slice().unwrap(), c.as_slice().unwrap());
        let rhs = dot(x.as_slice().unwrap(), back.as_slice().unwrap());
        let scale = lhs.abs().max(rhs.abs()).max(1e-300);
        prop_assert!((lhs - rhs).abs() <= 1e-9 * scale.max(1.0), "{} vs {}", lhs, rhs);
    }

    #[test]
    fn col2im_of_im2col_counts_coverage((shape, win) in case(), seed in any::<u64>()) {
        let x = input(shape, seed);
        let back = col2im(im2col(x.view(), win).unwrap().view(), shape, win).unwrap();
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

    #[test]
    fn per_channel_expansion_is_chapter_reshape((shape, win) in case(), seed in any::<u64>()) {
        let x = input(shape, seed);
        let (n, c, h, w) = shape;
        let (oh, ow) = win.output_size(h, w).unwrap();
        let area = win.fh * win.fw;
        let full = naive_im2col(&x, win);
        let pc = im2col_per_channel(x.view(), win).unwrap();
        prop_assert_eq!(pc.dim(), (n * c * oh * ow, area));
        for b in 0..n { for ch in 0..c { for p in 0..oh * ow { for k in 0..area {
            prop_assert_eq!(pc[[(b * c + ch) * oh * ow + p, k]], full[[b * oh * ow + p, ch * area + k]]);
        }}}}
        // And its col2im is the adjoint.
        let cmat = input((1, 1, pc.nrows(), area), seed ^ 7).into_shape_with_order(pc.dim()).unwrap();
        let back = col2im_per_channel(cmat.view(), shape, win).unwrap();
        let lhs = dot(pc.as_slice().unwrap(), cmat.as_slice().unwrap());
        let rhs = dot(x.as_slice().unwrap(), back.as_slice().unwrap());
        prop_assert!((lhs - rhs).abs() <= 1e-9 * lhs.abs().max(rhs.abs()).max(1.0));
    }

    #[test]
    fn strided_input_views_are_read_correctly((shape, win) in case(), seed in any::<u64>()) {
        // A transposed-and-back view is not contiguous; results must not change.
        let x = input(shape, seed);
        let xt = x.clone().permuted_axes([0, 1, 3, 2]).as_standard_layout().into_owned();
        let view = xt.view().permuted_axes([0, 1, 3, 2]);
        prop_assert_eq!(im2col(view, win).unwrap(), im2col(x.view(), win).unwrap());
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
    let e =
        im2col_per_channel_into(x.view(), Window::square(2).with_stride(2), small.view_mut()).unwrap_err();
    assert!(e.to_string().contains("(196, 4)"), "{e}");
    let e = col2im(small.view(), (1, 1, 28, 28), Window::square(5)).unwrap_err();
    assert!(
        e.to_string().contains("(576, 25)") && e.to_string().contains("(3, 3)"),
        "{e}"
    );
    let empty = Array4::<f32>::zeros((0, 1, 4, 4));
    assert!(matches!(
        im2col(empty.view(), Window::square(2)),
        Err(ShapeError::Empty { .. })
    ));
    let mut col = Array2::<f32>::zeros((9, 4));
    let e = im2col::im2col_into(
        Array4::<f32>::zeros((1, 1, 4, 4)).view(),
        Window::square(2),
        col.view_mut().reversed_axes(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("(9, 4)"), "{e}");
}

mod transposed {
    use super::*;
    use im2col::{col2im_t_into, im2col_t_into};
    use ndarray::{Array3, Axis};

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        // The per-image column layout is the transpose of that image's rows
        // in the chapter's layout (checked against the naive definition).
        #[test]
        fn im2col_t_is_the_transpose_of_each_images_rows((shape, win) in case(), seed in any::<u64>()) {
            let x = input(shape, seed);
            let full = naive_im2col(&x, win);
            let (n, c, h, w) = shape;
            let (oh, ow) = win.output_size(h, w).unwrap();
            for b in 0..n {
                let mut col = Array2::zeros((c * win.fh * win.fw, oh * ow));
                im2col_t_into(x.index_axis(Axis(0), b), win, col.view_mut()).unwrap();
                let rows = full.slice(s![b * oh * ow..(b + 1) * oh * ow, ..]);
                prop_assert_eq!(col.view(), rows.t());
            }
        }

        #[test]
        fn col2im_t_is_adjoint_of_im2col_t((shape, win) in case(), seed in any::<u64>()) {
            let (_, c, h, w) = shape;
            let x: Array3<f64> = input((1, c, h, w), seed).index_axis_move(Axis(0), 0);
            let (oh, ow) = win.output_size(h, w).unwrap();
            let mut col = Array2::zeros((c * win.fh * win.fw, oh * ow));
            im2col_t_into(x.view(), win, col.view_mut()).unwrap();
            let cm = input((1, 1, col.nrows(), col.ncols()), seed ^ 3).into_shape_with_order(col.dim()).unwrap();
            let mut back = Array3::from_elem((c, h, w), f64::NAN); // overwritten, not added to
            col2im_t_into(cm.view(), win, back.view_mut()).unwrap();
            let lhs = dot(col.as_slice().unwrap(), cm.as_slice().unwrap());
            let rhs = dot(x.as_slice().unwrap(), back.as_slice().unwrap());
            prop_assert!((lhs - rhs).abs() <= 1e-9 * lhs.abs().max(rhs.abs()).max(1.0), "{} vs {}", lhs, rhs);
        }

        // The strided variants write and read a block of a wider matrix:
        // every image of the batch side by side gives exactly each image's
        // own columns, nothing outside the blocks is touched, and folding
        // back from the block equals folding back from the image's own.
        #[test]
        fn strided_blocks_hold_each_images_columns((shape, win) in case(), seed in any::<u64>(), spare in 0usize..3) {
            use im2col::{col2im_t_slice, col2im_t_strided, im2col_t_slice, im2col_t_strided};
            let x = input(shape, seed);
            let (n, c, h, w) = shape;
            let (oh, ow) = win.output_size(h, w).unwrap();
            let (rows, ohw) = (c * win.fh * win.fw, oh * ow);
            let ld = n * ohw + spare; // spare columns must stay untouched
            let mut wide = vec![f64::NAN; rows * ld];
            let xs = x.as_slice().unwrap();
            for (b, img) in xs.chunks_exact(c * h * w).enumerate() {
                im2col_t_strided(img, (c, h, w), win, &mut wide[b * ohw..], ld).unwrap();
            }
            for (b, img) in xs.chunks_exact(c * h * w).enumerate() {
                let mut own = vec![0.0; rows * ohw];
                im2col_t_slice(img, (c, h, w), win, &mut own).unwrap();
                for r in 0..rows {
                    prop_assert_eq!(&wide[r * ld + b * ohw..r * ld + (b + 1) * ohw], &own[r * ohw..(r + 1) * ohw]);
                }
                let g = input((1, 1, rows, ohw), seed ^ b as u64);
                let g = g.as_slice().unwrap();
                let mut block = wide.clone();
                for r in 0..rows {
                    block[r * ld + b * ohw..r * ld + (b + 1) * ohw].copy_from_slice(&g[r * ohw..(r + 1) * ohw]);
                }
                let (mut a, mut e) = (vec![f64::NAN; c * h * w], vec![f64::NAN; c * h * w]);
                col2im_t_strided(&block[b * ohw..], (c, h, w), win, &mut a, ld).unwrap();
                col2im_t_slice(g, (c, h, w), win, &mut e).unwrap();
                prop_assert_eq!(a, e);
            }
            for r in 0..rows {
                prop_assert!(wide[r * ld + n * ohw..r * ld + ld].iter().all(|v| v.is_nan()));
            }
        }
    }
}

#[test]
fn strided_blocks_that_do_not_fit_are_errors() {
    let x = [0.0f32; 9];
    let win = Window::square(2); // 4 rows of 4 columns
    let mut col = [0.0f32; 16];
    let e = im2col::im2col_t_strided(&x, (1, 3, 3), win, &mut col, 3).unwrap_err();
    assert!(e.to_string().contains("row stride"), "{e}");
    let e = im2col::im2col_t_strided(&x, (1, 3, 3), win, &mut col, 5).unwrap_err();
    assert!(e.to_string().contains("column block length"), "{e}");
    let e = im2col::col2im_t_strided(&col[..15], (1, 3, 3), win, &mut [0.0; 9], 4).unwrap_err();
    assert!(e.to_string().contains("column block length"), "{e}");
    im2col::im2col_t_strided(&x, (1, 3, 3), win, &mut col, 4).unwrap();
}
