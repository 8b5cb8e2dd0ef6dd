use ndarray::{ArrayD, ArrayViewD};
use rayon::prelude::*;
use tensor4d::{Float, reuse};

use crate::par::per_part;
use crate::{Error, Layer, Mode, Parameters, check_dout, expect_nchw};

/// Local response normalisation across channels, as AlexNet uses it:
/// `b_c = a_c / (k + alpha * sum of a_j^2 over the n channels centred on c)^beta`
/// (alpha is not divided by n; the window is clipped at the first and last
/// channel). With `s_c` the base of the denominator, backward is
/// `da_m = db_m s_m^-beta - 2 alpha beta a_m * sum_{i near m} db_i b_i / s_i`,
/// so the layer keeps its input, `s` and `s^-beta`.
///
/// ```
/// use layers::{Layer, Lrn, Mode};
/// use ndarray::ArrayD;
/// let mut lrn = Lrn::<f64>::alexnet();
/// let x = ArrayD::from_elem(vec![1, 3, 1, 1], 10.0);
/// let y = lrn.forward(x.view(), Mode::Train)?;
/// // Channel 0 sees channels 0..=2 (clipped): s = 2 + 1e-4 * 300.
/// assert!((y[[0, 0, 0, 0]] - 10.0 / 2.03f64.powf(0.75)).abs() < 1e-12);
/// # Ok::<(), layers::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Lrn<T> {
    size: usize,
    alpha: f64,
    beta: f64,
    k: f64,
    /// The last input: backward needs `a`.
    x: ArrayD<T>,
    /// `s = k + alpha * windowed sum of squares`, per element.
    scale: ArrayD<T>,
    /// `s^-beta`, per element.
    pow: ArrayD<T>,
    ran: bool,
    out: ArrayD<T>,
    dx: ArrayD<T>,
}

impl<T: Float> Lrn<T> {
    /// LRN over `size` neighbouring channels (odd), with `alpha`, `beta`, `k`.
    pub fn new(size: usize, alpha: f64, beta: f64, k: f64) -> Result<Self, Error> {
        let label = || format!("LRN n={size} alpha={alpha} beta={beta} k={k}");
        if size.is_multiple_of(2) {
            return Err(Error::invalid(label(), format!("size must be odd, found {size}")));
        }
        if !(k > 0.0 && alpha >= 0.0 && beta >= 0.0 && k.is_finite() && alpha.is_finite() && beta.is_finite())
        {
            return Err(Error::invalid(
                label(),
                "need k > 0, alpha >= 0 and beta >= 0, all finite",
            ));
        }
        Ok(Lrn {
            size,
            alpha,
            beta,
            k,
            x: ArrayD::zeros(vec![0]),
            scale: ArrayD::zeros(vec![0]),
            pow: ArrayD::zeros(vec![0]),
            ran: false,
            out: ArrayD::zeros(vec![0]),
            dx: ArrayD::zeros(vec![0]),
        })
    }

    /// AlexNet's (and `MODELS.md`'s) setting: n=5, alpha=1e-4, beta=0.75, k=2.
    pub fn alexnet() -> Self {
        Self::new(5, 1e-4, 0.75, 2.0).unwrap_or_else(|_| unreachable!("valid constants"))
    }
}

/// Channels within `size/2` of channel `c`, clipped to `0..channels`.
fn neighbours(size: usize, c: usize, channels: usize) -> std::ops::Range<usize> {
    let r = size / 2;
    c.saturating_sub(r)..(c + r + 1).min(channels)
}

/// `s^-beta`; AlexNet's beta of 0.75 as `1 / (sqrt(s) sqrt(sqrt(s)))`, which
/// is several times faster than `powf` (and within an ulp or two of it).
#[inline]
fn neg_pow<T: Float>(s: T, beta: T, three_quarters: bool) -> T {
    if three_quarters {
        let r = s.sqrt();
        T::one() / (r * r.sqrt())
    } else {
        s.powf(-beta)
    }
}

impl<T: Float> Parameters<T> for Lrn<T> {}

