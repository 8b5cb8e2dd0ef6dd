//! im2col, Convolution, Pooling and Affine on the shapes of the three
//! networks, next to the same products by four GEMMs (ours, matrixmultiply,
//! OpenBLAS when it loads, the `gemm` crate), so that a convolution can be
//! read as a share of what a GEMM alone achieves on its sizes; and the
//! affine layers' products and a square one by the same four.

use benches::blas::{Blas, NOT_FOUND};
use benches::products::{
    Mat, Pass, SQUARE, Split, affine_cases, matrixmultiply, ours, par_product, square_group,
};
use benches::{CONV_CASES, input, tensor};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gemm_common::Parallelism;
use kernels::{MatMut, gemm};
use layers::{Affine, ConvMethod, Convolution, Init, Layer, Mode, PoolMethod, Pooling};
use ndarray::ArrayViewMut2;
use rand::SeedableRng;
use rayon::prelude::*;
use std::hint::black_box;
use tensor4d::Window;

fn convolutions(c: &mut Criterion) {
    for case in CONV_CASES {
        let mut group = c.benchmark_group(format!("conv/{}", case.name));
        let x = input(case.input, 1).into_dyn();
        let mut rng = rand_pcg::Pcg64::seed_from_u64(2);
        let mut conv =
            Convolution::<f32>::new(case.input.1, case.filters, case.window, Init::He, &mut rng).unwrap();
        let out = conv.forward(x.view(), Mode::Train).unwrap().clone();
        let dout = tensor(out.shape(), 3);

        group.throughput(Throughput::Elements(case.forward_flops()));
        group.bench_function("forward", |b| {
            b.iter(|| black_box(conv.forward(x.view(), Mode::Train).unwrap().len()))
        });
        // Backward is two GEMMs of the forward's size.
        group.throughput(Throughput::Elements(2 * case.forward_flops()));
        group.bench_function("backward", |b| {
            b.iter(|| black_box(conv.backward(dout.view()).unwrap().len()))
        });

        // The same layer by the chapter's algorithm: what the engine buys.
        let mut chapter = conv.clone().with_method(ConvMethod::Chapter).unwrap();
        chapter.forward(x.view(), Mode::Train).unwrap();
        group.throughput(Throughput::Elements(case.forward_flops()));
        group.bench_function("chapter/forward", |b| {
            b.iter(|| black_box(chapter.forward(x.view(), Mode::Train).unwrap().len()))
        });
        group.throughput(Throughput::Elements(2 * case.forward_flops()));
        group.bench_function("chapter/backward", |b| {
            b.iter(|| black_box(chapter.backward(dout.view()).unwrap().len()))
        });

        // The convolution's forward GEMMs alone: N products (FN x CKK)(CKK x
        // OHW), shared among the threads as the convolution shares its
        // images, each product computed on one thread by each engine in turn.
        let (m, n, k) = case.gemm_mnk();
        let a = tensor(&[m * k], 4);
        let bm = tensor(&[case.input.0 * k * n], 5);
        let mut cm = vec![0.0f32; case.input.0 * m * n];
        group.throughput(Throughput::Elements(case.forward_flops()));
        let (a, bm) = (
            Mat::row_major(a.as_slice().unwrap(), m, k),
            bm.as_slice().unwrap(),
        );
        let products = |cm: &mut [f32], product: &(dyn Fn(Mat<'_>, &mut [f32]) + Sync)| {
            cm.par_chunks_mut(m * n)
                .zip(bm.par_chunks(k * n))
                .for_each(|(c, b)| product(Mat::row_major(b, k, n), c));
            black_box(cm[0])
        };
        fn view(c: &mut [f32], m: usize, n: usize) -> ArrayViewMut2<'_, f32> {
            ArrayViewMut2::from_shape((m, n), c).unwrap()
        }
        // The first image's product by each engine, before any is timed.
        let want = {
            let mut c = vec![0.0f32; m * n];
            gemm(
                1.0,
                a.kernels(),
                Mat::row_major(bm, k, n).kernels(),
                0.0,
                MatMut::row_major(&mut c, m, n),
            );
            c
        };
        let mut got = vec![0.0f32; m * n];
        matrixmultiply(a, Mat::row_major(bm, k, n), 0.0, view(&mut got, m, n));
        agree("matrixmultiply", &want, &got);
        if let Some(blas) = Blas::shared() {
            blas.sgemm(a, Mat::row_major(bm, k, n), 0.0, &mut got, n);
            agree("OpenBLAS", &want, &got);
        }
        gemm_crate(a, Mat::row_major(bm, k, n), 0.0, view(&mut got, m, n), 1);
        agree("the gemm crate", &want, &got);
        group.bench_function("sgemm-same-shape", |b| {
            b.iter(|| products(&mut cm, &|b, c| matrixmultiply(a, b, 0.0, view(c, m, n))))
        });
        // This workspace's own f32 GEMM (each thread packing into its own
        // scratch, warm after the first iteration).
        group.bench_function("gemm-same-shape", |b| {
            b.iter(|| {
                products(&mut cm, &|b, c| {
                    gemm(1.0, a.kernels(), b.kernels(), 0.0, MatMut::row_major(c, m, n))
                })
            })
        });
        if let Some(blas) = Blas::shared() {
            group.bench_function("openblas-same-shape", |b| {
                // Rayon's threads share the images: OpenBLAS's own would
                // only contend with them.
                blas.set_threads(1);
                b.iter(|| products(&mut cm, &|b, c| blas.sgemm(a, b, 0.0, c, n)))
            });
        }
        group.bench_function("gemm-crate-same-shape", |b| {
            b.iter(|| products(&mut cm, &|b, c| gemm_crate(a, b, 0.0, view(c, m, n), 1)))
        });
        group.throughput(Throughput::Elements((case.input.0 * n * k) as u64));
        let x4 = input(case.input, 6);
        let (rows, cols) = (case.input.0 * n, k);
        let mut col = ndarray::Array2::<f32>::zeros((rows, cols));
        group.bench_function("im2col", |b| {
            b.iter(|| im2col::im2col_into(x4.view(), case.window, col.view_mut()).unwrap())
        });
        let mut back = ndarray::Array4::<f32>::zeros(x4.dim());
        group.bench_function("col2im", |b| {
            b.iter(|| im2col::col2im_into(col.view(), case.window, back.view_mut()).unwrap())
        });
        group.finish();
    }
}

