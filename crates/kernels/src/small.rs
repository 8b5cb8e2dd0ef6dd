//! Matrix products whose shapes a packed GEMM serves badly: few rows
//! (a convolution with 6 or 16 filters, where packing costs more than the
//! arithmetic it serves), and weight
//! gradients, each element a long dot product. Register-tiled loops,
//! compiled for the [`Isa`] the caller gives (AVX-512, AVX2 and FMA, or
//! baseline); on the x86 paths the f32 inner loops are written in AVX2
//! intrinsics, in the generic loops' order, so the bits are the same.

use tensor4d::Float;

use crate::{Isa, MatMut, MatRef, TILE_ROWS};

/// A matrix given by where each row starts in a slice, every row `cols`
/// long: the rows of a row-major matrix, or, for a stride-1 convolution,
/// the shifted windows of an image that im2col would otherwise copy out.
/// [`Rows::blocks`] puts several such matrices side by side (the same
/// windows of several images), without copying them together.
///
/// ```
/// let data = [1.0f32, 2.0, 3.0, 4.0];
/// // Rows [2, 3] and [1, 2]: overlapping and out of order are both fine.
/// let rows = kernels::Rows::new(&data, &[1, 0], 2);
/// assert_eq!(rows.row(0), &[2.0, 3.0]);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Rows<'a, T> {
    data: &'a [T],
    starts: &'a [usize],
    /// Columns of one block.
    cols: usize,
    blocks: usize,
    /// How far apart in `data` the blocks are.
    step: usize,
}

impl<'a, T> Rows<'a, T> {
    /// Row `k` is `data[starts[k]..starts[k] + cols]`. Panics when a row
    /// runs past the end of `data` (a bug in the caller).
    pub fn new(data: &'a [T], starts: &'a [usize], cols: usize) -> Self {
        Rows {
            data,
            starts,
            cols,
            blocks: 1,
            step: 0,
        }
        .checked()
    }

    /// `blocks` matrices side by side, each `self` moved `step` further
    /// into the data: row `k` is the concatenation over `j` of
    /// `data[j*step + starts[k]..][..cols]`, `blocks * cols` long. Panics
    /// when a row of the last block runs past the end of the data.
    ///
    /// ```
    /// let data = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
    /// let rows = kernels::Rows::new(&data, &[0, 1], 2).blocks(2, 3);
    /// assert_eq!(rows.cols(), 4);
    /// assert_eq!((rows.part(0, 0), rows.part(0, 1)), (&[1.0, 2.0][..], &[4.0, 5.0][..]));
    /// assert_eq!(rows.part(1, 1), &[5.0, 6.0]);
    /// ```
    pub fn blocks(self, blocks: usize, step: usize) -> Self {
        assert!(self.blocks == 1, "blocks of blocks");
        Rows { blocks, step, ..self }.checked()
    }

    fn checked(self) -> Self {
        if let (Some(&max), true) = (self.starts.iter().max(), self.blocks > 0) {
            let end = (self.blocks - 1) * self.step + max + self.cols;
            assert!(
                end <= self.data.len(),
                "a row of {} from {} runs past {} elements",
                self.cols,
                (self.blocks - 1) * self.step + max,
                self.data.len()
            );
        }
        self
    }

    /// Columns of the matrix: of all its blocks together.
    pub fn cols(&self) -> usize {
        self.blocks * self.cols
    }

    /// Row `k` of a matrix of one block. Panics for rows in several
    /// blocks, which are not one slice ([`Rows::part`]).
    pub fn row(&self, k: usize) -> &'a [T] {
        assert!(
            self.blocks == 1,
            "a row of {} blocks is not one slice",
            self.blocks
        );
        self.part(k, 0)
    }

    /// Row `k`'s part in block `j`.
    pub fn part(&self, k: usize, j: usize) -> &'a [T] {
        &self.data[j * self.step + self.starts[k]..][..self.cols]
    }

    /// Block `j` alone.
    fn block(&self, j: usize) -> Rows<'a, T> {
        Rows {
            data: &self.data[j * self.step..],
            blocks: 1,
            step: 0,
            ..*self
        }
    }
}

