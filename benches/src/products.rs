//! The matrix products the layers run, named and sized for the product
//! rows, which time each of them by four engines: this workspace's
//! `kernels::gemm`, `matrixmultiply`, OpenBLAS (the yardstick, see
//! [`crate::blas`]) and the `gemm` crate. Nothing here is timed.

use std::ops::Range;

use kernels::{GemmScratch, MatRef, TILE_COLS};
use ndarray::{ArrayViewMut2, Axis};
use rayon::prelude::*;

use crate::CONV_CASES;

/// Who computes a product.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Engine {
    /// This workspace's packed GEMM, `kernels::gemm`.
    Ours,
    /// `matrixmultiply::sgemm`.
    Matrixmultiply,
    /// `cblas_sgemm` of the library [`crate::blas::Blas`] loads.
    OpenBlas,
    /// The `gemm` crate (candle's), AVX-512 where the CPU has it.
    GemmCrate,
}

impl Engine {
    /// Every engine, in the report's order.
    pub const ALL: [Engine; 4] = [
        Engine::Ours,
        Engine::Matrixmultiply,
        Engine::GemmCrate,
        Engine::OpenBlas,
    ];

    /// Its part of a product row's id.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Ours => "ours",
            Engine::Matrixmultiply => "matrixmultiply",
            Engine::OpenBlas => "openblas",
            Engine::GemmCrate => "gemm-crate",
        }
    }

    /// Its name in the report.
    pub fn label(self) -> &'static str {
        match self {
            Engine::Ours => "ours",
            Engine::Matrixmultiply => "matrixmultiply",
            Engine::OpenBlas => "OpenBLAS",
            Engine::GemmCrate => "gemm crate",
        }
    }

    /// The name of its row among a convolution's rows, which kept the
    /// names they had before there were four engines.
    fn same_shape(self) -> &'static str {
        match self {
            Engine::Ours => "gemm-same-shape",
            Engine::Matrixmultiply => "sgemm-same-shape",
            Engine::OpenBlas => "openblas-same-shape",
            Engine::GemmCrate => "gemm-crate-same-shape",
        }
    }
}

/// One product (or one batch of per-image products) that every engine
/// computes in a row of its own.
#[derive(Clone, Debug, PartialEq)]
pub struct Product {
    /// The criterion group of its rows, e.g. `conv/simple-conv1` or
    /// `product/lenet-fc1-400x120/dw`.
    pub group: String,
    /// Its sizes for the report, e.g. `100 x (30x25)(25x576)`.
    pub shape: String,
    /// FLOPs of one iteration (a multiply-add counted as two).
    pub flops: u64,
    /// Images one iteration stands for (0 for the square product).
    pub images: usize,
    /// A convolution's per-image products, whose rows end in `-same-shape`.
    conv: bool,
}

impl Product {
    /// The criterion id of `engine`'s row.
    pub fn id(&self, engine: Engine) -> String {
        if self.conv {
            format!("{}/{}", self.group, engine.same_shape())
        } else {
            format!("{}/{}", self.group, engine.name())
        }
    }
}

/// Which product of an affine layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    /// Forward, `out = x W + out` (out holds the biases).
    Forward,
    /// The weight gradient, `dW = x^T dout`.
    Dw,
    /// The input gradient, `dx = dout W^T`.
    Dx,
}

impl Pass {
    /// All three, in the order a training step runs them.
    pub const ALL: [Pass; 3] = [Pass::Forward, Pass::Dw, Pass::Dx];

    /// Its part of a row's id.
    pub fn name(self) -> &'static str {
        match self {
            Pass::Forward => "forward",
            Pass::Dw => "dw",
            Pass::Dx => "dx",
        }
    }

    /// The layer's `beta`: forward adds to the biases already in `out`.
    pub fn beta(self) -> f32 {
        match self {
            Pass::Forward => 1.0,
            Pass::Dw | Pass::Dx => 0.0,
        }
    }
}

/// An affine layer of one of the three networks, at a given batch.
#[derive(Clone, Debug, PartialEq)]
pub struct AffineCase {
    /// The network and the layer's label, e.g. `lenet-fc2`.
    pub name: String,
    /// Rows of x.
    pub batch: usize,
    /// Input width (rows of W).
    pub inputs: usize,
    /// Output width (columns of W).
    pub outputs: usize,
}

