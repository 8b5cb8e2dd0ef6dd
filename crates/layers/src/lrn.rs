use ndarray::{ArrayD, ArrayViewD};
use tensor4d::{Float, ShapeError, reuse};

use crate::{Error, Layer, Mode, Parameters, check_dout, shape_error};

/// Local response normalisation across channels, as AlexNet uses it:
/// `b_c = a_c / (k + alpha * sum of a_j^2 over the n channels centred on c)^beta`
/// (alpha is not divided by n; the window is clipped at the first and last
/// channel). Keeps its input and the denominators' base `s_c`, which backward
/// needs:
/// `da_m = db_m s_m^-beta - 2 alpha beta a_m * sum_{i near m} db_i a_i s_i^(-beta-1)`.
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
    /// `k + alpha * windowed sum of squares`, per element.
    scale: ArrayD<T>,
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

impl<T: Float> Parameters<T> for Lrn<T> {}

impl<T: Float> Layer<T> for Lrn<T> {
    fn describe(&self) -> String {
        format!(
            "LRN n={} alpha={} beta={} k={}",
            self.size, self.alpha, self.beta, self.k
        )
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, Error> {
        if input.len() != 4 {
            return Err(shape_error(
                self,
                ShapeError::Rank {
                    expected: "4 (N, C, H, W)",
                    found: input.to_vec(),
                },
            ));
        }
        tensor4d::check_nonempty(input).map_err(|e| shape_error(self, e))?;
        Ok(input.to_vec())
    }

    fn forward(&mut self, x: ArrayViewD<'_, T>, _mode: Mode) -> Result<&ArrayD<T>, Error> {
        self.output_shape(x.shape())?;
        let (c, hw) = (x.shape()[1], x.shape()[2] * x.shape()[3]);
        reuse(&mut self.x, x.shape());
        self.x.assign(&x);
        reuse(&mut self.scale, x.shape());
        reuse(&mut self.out, x.shape());
        let (alpha, k, beta) = (T::of(self.alpha), T::of(self.k), T::of(self.beta));
        let xs = self
            .x
            .as_slice()
            .unwrap_or_else(|| unreachable!("owned buffers are contiguous"));
        let scale = self.scale.as_slice_mut().unwrap_or_else(|| unreachable!());
        let out = self.out.as_slice_mut().unwrap_or_else(|| unreachable!());
        for (img, (s_img, o_img)) in xs
            .chunks_exact(c * hw)
            .zip(scale.chunks_exact_mut(c * hw).zip(out.chunks_exact_mut(c * hw)))
        {
            for ch in 0..c {
                let s = &mut s_img[ch * hw..(ch + 1) * hw];
                s.fill(T::zero());
                for j in neighbours(self.size, ch, c) {
                    for (acc, &a) in s.iter_mut().zip(&img[j * hw..(j + 1) * hw]) {
                        *acc += a * a;
                    }
                }
                for ((acc, o), &a) in s
                    .iter_mut()
                    .zip(&mut o_img[ch * hw..(ch + 1) * hw])
                    .zip(&img[ch * hw..])
                {
                    *acc = k + alpha * *acc;
                    *o = a * acc.powf(-beta);
                }
            }
        }
        self.ran = true;
        Ok(&self.out)
    }

    fn backward(&mut self, dout: ArrayViewD<'_, T>) -> Result<&ArrayD<T>, Error> {
        check_dout(&|| self.describe(), self.ran, self.out.shape(), dout.shape())?;
        let (c, hw) = (dout.shape()[1], dout.shape()[2] * dout.shape()[3]);
        let dout = tensor4d::contiguous(&dout);
        reuse(&mut self.dx, self.x.shape());
        let (coef, beta) = (T::of(2.0 * self.alpha * self.beta), T::of(self.beta));
        let xs = self.x.as_slice().unwrap_or_else(|| unreachable!());
        let scale = self.scale.as_slice().unwrap_or_else(|| unreachable!());
        let out = self.out.as_slice().unwrap_or_else(|| unreachable!());
        let dx = self.dx.as_slice_mut().unwrap_or_else(|| unreachable!());
        let len = c * hw;
        for (i, dx_img) in dx.chunks_exact_mut(len).enumerate() {
            let img = i * len..(i + 1) * len;
            let (a, s, b, g) = (
                &xs[img.clone()],
                &scale[img.clone()],
                &out[img.clone()],
                &dout[img],
            );
            for m in 0..c {
                let plane = m * hw..(m + 1) * hw;
                // Direct term: db_m * s_m^-beta.
                for p in plane.clone() {
                    dx_img[p] = g[p] * s[p].powf(-beta);
                }
                // Cross term: -2 alpha beta a_m sum_i db_i b_i / s_i  (b_i / s_i = a_i s_i^(-beta-1)).
                for i in neighbours(self.size, m, c) {
                    for p in 0..hw {
                        let q = i * hw + p;
                        dx_img[m * hw + p] -= coef * a[m * hw + p] * g[q] * b[q] / s[q];
                    }
                }
            }
        }
        Ok(&self.dx)
    }
}