/// Calls `kernel::<T, FMA>(args)` compiled for `isa`, `FMA` as it has.
macro_rules! with_fma {
    ($isa:expr, $kernel:ident::<$t:ty>($($arg:expr),*)) => {
        $isa.run(
            #[inline(always)]
            |fma| {
                if fma {
                    $kernel::<$t, true>($($arg),*)
                } else {
                    $kernel::<$t, false>($($arg),*)
                }
            },
        )
    };
}

/// `acc + w * v`, fused (one rounding) when `FMA`.
#[inline(always)]
pub(crate) fn madd<T: Float, const FMA: bool>(w: T, v: T, acc: T) -> T {
    if FMA { w.mul_add(v, acc) } else { acc + w * v }
}

/// Output columns per tile of [`gemm_few_rows`]; a product narrower than
/// this runs one element at a time.
pub const FEW_ROWS_COLS: usize = 16;
const COLS: usize = FEW_ROWS_COLS;
// `few_rows` below spells out tiles of 1 to 6 rows.
const _: () = assert!(TILE_ROWS == 6);

/// `C <- C + A B` for an A with few rows (a convolution's filters times its
/// columns), reading B's rows where they are and writing C in place (no
/// packing). C must have unit column stride; A any strides.
///
/// Each element's sum runs over `k` in order (fused multiply-adds where the
/// CPU has them), so results depend on the machine but not on threads.
///
/// ```
/// use kernels::{gemm_few_rows, MatMut, MatRef, Rows};
/// let a = [1.0f32, 2.0]; // 1x2
/// let b = [1.0f32, 2.0, 3.0, 10.0, 20.0, 30.0]; // 2x3
/// let mut c = [0.5f32; 3];
/// let b = Rows::new(&b, &[0, 3], 3);
/// gemm_few_rows(MatRef::row_major(&a, 1, 2), b, MatMut::row_major(&mut c, 1, 3));
/// assert_eq!(c, [21.5, 42.5, 63.5]);
/// ```
pub fn gemm_few_rows<T: Float>(a: MatRef<'_, T>, b: Rows<'_, T>, c: MatMut<'_, T>) {
    Isa::active().gemm_few_rows(a, b, c)
}

/// `C <- A B^T + beta C` where every element is a long dot product of a
/// row of A `(m, n)`, with unit column stride, and a row of B `(q, n)`:
/// `n` large, `m` and `q` small (a weight gradient `dout col^T`, B being
/// the columns). With `beta == 0` the old contents of C are ignored.
///
/// Each dot product is summed in 8 interleaved lanes, combined in a fixed
/// order, so results depend on the machine but not on threads.
///
/// ```
/// use kernels::{gemm_dots, MatMut, MatRef, Rows};
/// let a = [1.0f32, 2.0, 3.0]; // 1x3
/// let b = [1.0f32, 1.0, 1.0, 0.0, 1.0, 0.0]; // 2x3
/// let mut c = [9.0f32; 2];
/// gemm_dots(MatRef::row_major(&a, 1, 3), Rows::new(&b, &[0, 3], 3), 0.0, MatMut::row_major(&mut c, 1, 2));
/// assert_eq!(c, [6.0, 2.0]);
/// gemm_dots(MatRef::row_major(&a, 1, 3), Rows::new(&b, &[0, 3], 3), 1.0, MatMut::row_major(&mut c, 1, 2));
/// assert_eq!(c, [12.0, 4.0]);
/// ```
pub fn gemm_dots<T: Float>(a: MatRef<'_, T>, b: Rows<'_, T>, beta: T, c: MatMut<'_, T>) {
    Isa::active().gemm_dots(a, b, beta, c)
}