impl AffineCase {
    /// The criterion group of `pass`'s rows.
    pub fn group(&self, pass: Pass) -> String {
        format!(
            "product/{}-{}x{}/{}",
            self.name,
            self.inputs,
            self.outputs,
            pass.name()
        )
    }

    /// `(M, N, K)` of `pass`: C is `M x N`, the sums run over `K`.
    pub fn mnk(&self, pass: Pass) -> (usize, usize, usize) {
        let (b, i, o) = (self.batch, self.inputs, self.outputs);
        match pass {
            Pass::Forward => (b, o, i),
            Pass::Dw => (i, o, b),
            Pass::Dx => (b, i, o),
        }
    }

    /// A and B of `pass` over the layer's x `(batch, in)`, W `(in, out)`
    /// and dout `(batch, out)`, all row-major, as the layer reads them.
    pub fn operands<'a>(
        &self,
        pass: Pass,
        x: &'a [f32],
        w: &'a [f32],
        dout: &'a [f32],
    ) -> (Mat<'a>, Mat<'a>) {
        let x = Mat::row_major(x, self.batch, self.inputs);
        let w = Mat::row_major(w, self.inputs, self.outputs);
        let dout = Mat::row_major(dout, self.batch, self.outputs);
        match pass {
            Pass::Forward => (x, w),
            Pass::Dw => (x.t(), dout),
            Pass::Dx => (dout, w.t()),
        }
    }
}

/// Every affine layer of the three networks, at batch `batch`, read from
/// the networks themselves (so they follow `MODELS.md` as the builder does).
pub fn affine_cases(batch: usize) -> Vec<AffineCase> {
    let mut out = Vec::new();
    for arch in models::Architecture::ALL {
        let net = arch
            .build::<f32>([1, 28, 28], 10, 0)
            .unwrap_or_else(|e| panic!("{arch}: {e}"));
        for (label, layer) in net.layers() {
            let mut w = Vec::new();
            layer.visit_params(&mut |n, v, _| {
                if n == "weight" && v.ndim() == 2 {
                    w = v.shape().to_vec();
                }
            });
            if let [inputs, outputs] = w[..] {
                out.push(AffineCase {
                    name: format!("{arch}-{label}"),
                    batch,
                    inputs,
                    outputs,
                });
            }
        }
    }
    out
}

/// The side of the square product, a size every engine is tuned for.
pub const SQUARE: usize = 1024;

/// The criterion group of the square product's rows.
pub fn square_group() -> String {
    format!("product/square-{SQUARE}")
}

/// Every product measured by the four engines: the convolutions' forward
/// GEMMs, image by image; the three products of each affine layer at
/// batch 100; and one square product.
pub fn products() -> Vec<Product> {
    let mut out = Vec::new();
    for c in CONV_CASES {
        let (m, n, k) = c.gemm_mnk();
        out.push(Product {
            group: format!("conv/{}", c.name),
            shape: format!("{} x ({m}x{k})({k}x{n})", c.input.0),
            flops: c.forward_flops(),
            images: c.input.0,
            conv: true,
        });
    }
    for case in affine_cases(100) {
        for pass in Pass::ALL {
            let (m, n, k) = case.mnk(pass);
            out.push(Product {
                group: case.group(pass),
                shape: format!("({m}x{k})({k}x{n})"),
                flops: 2 * (m * n * k) as u64,
                images: case.batch,
                conv: false,
            });
        }
    }
    let s = SQUARE;
    out.push(Product {
        group: square_group(),
        shape: format!("({s}x{s})({s}x{s})"),
        flops: 2 * (s * s * s) as u64,
        images: 0,
        conv: false,
    });
    out
}

