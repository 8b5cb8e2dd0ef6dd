use ndarray::{Array2, ArrayD, ArrayViewD};
use tensor4d::{Float, ShapeError, reuse, reuse2};

use crate::Error;
use crate::flush;

const NAME: &str = "SoftmaxWithLoss";

/// Softmax followed by cross-entropy against integer labels (section 5.6.3),
/// the end of every network here. The loss is the mean over the batch.
///
/// Computed stably: `loss_i = logsumexp(x_i) - x_i[t_i]`, which neither
/// overflows for large scores nor needs the book's `+ 1e-7` inside the log.
/// Keeps the softmax probabilities and the labels, which backward needs:
/// `dx = (y - onehot(t)) / N`.
///
/// Probabilities and gradients that would be subnormal are zero instead.
/// A confident network's scores can lie so far apart that their
/// exponentials are subnormal (`e^-87.3` is f32's smallest normal; the
/// gradients, divided by N, get there sooner), and those would reach the
/// last layer's backward products, where each operation on one costs
/// some CPUs a hundred cycles. What is dropped is less than 2^-126 (f32)
/// or 2^-1022 (f64), beside probabilities that sum to 1.
///
/// ```
/// use layers::SoftmaxWithLoss;
/// use ndarray::ArrayD;
/// let mut sl = SoftmaxWithLoss::<f64>::new();
/// let x = ArrayD::from_shape_vec(vec![1, 3], vec![1000.0, 1000.0, 1000.0]).unwrap();
/// let loss = sl.forward(x.view(), &[2])?;
/// assert!((loss - 3f64.ln()).abs() < 1e-12);
/// let dx = sl.backward()?;
/// assert!((dx[[0, 2]] - (1.0 / 3.0 - 1.0)).abs() < 1e-12);
/// # Ok::<(), layers::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct SoftmaxWithLoss<T> {
    /// Softmax of the last scores, `(N, K)`.
    y: Array2<T>,
    /// The last labels.
    labels: Vec<usize>,
    /// Shape of the last scores (e.g. `(N, K)` or `(N, K, 1, 1)`).
    x_shape: Vec<usize>,
    dx: ArrayD<T>,
}

impl<T: Float> Default for SoftmaxWithLoss<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Float> SoftmaxWithLoss<T> {
    /// A new loss layer: softmax, then the cross-entropy against labels
    /// (section 5.6.3), whose gradient is `(softmax - onehot) / N`.
    ///
    /// ```
    /// use layers::SoftmaxWithLoss;
    /// use ndarray::ArrayD;
    ///
    /// let mut loss = SoftmaxWithLoss::<f64>::new();
    /// // Equal scores for 10 classes: every probability 1/10, the loss ln 10.
    /// let x = ArrayD::zeros(vec![2, 10]);
    /// let l = loss.forward(x.view(), &[3, 7])?;
    /// assert!((l - 10f64.ln()).abs() < 1e-12);
    /// let dx = loss.backward()?;
    /// assert!((dx[[0, 0]] - 0.1 / 2.0).abs() < 1e-15);
    /// assert!((dx[[0, 3]] - (0.1 - 1.0) / 2.0).abs() < 1e-15);
    /// # Ok::<(), layers::Error>(())
    /// ```
    pub fn new() -> Self {
        SoftmaxWithLoss {
            y: Array2::zeros((0, 0)),
            labels: Vec::new(),
            x_shape: Vec::new(),
            dx: ArrayD::zeros(vec![0]),
        }
    }

    /// Mean cross-entropy of `softmax(x)` against `labels`; `x` is `(N, K)`
    /// (any trailing axes are flattened into K) and each label is in `0..K`.
    pub fn forward(&mut self, x: ArrayViewD<'_, T>, labels: &[usize]) -> Result<T, Error> {
        let err = |source| Error::Shape {
            layer: NAME.into(),
            error: source,
        };
        if x.ndim() < 2 {
            return Err(err(ShapeError::Rank {
                expected: "at least 2 (N, classes)",
                found: x.shape().to_vec(),
            }));
        }
        tensor4d::check_nonempty(x.shape()).map_err(err)?;
        let n = x.shape()[0];
        let k = x.len() / n;
        if labels.len() != n {
            return Err(err(ShapeError::mismatch("number of labels", n, labels.len())));
        }
        if let Some((i, &t)) = labels.iter().enumerate().find(|&(_, &t)| t >= k) {
            return Err(Error::invalid(
                NAME,
                format!("label {t} of sample {i} is out of range for {k} classes"),
            ));
        }
        self.x_shape.clear();
        self.x_shape.extend_from_slice(x.shape());
        self.labels.clear();
        self.labels.extend_from_slice(labels);
        reuse2(&mut self.y, (n, k));
        let xs = tensor4d::contiguous(&x);
        let ys = self
            .y
            .as_slice_mut()
            .unwrap_or_else(|| unreachable!("owned buffers are contiguous"));
        let mut total = T::zero();
        for ((row, y), &t) in xs.chunks_exact(k).zip(ys.chunks_exact_mut(k)).zip(labels) {
            let max = row.iter().copied().fold(T::neg_infinity(), T::max);
            let mut sum = T::zero();
            for (yi, &v) in y.iter_mut().zip(row) {
                // Flushed here too, so that no subnormal enters the sum.
                *yi = flush((v - max).exp());
                sum += *yi;
            }
            for yi in y.iter_mut() {
                *yi = flush(*yi / sum);
            }
            total += sum.ln() + max - row[t];
        }
        Ok(total / T::of(n as f64))
    }

    /// The gradient of the mean loss with respect to the last scores,
    /// `(softmax - onehot) / N`, in their shape.
    pub fn backward(&mut self) -> Result<&ArrayD<T>, Error> {
        if self.x_shape.is_empty() {
            return Err(Error::invalid(NAME, "backward called before forward"));
        }
        let (n, k) = self.y.dim();
        reuse(&mut self.dx, &self.x_shape);
        let inv = T::one() / T::of(n as f64);
        let dx = self.dx.as_slice_mut().unwrap_or_else(|| unreachable!());
        let ys = self.y.as_slice().unwrap_or_else(|| unreachable!());
        for ((d, y), &t) in dx.chunks_exact_mut(k).zip(ys.chunks_exact(k)).zip(&self.labels) {
            for (di, &yi) in d.iter_mut().zip(y) {
                *di = flush(yi * inv);
            }
            d[t] -= inv;
        }
        Ok(&self.dx)
    }

    /// The softmax probabilities of the last forward pass, `(N, K)`.
    pub fn probabilities(&self) -> &Array2<T> {
        &self.y
    }
}
