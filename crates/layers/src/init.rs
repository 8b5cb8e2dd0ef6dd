use ndarray::{ArrayD, IxDyn};
use rand::Rng;
use rand_distr::{Distribution, Normal};
use tensor4d::Float;

/// How a layer's weights are drawn; biases always start at zero.
///
/// `fan_in` is `C*FH*FW` for a convolution and the input width for an affine
/// layer, as in `MODELS.md`.
///
/// ```
/// use layers::Init;
/// assert_eq!(Init::Normal { std: 0.01 }.std(4320), 0.01);
/// assert_eq!(Init::Xavier.std(100), 0.1);           // sqrt(1/fan_in)
/// assert!((Init::He.std(50) - 0.2).abs() < 1e-15);  // sqrt(2/fan_in)
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// N(0, std^2), the chapter's `weight_init_std` (0.01 in SimpleConvNet).
    Normal {
        /// Standard deviation.
        std: f64,
    },
    /// Xavier/Glorot normal, std = sqrt(1/fan_in): suits sigmoid and tanh.
    Xavier,
    /// He/Kaiming normal, std = sqrt(2/fan_in): suits ReLU.
    He,
}

impl Init {
    /// The standard deviation for a layer with `fan_in` inputs per output.
    pub fn std(&self, fan_in: usize) -> f64 {
        let fan_in = fan_in.max(1) as f64;
        match *self {
            Init::Normal { std } => std,
            Init::Xavier => (1.0 / fan_in).sqrt(),
            Init::He => (2.0 / fan_in).sqrt(),
        }
    }

    /// A tensor of shape `shape` drawn from N(0, std(fan_in)^2). Draws in f64
    /// and rounds, so f32 and f64 layers built from one seed hold the same
    /// weights up to rounding.
    pub fn sample<T: Float, R: Rng + ?Sized>(
        &self,
        shape: &[usize],
        fan_in: usize,
        rng: &mut R,
    ) -> Result<ArrayD<T>, String> {
        let std = self.std(fan_in);
        let normal =
            Normal::new(0.0, std).map_err(|e| format!("weight init std {std} is not usable: {e}"))?;
        Ok(ArrayD::from_shape_simple_fn(IxDyn(shape), || {
            T::of(normal.sample(rng))
        }))
    }
}