impl Isa {
    /// [`gemm_few_rows`] compiled for this path. Panics if this CPU lacks
    /// its instructions.
    ///
    /// ```
    /// use kernels::{Isa, MatMut, MatRef, Rows};
    /// // 3 filters of 2x2 over a 1x5 image: each row of B one shifted
    /// // window position, read in place (what im2col would copy out).
    /// let image = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]; // 2x5
    /// let starts = [0, 1, 5, 6]; // filter elements (0,0) (0,1) (1,0) (1,1)
    /// let b = Rows::new(&image, &starts, 4); // 4 output columns
    /// let w = [1.0f32, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0];
    /// for isa in Isa::ALL.into_iter().filter(|i| i.is_available()) {
    ///     let mut c = [0.0f32; 12];
    ///     isa.gemm_few_rows(MatRef::row_major(&w, 3, 4), b, MatMut::row_major(&mut c, 3, 4));
    ///     assert_eq!(&c[..4], &image[..4]); // top-left element
    ///     assert_eq!(&c[4..8], &image[6..10]); // bottom-right element
    ///     assert_eq!(&c[8..], &[16.0, 20.0, 24.0, 28.0]); // window sums
    /// }
    /// ```
    pub fn gemm_few_rows<T: Float>(self, a: MatRef<'_, T>, b: Rows<'_, T>, c: MatMut<'_, T>) {
        assert_eq!(a.cols, b.starts.len(), "inner dimensions of A and B");
        assert_eq!((a.rows, b.cols()), (c.rows, c.cols), "shape of C");
        assert!(c.cs == 1 || c.cols <= 1, "C needs unit column stride");
        if c.rows == 0 || c.cols == 0 {
            return;
        }
        with_fma!(self, few_rows::<T>(a, b, c))
    }

    /// [`gemm_dots`] compiled for this path. Panics if this CPU lacks its
    /// instructions.
    ///
    /// ```
    /// use kernels::{Isa, MatMut, MatRef, Rows};
    /// let n = 1000; // long dot products, past whole lanes
    /// let a: Vec<f32> = (0..2 * n).map(|i| (i % 3) as f32).collect(); // 2 x n
    /// let b: Vec<f32> = (0..3 * n).map(|i| (i % 4) as f32).collect(); // 3 x n
    /// for isa in Isa::ALL.into_iter().filter(|i| i.is_available()) {
    ///     let mut c = [0.0f32; 6];
    ///     isa.gemm_dots(MatRef::row_major(&a, 2, n), Rows::new(&b, &[0, n, 2 * n], n), 0.0,
    ///                   MatMut::row_major(&mut c, 2, 3));
    ///     for (rq, &got) in c.iter().enumerate() {
    ///         let (r, q) = (rq / 3, rq % 3);
    ///         let want: f32 = (0..n).map(|p| a[r * n + p] * b[q * n + p]).sum();
    ///         assert_eq!(got, want, "{isa}"); // integers: exact in any order
    ///     }
    /// }
    /// ```
    pub fn gemm_dots<T: Float>(self, a: MatRef<'_, T>, b: Rows<'_, T>, beta: T, c: MatMut<'_, T>) {
        assert_eq!(a.cols, b.cols(), "inner dimensions of A and B");
        assert_eq!((a.rows, b.starts.len()), (c.rows, c.cols), "shape of C");
        assert!(a.cs == 1 || a.cols <= 1, "A needs unit column stride");
        if c.rows == 0 || c.cols == 0 {
            return;
        }
        with_fma!(self, dots::<T>(a, b, beta, c))
    }
}

