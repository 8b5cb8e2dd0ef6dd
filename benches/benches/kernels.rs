//! im2col, Convolution, Pooling and Affine on the shapes of the three
//! networks, next to a plain sgemm of each convolution's GEMM sizes so that
//! a convolution can be read as a share of what the GEMM alone achieves.

use benches::{CONV_CASES, input, tensor};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kernels::{MatMut, MatRef, gemm};
use layers::{Affine, ConvMethod, Convolution, Init, Layer, Mode, PoolMethod, Pooling};
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

        // The convolution's forward GEMMs alone, by `matrixmultiply` (the
        // reference, not our own GEMM): N products (FN x CKK)(CKK x OHW),
        // shared among the threads as the convolution shares its images.
        let (m, n, k) = case.gemm_mnk();
        let a = tensor(&[m * k], 4);
        let bm = tensor(&[case.input.0 * k * n], 5);
        let mut cm = vec![0.0f32; case.input.0 * m * n];
        group.throughput(Throughput::Elements(case.forward_flops()));
        let (a, bm) = (a.as_slice().unwrap(), bm.as_slice().unwrap());
        let products = |cm: &mut [f32], product: &(dyn Fn(&mut [f32], &[f32]) + Sync)| {
            cm.par_chunks_mut(m * n)
                .zip(bm.par_chunks(k * n))
                .for_each(|(c, b)| product(c, b));
            black_box(cm[0])
        };
        group.bench_function("sgemm-same-shape", |b| {
            b.iter(|| {
                products(&mut cm, &|c, b| {
                    // SAFETY: row-major A (m x k), B (k x n) and C (m x n) in their own slices.
                    unsafe {
                        matrixmultiply::sgemm(
                            m,
                            k,
                            n,
                            1.0,
                            a.as_ptr(),
                            k as isize,
                            1,
                            b.as_ptr(),
                            n as isize,
                            1,
                            0.0,
                            c.as_mut_ptr(),
                            n as isize,
                            1,
                        )
                    }
                })
            })
        });
        // The same products by this workspace's own f32 GEMM (each thread
        // packing into its own scratch, warm after the first iteration).
        group.bench_function("gemm-same-shape", |b| {
            b.iter(|| {
                products(&mut cm, &|c, b| {
                    let (a, b) = (MatRef::row_major(a, m, k), MatRef::row_major(b, k, n));
                    gemm(1.0, a, b, 0.0, MatMut::row_major(c, m, n))
                })
            })
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

criterion_group!(benches, convolutions, pooling_and_affine);
criterion_main!(benches);