fn pooling_and_affine(c: &mut Criterion) {
    let mut group = c.benchmark_group("pool/max2x2-100x30x24x24");
    let x = input((100, 30, 24, 24), 7).into_dyn();
    let mut pool = Pooling::<f32>::max(Window::square(2).with_stride(2));
    let dout = tensor(&[100, 30, 12, 12], 8);
    group.throughput(Throughput::Elements(x.len() as u64));
    group.bench_function("forward", |b| {
        b.iter(|| black_box(pool.forward(x.view(), Mode::Train).unwrap().len()))
    });
    group.bench_function("backward", |b| {
        b.iter(|| black_box(pool.backward(dout.view()).unwrap().len()))
    });
    let mut chapter = Pooling::<f32>::max(Window::square(2).with_stride(2)).with_method(PoolMethod::Chapter);
    chapter.forward(x.view(), Mode::Train).unwrap();
    group.bench_function("chapter/forward", |b| {
        b.iter(|| black_box(chapter.forward(x.view(), Mode::Train).unwrap().len()))
    });
    group.bench_function("chapter/backward", |b| {
        b.iter(|| black_box(chapter.backward(dout.view()).unwrap().len()))
    });
    group.finish();

    let mut group = c.benchmark_group("affine/4320x100-batch100");
    let x = tensor(&[100, 30, 12, 12], 9);
    let mut rng = rand_pcg::Pcg64::seed_from_u64(10);
    let mut fc = Affine::<f32>::new(4320, 100, Init::He, &mut rng).unwrap();
    let dout = tensor(&[100, 100], 11);
    group.throughput(Throughput::Elements(2 * 100 * 4320 * 100));
    group.bench_function("forward", |b| {
        b.iter(|| black_box(fc.forward(x.view(), Mode::Train).unwrap().len()))
    });
    group.throughput(Throughput::Elements(4 * 100 * 4320 * 100));
    group.bench_function("backward", |b| {
        b.iter(|| black_box(fc.backward(dout.view()).unwrap().len()))
    });
    group.finish();
}

/// The affine layers' three products at batch 100 and a square product,
/// each one whole product: ours and `matrixmultiply` shared among rayon's
/// threads as the layers share theirs, OpenBLAS and the `gemm` crate given
/// rayon's thread count to use as they see fit.
fn products(c: &mut Criterion) {
    let threads = rayon::current_num_threads();
    let blas = Blas::shared();
    if blas.is_none() {
        eprintln!("{NOT_FOUND}");
    }
    for case in affine_cases(100) {
        let x = tensor(&[case.batch * case.inputs], 20);
        let w = tensor(&[case.inputs * case.outputs], 21);
        let dout = tensor(&[case.batch * case.outputs], 22);
        let (x, w, dout) = (
            x.as_slice().unwrap(),
            w.as_slice().unwrap(),
            dout.as_slice().unwrap(),
        );
        for pass in Pass::ALL {
            let (a, b) = case.operands(pass, x, w, dout);
            let mut group = c.benchmark_group(case.group(pass));
            by_each_engine(&mut group, a, b, Split::of(a, b), pass.beta(), threads, blas);
            group.finish();
        }
    }
    let a = tensor(&[SQUARE * SQUARE], 23);
    let b = tensor(&[SQUARE * SQUARE], 24);
    let a = Mat::row_major(a.as_slice().unwrap(), SQUARE, SQUARE);
    let b = Mat::row_major(b.as_slice().unwrap(), SQUARE, SQUARE);
    let mut group = c.benchmark_group(square_group());
    // Tens of milliseconds an iteration: criterion's 100 samples would take minutes.
    group.sample_size(10);
    by_each_engine(&mut group, a, b, Split::of(a, b), 0.0, threads, blas);
    group.finish();
}