#[inline(always)]
fn few_rows<T: Float, const FMA: bool>(a: MatRef<'_, T>, b: Rows<'_, T>, c: MatMut<'_, T>) {
    // Block by block: each is a product of its own, in C's columns.
    for j in 0..b.blocks {
        let b = b.block(j);
        let mut c = MatMut {
            data: &mut c.data[j * b.cols * c.cs..],
            cols: b.cols,
            ..c
        };
        let mut r0 = 0;
        while r0 < c.rows {
            let left = c.rows - r0;
            match left.min(TILE_ROWS) {
                6 => few_rows_tile::<T, 6, FMA>(a, b, &mut c, r0),
                5 => few_rows_tile::<T, 5, FMA>(a, b, &mut c, r0),
                4 => few_rows_tile::<T, 4, FMA>(a, b, &mut c, r0),
                3 => few_rows_tile::<T, 3, FMA>(a, b, &mut c, r0),
                2 => few_rows_tile::<T, 2, FMA>(a, b, &mut c, r0),
                _ => few_rows_tile::<T, 1, FMA>(a, b, &mut c, r0),
            }
            r0 += left.min(TILE_ROWS);
        }
    }
}

/// Rows `r0..r0+R` of C, `COLS` columns at a time; when `COLS` does not
/// divide the width, a last tile overlaps the one before and stores only
/// its new columns. The sum over `k` runs in blocks of `KB`: each block's
/// weights are first copied into a small array, `[w_r0, .., w_rR]` per
/// `kk`, so the inner loop reads them with no index arithmetic, and the
/// accumulators go back to C between blocks (exactly, so the sums are
/// those of one pass). Only fixed-size arrays are indexed in the loop over
/// `k`, so the compiler keeps the accumulators in registers.
#[inline(always)]
fn few_rows_tile<T: Float, const R: usize, const FMA: bool>(
    a: MatRef<'_, T>,
    b: Rows<'_, T>,
    c: &mut MatMut<'_, T>,
    r0: usize,
) {
    const KB: usize = 64;
    let (k, n) = (a.cols, c.cols);
    let w = |r: usize, kk: usize| a.data[(r0 + r) * a.rs + kk * a.cs];
    if n < COLS {
        // Too narrow for a tile: one element at a time, same order.
        for r in 0..R {
            for p in 0..n {
                let mut s = c.data[(r0 + r) * c.rs + p];
                for kk in 0..k {
                    s = madd::<T, FMA>(w(r, kk), b.data[b.starts[kk] + p], s);
                }
                c.data[(r0 + r) * c.rs + p] = s;
            }
        }
        return;
    }
    let full = n - n % COLS;
    let mut block = [[T::zero(); R]; KB];
    for k0 in (0..k).step_by(KB) {
        let starts = &b.starts[k0..(k0 + KB).min(k)];
        let block = &mut block[..starts.len()];
        for (kk, ws) in block.iter_mut().enumerate() {
            *ws = std::array::from_fn(|r| w(r, k0 + kk));
        }
        let tiles = (0..full).step_by(COLS).chain((full < n).then_some(n - COLS));
        for p0 in tiles {
            // The overlapping last tile recomputed columns already done.
            let fresh = if p0 + COLS > full { full - p0 } else { 0 };
            #[cfg(target_arch = "x86_64")]
            if FMA && std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() {
                // As `lane_sums`: the compiler's own vectors of the loop
                // below go through memory.
                let last = (r0 + R - 1) * c.rs + p0 + COLS;
                assert!(last <= c.data.len(), "a tile past the end of C");
                let ws = &*block;
                // SAFETY: T is f32 (checked above), so the pointers and
                // the weights' array are of f32; every row read lies in
                // B (`Rows::new` checked `start + n`, and `p0 + COLS <= n`),
                // every row written in C (asserted above), which nothing
                // else borrows; FMA is only ever true with AVX2 and FMA.
                unsafe {
                    x86::few_rows_f32::<R>(
                        c.data.as_mut_ptr().add(r0 * c.rs + p0).cast::<f32>(),
                        c.rs,
                        b.data.as_ptr().add(p0).cast::<f32>(),
                        starts,
                        std::slice::from_raw_parts(ws.as_ptr().cast::<[f32; R]>(), ws.len()),
                        fresh,
                    );
                }
                continue;
            }
            let mut acc: [[T; COLS]; R] = std::array::from_fn(|r| {
                let at = (r0 + r) * c.rs + p0;
                c.data[at..at + COLS]
                    .try_into()
                    .unwrap_or_else(|_| unreachable!())
            });
            for (&start, ws) in starts.iter().zip(&*block) {
                let at = start + p0;
                let v: [T; COLS] = b.data[at..at + COLS]
                    .try_into()
                    .unwrap_or_else(|_| unreachable!());
                for (acc, &w) in acc.iter_mut().zip(ws) {
                    for (s, &v) in acc.iter_mut().zip(&v) {
                        *s = madd::<T, FMA>(w, v, *s);
                    }
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                let at = (r0 + r) * c.rs + p0;
                c.data[at + fresh..at + COLS].copy_from_slice(&acc[fresh..]);
            }
        }
    }
}

/// Lanes of each partial sum in [`gemm_dots`]: one AVX2 register of f32.
const LANES: usize = 8;

#[inline(always)]
fn dots<T: Float, const FMA: bool>(a: MatRef<'_, T>, b: Rows<'_, T>, beta: T, mut c: MatMut<'_, T>) {
    // Tiles of R x Q dot products, R*Q accumulators of LANES: 4 x 3 keeps
    // them, a step of the Q rows of B and one of a row of A in AVX2's 16
    // registers.
    const R: usize = 4;
    const Q: usize = 3;
    let mut r0 = 0;
    while r0 < c.rows {
        let rows = (c.rows - r0).min(R);
        // Over several blocks, strips of whole tiles go block by block (see
        // `dots_tiles`); the last columns, and one block, tile by tile.
        let whole = if b.blocks > 1 { c.cols - c.cols % Q } else { 0 };
        match rows {
            4 => dots_tiles::<T, 4, Q, FMA, STRIP_TILES>(a, b, beta, &mut c, r0, (0, whole)),
            3 => dots_tiles::<T, 3, Q, FMA, STRIP_TILES>(a, b, beta, &mut c, r0, (0, whole)),
            2 => dots_tiles::<T, 2, Q, FMA, STRIP_TILES>(a, b, beta, &mut c, r0, (0, whole)),
            _ => dots_tiles::<T, 1, Q, FMA, STRIP_TILES>(a, b, beta, &mut c, r0, (0, whole)),
        }
        let mut q0 = whole;
        while q0 < c.cols {
            let cols = (c.cols - q0).min(Q);
            macro_rules! tiles {
                ($(($r:literal, $q:literal)),*) => {
                    match (rows, cols) {
                        $(($r, $q) => dots_tiles::<T, $r, $q, FMA, 1>(a, b, beta, &mut c, r0, (q0, q0 + $q)),)*
                        _ => unreachable!("tiles of at most {R} x {Q}"),
                    }
                };
            }
            tiles!(
                (4, 3),
                (4, 2),
                (4, 1),
                (3, 3),
                (3, 2),
                (3, 1),
                (2, 3),
                (2, 2),
                (2, 1),
                (1, 3),
                (1, 2),
                (1, 1)
            );
            q0 += cols;
        }
        r0 += rows;
    }
}

/// `acc` plus the lane-wise products of `xs` and `ys`, all of whole lanes
/// and of one length.
#[inline(always)]
fn lane_sums<T: Float, const R: usize, const Q: usize, const FMA: bool>(
    mut acc: [[[T; LANES]; Q]; R],
    xs: [&[T]; R],
    ys: [&[T]; Q],
) -> [[[T; LANES]; Q]; R] {
    let chunks = xs.first().map_or(0, |x| x.len() / LANES);
    #[cfg(target_arch = "x86_64")]
    if FMA && std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() {
        // FMA is only ever true on the x86 paths, inside their AVX2 and FMA
        // code; the compiler's own vectors of this loop go through memory.
        let cast = |s: &[T]| {
            // SAFETY: T is f32 (checked above), so the slice is one of f32.
            unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<f32>(), chunks * LANES) }
        };
        let (xs, ys) = (xs.map(cast), ys.map(cast));
        // SAFETY: T is f32, so the arrays have the same layout; every slice
        // holds `chunks` whole lanes (one length, the caller's), and the
        // CPU has AVX2 and FMA (FMA is true).
        unsafe {
            let acc = &mut *(&mut acc as *mut [[[T; LANES]; Q]; R]).cast::<[[[f32; LANES]; Q]; R]>();
            x86::lane_sums_f32(acc, xs, ys, chunks);
        }
        return acc;
    }
    // Whole lanes as arrays, every slice cut to the same length, so the
    // loop indexes them with no bounds checks left in it.
    let xs: [&[[T; LANES]]; R] = std::array::from_fn(|r| &xs[r].as_chunks::<LANES>().0[..chunks]);
    let ys: [&[[T; LANES]]; Q] = std::array::from_fn(|q| &ys[q].as_chunks::<LANES>().0[..chunks]);
    for i in 0..chunks {
        let x: [[T; LANES]; R] = std::array::from_fn(|r| xs[r][i]);
        let y: [[T; LANES]; Q] = std::array::from_fn(|q| ys[q][i]);
        for (acc, x) in acc.iter_mut().zip(&x) {
            for (acc, y) in acc.iter_mut().zip(&y) {
                for l in 0..LANES {
                    acc[l] = madd::<T, FMA>(x[l], y[l], acc[l]);
                }
            }
        }
    }
    acc
}