/// A read-only f32 matrix over a slice, with row and column strides in
/// elements: a row-major matrix, its transpose, or a block of either. The
/// constructors check that every element lies in the slice, which is what
/// the engines' raw pointers rely on.
#[derive(Clone, Copy, Debug)]
pub struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> Mat<'a> {
    /// A dense row-major `rows x cols` matrix at the start of `data`.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        assert!(
            data.len() >= rows * cols,
            "a {rows}x{cols} matrix in {} elements",
            data.len()
        );
        Mat {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose, by swapping strides.
    pub fn t(self) -> Self {
        Mat {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    /// Rows `range`, as a matrix of its own (no copy).
    pub fn row_range(self, range: Range<usize>) -> Self {
        assert!(range.start <= range.end && range.end <= self.rows);
        let rows = range.end - range.start;
        if rows == 0 || self.cols == 0 {
            return Mat { rows, ..self };
        }
        Mat {
            data: &self.data[range.start * self.rs..],
            rows,
            ..self
        }
    }

    /// Columns `range`, as a matrix of its own (no copy).
    pub fn col_range(self, range: Range<usize>) -> Self {
        self.t().row_range(range).t()
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Row and column strides, in elements.
    pub fn strides(&self) -> (usize, usize) {
        (self.rs, self.cs)
    }

    /// The first element's address.
    pub fn as_ptr(&self) -> *const f32 {
        self.data.as_ptr()
    }

    /// The same matrix for `kernels`' GEMM.
    pub fn kernels(self) -> MatRef<'a, f32> {
        MatRef::new(self.data, self.rows, self.cols, self.rs, self.cs)
    }
}

/// `C <- A B + beta C` by `matrixmultiply::sgemm`, C any block of a matrix.
pub fn matrixmultiply(a: Mat<'_>, b: Mat<'_>, beta: f32, mut c: ArrayViewMut2<'_, f32>) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(k == b.rows && c.dim() == (m, n), "matrixmultiply: sizes");
    let (rsc, csc) = (c.strides()[0], c.strides()[1]);
    // SAFETY: `Mat` checked that A's and B's elements lie in their slices;
    // C is a mutable view of the right shape, whose elements are distinct
    // and borrowed exclusively, so it aliases neither A nor B.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            a.rs as isize,
            a.cs as isize,
            b.as_ptr(),
            b.rs as isize,
            b.cs as isize,
            beta,
            c.as_mut_ptr(),
            rsc,
            csc,
        )
    }
}

/// `C <- A B + beta C` by this workspace's GEMM, packing into `scratch`.
pub fn ours(scratch: &mut GemmScratch, a: Mat<'_>, b: Mat<'_>, beta: f32, c: ArrayViewMut2<'_, f32>) {
    kernels::gemm_view_with(scratch, 1.0, a.kernels(), b.kernels(), beta, c);
}

/// How one product is shared among rayon's threads, as
/// `crates/layers/src/par.rs` shares the layers' products.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// Bands of rows of A and C.
    Rows,
    /// Bands of whole packed panels of columns of B and C.
    Cols,
}

impl Split {
    /// The layers' choice for `A B` (`par_gemm`): by columns where B has
    /// more columns than A has rows, else by rows.
    pub fn of(a: Mat<'_>, b: Mat<'_>) -> Split {
        if b.cols > a.rows { Split::Cols } else { Split::Rows }
    }
}

/// Items per part when a product of `work` multiply-adds is shared among
/// rayon's threads by `n` items, as `crates/layers/src/par.rs` shares it.
fn per_part(n: usize, work: usize) -> usize {
    let parts = rayon::current_num_threads()
        .min(work / kernels::MIN_PART_WORK)
        .clamp(1, n.max(1));
    n.div_ceil(parts).max(1)
}