/// `C <- A B + beta C` by each engine, one row each, named as
/// `benches::products::Engine::name` names them.
fn by_each_engine(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    a: Mat<'_>,
    b: Mat<'_>,
    split: Split,
    beta: f32,
    threads: usize,
    blas: Option<&Blas>,
) {
    let (m, n, k) = (a.rows(), b.cols(), a.cols());
    let mut scratch = Vec::new();
    // Each engine once, from zeros, before any is timed: a yardstick that
    // computed something else would measure nothing.
    let mut want = vec![0.0f32; m * n];
    par_product(split, &mut scratch, a, b, beta, &mut want, ours);
    let mut got = vec![0.0f32; m * n];
    par_product(split, &mut scratch, a, b, beta, &mut got, |_, a, b, beta, c| {
        matrixmultiply(a, b, beta, c)
    });
    agree("matrixmultiply", &want, &got);
    if let Some(blas) = blas {
        got.fill(0.0);
        blas.set_threads(threads);
        blas.sgemm(a, b, beta, &mut got, n);
        agree("OpenBLAS", &want, &got);
    }
    got.fill(0.0);
    gemm_crate(
        a,
        b,
        beta,
        ArrayViewMut2::from_shape((m, n), &mut got[..]).unwrap(),
        threads,
    );
    agree("the gemm crate", &want, &got);

    let mut cm = vec![0.0f32; m * n];
    group.throughput(Throughput::Elements(2 * (m * n * k) as u64));
    group.bench_function("ours", |bch| {
        bch.iter(|| {
            par_product(split, &mut scratch, a, b, beta, &mut cm, ours);
            black_box(cm[0])
        })
    });
    group.bench_function("matrixmultiply", |bch| {
        bch.iter(|| {
            par_product(split, &mut scratch, a, b, beta, &mut cm, |_, a, b, beta, c| {
                matrixmultiply(a, b, beta, c)
            });
            black_box(cm[0])
        })
    });
    if let Some(blas) = blas {
        group.bench_function("openblas", |bch| {
            blas.set_threads(threads);
            bch.iter(|| {
                blas.sgemm(a, b, beta, &mut cm, n);
                black_box(cm[0])
            })
        });
    }
    group.bench_function("gemm-crate", |bch| {
        bch.iter(|| {
            let c = ArrayViewMut2::from_shape((m, n), &mut cm[..]).unwrap();
            gemm_crate(a, b, beta, c, threads);
            black_box(cm[0])
        })
    });
}

/// Panics unless `got` is `want` up to rounding: sums in another order
/// differ in the last bits, a wrong product in far more.
fn agree(engine: &str, want: &[f32], got: &[f32]) {
    let scale = want.iter().fold(1.0f32, |m, x| m.max(x.abs()));
    let worst = want
        .iter()
        .zip(got)
        .map(|(w, g)| (w - g).abs())
        .fold(0.0f32, f32::max);
    assert!(
        worst <= 1e-4 * scale,
        "{engine} differs from kernels::gemm by {worst} (largest element {scale})"
    );
}

/// `C <- A B + beta C` by the `gemm` crate (the f32 function `gemm::gemm`
/// calls, from its `gemm-f32` part), on `threads` of rayon's
/// threads (1: on the calling thread alone).
fn gemm_crate(a: Mat<'_>, b: Mat<'_>, beta: f32, mut c: ArrayViewMut2<'_, f32>, threads: usize) {
    let (m, n, k) = (a.rows(), b.cols(), a.cols());
    assert!(k == b.rows() && c.dim() == (m, n), "gemm crate: sizes");
    let ((ars, acs), (brs, bcs)) = (a.strides(), b.strides());
    let (rsc, csc) = (c.strides()[0], c.strides()[1]);
    let parallelism = if threads > 1 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    // SAFETY: `Mat` checked that A's and B's elements lie in their slices;
    // C is a mutable view of A's rows by B's columns, its elements distinct
    // and exclusively borrowed. The crate computes dst <- alpha dst +
    // beta lhs rhs: its alpha is our beta, and with `read_dst` false it
    // never reads C (NaN included).
    unsafe {
        gemm_f32::gemm::f32::get_gemm_fn()(
            m,
            n,
            k,
            c.as_mut_ptr(),
            csc,
            rsc,
            beta != 0.0,
            a.as_ptr(),
            acs as isize,
            ars as isize,
            b.as_ptr(),
            bcs as isize,
            brs as isize,
            beta,
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    }
}

criterion_group!(benches, convolutions, pooling_and_affine, products);
criterion_main!(benches);
