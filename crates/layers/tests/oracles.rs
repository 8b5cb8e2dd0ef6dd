//! Forward and backward of each layer against naive loops written from the
//! definitions, sharing no code with the layers (no im2col, no GEMM).

use crate::common::*;
use layers::{
    Activation, Affine, ConvMethod, Convolution, Layer, LayerHooks, Lrn, Mode, Pooling, SoftmaxWithLoss,
};
use ndarray::{Array1, Array2, Array4, ArrayD};
use proptest::prelude::*;
use tensor4d::Window;

/// Padded read: zero outside the image.
fn at(x: &Array4<f64>, n: usize, c: usize, y: isize, xx: isize) -> f64 {
    let (_, _, h, w) = x.dim();
    if y < 0 || xx < 0 || y as usize >= h || xx as usize >= w {
        0.0
    } else {
        x[[n, c, y as usize, xx as usize]]
    }
}

/// Input pixel read by output (i, j), filter offset (ki, kj).
fn src(win: Window, i: usize, j: usize, ki: usize, kj: usize) -> (isize, isize) {
    (
        (i * win.sh + ki) as isize - win.ph as isize,
        (j * win.sw + kj) as isize - win.pw as isize,
    )
}

fn naive_conv(x: &Array4<f64>, w: &Array4<f64>, b: &Array1<f64>, win: Window) -> Array4<f64> {
    let (n, c, h, wd) = x.dim();
    let (f, _, fh, fw) = w.dim();
    let (oh, ow) = win.output_size(h, wd).unwrap();
    Array4::from_shape_fn((n, f, oh, ow), |(bn, bf, i, j)| {
        let mut s = b[bf];
        for ch in 0..c {
            for ki in 0..fh {
                for kj in 0..fw {
                    let (y, xx) = src(win, i, j, ki, kj);
                    s += w[[bf, ch, ki, kj]] * at(x, bn, ch, y, xx);
                }
            }
        }
        s
    })
}