/// `C <- A B + beta C`, C row-major `(A's rows, B's columns)` in `c`,
/// shared among rayon's threads by `split` exactly as the layers share
/// theirs, each part computed by `product` with a scratch of its own from
/// `scratch` (grown to the parts and kept, as a layer keeps its own).
pub fn par_product(
    split: Split,
    scratch: &mut Vec<GemmScratch>,
    a: Mat<'_>,
    b: Mat<'_>,
    beta: f32,
    c: &mut [f32],
    product: impl Fn(&mut GemmScratch, Mat<'_>, Mat<'_>, f32, ArrayViewMut2<'_, f32>) + Sync,
) {
    let (m, n) = (a.rows, b.cols);
    if m == 0 || n == 0 {
        return;
    }
    match split {
        Split::Rows => {
            let per = per_part(m, m * n * a.cols);
            let scratch = tensor4d::grow(scratch, m.div_ceil(per));
            c[..m * n]
                .par_chunks_mut(per * n)
                .zip(scratch.par_iter_mut())
                .enumerate()
                .for_each(|(k, (c, scratch))| {
                    let rows = k * per..k * per + c.len() / n;
                    let c = ArrayViewMut2::from_shape((rows.len(), n), c)
                        .unwrap_or_else(|_| unreachable!("whole rows"));
                    product(scratch, a.row_range(rows), b, beta, c);
                });
        }
        Split::Cols => {
            let per = per_part(n.div_ceil(TILE_COLS), m * n * a.cols) * TILE_COLS;
            let scratch = tensor4d::grow(scratch, n.div_ceil(per));
            let mut c = ArrayViewMut2::from_shape((m, n), &mut c[..m * n])
                .unwrap_or_else(|_| unreachable!("m * n elements"));
            c.axis_chunks_iter_mut(Axis(1), per)
                .into_par_iter()
                .zip(scratch.par_iter_mut())
                .enumerate()
                .for_each(|(k, (c, scratch))| {
                    let cols = k * per..k * per + c.ncols();
                    product(scratch, a, b.col_range(cols), beta, c);
                });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `A B + beta C0` summed in f64, row-major.
    fn naive(a: Mat<'_>, b: Mat<'_>, beta: f32, c0: &[f32]) -> Vec<f32> {
        let (m, n, k) = (a.rows(), b.cols(), a.cols());
        let at = |x: &Mat<'_>, i: usize, j: usize| {
            let (rs, cs) = x.strides();
            f64::from(x.data[i * rs + j * cs])
        };
        (0..m * n)
            .map(|ij| {
                let (i, j) = (ij / n, ij % n);
                let s: f64 = (0..k).map(|p| at(&a, i, p) * at(&b, p, j)).sum();
                (s + f64::from(beta) * f64::from(c0[ij])) as f32
            })
            .collect()
    }

    fn close(want: &[f32], got: &[f32]) {
        for (w, g) in want.iter().zip(got) {
            assert!((w - g).abs() <= 1e-4 * w.abs().max(1.0), "{w} != {g}");
        }
    }

    #[test]
    fn every_split_and_transpose_computes_the_product() {
        // Odd sizes, wider than one packed panel, each pass two parts'
        // worth of work (`kernels::MIN_PART_WORK`), so that the parts are
        // uneven.
        let (batch, inputs, outputs) = (9, 1001, 259);
        assert!(batch * inputs * outputs >= 2 * kernels::MIN_PART_WORK);
        let (x, w) = (
            crate::tensor(&[batch * inputs], 1),
            crate::tensor(&[inputs * outputs], 2),
        );
        let dout = crate::tensor(&[batch * outputs], 3);
        let case = AffineCase {
            name: "test".into(),
            batch,
            inputs,
            outputs,
        };
        let (x, w, dout) = (
            x.as_slice().unwrap(),
            w.as_slice().unwrap(),
            dout.as_slice().unwrap(),
        );
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        for pass in Pass::ALL {
            let (a, b) = case.operands(pass, x, w, dout);
            let (m, n, k) = case.mnk(pass);
            assert_eq!((a.rows(), b.cols(), a.cols(), b.rows()), (m, n, k, k));
            let c0 = crate::tensor(&[m * n], 4).into_raw_vec_and_offset().0;
            let want = naive(a, b, pass.beta(), &c0);
            for split in [Split::Rows, Split::Cols] {
                let mut scratch = Vec::new();
                let mut got = c0.clone();
                pool.install(|| par_product(split, &mut scratch, a, b, pass.beta(), &mut got, ours));
                close(&want, &got);
                let mut got = c0.clone();
                pool.install(|| {
                    par_product(
                        split,
                        &mut scratch,
                        a,
                        b,
                        pass.beta(),
                        &mut got,
                        |_, a, b, beta, c| matrixmultiply(a, b, beta, c),
                    )
                });
                close(&want, &got);
            }
            // Where OpenBLAS is installed, the yardstick computes the same.
            if let Some(blas) = crate::blas::Blas::shared() {
                let mut got = c0.clone();
                blas.sgemm(a, b, pass.beta(), &mut got, n);
                close(&want, &got);
            }
        }
    }

    #[test]
    fn products_have_distinct_ids_and_their_flops() {
        let all = products();
        let cases = affine_cases(100);
        assert_eq!(cases.len(), 8, "{cases:?}");
        assert!(cases.iter().any(|c| (c.inputs, c.outputs) == (4320, 100)));
        assert_eq!(all.len(), crate::CONV_CASES.len() + 3 * cases.len() + 1);
        let mut ids: Vec<String> = all.iter().flat_map(|p| Engine::ALL.map(|e| p.id(e))).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 4 * all.len());
        assert!(ids.contains(&"conv/simple-conv1/sgemm-same-shape".to_string()));
        let square = all.last().unwrap();
        assert_eq!(square.flops, 2 * 1024 * 1024 * 1024);
    }
}