impl<T: Float> Layer<T> for Lrn<T> {
    fn describe(&self) -> String {
        format!(
            "LRN n={} alpha={} beta={} k={}",
            self.size, self.alpha, self.beta, self.k
        )
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, Error> {
        expect_nchw(self, input)?;
        Ok(input.to_vec())
    }

    fn forward(&mut self, x: ArrayViewD<'_, T>, _mode: Mode) -> Result<&ArrayD<T>, Error> {
        expect_nchw(self, x.shape())?;
        let (n, c, hw) = (x.shape()[0], x.shape()[1], x.shape()[2] * x.shape()[3]);
        for buf in [&mut self.x, &mut self.scale, &mut self.pow, &mut self.out] {
            reuse(buf, x.shape());
        }
        self.x.assign(&x);
        let (alpha, k, beta, size) = (T::of(self.alpha), T::of(self.k), T::of(self.beta), self.size);
        let fast = self.beta == 0.75;
        let len = c * hw;
        let per = per_part(n) * len;
        let xs = self
            .x
            .as_slice()
            .unwrap_or_else(|| unreachable!("owned buffers are contiguous"));
        let scale = self.scale.as_slice_mut().unwrap_or_else(|| unreachable!());
        let pow = self.pow.as_slice_mut().unwrap_or_else(|| unreachable!());
        let out = self.out.as_slice_mut().unwrap_or_else(|| unreachable!());
        xs.par_chunks(per)
            .zip(scale.par_chunks_mut(per))
            .zip(pow.par_chunks_mut(per).zip(out.par_chunks_mut(per)))
            .for_each(|((xs, ss), (ps, os))| {
                let images = xs.chunks_exact(len).zip(ss.chunks_exact_mut(len));
                for ((img, s_img), (p_img, o_img)) in
                    images.zip(ps.chunks_exact_mut(len).zip(os.chunks_exact_mut(len)))
                {
                    for ch in 0..c {
                        let plane = ch * hw..(ch + 1) * hw;
                        let s = &mut s_img[plane.clone()];
                        s.fill(T::zero());
                        for j in neighbours(size, ch, c) {
                            for (acc, &a) in s.iter_mut().zip(&img[j * hw..(j + 1) * hw]) {
                                *acc += a * a;
                            }
                        }
                        let (p, o, a) = (&mut p_img[plane.clone()], &mut o_img[plane.clone()], &img[plane]);
                        for (((acc, p), o), &a) in s.iter_mut().zip(p).zip(o).zip(a) {
                            *acc = k + alpha * *acc;
                            *p = neg_pow(*acc, beta, fast);
                            *o = a * *p;
                        }
                    }
                }
            });
        self.ran = true;
        Ok(&self.out)
    }

    fn backward(&mut self, dout: ArrayViewD<'_, T>) -> Result<&ArrayD<T>, Error> {
        check_dout(&|| self.describe(), self.ran, self.out.shape(), dout.shape())?;
        let (n, c, hw) = (
            dout.shape()[0],
            dout.shape()[1],
            dout.shape()[2] * dout.shape()[3],
        );
        let dout = tensor4d::contiguous(&dout);
        reuse(&mut self.dx, self.x.shape());
        let coef = T::of(2.0 * self.alpha * self.beta);
        let size = self.size;
        let len = c * hw;
        let per = per_part(n) * len;
        let (xs, scale, pow, out) = (
            self.x.as_slice().unwrap_or_else(|| unreachable!()),
            self.scale.as_slice().unwrap_or_else(|| unreachable!()),
            self.pow.as_slice().unwrap_or_else(|| unreachable!()),
            self.out.as_slice().unwrap_or_else(|| unreachable!()),
        );
        let dx = self.dx.as_slice_mut().unwrap_or_else(|| unreachable!());
        dx.par_chunks_mut(per).enumerate().for_each(|(part, dxs)| {
            for (i, dx_img) in dxs.chunks_exact_mut(len).enumerate() {
                let img = (part * per + i * len)..(part * per + (i + 1) * len);
                let (a, s, p, b, g) = (
                    &xs[img.clone()],
                    &scale[img.clone()],
                    &pow[img.clone()],
                    &out[img.clone()],
                    &dout[img],
                );
                for m in 0..c {
                    let plane = m * hw..(m + 1) * hw;
                    // Direct term: db_m * s_m^-beta.
                    for q in plane.clone() {
                        dx_img[q] = g[q] * p[q];
                    }
                    // Cross term: -2 alpha beta a_m sum_i db_i b_i / s_i.
                    for i in neighbours(size, m, c) {
                        for q in 0..hw {
                            let (mq, iq) = (m * hw + q, i * hw + q);
                            dx_img[mq] -= coef * a[mq] * g[iq] * b[iq] / s[iq];
                        }
                    }
                }
            }
        });
        Ok(&self.dx)
    }
}