/// The gradients of sum(conv(x) * g) by direct accumulation.
fn naive_conv_backward(
    x: &Array4<f64>,
    w: &Array4<f64>,
    g: &Array4<f64>,
    win: Window,
) -> (Array4<f64>, Array4<f64>, Array1<f64>) {
    let (n, c, h, wd) = x.dim();
    let (f, _, fh, fw) = w.dim();
    let (_, _, oh, ow) = g.dim();
    let mut dx = Array4::zeros((n, c, h, wd));
    let mut dw = Array4::zeros(w.dim());
    let mut db = Array1::zeros(f);
    for bn in 0..n {
        for bf in 0..f {
            for i in 0..oh {
                for j in 0..ow {
                    let gv = g[[bn, bf, i, j]];
                    db[bf] += gv;
                    for ch in 0..c {
                        for ki in 0..fh {
                            for kj in 0..fw {
                                let (y, xx) = src(win, i, j, ki, kj);
                                dw[[bf, ch, ki, kj]] += gv * at(x, bn, ch, y, xx);
                                if y >= 0 && xx >= 0 && (y as usize) < h && (xx as usize) < wd {
                                    dx[[bn, ch, y as usize, xx as usize]] += gv * w[[bf, ch, ki, kj]];
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    (dx, dw, db)
}

/// Backward puts small outputs' images side by side in groups (ten
/// 10x10 outputs, eight 11x11 ones); products of up to 16 filters take
/// the small-matrix kernels, whose tiles are 16 columns wide (so 100 and
/// 121 columns end in a partial tile); batches that do not divide into whole
/// groups, on one thread and on three, must still match the naive loops,
/// and give the same bits whatever the thread count.
#[test]
fn grouped_convolution_backward_matches_nested_loops() {
    backward_matches_nested_loops(
        &[
            ((25, 2, 10, 10), 3, Window::square(3).with_pad(1)),
            ((21, 1, 23, 23), 2, Window::square(3).with_stride(2)),
            ((13, 3, 12, 12), 4, Window::square(2).with_stride(1).with_pad(0)),
            // 13 filters: tiles of 6 rows and a remainder in the small-matrix
            // kernels; 18 filters: the packed GEMM.
            ((5, 2, 12, 12), 13, Window::square(3).with_pad(1)),
            ((4, 3, 9, 9), 18, Window::square(3).with_pad(1)),
            // 24 filters: the packed GEMM both ways.
            ((3, 2, 8, 8), 24, Window::square(3).with_pad(1)),
            // 7x7 outputs in groups of unequal size (AlexNet-lite's conv3 to 5).
            ((23, 4, 7, 7), 20, Window::square(3).with_pad(1)),
        ],
        true,
    );
}

/// A first layer needs no input gradient: its weight gradient alone (dot
/// products over the padded input read in place for 3 filters, the packed
/// GEMM for 20 and 33), checked against the naive loops, with padding and
/// without, and for the same bits on one thread and three.
#[test]
fn first_layer_weight_gradient_matches_nested_loops() {
    backward_matches_nested_loops(
        &[
            ((6, 1, 12, 12), 20, Window::square(5)),
            ((5, 2, 9, 9), 3, Window::square(3).with_pad(1)),
            ((3, 1, 10, 10), 33, Window::square(5).with_pad(2)),
        ],
        false,
    );
}

/// A convolution's parameter gradients, dW and db.
fn grads<T: layers::Float>(conv: &Convolution<T>) -> (ArrayD<T>, ArrayD<T>) {
    (conv.dw().clone().into_dyn(), conv.db().clone().into_dyn())
}

/// Every method that can compute a convolution over `win` (Direct needs stride 1).
fn methods_for(win: Window) -> Vec<ConvMethod> {
    let stride_1 = (win.sh, win.sw) == (1, 1);
    ConvMethod::ALL
        .into_iter()
        .filter(|&m| m != ConvMethod::Direct || stride_1)
        .collect()
}

/// A convolution of weights `w` and biases `b` by `method`, with a fused
/// ReLU if `relu`.
fn conv_by<T: layers::Float>(
    method: ConvMethod,
    w: &Array4<T>,
    b: &Array1<T>,
    win: Window,
    relu: bool,
) -> Convolution<T> {
    let mut conv = Convolution::from_weights(w.clone(), b.clone(), win)
        .unwrap()
        .with_method(method)
        .unwrap();
    if relu {
        conv.fuse(Activation::Relu);
    }
    conv
}

/// What one method computes on `x`: output, dx, dW, db, and dW and db again
/// from a backward without dx.
type Results<T> = [(&'static str, ArrayD<T>); 6];

fn run_method<T: layers::Float>(
    method: ConvMethod,
    x: &Array4<T>,
    w: &Array4<T>,
    b: &Array1<T>,
    win: Window,
    seed: u64,
) -> Results<T> {
    let mut conv = conv_by(method, w, b, win, false);
    let y = conv.forward(x.view().into_dyn(), Mode::Train).unwrap().clone();
    let g = uniform(y.shape(), seed ^ 3).mapv(|v| T::of(v));
    let dx = conv.backward(g.view()).unwrap().clone();
    let (dw, db) = grads(&conv);
    conv.forward(x.view().into_dyn(), Mode::Train).unwrap();
    conv.backward_params(g.view()).unwrap();
    let (dw_only, db_only) = grads(&conv);
    [
        ("forward", y),
        ("dx", dx),
        ("dW", dw),
        ("db", db),
        ("dW without dx", dw_only),
        ("db without dx", db_only),
    ]
}

fn zip_results<'a, T>(
    a: &'a Results<T>,
    b: &'a Results<T>,
) -> impl Iterator<Item = (&'static str, &'a ArrayD<T>, &'a ArrayD<T>)> {
    a.iter().zip(b).map(|((what, p), (_, q))| (*what, p, q))
}

/// A convolution case: input shape, number of filters, window.
type ConvCase = ((usize, usize, usize, usize), usize, Window);

/// Each case: forward, and backward with
/// or without the input gradient, against the naive loops, and the same
/// bits on one thread and three. Forward puts small outputs' images side by
/// side as well: each image's output must have the same bits whether it is
/// computed in the batch or alone.
fn backward_matches_nested_loops(cases: &[ConvCase], input_grad: bool) {
    let bits = |v: &ArrayD<f64>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for (k, &(shape, filters, win)) in cases.iter().enumerate() {
        let seed = 40 + k as u64;
        let x = uniform4(shape, seed);
        let w = uniform4((filters, shape.1, win.fh, win.fw), seed ^ 1);
        let b = uniform1(filters, seed ^ 2);
        let run = |threads: usize| {
            on_threads(threads, || {
                let mut conv = Convolution::from_weights(w.clone(), b.clone(), win).unwrap();
                let y = conv.forward(x.view().into_dyn(), Mode::Train).unwrap().clone();
                let g = uniform(y.shape(), seed ^ 3);
                let dx = if input_grad {
                    Some(conv.backward(g.view()).unwrap().clone())
                } else {
                    conv.backward_params(g.view()).unwrap();
                    None
                };
                (y, g, dx, grads(&conv))
            })
        };
        let (y, g, dx, grads) = run(1);
        assert_all_close(&y, &naive_conv(&x, &w, &b, win).into_dyn(), "forward");
        let mut conv = Convolution::from_weights(w.clone(), b.clone(), win).unwrap();
        for i in 0..shape.0 {
            let one = x.slice(ndarray::s![i..i + 1, .., .., ..]).into_dyn();
            let alone = conv.forward(one, Mode::Inference).unwrap();
            assert_eq!(
                bits(alone),
                bits(&y.index_axis(ndarray::Axis(0), i).to_owned().into_dyn()),
                "image {i} alone"
            );
        }
        let (ndx, ndw, ndb) = naive_conv_backward(&x, &w, &g.into_dimensionality().unwrap(), win);
        if let Some(dx) = &dx {
            assert_all_close(dx, &ndx.into_dyn(), "dx");
        }
        assert_all_close(&grads.0, &ndw.into_dyn(), "dW");
        assert_all_close(&grads.1, &ndb.into_dyn(), "db");
        let (y3, _, dx3, grads3) = run(3);
        assert_eq!(bits(&y), bits(&y3), "forward, 1 and 3 threads");
        assert_eq!(dx.map(|d| bits(&d)), dx3.map(|d| bits(&d)), "dx, 1 and 3 threads");
        assert_eq!(bits(&grads.0), bits(&grads3.0), "dW, 1 and 3 threads");
        assert_eq!(bits(&grads.1), bits(&grads3.1), "db, 1 and 3 threads");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    // Every method, the chapter's included, against the naive loops.
    #[test]
    fn convolution_matches_nested_loops(
        (shape, win) in exact_case(3, 3),
        // Up to 16 filters take the small-matrix kernels, more the packed GEMM.
        filters in prop_oneof![1usize..8, 17usize..19],
        seed in any::<u64>()
    ) {
        let x = uniform4(shape, seed);
        let w = uniform4((filters, shape.1, win.fh, win.fw), seed ^ 1);
        let b = uniform1(filters, seed ^ 2);
        let (nx, ny) = (x.view().into_dyn(), naive_conv(&x, &w, &b, win).into_dyn());
        let g = uniform(ny.shape(), seed ^ 3);
        let (ndx, ndw, ndb) = naive_conv_backward(&x, &w, &g.clone().into_dimensionality().unwrap(), win);
        for method in methods_for(win) {
            let mut conv = Convolution::from_weights(w.clone(), b.clone(), win).unwrap().with_method(method).unwrap();
            let y = conv.forward(nx.clone(), Mode::Train).unwrap().clone();
            assert_all_close(&y, &ny, &format!("forward, {method}"));
            let dx = conv.backward(g.view()).unwrap().clone();
            assert_all_close(&dx, &ndx.clone().into_dyn(), &format!("dx, {method}"));
            let (dw, db) = grads(&conv);
            assert_all_close(&dw, &ndw.clone().into_dyn(), &format!("dW, {method}"));
            assert_all_close(&db, &ndb.clone().into_dyn(), &format!("db, {method}"));
        }
    }

    // The engine's methods against the chapter's, in f64 and in f32 (where
    // the sums run in another order, so to a tolerance: 1e-12 relative in
    // f64, 1e-4 in f32), forward, backward, and backward without dx.
    #[test]
    fn engine_methods_match_the_chapters(
        (shape, win) in exact_case(3, 3),
        filters in prop_oneof![1usize..8, 17usize..19, 24usize..25],
        seed in any::<u64>()
    ) {
        let x = uniform4(shape, seed);
        let w = uniform4((filters, shape.1, win.fh, win.fw), seed ^ 1);
        let b = uniform1(filters, seed ^ 2);
        let reference = run_method(ConvMethod::Chapter, &x, &w, &b, win, seed);
        let reference32 = run_method(ConvMethod::Chapter, &x.mapv(|v| v as f32), &w.mapv(|v| v as f32), &b.mapv(|v| v as f32), win, seed);
        for method in methods_for(win).into_iter().filter(|&m| m != ConvMethod::Chapter) {
            let got = run_method(method, &x, &w, &b, win, seed);
            for (what, a, b) in zip_results(&reference, &got) {
                assert_all_close(a, b, &format!("{what}, {method} against the chapter's"));
            }
            let got32 = run_method(method, &x.mapv(|v| v as f32), &w.mapv(|v| v as f32), &b.mapv(|v| v as f32), win, seed);
            for (what, a, b) in zip_results(&reference32, &got32) {
                for (&p, &q) in a.iter().zip(b.iter()) {
                    let (p, q) = (p as f64, q as f64);
                    prop_assert!((p - q).abs() <= 1e-4 * p.abs().max(q.abs()).max(1.0), "{} in f32, {}: {} vs {}", what, method, p, q);
                }
            }
        }
    }

    #[test]
    fn pooling_matches_nested_loops((shape, win) in exact_case(3, 3), seed in any::<u64>()) {
        let x = uniform4(shape, seed);
        let (n, c, h, w) = shape;
        let (oh, ow) = win.output_size(h, w).unwrap();
        let g = uniform4((n, c, oh, ow), seed ^ 5);
        let area = (win.fh * win.fw) as f64;

        let mut want_max = Array4::zeros((n, c, oh, ow));
        let mut want_avg = Array4::zeros((n, c, oh, ow));
        let mut dx_max = Array4::<f64>::zeros(shape);
        let mut dx_avg = Array4::<f64>::zeros(shape);
        for bn in 0..n { for ch in 0..c { for i in 0..oh { for j in 0..ow {
            let mut best = (f64::NEG_INFINITY, None);
            let mut sum = 0.0;
            for ki in 0..win.fh { for kj in 0..win.fw {
                let (y, xx) = src(win, i, j, ki, kj);
                let v = at(&x, bn, ch, y, xx);
                sum += v;
                let inside = y >= 0 && xx >= 0 && (y as usize) < h && (xx as usize) < w;
                if v > best.0 { best = (v, inside.then_some((y as usize, xx as usize))); }
                if inside { dx_avg[[bn, ch, y as usize, xx as usize]] += g[[bn, ch, i, j]] / area; }
            }}
            want_max[[bn, ch, i, j]] = best.0;
            want_avg[[bn, ch, i, j]] = sum / area;
            if let Some((y, xx)) = best.1 { dx_max[[bn, ch, y, xx]] += g[[bn, ch, i, j]]; }
        }}}}

        let mut max = Pooling::max(win);
        assert_all_close(max.forward(x.view().into_dyn(), Mode::Train).unwrap(), &want_max.into_dyn(), "max forward");
        assert_all_close(max.backward(g.view().into_dyn()).unwrap(), &dx_max.into_dyn(), "max backward");
        let mut avg = Pooling::average(win);
        assert_all_close(avg.forward(x.view().into_dyn(), Mode::Train).unwrap(), &want_avg.into_dyn(), "avg forward");
        assert_all_close(avg.backward(g.view().into_dyn()).unwrap(), &dx_avg.into_dyn(), "avg backward");
    }

    #[test]
    fn affine_matches_loops(
        // Up to a register tile of rows and at least its width of outputs
        // read the weights in place; more rows or fewer outputs pack them.
        n in 1usize..9, c in 1usize..4, hw in 1usize..4, out in prop_oneof![1usize..6, 16usize..40], seed in any::<u64>(),
    ) {
        let x = uniform(&[n, c, hw, hw], seed);
        let d = c * hw * hw;
        let w: Array2<f64> = uniform(&[d, out], seed ^ 1).into_dimensionality().unwrap();
        let b = uniform1(out, seed ^ 2);
        let mut fc = Affine::from_weights(w.clone(), b.clone()).unwrap();
        let y = fc.forward(x.view(), Mode::Train).unwrap().clone();
        let flat: Vec<f64> = x.iter().copied().collect(); // row-major over (C, H, W)
        let want = ArrayD::from_shape_fn(vec![n, out], |i| {
            b[i[1]] + (0..d).map(|k| flat[i[0] * d + k] * w[[k, i[1]]]).sum::<f64>()
        });
        assert_all_close(&y, &want, "forward");
        let g = uniform(&[n, out], seed ^ 3);
        let dx = fc.backward(g.view()).unwrap().clone();
        prop_assert_eq!(dx.shape(), x.shape());
        let want_dx: Vec<f64> = (0..n * d).map(|i| (0..out).map(|o| g[[i / d, o]] * w[[i % d, o]]).sum()).collect();
        assert_all_close(&dx, &ArrayD::from_shape_vec(x.shape(), want_dx).unwrap(), "dx");
        let want_dw = ArrayD::from_shape_fn(vec![d, out], |i| (0..n).map(|s| flat[s * d + i[0]] * g[[s, i[1]]]).sum());
        assert_all_close(&fc.dw().clone().into_dyn(), &want_dw, "dW");
        let want_db = ArrayD::from_shape_fn(vec![out], |i| (0..n).map(|s| g[[s, i[0]]]).sum());
        assert_all_close(&fc.db().clone().into_dyn(), &want_db, "db");
    }

    #[test]
    fn lrn_matches_formula(
        n in 1usize..3, c in 1usize..9, hw in 1usize..3, seed in any::<u64>(),
        beta in prop_oneof![Just(0.75), 0.0f64..1.5],
    ) {
        let x = uniform(&[n, c, hw, hw], seed).mapv(|v| v * 30.0); // big enough for the denominator to matter
        // 0.75 takes the square-root form, any other beta `powf`.
        let mut lrn = Lrn::new(5, 1e-3, beta, 2.0).unwrap();
        let y = lrn.forward(x.view(), Mode::Train).unwrap();
        for ((idx, &v), &a) in y.indexed_iter().zip(x.iter()) {
            let ch = idx[1] as isize;
            let mut sq = 0.0;
            for j in (ch - 2)..=(ch + 2) {
                if j >= 0 && (j as usize) < c { sq += x[[idx[0], j as usize, idx[2], idx[3]]].powi(2); }
            }
            let want = a / (2.0 + 1e-3 * sq).powf(beta);
            prop_assert!(close(v, want), "{:?}: {} vs {}", idx, v, want);
        }
    }

    #[test]
    fn softmax_with_loss_matches_definition(n in 1usize..6, k in 1usize..8, seed in any::<u64>()) {
        let x = uniform(&[n, k], seed).mapv(|v| v * 5.0);
        let labels: Vec<usize> = (0..n).map(|i| (seed as usize + i * 7) % k).collect();
        let mut sl = SoftmaxWithLoss::new();
        let loss = sl.forward(x.view(), &labels).unwrap();
        let mut want = 0.0;
        let mut want_dx = ArrayD::zeros(vec![n, k]);
        for i in 0..n {
            let z: f64 = (0..k).map(|j| x[[i, j]].exp()).sum();
            want -= (x[[i, labels[i]]].exp() / z).ln() / n as f64;
            for j in 0..k {
                want_dx[[i, j]] = (x[[i, j]].exp() / z - if j == labels[i] { 1.0 } else { 0.0 }) / n as f64;
            }
        }
        prop_assert!(close(loss, want), "{} vs {}", loss, want);
        assert_all_close(sl.backward().unwrap(), &want_dx, "dx");
    }
}

#[test]
fn softmax_is_stable_for_huge_scores() {
    let mut sl = SoftmaxWithLoss::<f32>::new();
    let x = ArrayD::from_shape_vec(vec![2, 2], vec![1e30f32, -1e30, 0.0, 1e4]).unwrap();
    let loss = sl.forward(x.view(), &[0, 0]).unwrap();
    assert!(loss.is_finite());
    assert!((loss - 5e3).abs() < 1.0, "{loss}"); // sample 2 pays 1e4, sample 1 nothing
    assert!(sl.backward().unwrap().iter().all(|v| v.is_finite()));
}

/// Scores of a confident network, gaps from 0 to past the point where
/// `e^-gap` and the gradient `e^-gap / N` are subnormal: probabilities,
/// gradients and the loss are the definition's (computed in f64) where
/// that is normal, zero where it is not, and never subnormal.
fn softmax_tails_never_subnormal<T: layers::Float>(gaps: &[f64]) {
    let (n, k) = (4, gaps.len() + 1);
    let mut scores = Vec::new();
    for i in 0..n {
        scores.push(0.0);
        scores.extend(gaps.iter().map(|g| -g - i as f64));
    }
    let x = ArrayD::from_shape_vec(vec![n, k], scores.iter().map(|&s| T::of(s)).collect()).unwrap();
    let labels = vec![0; n];
    let mut sl = SoftmaxWithLoss::<T>::new();
    let loss = sl.forward(x.view(), &labels).unwrap();
    let dx = sl.backward().unwrap().clone();
    let y = sl.probabilities();
    let normal = |v: f64| v >= T::min_positive_value().as_f64();
    // Relative: the tails are far below any absolute tolerance.
    let tol = 16.0 * T::epsilon().as_f64();
    let near = |got: T, want: f64| (got.as_f64() - want).abs() <= tol * want.abs();
    let (mut zeros, mut kept, mut mean_loss) = (0, 0, 0.0);
    for i in 0..n {
        let row = &scores[i * k..(i + 1) * k];
        let z: f64 = row.iter().map(|s| s.exp()).sum();
        // The label's score is the row's largest, 0.
        mean_loss += z.ln() / n as f64;
        for (j, &s) in row.iter().enumerate() {
            let p = s.exp() / z;
            let d = if j == 0 {
                (p - 1.0) / n as f64
            } else {
                p / n as f64
            };
            for (what, got, want) in [("probability", y[[i, j]], p), ("gradient", dx[[i, j]], d)] {
                let at = format!("{} {what} [{i}, {j}]: {got:?}, want {want:e}", T::NAME);
                assert!(!got.is_subnormal(), "{at}: subnormal");
                if normal(want.abs()) {
                    assert!(near(got, want), "{at}");
                    kept += 1;
                } else {
                    assert_eq!(got, T::zero(), "{at}");
                    zeros += 1;
                }
            }
        }
    }
    assert!(
        near(loss, mean_loss),
        "{} loss {loss:?}, want {mean_loss:e}",
        T::NAME
    );
    // The scores reach both sides of the subnormal range.
    assert!(zeros > 0 && kept > 0, "{} zeros {zeros}, kept {kept}", T::NAME);
}

#[test]
fn softmax_tails_are_zero_never_subnormal() {
    // Row i's scores are the gaps' negatives less i. Around 85 (f32) and
    // 707 (f64) some rows' probabilities are normal and their gradients,
    // divided by N, subnormal; at 87.2 and 708.2 row 0's exponential is
    // normal and its probability, divided by the row's sum, subnormal;
    // further on both are subnormal.
    let f32_gaps = [1.0, 20.0, 80.0, 85.0, 87.2, 88.0, 92.0, 95.0, 100.0, 105.0];
    softmax_tails_never_subnormal::<f32>(&f32_gaps);
    let f64_gaps = [1.0, 100.0, 700.0, 707.0, 708.2, 709.0, 715.0, 730.0, 744.0];
    softmax_tails_never_subnormal::<f64>(&f64_gaps);
}

#[test]
fn f32_and_f64_layers_agree() {
    // The same weights in both precisions: f32 results round the f64 ones.
    let (shape, win) = ((2, 3, 8, 8), Window::square(3).with_pad(1));
    let x = uniform4(shape, 11);
    let w = uniform4((4, 3, 3, 3), 12);
    let b = uniform1(4, 13);
    let mut c64 = Convolution::from_weights(w.clone(), b.clone(), win).unwrap();
    let mut c32 = Convolution::from_weights(w.mapv(|v| v as f32), b.mapv(|v| v as f32), win).unwrap();
    let y64 = c64.forward(x.view().into_dyn(), Mode::Train).unwrap();
    let y32 = c32
        .forward(x.mapv(|v| v as f32).view().into_dyn(), Mode::Train)
        .unwrap();
    for (a, b) in y64.iter().zip(y32.iter()) {
        assert!((a - *b as f64).abs() < 1e-5, "{a} vs {b}");
    }
}

#[test]
fn nan_propagates_through_relu_and_max_pooling() {
    let x = ArrayD::from_shape_vec(vec![1, 1, 2, 2], vec![1.0, f64::NAN, -1.0, 0.5]).unwrap();
    let y = layers::Relu::new()
        .forward(x.view(), Mode::Train)
        .unwrap()
        .clone();
    assert!(y[[0, 0, 0, 1]].is_nan() && y[[0, 0, 1, 0]] == 0.0);
    let p = Pooling::max(Window::square(2).with_stride(2))
        .forward(x.view(), Mode::Train)
        .unwrap()
        .clone();
    assert!(p[[0, 0, 0, 0]].is_nan());
}

/// Direct pooling and the chapter's method give the same bits, forward
/// and backward, max and average, on `x` in f64 and rounded to f32.
fn methods_agree(x: &ArrayD<f64>, win: Window, seed: u64) -> Result<(), TestCaseError> {
    let g = |shape: &[usize]| uniform(shape, seed ^ 9);
    methods_agree_in(x, win, &g)?;
    methods_agree_in(&x.mapv(|v| v as f32), win, &|shape| g(shape).mapv(|v| v as f32))
}

fn methods_agree_in<T: layers::Float>(
    x: &ArrayD<T>,
    win: Window,
    gradient: &dyn Fn(&[usize]) -> ArrayD<T>,
) -> Result<(), TestCaseError> {
    use layers::{PoolKind, PoolMethod};
    let bits = |v: &ArrayD<T>| v.iter().map(|x| x.as_f64().to_bits()).collect::<Vec<_>>();
    for kind in [PoolKind::Max, PoolKind::Average] {
        let mut direct = Pooling::new(kind, win).with_method(PoolMethod::Direct);
        let mut chapter = Pooling::new(kind, win).with_method(PoolMethod::Chapter);
        let a = direct.forward(x.view(), Mode::Train).unwrap().clone();
        let b = chapter.forward(x.view(), Mode::Train).unwrap().clone();
        prop_assert_eq!(bits(&a), bits(&b), "{} forward, {:?}", T::NAME, kind);
        let g = gradient(a.shape());
        let da = direct.backward(g.view()).unwrap().clone();
        let db = chapter.backward(g.view()).unwrap().clone();
        prop_assert_eq!(bits(&da), bits(&db), "{} backward, {:?}", T::NAME, kind);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    // The fast direct pooling loop must equal the chapter's method, bit
    // for bit, forward and backward, padding and NaN included.
    #[test]
    fn direct_pooling_equals_the_chapters((shape, win) in exact_case(3, 3), seed in any::<u64>(), nan in any::<bool>()) {
        let mut x = uniform4(shape, seed).into_dyn();
        if nan {
            let i = seed as usize % x.len();
            x.as_slice_mut().unwrap()[i] = f64::NAN;
        }
        methods_agree(&x, win, seed)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    // The unpadded fast paths (2x2 windows at stride 2 by the kernels'
    // vector loops, other 2x2 windows spelled out, others row by row)
    // against the chapter's method, with ties (values on a coarse grid) and
    // NaN, rows of 1 to 19 outputs.
    #[test]
    fn unpadded_pooling_fast_paths_equal_the_chapters(
        n in 1usize..3, c in 1usize..4, oh in 1usize..6, ow in 1usize..20,
        which in 0usize..3, seed in any::<u64>(), nan in any::<bool>()
    ) {
        let win = [Window::square(2).with_stride(2), Window::square(3).with_stride(2), Window::square(2)][which];
        let shape = (n, c, (oh - 1) * win.sh + win.fh, (ow - 1) * win.sw + win.fw);
        let mut x = uniform4(shape, seed).mapv(|v| (v * 4.0).round()).into_dyn();
        if nan {
            let i = seed as usize % x.len();
            x.as_slice_mut().unwrap()[i] = f64::NAN;
        }
        methods_agree(&x, win, seed)?;
    }
}

/// The implicit method packs the windows the columns method writes, so
/// every result is the same bits, in f32 and f64: small outputs (images
/// grouped side by side) and large ones, windows deeper than one packed
/// block, stride 2, a fused ReLU, and backward with and without dx (inputs
/// of fewer than 64 channels, whose dx both fold back by `col2im`).
#[test]
fn implicit_gives_the_columns_bits() {
    fn check<T: layers::Float>(shape: (usize, usize, usize, usize), filters: usize, win: Window, relu: bool) {
        let x = uniform4(shape, 11).mapv(|v| T::of(v - 0.5));
        let w = uniform4((filters, shape.1, win.fh, win.fw), 12).mapv(|v| T::of(v - 0.5));
        let b = uniform1(filters, 13).mapv(T::of);
        let run = |method| {
            let mut conv = conv_by(method, &w, &b, win, relu);
            let y = conv.forward(x.view().into_dyn(), Mode::Train).unwrap().clone();
            let g = uniform(y.shape(), 14).mapv(|v| T::of(v - 0.5));
            let dx = conv.backward(g.view()).unwrap().clone();
            let (dw, db) = grads(&conv);
            conv.forward(x.view().into_dyn(), Mode::Train).unwrap();
            conv.backward_params(g.view()).unwrap();
            let (dw_only, _) = grads(&conv);
            [y, dx, dw, db, dw_only].map(|v| v.iter().map(|x| x.as_f64().to_bits()).collect::<Vec<_>>())
        };
        let (want, got) = (run(ConvMethod::Columns), run(ConvMethod::Implicit));
        for (name, (w, g)) in ["forward", "dx", "dW", "db", "dW without dx"]
            .iter()
            .zip(want.iter().zip(&got))
        {
            assert!(w == g, "{} {name}: {shape:?}, {filters} filters, {win}", T::NAME);
        }
    }
    for (shape, filters, win, relu) in [
        ((3, 32, 14, 14), 20, Window::square(5).with_pad(2), true),
        ((5, 40, 7, 7), 13, Window::square(3).with_pad(1), false),
        (
            (2, 3, 13, 13),
            7,
            Window::square(3).with_pad(1).with_stride(2),
            true,
        ),
        ((2, 2, 9, 30), 5, Window::new(2, 3), false),
    ] {
        check::<f32>(shape, filters, win, relu);
        check::<f64>(shape, filters, win, relu);
    }
}

/// From 64 input channels, stride 1, the implicit method's dx is the
/// transposed convolution of dout: against the naive loops (f64) and the
/// chapter's method (f32, to its rounding), with images grouped (7x7
/// outputs, groups of unequal size) and alone (12x12), padding 0 to 2 of
/// windows 2 to 5 wide, rectangular windows and padding, and a fused ReLU
/// (against Columns, which applies it the same way). Each backward follows
/// another one with a larger dout, so a dx that kept anything of its
/// buffers' old contents would show. Forward and dW keep Columns' bits,
/// and dx is the same on one thread and three. Padding as wide as the
/// window falls back to `col2im`: Columns' bits.
#[test]
fn implicit_input_gradient_is_the_transposed_convolution() {
    let bits = |v: &ArrayD<f64>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let cases = [
        ((5, 64, 7, 7), 9, Window::square(3).with_pad(1), false),
        ((23, 64, 7, 7), 20, Window::square(3).with_pad(1), true),
        ((2, 64, 12, 12), 5, Window::square(5).with_pad(2), true),
        ((2, 64, 12, 12), 5, Window::square(5).with_pad(2), false),
        ((3, 70, 9, 8), 4, Window::new(3, 2), false),
        ((3, 64, 12, 12), 5, Window::new(3, 5).with_pads(2, 0), false),
        ((4, 64, 6, 6), 3, Window::square(3).with_pad(2), true),
        ((3, 65, 5, 7), 17, Window::new(2, 3).with_pad(1), false),
        // Padding as wide as the window: col2im.
        ((2, 64, 5, 5), 4, Window::square(1).with_pad(1), false),
        ((2, 64, 5, 5), 4, Window::new(3, 1).with_pads(0, 1), true),
    ];
    for (k, &(shape, filters, win, relu)) in cases.iter().enumerate() {
        let seed = 90 + k as u64;
        let transposed = win.ph < win.fh && win.pw < win.fw;
        let x = uniform4(shape, seed);
        let w = uniform4((filters, shape.1, win.fh, win.fw), seed ^ 1);
        let b = uniform1(filters, seed ^ 2);
        let run = |method, threads| {
            on_threads(threads, || {
                let mut conv = conv_by(method, &w, &b, win, relu);
                let y = conv.forward(x.view().into_dyn(), Mode::Train).unwrap().clone();
                let first = uniform(y.shape(), seed ^ 5).mapv(|v| v * 1e3);
                conv.backward(first.view()).unwrap();
                conv.forward(x.view().into_dyn(), Mode::Train).unwrap();
                let g = uniform(y.shape(), seed ^ 3);
                let dx = conv.backward(g.view()).unwrap().clone();
                let (dw, db) = grads(&conv);
                (y, g, dx, dw, db)
            })
        };
        let what = format!("{shape:?}, {filters} filters, {win}, ReLU {relu}");
        let (y, g, dx, dw, db) = run(ConvMethod::Implicit, 1);
        let (cy, _, cdx, cdw, cdb) = run(ConvMethod::Columns, 1);
        assert_eq!(bits(&y), bits(&cy), "forward: {what}");
        assert_eq!(bits(&dw), bits(&cdw), "dW: {what}");
        assert_eq!(bits(&db), bits(&cdb), "db: {what}");
        if transposed {
            assert_all_close(&dx, &cdx, &format!("dx against Columns: {what}"));
            assert_ne!(bits(&dx), bits(&cdx), "dx by another sum than col2im's: {what}");
        } else {
            assert_eq!(bits(&dx), bits(&cdx), "dx by col2im: {what}");
        }
        if !relu {
            let (ndx, _, _) = naive_conv_backward(&x, &w, &g.into_dimensionality().unwrap(), win);
            assert_all_close(
                &dx,
                &ndx.into_dyn(),
                &format!("dx against the naive loops: {what}"),
            );
        }
        assert_eq!(
            bits(&dx),
            bits(&run(ConvMethod::Implicit, 3).2),
            "dx, 1 and 3 threads: {what}"
        );
        let (x32, w32, b32) = (x.mapv(|v| v as f32), w.mapv(|v| v as f32), b.mapv(|v| v as f32));
        let [_, (_, want), ..] = run_method(ConvMethod::Chapter, &x32, &w32, &b32, win, seed);
        let [_, (_, got), ..] = run_method(ConvMethod::Implicit, &x32, &w32, &b32, win, seed);
        for (&p, &q) in want.iter().zip(got.iter()) {
            let (p, q) = (p as f64, q as f64);
            assert!(
                (p - q).abs() <= 1e-4 * p.abs().max(q.abs()).max(1.0),
                "f32 dx {p} vs {q}: {what}"
            );
        }
    }
}

/// A convolution with a fused ReLU or sigmoid gives the bits of the two
/// layers in sequence: outputs, input gradients and parameter gradients,
/// with small outputs (grouped backward) and large ones, few filters (the
/// wide layout) and many, stride 1 and 2, NaN in the input included.
#[test]
fn fused_activations_equal_convolution_then_activation() {
    use layers::{Relu, Sigmoid};
    let bits = |v: &ArrayD<f64>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let cases = [
        ((4, 2, 9, 9), 3, Window::square(3).with_pad(1)),
        ((3, 1, 28, 28), 5, Window::square(5)),
        ((3, 2, 10, 10), 18, Window::square(3).with_pad(1)),
        ((3, 2, 11, 11), 4, Window::square(3).with_stride(2)),
    ];
    for sigmoid in [false, true] {
        for (k, &(shape, filters, win)) in cases.iter().enumerate() {
            let seed = 70 + k as u64;
            let mut x = uniform4(shape, seed).into_dyn();
            x.as_slice_mut().unwrap()[5] = f64::NAN;
            let w = uniform4((filters, shape.1, win.fh, win.fw), seed ^ 1);
            let b = uniform1(filters, seed ^ 2);
            let mut conv = Convolution::from_weights(w.clone(), b.clone(), win).unwrap();
            let mut act: Box<dyn LayerHooks<f64>> = if sigmoid {
                Box::new(Sigmoid::new())
            } else {
                Box::new(Relu::new())
            };
            let mut fused = Convolution::from_weights(w, b, win).unwrap();
            let (which, name) = if sigmoid {
                (Activation::Sigmoid, "+ Sigmoid")
            } else {
                (Activation::Relu, "+ ReLU")
            };
            assert!(fused.fuse(which));
            assert!(
                !fused.fuse(Activation::Relu) && !fused.fuse(Activation::Sigmoid),
                "one activation at most"
            );
            assert!(fused.describe().ends_with(name), "{}", fused.describe());
            let y = act
                .forward(conv.forward(x.view(), Mode::Train).unwrap().view(), Mode::Train)
                .unwrap()
                .clone();
            let kinks = act.kink_state();
            let yf = fused.forward(x.view(), Mode::Train).unwrap().clone();
            assert_eq!(bits(&y), bits(&yf), "forward, sigmoid {sigmoid}, case {k}");
            assert_eq!(kinks, fused.kink_state());
            let g = uniform(y.shape(), seed ^ 3);
            let dy = act.backward(g.view()).unwrap().clone();
            let dx = conv.backward(dy.view()).unwrap().clone();
            let dxf = fused.backward(g.view()).unwrap().clone();
            assert_eq!(bits(&dx), bits(&dxf), "dx, sigmoid {sigmoid}, case {k}");
            let (p, pf) = (grads(&conv), grads(&fused));
            assert_eq!(bits(&p.0), bits(&pf.0), "dW, sigmoid {sigmoid}, case {k}");
            assert_eq!(bits(&p.1), bits(&pf.1), "db, sigmoid {sigmoid}, case {k}");
            // The chapter's network keeps its activations as layers: its
            // method neither takes one over nor accepts a fused one.
            let mut fresh = conv.clone().with_method(ConvMethod::Chapter).unwrap();
            assert!(!fresh.fuse(which), "the chapter's network keeps its activations");
            let e = fused
                .clone()
                .with_method(ConvMethod::Chapter)
                .unwrap_err()
                .to_string();
            assert!(e.contains("fused activation") && e.contains(name), "{e}");
        }
    }
}

/// In f32, where sigmoid runs on the crate's own vectorised exp: a fused
/// sigmoid, applied to whole images of the direct method's output, gives
/// the bits of the Sigmoid layer after the convolution, on LeNet's shapes
/// (rows of 28 and 10 outputs, whose tails a vector does not fill) and
/// with values far into both tails and NaN.
#[test]
fn a_fused_sigmoid_in_f32_equals_the_sigmoid_layer() {
    use layers::Sigmoid;
    let f32s = |v: ArrayD<f64>| v.mapv(|x| x as f32);
    for (k, (shape, filters, win)) in [
        ((3, 1, 28, 28), 6, Window::square(5).with_pad(2)),
        ((3, 6, 14, 14), 16, Window::square(5)),
    ]
    .into_iter()
    .enumerate()
    {
        let seed = 90 + k as u64;
        let mut x = f32s(uniform4(shape, seed).into_dyn() * 40.0);
        x.as_slice_mut().unwrap()[7] = f32::NAN;
        let w = uniform4((filters, shape.1, win.fh, win.fw), seed ^ 1).mapv(|v| v as f32);
        let b = uniform1(filters, seed ^ 2).mapv(|v| v as f32);
        let mut conv = Convolution::from_weights(w.clone(), b.clone(), win)
            .unwrap()
            .with_method(ConvMethod::Direct)
            .unwrap();
        let mut fused = conv.clone();
        assert!(fused.fuse(Activation::Sigmoid));
        let mut sigmoid = Sigmoid::new();
        let y = sigmoid
            .forward(
                conv.forward(x.view(), Mode::Inference).unwrap().view(),
                Mode::Inference,
            )
            .unwrap()
            .clone();
        let yf = fused.forward(x.view(), Mode::Inference).unwrap();
        let bits = |v: &ArrayD<f32>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&y), bits(yf), "case {k}");
        assert!(
            y.iter().any(|&v| v == 0.0) && y.iter().any(|&v| v == 1.0),
            "both tails reached"
        );
    }
}

/// What a forward keeps is read only by a backward of the same method:
/// `forward_chapter` called alone between a layer's forward and backward
/// is an error naming the layer, never stale gradients or a panic.
#[test]
fn a_backward_needs_a_forward_by_its_own_method() {
    use layers::{PoolMethod, Pooling};
    let x = uniform4((2, 3, 8, 8), 5);
    for method in [
        ConvMethod::Auto,
        ConvMethod::Columns,
        ConvMethod::Implicit,
        ConvMethod::Direct,
    ] {
        let w = uniform4((4, 3, 3, 3), 6);
        let mut conv = Convolution::from_weights(w, uniform1(4, 7), Window::square(3))
            .unwrap()
            .with_method(method)
            .unwrap();
        let y = conv.forward(x.view().into_dyn(), Mode::Train).unwrap().clone();
        conv.forward_chapter(x.slice(ndarray::s![..1, .., .., ..]))
            .unwrap();
        let e = conv.backward(y.view()).unwrap_err().to_string();
        assert!(
            e.starts_with("Convolution 4@3x3") && e.contains("same method"),
            "{e}"
        );
        // A new forward makes backward work again.
        conv.forward(x.view().into_dyn(), Mode::Train).unwrap();
        conv.backward(y.view()).unwrap();
        // The chapter's backward alone refuses what an engine forward kept.
        assert!(
            conv.backward_chapter(y.view().into_dimensionality().unwrap())
                .is_err()
        );
    }
    let mut pool = Pooling::max(Window::square(2).with_stride(2));
    let y = pool.forward(x.view().into_dyn(), Mode::Train).unwrap().clone();
    pool.forward_chapter(x.view()).unwrap();
    let e = pool.backward(y.view()).unwrap_err().to_string();
    assert!(e.starts_with("Pooling max") && e.contains("same method"), "{e}");
    let mut chapter = Pooling::max(Window::square(2).with_stride(2)).with_method(PoolMethod::Chapter);
    chapter.forward(x.view().into_dyn(), Mode::Train).unwrap();
    chapter.backward(y.view()).unwrap();
}

/// Activations compute their gradient in place of their output, so a
/// second backward without a new forward is refused, not answered wrongly.
#[test]
fn a_second_backward_needs_a_new_forward() {
    use layers::Relu;
    let x = uniform(&[2, 3], 1);
    let mut relu = Relu::new();
    relu.forward(x.view(), Mode::Train).unwrap();
    relu.backward(x.view()).unwrap();
    let e = relu.backward(x.view()).unwrap_err().to_string();
    assert!(e.contains("ReLU"), "{e}");
    relu.forward(x.view(), Mode::Train).unwrap();
    relu.backward(x.view()).unwrap();
}

/// A window of `-0.0`s averages to `+0.0` in both methods (Rust's float
/// `Sum` starts at `-0.0`, so a sum written with it would keep `-0.0`),
/// and a gradient of `-0.0` reaches dx as `+0.0` (added to a cleared dx),
/// on rows long enough for the kernels' vector loops too.
#[test]
fn pooling_methods_agree_on_negative_zeros() {
    let x = ArrayD::from_elem(vec![1, 2, 3, 3], -0.0f64);
    for win in [Window::square(2), Window::square(2).with_stride(1).with_pad(1)] {
        methods_agree(&x, win, 1).unwrap();
    }
    let x = ArrayD::from_elem(vec![1, 2, 4, 36], -0.0f32);
    methods_agree_in(&x, Window::square(2).with_stride(2), &|shape| {
        ArrayD::from_elem(shape, -0.0f32)
    })
    .unwrap();
}

#[test]
fn skipping_the_input_gradient_keeps_parameter_gradients() {
    let (shape, win) = ((3, 2, 7, 7), Window::square(3).with_pad(1).with_stride(2));
    let x = uniform4(shape, 1).into_dyn();
    let w = uniform4((4, 2, 3, 3), 2);
    let b = uniform1(4, 3);
    let mut full = Convolution::from_weights(w.clone(), b.clone(), win).unwrap();
    let mut skip = Convolution::from_weights(w, b, win).unwrap();
    let g = uniform(full.forward(x.view(), Mode::Train).unwrap().shape(), 4);
    skip.forward(x.view(), Mode::Train).unwrap();
    full.backward(g.view()).unwrap();
    skip.backward_params(g.view()).unwrap();
    assert_eq!(grads(&full), grads(&skip));
}

/// An f32 affine layer whose products are big enough to be shared among
/// threads, by rows where A has at least B's columns (many images, few
/// outputs) and by columns where B has more (few images, many outputs):
/// every pass against f64 loops, and the same bits on one thread and three.
#[test]
fn shared_affine_products_match_loops_on_any_thread_count() {
    // (images, inputs, outputs), each pass at least two parts' worth of work.
    for (n, d, out) in [(300, 200, 40), (20, 400, 300)] {
        let x64 = uniform(&[n, d], 31);
        let w64: Array2<f64> = uniform(&[d, out], 32).into_dimensionality().unwrap();
        let g64 = uniform(&[n, out], 33);
        let f32s = |a: &ArrayD<f64>| a.mapv(|v| v as f32);
        let (x, g) = (f32s(&x64), f32s(&g64));
        let w = w64.mapv(|v| v as f32);
        let run = |threads: usize| {
            on_threads(threads, || {
                let mut fc = Affine::from_weights(w.clone(), Array1::zeros(out)).unwrap();
                let y = fc.forward(x.view(), Mode::Train).unwrap().clone();
                let dx = fc.backward(g.view()).unwrap().clone();
                (y, dx, fc.dw().clone().into_dyn())
            })
        };
        let (y, dx, dw) = run(1);
        // Rounded to f32, each product and its sum are within 1e-5 of the
        // f64 sums of these values in [-1, 1].
        let check = |got: &ArrayD<f32>, want: ArrayD<f64>, what: &str| {
            assert_eq!(got.shape(), want.shape(), "{what}");
            for (i, (&a, &b)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (f64::from(a) - b).abs() <= 1e-5 * (1.0 + b.abs()) * d.max(n) as f64,
                    "{what} {n}x{d}x{out} [{i}]: {a} vs {b}"
                );
            }
        };
        check(
            &y,
            ArrayD::from_shape_fn(vec![n, out], |i| {
                (0..d).map(|k| x64[[i[0], k]] * w64[[k, i[1]]]).sum()
            }),
            "forward",
        );
        check(
            &dx,
            ArrayD::from_shape_fn(vec![n, d], |i| {
                (0..out).map(|o| g64[[i[0], o]] * w64[[i[1], o]]).sum()
            }),
            "dx",
        );
        check(
            &dw,
            ArrayD::from_shape_fn(vec![d, out], |i| {
                (0..n).map(|s| x64[[s, i[0]]] * g64[[s, i[1]]]).sum()
            }),
            "dW",
        );
        let bits = |v: &ArrayD<f32>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let (y3, dx3, dw3) = run(3);
        assert_eq!(bits(&y), bits(&y3), "forward {n}x{d}x{out}, 1 and 3 threads");
        assert_eq!(bits(&dx), bits(&dx3), "dx {n}x{d}x{out}, 1 and 3 threads");
        assert_eq!(bits(&dw), bits(&dw3), "dW {n}x{d}x{out}, 1 and 3 threads");
    }
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    // Every parallel loop owns its outputs and never splits a sum, so one
    // thread and three give the same bits.
    let run = |threads: usize| {
        on_threads(threads, || {
            let x = uniform4((5, 3, 9, 9), 7).into_dyn();
            let mut conv = Convolution::from_weights(
                uniform4((6, 3, 3, 3), 8),
                uniform1(6, 9),
                Window::square(3).with_pad(1),
            )
            .unwrap();
            let mut pool = Pooling::max(Window::square(3).with_stride(2));
            let mut lrn = Lrn::alexnet();
            let mut fc = Affine::from_weights(
                uniform(&[6 * 4 * 4, 5], 10).into_dimensionality().unwrap(),
                uniform1(5, 11),
            )
            .unwrap();
            let y = conv.forward(x.view(), Mode::Train).unwrap().clone();
            let y = lrn.forward(y.view(), Mode::Train).unwrap().clone();
            let y = pool.forward(y.view(), Mode::Train).unwrap().clone();
            let y = fc.forward(y.view(), Mode::Train).unwrap().clone();
            let g = fc.backward(uniform(y.shape(), 12).view()).unwrap().clone();
            let g = pool.backward(g.view()).unwrap().clone();
            let g = lrn.backward(g.view()).unwrap().clone();
            let dx = conv.backward(g.view()).unwrap().clone();
            let mut bits: Vec<u64> = y.iter().chain(dx.iter()).map(|v| v.to_bits()).collect();
            for grad in [conv.dw().view().into_dyn(), conv.db().view().into_dyn()]
                .into_iter()
                .chain([fc.dw().view().into_dyn(), fc.db().view().into_dyn()])
            {
                bits.extend(grad.iter().map(|v| v.to_bits()));
            }
            bits
        })
    };
    assert_eq!(run(1), run(3));
}

proptest! {
    // ReLU and Sigmoid against their definitions, forward and backward, in
    // f64 and f32 (whose exp is a polynomial: within 4 ulp of the f64 value).
    #[test]
    fn activations_match_their_definitions(xs in proptest::collection::vec(-30.0f64..30.0, 1..64), seed in any::<u64>()) {
        use layers::{Relu, Sigmoid};
        let n = xs.len();
        let x = ArrayD::from_shape_vec(vec![1, n], xs.clone()).unwrap();
        let g = uniform(&[1, n], seed);
        let sigmoid = |v: f64| 1.0 / (1.0 + (-v).exp());
        let mut relu = Relu::new();
        let y = relu.forward(x.view(), Mode::Train).unwrap().clone();
        let dx = relu.backward(g.view()).unwrap().clone();
        let mut sig = Sigmoid::new();
        let s = sig.forward(x.view(), Mode::Train).unwrap().clone();
        let ds = sig.backward(g.view()).unwrap().clone();
        let x32 = x.mapv(|v| v as f32);
        let s32 = Sigmoid::<f32>::new().forward(x32.view(), Mode::Train).unwrap().clone();
        for i in 0..n {
            let (v, d) = (xs[i], g[[0, i]]);
            prop_assert_eq!(y[[0, i]], v.max(0.0));
            prop_assert_eq!(dx[[0, i]], if v > 0.0 { d } else { 0.0 });
            prop_assert!(close(s[[0, i]], sigmoid(v)), "sigmoid({}) = {}", v, s[[0, i]]);
            let want = d * sigmoid(v) * (1.0 - sigmoid(v));
            prop_assert!((ds[[0, i]] - want).abs() <= 1e-12 * d.abs().max(1e-300), "sigmoid'({})", v);
            let w = sigmoid(x32[[0, i]] as f64);
            prop_assert!((s32[[0, i]] as f64 - w).abs() <= 4.0 * f32::EPSILON as f64 * w, "f32 sigmoid({})", v);
        }
    }
}

/// ReLU's kink fingerprint changes exactly when an input changes sign (NaN
/// and 0 are not positive: they share a linear piece with the negatives),
/// and a layer's accessors give back what it was built with.
#[test]
fn kinks_follow_signs_and_accessors_return_the_parameters() {
    use layers::{Affine, LayerHooks, Parameters, Relu};
    let mut relu = Relu::new();
    let mut kinks = |v: [f64; 3]| {
        relu.forward(
            ArrayD::from_shape_vec(vec![1, 3], v.to_vec()).unwrap().view(),
            Mode::Train,
        )
        .unwrap();
        relu.kink_state()
    };
    let base = kinks([1.0, -2.0, 3.0]);
    assert_eq!(base, kinks([0.5, -0.1, 9.0]), "same signs");
    assert_ne!(base, kinks([1.0, 2.0, 3.0]), "a sign changed");
    let not_positive = kinks([-1.0, 2.0, -3.0]);
    assert_eq!(kinks([f64::NAN, 2.0, -3.0]), not_positive, "NaN is not positive");
    assert_eq!(kinks([0.0, 2.0, f64::NAN]), not_positive, "0 is not positive");
    assert_ne!(
        kinks([f64::NAN, 2.0, 5.0]),
        not_positive,
        "a positive input beside NaN"
    );
    let (w, b) = (uniform4((2, 3, 2, 2), 1), uniform1(2, 2));
    let conv = Convolution::from_weights(w.clone(), b.clone(), Window::square(2)).unwrap();
    assert_eq!((conv.weight(), conv.bias()), (&w, &b));
    assert_eq!(conv.param_count(), 2 * 3 * 2 * 2 + 2);
    let (w, b) = (uniform(&[4, 3], 3).into_dimensionality().unwrap(), uniform1(3, 4));
    let fc = Affine::from_weights(w.clone(), b.clone()).unwrap();
    assert_eq!((fc.weight(), fc.bias()), (&w, &b));
    assert_eq!(fc.param_count(), 4 * 3 + 3);
}
