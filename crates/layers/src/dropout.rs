use ndarray::{ArrayD, ArrayViewD, Zip};
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64;
use tensor4d::{Float, reuse};

use crate::{Error, Layer, LayerHooks, Mode, Parameters, check_dout};

/// Inverted dropout (section 6.4.3, as AlexNet uses it): in training each
/// input is zeroed with probability `ratio` and the survivors are scaled by
/// `1 / (1 - ratio)`, so inference is the identity. Keeps the scaled mask.
///
/// The n-th training mask comes from a generator seeded with the layer's
/// seed and n, so the same seed gives the same masks, and the whole state
/// of the noise is one counter ([`LayerHooks::noise_state`]).
///
/// ```
/// use layers::{Dropout, Layer, Mode};
/// use ndarray::ArrayD;
/// let mut drop = Dropout::<f64>::new(0.5, 7)?;
/// let x = ArrayD::ones(vec![4, 1000]);
/// let y = drop.forward(x.view(), Mode::Train)?;
/// assert!(y.iter().all(|&v| v == 0.0 || v == 2.0));
/// assert_eq!(drop.forward(x.view(), Mode::Inference)?, &x);
/// # Ok::<(), layers::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Dropout<T> {
    ratio: f64,
    seed: u64,
    /// Masks drawn so far.
    drawn: u64,
    hold: bool,
    /// 0 or 1/(1-ratio) per element in training; empty after inference.
    mask: ArrayD<T>,
    trained: bool,
    out: ArrayD<T>,
    ran: bool,
    dx: ArrayD<T>,
}

impl<T: Float> Dropout<T> {
    /// Dropout of `ratio` (in `[0, 1)`), its masks drawn from `seed`.
    /// Kept inputs are scaled by `1/(1-ratio)` in training, so inference
    /// passes its input through unchanged.
    ///
    /// ```
    /// use layers::{Dropout, Layer, Mode};
    /// use ndarray::ArrayD;
    ///
    /// let mut drop = Dropout::<f32>::new(0.5, 0)?;
    /// let x = ArrayD::<f32>::ones(vec![1, 10_000]);
    /// let y = drop.forward(x.view(), Mode::Train)?;
    /// let kept = y.iter().filter(|&&v| v == 2.0).count();
    /// assert!(y.iter().all(|&v| v == 0.0 || v == 2.0));
    /// assert!((4_800..5_200).contains(&kept));
    /// assert_eq!(drop.forward(x.view(), Mode::Inference)?, &x);
    /// assert!(Dropout::<f32>::new(1.0, 0).is_err());
    /// # Ok::<(), layers::Error>(())
    /// ```
    pub fn new(ratio: f64, seed: u64) -> Result<Self, Error> {
        if !(0.0..1.0).contains(&ratio) {
            return Err(Error::invalid(
                format!("Dropout {ratio}"),
                format!("ratio must be in [0, 1), found {ratio}"),
            ));
        }
        Ok(Dropout {
            ratio,
            seed,
            drawn: 0,
            hold: false,
            mask: ArrayD::zeros(vec![0]),
            trained: false,
            out: ArrayD::zeros(vec![0]),
            ran: false,
            dx: ArrayD::zeros(vec![0]),
        })
    }

    /// The probability of dropping an input.
    pub fn ratio(&self) -> f64 {
        self.ratio
    }
}

impl<T: Float> Parameters<T> for Dropout<T> {}

impl<T: Float> Layer<T> for Dropout<T> {
    fn describe(&self) -> String {
        format!("Dropout {}", self.ratio)
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, Error> {
        Ok(input.to_vec())
    }

    fn forward(&mut self, x: ArrayViewD<'_, T>, mode: Mode) -> Result<&ArrayD<T>, Error> {
        reuse(&mut self.out, x.shape());
        self.trained = mode == Mode::Train;
        if self.trained {
            let keep_mask = self.hold && self.mask.shape() == x.shape();
            if !keep_mask {
                reuse(&mut self.mask, x.shape());
                let scale = T::of(1.0 / (1.0 - self.ratio));
                let mut rng =
                    Pcg64::seed_from_u64(self.seed ^ self.drawn.wrapping_mul(0x9e37_79b9_7f4a_7c15));
                self.drawn += 1;
                for m in self.mask.iter_mut() {
                    *m = if rng.random::<f64>() >= self.ratio {
                        scale
                    } else {
                        T::zero()
                    };
                }
            }
            Zip::from(&mut self.out)
                .and(&x)
                .and(&self.mask)
                .for_each(|o, &v, &m| *o = v * m);
        } else {
            self.out.assign(&x);
        }
        self.ran = true;
        Ok(&self.out)
    }

    fn backward(&mut self, dout: ArrayViewD<'_, T>) -> Result<&ArrayD<T>, Error> {
        check_dout(&|| self.describe(), self.ran, self.out.shape(), dout.shape())?;
        reuse(&mut self.dx, dout.shape());
        if self.trained {
            Zip::from(&mut self.dx)
                .and(&dout)
                .and(&self.mask)
                .for_each(|d, &g, &m| *d = g * m);
        } else {
            self.dx.assign(&dout);
        }
        Ok(&self.dx)
    }
}

impl<T: Float> LayerHooks<T> for Dropout<T> {
    fn operator(&self) -> Option<crate::Operator> {
        Some(crate::Operator::Dropout)
    }

    /// Nothing: inverted dropout is the identity at inference.
    fn forward_flops(&self, _input: &[usize]) -> Option<u64> {
        Some(0)
    }

    fn hold_noise(&mut self, hold: bool) {
        self.hold = hold;
    }

    fn noise_state(&self) -> u64 {
        self.drawn
    }

    fn set_noise_state(&mut self, state: u64) {
        self.drawn = state;
    }
}
