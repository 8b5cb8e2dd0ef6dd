use ndarray::{ArrayD, ArrayViewD};
use rayon::prelude::*;
use tensor4d::{Float, reuse};

use crate::par::per_part;
use crate::{Error, Layer, LayerHooks, Mode, Parameters, check_dout, expect_nchw};

/// Local response normalisation across channels, as AlexNet uses it:
/// `b_c = a_c / (k + alpha * sum of a_j^2 over the n channels centred on c)^beta`
/// (alpha is not divided by n; the window is clipped at the first and last
/// channel). With `s_c` the base of the denominator, backward is
/// `da_m = db_m / s_m^beta - 2 alpha beta a_m * sum_{i near m} db_i b_i / s_i`.
/// The layer keeps its output `b` and `s`, nothing else: `s^beta` is
/// recomputed from `s`, and `a = b s^beta` (keeping `a` and `s^-beta` too
/// would cost two more batch-sized arrays, written in forward and read
/// back in backward).
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
    /// `s = k + alpha * windowed sum of squares`, per element.
    scale: ArrayD<T>,
    /// The output `b`, which backward reads too.
    out: ArrayD<T>,
    ran: bool,
    dx: ArrayD<T>,
    /// Backward's per-image `db_i b_i / s_i`, one per parallel part.
    work: Vec<Vec<T>>,
}

impl<T: Float> Lrn<T> {
    /// LRN over `size` neighbouring channels (odd), with `alpha`, `beta`, `k`:
    /// `b_c = a_c / (k + alpha * sum of a^2 over the neighbours)^beta`.
    ///
    /// ```
    /// use layers::{Layer, Lrn, Mode};
    /// use ndarray::ArrayD;
    ///
    /// let mut lrn = Lrn::<f64>::new(3, 0.5, 1.0, 1.0)?;
    /// // Three channels of ones: the middle one has three neighbours, the
    /// // edges two (channels past the edge are left out).
    /// let x = ArrayD::ones(vec![1, 3, 1, 1]);
    /// let b = lrn.forward(x.view(), Mode::Train)?;
    /// assert_eq!(b.as_slice().unwrap(), &[1.0 / 2.0, 1.0 / 2.5, 1.0 / 2.0]);
    /// assert!(Lrn::<f64>::new(4, 1e-4, 0.75, 2.0).is_err()); // even size
    /// # Ok::<(), layers::Error>(())
    /// ```
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
            scale: ArrayD::zeros(vec![0]),
            out: ArrayD::zeros(vec![0]),
            ran: false,
            dx: ArrayD::zeros(vec![0]),
            work: Vec::new(),
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

/// Evaluates `$body` with `$pow` bound to `s -> s^beta` as a closure of
/// its own type, so that the loops inside are compiled once per form and
/// vectorise (a branch per element, or a call to `powf`, keeps them
/// scalar). AlexNet's beta of 0.75 is `sqrt(s) sqrt(sqrt(s))`, several
/// times faster than `powf` and within an ulp or two of it.
macro_rules! with_pow_beta {
    ($t:ty, $beta:expr, |$pow:ident| $body:expr) => {
        if $beta == 0.75 {
            let $pow = |s: $t| {
                let r = s.sqrt();
                r * r.sqrt()
            };
            $body
        } else {
            let beta = <$t>::of($beta);
            let $pow = move |s: $t| s.powf(beta);
            $body
        }
    };
}

impl<T: Float> Parameters<T> for Lrn<T> {}

impl<T: Float> LayerHooks<T> for Lrn<T> {
    fn operator(&self) -> Option<crate::Operator> {
        Some(crate::Operator::Lrn {
            size: self.size,
            alpha: self.alpha,
            beta: self.beta,
            k: self.k,
        })
    }

    /// Per element: a multiply-add for each of the `n` squares summed, then
    /// the scale's multiply-add, the power and the quotient.
    fn forward_flops(&self, input: &[usize]) -> Option<u64> {
        self.output_shape(input).ok()?;
        crate::elements(input)?.checked_mul(2 * self.size as u64 + 4)
    }
}

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
        reuse(&mut self.scale, x.shape());
        reuse(&mut self.out, x.shape());
        let x = tensor4d::contiguous(&x);
        let (alpha, k, size) = (T::of(self.alpha), T::of(self.k), self.size);
        let len = c * hw;
        let per = per_part(n) * len;
        let scale = self.scale.as_slice_mut().unwrap_or_else(|| unreachable!("owned"));
        let out = self.out.as_slice_mut().unwrap_or_else(|| unreachable!("owned"));
        with_pow_beta!(T, self.beta, |pow| x
            .par_chunks(per)
            .zip(scale.par_chunks_mut(per))
            .zip(out.par_chunks_mut(per))
            .for_each(|((xs, ss), os)| {
                kernels::with_simd(
                    #[inline(always)]
                    |_| {
                        for ((img, s_img), o_img) in xs
                            .chunks_exact(len)
                            .zip(ss.chunks_exact_mut(len))
                            .zip(os.chunks_exact_mut(len))
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
                                for ((s, o), &a) in
                                    s.iter_mut().zip(&mut o_img[plane.clone()]).zip(&img[plane])
                                {
                                    *s = k + alpha * *s;
                                    *o = a / pow(*s);
                                }
                            }
                        }
                    },
                );
            }));
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
        reuse(&mut self.dx, self.out.shape());
        let coef = T::of(2.0 * self.alpha * self.beta);
        let size = self.size;
        let len = c * hw;
        let per = per_part(n);
        self.work.resize_with(n.div_ceil(per), Vec::new);
        let scale = self.scale.as_slice().unwrap_or_else(|| unreachable!("owned"));
        let out = self.out.as_slice().unwrap_or_else(|| unreachable!("owned"));
        let dx = self.dx.as_slice_mut().unwrap_or_else(|| unreachable!("owned"));
        with_pow_beta!(T, self.beta, |pow| dx
            .par_chunks_mut(per * len)
            .zip(self.work.par_iter_mut())
            .enumerate()
            .for_each(|(part, (dxs, t))| {
                t.resize(len, T::zero());
                kernels::with_simd(
                    #[inline(always)]
                    |_| {
                        for (i, dx_img) in dxs.chunks_exact_mut(len).enumerate() {
                            let img = (part * per + i) * len..(part * per + i + 1) * len;
                            let (s, b, g) = (&scale[img.clone()], &out[img.clone()], &dout[img]);
                            // t_i = db_i b_i / s_i, each once for the image.
                            for (((t, &g), &b), &s) in t.iter_mut().zip(g).zip(b).zip(s) {
                                *t = g * b / s;
                            }
                            for m in 0..c {
                                let plane = m * hw..(m + 1) * hw;
                                // Cross term first: the sum of t over m's neighbours.
                                let d = &mut dx_img[plane.clone()];
                                d.fill(T::zero());
                                for i in neighbours(size, m, c) {
                                    for (d, &t) in d.iter_mut().zip(&t[i * hw..(i + 1) * hw]) {
                                        *d += t;
                                    }
                                }
                                // da_m = db_m / s_m^beta - 2 alpha beta a_m sum, with a_m = b_m s_m^beta.
                                let (g, b, s) = (&g[plane.clone()], &b[plane.clone()], &s[plane]);
                                for (((d, &g), &b), &s) in d.iter_mut().zip(g).zip(b).zip(s) {
                                    let sb = pow(s);
                                    *d = g / sb - coef * (b * sb) * *d;
                                }
                            }
                        }
                    },
                );
            }));
        Ok(&self.dx)
    }
}