/// `acc` plus the whole lanes of block `j` for the tile at `(r0, q0)`.
#[inline(always)]
fn block_sums<T: Float, const R: usize, const Q: usize, const FMA: bool>(
    acc: [[[T; LANES]; Q]; R],
    a: MatRef<'_, T>,
    b: Rows<'_, T>,
    (r0, q0): (usize, usize),
    j: usize,
) -> [[[T; LANES]; Q]; R] {
    let full = b.cols - b.cols % LANES;
    let xs: [&[T]; R] = std::array::from_fn(|r| &a.data[(r0 + r) * a.rs + j * b.cols..][..full]);
    let ys: [&[T]; Q] = std::array::from_fn(|q| &b.part(q0 + q, j)[..full]);
    lane_sums::<T, R, Q, FMA>(acc, xs, ys)
}

/// Tiles a strip of [`gemm_dots`] keeps the accumulators of.
const STRIP_TILES: usize = 32;

/// Elements `(r0.., q0..q1)` of C, in `R x Q` tiles of dot products over
/// every block of B (`q1 - q0` a multiple of `Q`), `TILES` tiles at a
/// time: whole lanes of all blocks first, then each block's last elements
/// in block order. With more tiles than one, a strip goes block by block:
/// tile by tile, each dot product would stream its rows over all the
/// blocks, more than L1 holds (a group of images' gradients and windows),
/// once per tile; block by block, a block's rows stay in L1 while every
/// tile of the strip reads them, and the accumulators wait in an array
/// between blocks (lane by lane, so the sums are those of one tile alone).
#[inline(always)]
fn dots_tiles<T: Float, const R: usize, const Q: usize, const FMA: bool, const TILES: usize>(
    a: MatRef<'_, T>,
    b: Rows<'_, T>,
    beta: T,
    c: &mut MatMut<'_, T>,
    r0: usize,
    (q0, q1): (usize, usize),
) {
    for q0 in (q0..q1).step_by(TILES * Q) {
        let tiles = ((q1 - q0) / Q).min(TILES);
        let mut acc = [[[[T::zero(); LANES]; Q]; R]; TILES];
        for j in 0..b.blocks {
            for (t, acc) in acc[..tiles].iter_mut().enumerate() {
                *acc = block_sums::<T, R, Q, FMA>(*acc, a, b, (r0, q0 + t * Q), j);
            }
        }
        for (t, acc) in acc[..tiles].iter().enumerate() {
            dots_finish::<T, R, Q, FMA>(acc, a, b, beta, c, r0, q0 + t * Q);
        }
    }
}

