//! The update rules of the book's `common/optimizer.py` (section 6.1).

use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD, Zip};
use tensor4d::Float;

use crate::{Error, Parameters};

/// Updates parameters from the gradients the last backward pass left.
///
/// ```
/// use layers::{Affine, Init, Layer, Mode, Optimizer, Parameters, Sgd};
/// use ndarray::ArrayD;
/// use rand::SeedableRng;
/// let mut fc = Affine::<f64>::new(3, 2, Init::He, &mut rand::rngs::StdRng::seed_from_u64(1))?;
/// let x = ArrayD::ones(vec![4, 3]);
/// let before = fc.weight().clone();
/// fc.forward(x.view(), Mode::Train)?;
/// fc.backward(ArrayD::ones(vec![4, 2]).view())?;
/// Sgd::new(0.1).step(&mut fc)?;
/// // dW = x^T dout = 4 everywhere, so each weight moved by -0.4.
/// assert!((&before - fc.weight()).iter().all(|d| (d - 0.4).abs() < 1e-12));
/// # Ok::<(), layers::Error>(())
/// ```
pub trait Optimizer<T: Float> {
    /// Name and hyper-parameters, e.g. `Adam lr=0.001`.
    fn describe(&self) -> String;

    /// One update of every parameter `params` visits.
    fn step(&mut self, params: &mut dyn Parameters<T>) -> Result<(), Error>;
}

/// Per-parameter state tensors (`K` of them per parameter), created on the
/// first step from the parameters' names and shapes and checked against them
/// on every later step, so that an optimizer applied to another network is an
/// error rather than a silent mix-up.
#[derive(Clone, Debug, Default)]
struct Slots<T, const K: usize> {
    names: Vec<String>,
    shapes: Vec<Vec<usize>>,
    state: Vec<[ArrayD<T>; K]>,
}

impl<T: Float, const K: usize> Slots<T, K> {
    /// Calls `update(value, grad, state)` for each parameter; on a mismatch,
    /// returns what is wrong (the caller adds its name).
    fn visit(
        &mut self,
        params: &mut dyn Parameters<T>,
        mut update: impl FnMut(ArrayViewMutD<'_, T>, ArrayViewD<'_, T>, &mut [ArrayD<T>; K]),
    ) -> Result<(), String> {
        let first = self.names.is_empty();
        let mut index = 0;
        let mut problem: Option<String> = None;
        params.visit_params_mut(&mut |name, value, grad| {
            if problem.is_some() {
                return;
            }
            if value.shape() != grad.shape() {
                problem = Some(format!(
                    "parameter {name} has shape {:?} but its gradient {:?}",
                    value.shape(),
                    grad.shape()
                ));
                return;
            }
            if first {
                self.names.push(name.to_string());
                self.shapes.push(value.shape().to_vec());
                self.state
                    .push(std::array::from_fn(|_| ArrayD::zeros(value.shape())));
            }
            match (self.names.get(index), self.shapes.get(index)) {
                (Some(n), Some(s)) if n == name && s == value.shape() => {
                    update(value, grad, &mut self.state[index])
                }
                (Some(n), Some(s)) => {
                    problem = Some(format!(
                        "parameter {index} is {name} {:?}, but the optimizer's state was made for {n} {s:?}",
                        value.shape()
                    ))
                }
                _ => problem = Some(format!("parameter {name} was not there on the first step")),
            }
            index += 1;
        });
        if problem.is_none() && index != self.names.len() {
            problem = Some(format!(
                "the network has {index} parameter tensors, the optimizer's state {}",
                self.names.len()
            ));
        }
        problem.map_or(Ok(()), Err)
    }
}

/// Stochastic gradient descent: `p -= lr * g`.
#[derive(Clone, Debug)]
pub struct Sgd<T> {
    lr: T,
    slots: Slots<T, 0>,
}

impl<T: Float> Sgd<T> {
    /// SGD with learning rate `lr` (the book's default is 0.01).
    pub fn new(lr: f64) -> Self {
        Sgd {
            lr: T::of(lr),
            slots: Slots::default(),
        }
    }
}

impl<T: Float> Optimizer<T> for Sgd<T> {
    fn describe(&self) -> String {
        format!("SGD lr={}", self.lr)
    }

    fn step(&mut self, params: &mut dyn Parameters<T>) -> Result<(), Error> {
        let lr = self.lr;
        // No state, but visiting through Slots still checks the names.
        let result = self.slots.visit(params, |mut p, g, _| {
            Zip::from(&mut p).and(&g).for_each(|p, &g| *p -= lr * g)
        });
        result.map_err(|m| Error::invalid(self.describe(), m))
    }
}

