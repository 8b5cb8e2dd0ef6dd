use ndarray::{Array1, ArrayD, IxDyn};
use rand::Rng;
use rand_distr::{Distribution, Normal, Uniform};
use tensor4d::Float;

/// How a layer's weights and biases are drawn. Biases start at zero
/// except under [`Init::PyTorch`].
///
/// `fan_in` is `C*FH*FW` for a convolution and the input width for an affine
/// layer, as in `MODELS.md`.
///
/// ```
/// use layers::Init;
/// assert_eq!(Init::Normal { std: 0.01 }.std(4320), 0.01);
/// assert_eq!(Init::Xavier.std(100), 0.1);           // sqrt(1/fan_in)
/// assert!((Init::He.std(50) - 0.2).abs() < 1e-15);  // sqrt(2/fan_in)
/// assert_eq!(Init::PyTorch.std(12), 1.0 / 6.0);     // U(-b, b), b = sqrt(1/fan_in): b / sqrt(3)
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
    /// PyTorch's default for `Conv2d` and `Linear` (Kaiming uniform with
    /// `a = sqrt(5)`): weights and biases both ~ U(-b, b), b = sqrt(1/fan_in).
    /// Not `MODELS.md`'s, but what a PyTorch model gets when nobody sets it.
    PyTorch,
}

impl Init {
    /// The standard deviation for a layer with `fan_in` inputs per output.
    pub fn std(&self, fan_in: usize) -> f64 {
        let fan_in = fan_in.max(1) as f64;
        match *self {
            Init::Normal { std } => std,
            Init::Xavier => (1.0 / fan_in).sqrt(),
            Init::He => (2.0 / fan_in).sqrt(),
            Init::PyTorch => (1.0 / (3.0 * fan_in)).sqrt(),
        }
    }

    /// Weights of shape `shape`: N(0, std(fan_in)^2), or U(-b, b) for
    /// [`Init::PyTorch`]. Draws in f64 and rounds, so f32 and f64 layers
    /// built from one seed hold the same weights up to rounding.
    pub fn sample<T: Float, R: Rng + ?Sized>(
        &self,
        shape: &[usize],
        fan_in: usize,
        rng: &mut R,
    ) -> Result<ArrayD<T>, String> {
        // Refuse a shape whose size cannot even be addressed (ndarray
        // would panic); a merely large one is the caller's to limit.
        let len = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        if len.is_none_or(|n| n > isize::MAX as usize / std::mem::size_of::<T>()) {
            return Err(format!("weights of shape {shape:?} are too many to address"));
        }
        if *self == Init::PyTorch {
            let u = pytorch_uniform(fan_in);
            return Ok(ArrayD::from_shape_simple_fn(IxDyn(shape), || {
                T::of(u.sample(rng))
            }));
        }
        let std = self.std(fan_in);
        let normal =
            Normal::new(0.0, std).map_err(|e| format!("weight init std {std} is not usable: {e}"))?;
        Ok(ArrayD::from_shape_simple_fn(IxDyn(shape), || {
            T::of(normal.sample(rng))
        }))
    }

    /// Biases for `len` outputs, drawn after the weights: zeros (drawing
    /// nothing, so the weights that follow are unchanged) except for
    /// [`Init::PyTorch`].
    pub fn sample_bias<T: Float, R: Rng + ?Sized>(
        &self,
        len: usize,
        fan_in: usize,
        rng: &mut R,
    ) -> Array1<T> {
        match self {
            Init::PyTorch => {
                let u = pytorch_uniform(fan_in);
                Array1::from_shape_simple_fn(len, || T::of(u.sample(rng)))
            }
            _ => Array1::zeros(len),
        }
    }
}

/// [`Init::PyTorch`]'s U(-b, b), b = sqrt(1/fan_in), drawn in f64.
fn pytorch_uniform(fan_in: usize) -> Uniform<f64> {
    let b = (1.0 / fan_in.max(1) as f64).sqrt();
    Uniform::new_inclusive(-b, b).unwrap_or_else(|_| unreachable!("b is finite and positive"))
}