/// Each element of an `R x Q` tile from its lanes: their sum, then each
/// block's last elements in block order, into C.
#[inline(always)]
fn dots_finish<T: Float, const R: usize, const Q: usize, const FMA: bool>(
    acc: &[[[T; LANES]; Q]; R],
    a: MatRef<'_, T>,
    b: Rows<'_, T>,
    beta: T,
    c: &mut MatMut<'_, T>,
    r0: usize,
    q0: usize,
) {
    let w = b.cols;
    let full = w - w % LANES;
    for (r, acc) in acc.iter().enumerate() {
        for (q, acc) in acc.iter().enumerate() {
            let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
            // Blocks of whole lanes have no last elements to add.
            let tails = if full < w { b.blocks } else { 0 };
            for j in 0..tails {
                let x = &a.data[(r0 + r) * a.rs + j * w..][..w];
                let y = b.part(q0 + q, j);
                for i in full..w {
                    s = madd::<T, FMA>(x[i], y[i], s);
                }
            }
            let at = (r0 + r) * c.rs + (q0 + q) * c.cs;
            c.data[at] = if beta == T::zero() {
                s
            } else {
                beta * c.data[at] + s
            };
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{COLS, LANES};

    /// One tile of [`super::few_rows_tile`] for f32 in AVX2 registers:
    /// `R` rows of C from `c` (`rs` apart), 16 columns of which those from
    /// `fresh` are stored, plus the products of `block`'s weights with the
    /// rows of B at `b + starts[kk]`, in the order the generic loop adds
    /// them.
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA; the tile's rows must lie in C,
    /// which nothing else may borrow, and each row read in B.
    #[inline(always)]
    pub(super) unsafe fn few_rows_f32<const R: usize>(
        c: *mut f32,
        rs: usize,
        b: *const f32,
        starts: &[usize],
        block: &[[f32; R]],
        fresh: usize,
    ) {
        const _: () = assert!(COLS == 16, "two AVX2 vectors");
        // SAFETY: as this function's contract.
        unsafe {
            let mut acc = [[_mm256_setzero_ps(); 2]; R];
            for (r, acc) in acc.iter_mut().enumerate() {
                let row = c.add(r * rs);
                *acc = [_mm256_loadu_ps(row), _mm256_loadu_ps(row.add(8))];
            }
            for (&start, ws) in starts.iter().zip(block) {
                let v = [_mm256_loadu_ps(b.add(start)), _mm256_loadu_ps(b.add(start + 8))];
                for (acc, &w) in acc.iter_mut().zip(ws) {
                    let w = _mm256_set1_ps(w);
                    acc[0] = _mm256_fmadd_ps(w, v[0], acc[0]);
                    acc[1] = _mm256_fmadd_ps(w, v[1], acc[1]);
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                let row = c.add(r * rs);
                if fresh == 0 {
                    _mm256_storeu_ps(row, acc[0]);
                    _mm256_storeu_ps(row.add(8), acc[1]);
                } else {
                    let mut out = [0.0f32; COLS];
                    _mm256_storeu_ps(out.as_mut_ptr(), acc[0]);
                    _mm256_storeu_ps(out.as_mut_ptr().add(8), acc[1]);
                    std::ptr::copy_nonoverlapping(out.as_ptr().add(fresh), row.add(fresh), COLS - fresh);
                }
            }
        }
    }

    /// [`super::lane_sums`] for f32 in AVX2 registers: each row of B
    /// loaded once per step, each row of A once, `R x Q` fused
    /// multiply-adds, lane by lane as the generic loop does them.
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA; every slice holds `chunks` lanes.
    #[inline(always)]
    pub(super) unsafe fn lane_sums_f32<const R: usize, const Q: usize>(
        acc: &mut [[[f32; LANES]; Q]; R],
        xs: [&[f32]; R],
        ys: [&[f32]; Q],
        chunks: usize,
    ) {
        // SAFETY: loads of whole lanes within the slices; AVX2 and FMA per
        // this function's contract.
        unsafe {
            let mut v = [[_mm256_setzero_ps(); Q]; R];
            for (v, acc) in v.iter_mut().zip(acc.iter()) {
                for (v, acc) in v.iter_mut().zip(acc) {
                    *v = _mm256_loadu_ps(acc.as_ptr());
                }
            }
            let xp = xs.map(<[f32]>::as_ptr);
            let yp = ys.map(<[f32]>::as_ptr);
            for i in 0..chunks {
                let mut y = [_mm256_setzero_ps(); Q];
                for (y, p) in y.iter_mut().zip(&yp) {
                    *y = _mm256_loadu_ps(p.add(LANES * i));
                }
                for (v, p) in v.iter_mut().zip(&xp) {
                    let x = _mm256_loadu_ps(p.add(LANES * i));
                    for (v, &y) in v.iter_mut().zip(&y) {
                        *v = _mm256_fmadd_ps(x, y, *v);
                    }
                }
            }
            for (v, acc) in v.iter().zip(acc.iter_mut()) {
                for (&v, acc) in v.iter().zip(acc) {
                    _mm256_storeu_ps(acc.as_mut_ptr(), v);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The kernels against triple loops on every path: tests/paths.rs.

    #[test]
    #[should_panic(expected = "runs past")]
    fn rows_past_the_end_panic() {
        Rows::new(&[0.0f32; 4], &[0, 3], 2);
    }

    /// Over several blocks, `dots` runs strips block by block: the same
    /// bits as each element summed alone in the documented order (lane `l`
    /// over the blocks' whole lanes, the lanes added pairwise, then each
    /// block's last elements), on values that round, with blocks whose last
    /// elements fill no lane, more tiles than a strip keeps, and every row
    /// count of a tile.
    #[test]
    fn strips_give_the_bits_of_the_documented_order() {
        let real = |i: usize| ((i * 7919 % 1013) as f32 - 506.0) / 97.0;
        let (blocks, w, m, q) = (3, 21, 7, 3 * STRIP_TILES + 5);
        let full = w - w % LANES;
        let a: Vec<f32> = (0..m * blocks * w).map(real).collect();
        let stored: Vec<f32> = (0..blocks * (q + w)).map(|i| real(i + 5)).collect();
        let starts: Vec<usize> = (0..q).collect();
        let b = Rows::new(&stored, &starts, w).blocks(blocks, q + w);
        let x = |r: usize, j: usize, i: usize| a[r * blocks * w + j * w + i];
        let y = |col: usize, j: usize, i: usize| stored[j * (q + w) + col + i];
        for beta in [0.0, 0.5] {
            let c0: Vec<f32> = (0..m * q).map(|i| real(i + 11)).collect();
            let mut got = c0.clone();
            let am = MatRef::row_major(&a, m, blocks * w);
            dots::<f32, false>(am, b, beta, MatMut::row_major(&mut got, m, q));
            let want: Vec<f32> = (0..m * q)
                .map(|rq| {
                    let (r, col) = (rq / q, rq % q);
                    let lane = |l: usize| {
                        let mut s = 0.0f32;
                        for j in 0..blocks {
                            for i in (l..full).step_by(LANES) {
                                s += x(r, j, i) * y(col, j, i);
                            }
                        }
                        s
                    };
                    let acc: [f32; LANES] = std::array::from_fn(lane);
                    let mut s =
                        ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
                    for j in 0..blocks {
                        for i in full..w {
                            s += x(r, j, i) * y(col, j, i);
                        }
                    }
                    if beta == 0.0 { s } else { beta * c0[rq] + s }
                })
                .collect();
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "beta {beta}");
            assert_ne!(got, c0);
        }
    }
}