/// Momentum: `v = momentum * v - lr * g; p += v`.
#[derive(Clone, Debug)]
pub struct Momentum<T> {
    lr: T,
    momentum: T,
    slots: Slots<T, 1>,
}

impl<T: Float> Momentum<T> {
    /// Momentum with learning rate `lr` and coefficient `momentum` (book: 0.01, 0.9).
    pub fn new(lr: f64, momentum: f64) -> Self {
        Momentum {
            lr: T::of(lr),
            momentum: T::of(momentum),
            slots: Slots::default(),
        }
    }
}

impl<T: Float> Optimizer<T> for Momentum<T> {
    fn describe(&self) -> String {
        format!("Momentum lr={} momentum={}", self.lr, self.momentum)
    }

    fn step(&mut self, params: &mut dyn Parameters<T>) -> Result<(), Error> {
        let (lr, mu) = (self.lr, self.momentum);
        let result = self.slots.visit(params, |mut p, g, [v]| {
            Zip::from(&mut p).and(&g).and(v).for_each(|p, &g, v| {
                *v = mu * *v - lr * g;
                *p += *v;
            })
        });
        result.map_err(|m| Error::invalid(self.describe(), m))
    }
}

/// AdaGrad: `h += g^2; p -= lr * g / (sqrt(h) + 1e-7)`.
#[derive(Clone, Debug)]
pub struct AdaGrad<T> {
    lr: T,
    slots: Slots<T, 1>,
}

impl<T: Float> AdaGrad<T> {
    /// AdaGrad with learning rate `lr` (book: 0.01).
    pub fn new(lr: f64) -> Self {
        AdaGrad {
            lr: T::of(lr),
            slots: Slots::default(),
        }
    }
}

impl<T: Float> Optimizer<T> for AdaGrad<T> {
    fn describe(&self) -> String {
        format!("AdaGrad lr={}", self.lr)
    }

    fn step(&mut self, params: &mut dyn Parameters<T>) -> Result<(), Error> {
        let lr = self.lr;
        let eps = T::of(1e-7);
        let result = self.slots.visit(params, |mut p, g, [h]| {
            Zip::from(&mut p).and(&g).and(h).for_each(|p, &g, h| {
                *h += g * g;
                *p -= lr * g / (h.sqrt() + eps);
            })
        });
        result.map_err(|m| Error::invalid(self.describe(), m))
    }
}

/// Adam as the book's companion code writes it: with `t` the step number,
/// `lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t)`, `m += (1 - beta1)(g - m)`,
/// `v += (1 - beta2)(g^2 - v)`, `p -= lr_t * m / (sqrt(v) + 1e-7)`.
#[derive(Clone, Debug)]
pub struct Adam<T> {
    lr: f64,
    beta1: f64,
    beta2: f64,
    t: u64,
    slots: Slots<T, 2>,
}

impl<T: Float> Adam<T> {
    /// Adam with learning rate `lr` and the usual betas 0.9 and 0.999.
    pub fn new(lr: f64) -> Self {
        Self::with_betas(lr, 0.9, 0.999)
    }

    /// Adam with explicit betas.
    pub fn with_betas(lr: f64, beta1: f64, beta2: f64) -> Self {
        Adam {
            lr,
            beta1,
            beta2,
            t: 0,
            slots: Slots::default(),
        }
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.t
    }
}

impl<T: Float> Optimizer<T> for Adam<T> {
    fn describe(&self) -> String {
        format!("Adam lr={} beta1={} beta2={}", self.lr, self.beta1, self.beta2)
    }

    fn step(&mut self, params: &mut dyn Parameters<T>) -> Result<(), Error> {
        self.t += 1;
        let t = self.t as i32;
        // Bias correction in f64, so f32 training does not lose it early on.
        let lr_t = T::of(self.lr * (1.0 - self.beta2.powi(t)).sqrt() / (1.0 - self.beta1.powi(t)));
        let (b1, b2) = (T::of(1.0 - self.beta1), T::of(1.0 - self.beta2));
        let eps = T::of(1e-7);
        let result = self.slots.visit(params, |mut p, g, [m, v]| {
            Zip::from(&mut p).and(&g).and(m).and(v).for_each(|p, &g, m, v| {
                *m += b1 * (g - *m);
                *v += b2 * (g * g - *v);
                *p -= lr_t * *m / (v.sqrt() + eps);
            })
        });
        result.map_err(|m| {
            self.t -= 1;
            Error::invalid(self.describe(), m)
        })
    }
}
