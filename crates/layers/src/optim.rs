//! The update rules of the book's `common/optimizer.py` (section 6.1).

use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD, Zip};
use rayon::prelude::*;
use tensor4d::Float;

use crate::{Error, Parameters, flush};

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
pub trait Optimizer<T: Float>: Send {
    /// Name and hyper-parameters, e.g. `Adam lr=0.001`.
    fn describe(&self) -> String {
        self.spec().to_string()
    }

    /// The rule and its hyper-parameters, enough to make a fresh copy.
    fn spec(&self) -> OptimizerSpec;

    /// One update of every parameter `params` visits.
    fn step(&mut self, params: &mut dyn Parameters<T>) -> Result<(), Error>;

    /// Everything the optimizer has accumulated (steps taken, per-parameter
    /// tensors), so that training can stop and resume exactly.
    fn state(&self) -> OptimizerState<T>;

    /// [`Optimizer::state`] without copying: the step count and views of
    /// the same tensors, with the same names, in the same order (what a
    /// checkpoint writer needs).
    fn state_views(&self) -> (u64, Vec<(String, ArrayViewD<'_, T>)>);

    /// Restores what [`Optimizer::state`] returned.
    fn set_state(&mut self, state: OptimizerState<T>) -> Result<(), Error>;
}

/// An optimizer's accumulated state: tensors named `<slot>.<parameter>`
/// (`m.conv1.weight`, `v.conv1.weight` for Adam) and the step count.
#[derive(Clone, Debug, PartialEq)]
pub struct OptimizerState<T> {
    /// Steps taken.
    pub steps: u64,
    /// Per-parameter tensors, in the parameters' visiting order.
    pub tensors: Vec<(String, ArrayD<T>)>,
}

/// Which update rule, with its hyper-parameters; `Display` and `FromStr`
/// round-trip (`adam lr=0.001 beta1=0.9 beta2=0.999`), so a checkpoint can
/// record it.
///
/// ```
/// use layers::OptimizerSpec;
/// let spec: OptimizerSpec = "momentum lr=0.01 momentum=0.9".parse().unwrap();
/// assert_eq!(spec, OptimizerSpec::Momentum { lr: 0.01, momentum: 0.9 });
/// assert_eq!(spec.to_string().parse::<OptimizerSpec>().unwrap(), spec);
/// let adam = OptimizerSpec::adam(0.001).build::<f32>();
/// assert_eq!(adam.describe(), "adam lr=0.001 beta1=0.9 beta2=0.999");
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OptimizerSpec {
    /// [`Sgd`].
    Sgd {
        /// Learning rate.
        lr: f64,
    },
    /// [`Momentum`].
    Momentum {
        /// Learning rate.
        lr: f64,
        /// Momentum coefficient.
        momentum: f64,
    },
    /// [`AdaGrad`].
    AdaGrad {
        /// Learning rate.
        lr: f64,
    },
    /// [`Adam`].
    Adam {
        /// Learning rate.
        lr: f64,
        /// First-moment decay.
        beta1: f64,
        /// Second-moment decay.
        beta2: f64,
    },
}

impl OptimizerSpec {
    /// Adam with the usual betas.
    pub fn adam(lr: f64) -> Self {
        OptimizerSpec::Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
        }
    }

    /// A fresh optimizer of this kind.
    pub fn build<T: Float>(&self) -> Box<dyn Optimizer<T>> {
        match *self {
            OptimizerSpec::Sgd { lr } => Box::new(Sgd::new(lr)),
            OptimizerSpec::Momentum { lr, momentum } => Box::new(Momentum::new(lr, momentum)),
            OptimizerSpec::AdaGrad { lr } => Box::new(AdaGrad::new(lr)),
            OptimizerSpec::Adam { lr, beta1, beta2 } => Box::new(Adam::with_betas(lr, beta1, beta2)),
        }
    }
}

impl std::fmt::Display for OptimizerSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OptimizerSpec::Sgd { lr } => write!(f, "sgd lr={lr}"),
            OptimizerSpec::Momentum { lr, momentum } => write!(f, "momentum lr={lr} momentum={momentum}"),
            OptimizerSpec::AdaGrad { lr } => write!(f, "adagrad lr={lr}"),
            OptimizerSpec::Adam { lr, beta1, beta2 } => write!(f, "adam lr={lr} beta1={beta1} beta2={beta2}"),
        }
    }
}

impl std::str::FromStr for OptimizerSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = |why: String| Error::invalid("optimizer", format!("{s:?}: {why}"));
        let mut words = s.split_whitespace();
        let kind = words.next().ok_or_else(|| bad("empty".into()))?;
        let mut values = std::collections::HashMap::new();
        for w in words {
            let (k, v) = w
                .split_once('=')
                .ok_or_else(|| bad(format!("{w:?} is not key=value")))?;
            let v: f64 = v.parse().map_err(|_| bad(format!("{v:?} is not a number")))?;
            values.insert(k, v);
        }
        let get = |k: &str| values.get(k).copied().ok_or_else(|| bad(format!("missing {k}")));
        Ok(match kind {
            "sgd" => OptimizerSpec::Sgd { lr: get("lr")? },
            "momentum" => OptimizerSpec::Momentum {
                lr: get("lr")?,
                momentum: get("momentum")?,
            },
            "adagrad" => OptimizerSpec::AdaGrad { lr: get("lr")? },
            "adam" => OptimizerSpec::Adam {
                lr: get("lr")?,
                beta1: get("beta1")?,
                beta2: get("beta2")?,
            },
            other => return Err(bad(format!("unknown optimizer {other:?}"))),
        })
    }
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
    /// The state tensors, named `<slot name>.<parameter>`.
    fn export(&self, slot_names: [&str; K]) -> Vec<(String, ArrayD<T>)> {
        let mut out = Vec::new();
        for (k, slot) in slot_names.iter().enumerate() {
            for (name, st) in self.names.iter().zip(&self.state) {
                out.push((format!("{slot}.{name}"), st[k].clone()));
            }
        }
        out
    }

    /// [`Slots::export`] as views.
    fn views(&self, slot_names: [&str; K]) -> Vec<(String, ArrayViewD<'_, T>)> {
        let mut out = Vec::new();
        for (k, slot) in slot_names.iter().enumerate() {
            for (name, st) in self.names.iter().zip(&self.state) {
                out.push((format!("{slot}.{name}"), st[k].view()));
            }
        }
        out
    }

    /// Restores exported tensors (slot by slot, as [`Slots::export`] lists
    /// them); every slot must hold the same parameters with the same shapes.
    fn import(&mut self, slot_names: [&str; K], tensors: Vec<(String, ArrayD<T>)>) -> Result<(), String> {
        let per_slot = tensors.len().checked_div(K).unwrap_or(0);
        if per_slot * K != tensors.len() {
            return Err(format!(
                "{} state tensors for {K} slots per parameter",
                tensors.len()
            ));
        }
        let mut groups: Vec<std::vec::IntoIter<(String, ArrayD<T>)>> = Vec::with_capacity(K);
        let mut rest = tensors.into_iter();
        for _ in 0..K {
            groups.push(rest.by_ref().take(per_slot).collect::<Vec<_>>().into_iter());
        }
        let (mut names, mut shapes, mut state) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..per_slot {
            let mut param: Option<(String, Vec<usize>)> = None;
            let mut tensors: Vec<ArrayD<T>> = Vec::with_capacity(K);
            for (group, slot) in groups.iter_mut().zip(slot_names) {
                let (name, t) = group.next().ok_or("state tensors ran out")?;
                let p = name
                    .strip_prefix(slot)
                    .and_then(|p| p.strip_prefix('.'))
                    .ok_or_else(|| format!("state tensor {name} is not of slot {slot}"))?;
                match &param {
                    None => param = Some((p.to_string(), t.shape().to_vec())),
                    Some((q, shape)) if q == p && shape.as_slice() == t.shape() => {}
                    Some((q, _)) => return Err(format!("state tensor {name} does not match {slot}.{q}")),
                }
                tensors.push(t);
            }
            let (name, shape) = param.unwrap_or_default();
            names.push(name);
            shapes.push(shape);
            let mut it = tensors.into_iter();
            state.push(std::array::from_fn(|_| {
                it.next().unwrap_or_else(|| unreachable!("K tensors pushed"))
            }));
        }
        (self.names, self.shapes, self.state) = (names, shapes, state);
        Ok(())
    }

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
    lr: f64,
    slots: Slots<T, 0>,
}

impl<T: Float> Sgd<T> {
    /// SGD with learning rate `lr` (the book's default is 0.01).
    ///
    /// ```
    /// use layers::{Affine, Layer, Mode, Optimizer, Sgd};
    /// use ndarray::{ArrayD, array};
    ///
    /// let mut fc = Affine::from_weights(array![[1.0f64]], array![0.0])?;
    /// fc.forward(ArrayD::from_elem(vec![1, 1], 2.0).view(), Mode::Train)?;
    /// fc.backward(ArrayD::ones(vec![1, 1]).view())?; // dW = x = 2, db = 1
    /// Sgd::new(0.1).step(&mut fc)?;
    /// assert!((fc.weight()[[0, 0]] - 0.8).abs() < 1e-15); // 1 - 0.1 * 2
    /// assert!((fc.bias()[0] + 0.1).abs() < 1e-15);
    /// # Ok::<(), layers::Error>(())
    /// ```
    pub fn new(lr: f64) -> Self {
        Sgd {
            lr,
            slots: Slots::default(),
        }
    }
}

impl<T: Float> Optimizer<T> for Sgd<T> {
    fn spec(&self) -> OptimizerSpec {
        OptimizerSpec::Sgd { lr: self.lr }
    }

    fn state(&self) -> OptimizerState<T> {
        OptimizerState {
            steps: 0,
            tensors: Vec::new(),
        }
    }

    fn state_views(&self) -> (u64, Vec<(String, ArrayViewD<'_, T>)>) {
        (0, Vec::new())
    }

    fn set_state(&mut self, state: OptimizerState<T>) -> Result<(), Error> {
        self.slots
            .import([], state.tensors)
            .map_err(|m| Error::invalid(self.describe(), m))
    }

    fn step(&mut self, params: &mut dyn Parameters<T>) -> Result<(), Error> {
        let lr = T::of(self.lr);
        // No state, but visiting through Slots still checks the names.
        let result = self.slots.visit(params, |mut p, g, _| {
            Zip::from(&mut p).and(&g).for_each(|p, &g| *p -= lr * g)
        });
        result.map_err(|m| Error::invalid(self.describe(), m))
    }
}

/// Momentum: `v = momentum * v - lr * g; p += v`, with `v` flushed to zero
/// where it would be subnormal.
#[derive(Clone, Debug)]
pub struct Momentum<T> {
    lr: f64,
    momentum: f64,
    slots: Slots<T, 1>,
}

impl<T: Float> Momentum<T> {
    /// Momentum with learning rate `lr` and coefficient `momentum` (book: 0.01, 0.9):
    /// `v = momentum v - lr g`, `p += v` (section 6.1.4).
    ///
    /// ```
    /// use layers::{Affine, Layer, Mode, Momentum, Optimizer};
    /// use ndarray::{ArrayD, array};
    ///
    /// let mut fc = Affine::from_weights(array![[0.0f64]], array![0.0])?;
    /// fc.forward(ArrayD::ones(vec![1, 1]).view(), Mode::Train)?;
    /// fc.backward(ArrayD::ones(vec![1, 1]).view())?; // dW = 1
    /// let mut opt = Momentum::new(0.1, 0.9);
    /// opt.step(&mut fc)?; // v = -0.1
    /// opt.step(&mut fc)?; // v = 0.9 * -0.1 - 0.1 = -0.19
    /// assert!((fc.weight()[[0, 0]] + 0.29).abs() < 1e-12);
    /// # Ok::<(), layers::Error>(())
    /// ```
    pub fn new(lr: f64, momentum: f64) -> Self {
        Momentum {
            lr,
            momentum,
            slots: Slots::default(),
        }
    }
}

impl<T: Float> Optimizer<T> for Momentum<T> {
    fn spec(&self) -> OptimizerSpec {
        OptimizerSpec::Momentum {
            lr: self.lr,
            momentum: self.momentum,
        }
    }

    fn state(&self) -> OptimizerState<T> {
        OptimizerState {
            steps: 0,
            tensors: self.slots.export(["v"]),
        }
    }

    fn state_views(&self) -> (u64, Vec<(String, ArrayViewD<'_, T>)>) {
        (0, self.slots.views(["v"]))
    }

    fn set_state(&mut self, state: OptimizerState<T>) -> Result<(), Error> {
        self.slots
            .import(["v"], state.tensors)
            .map_err(|m| Error::invalid(self.describe(), m))
    }

    fn step(&mut self, params: &mut dyn Parameters<T>) -> Result<(), Error> {
        let (lr, mu) = (T::of(self.lr), T::of(self.momentum));
        let result = self.slots.visit(params, |mut p, g, [v]| {
            Zip::from(&mut p).and(&g).and(v).for_each(|p, &g, v| {
                *v = flush(mu * *v - lr * g);
                *p += *v;
            })
        });
        result.map_err(|m| Error::invalid(self.describe(), m))
    }
}

/// AdaGrad: `h += g^2; p -= lr * g / (sqrt(h) + 1e-7)`.
#[derive(Clone, Debug)]
pub struct AdaGrad<T> {
    lr: f64,
    slots: Slots<T, 1>,
}

impl<T: Float> AdaGrad<T> {
    /// AdaGrad with learning rate `lr` (book: 0.01).
    ///
    /// ```
    /// use layers::{AdaGrad, Affine, Layer, Mode, Optimizer};
    /// use ndarray::{ArrayD, array};
    ///
    /// let mut fc = Affine::from_weights(array![[0.0f64]], array![0.0])?;
    /// fc.forward(ArrayD::ones(vec![1, 1]).view(), Mode::Train)?;
    /// fc.backward(ArrayD::from_elem(vec![1, 1], 2.0).view())?; // dW = 2
    /// let mut opt = AdaGrad::new(0.1);
    /// opt.step(&mut fc)?; // h = 4: the step is lr * 2 / sqrt(4)
    /// opt.step(&mut fc)?; // h = 8: a smaller step, lr * 2 / sqrt(8)
    /// let want = -0.1 - 0.1 * 2.0 / 8f64.sqrt();
    /// assert!((fc.weight()[[0, 0]] - want).abs() < 1e-6);
    /// # Ok::<(), layers::Error>(())
    /// ```
    pub fn new(lr: f64) -> Self {
        AdaGrad {
            lr,
            slots: Slots::default(),
        }
    }
}

impl<T: Float> Optimizer<T> for AdaGrad<T> {
    fn spec(&self) -> OptimizerSpec {
        OptimizerSpec::AdaGrad { lr: self.lr }
    }

    fn state(&self) -> OptimizerState<T> {
        OptimizerState {
            steps: 0,
            tensors: self.slots.export(["h"]),
        }
    }

    fn state_views(&self) -> (u64, Vec<(String, ArrayViewD<'_, T>)>) {
        (0, self.slots.views(["h"]))
    }

    fn set_state(&mut self, state: OptimizerState<T>) -> Result<(), Error> {
        self.slots
            .import(["h"], state.tensors)
            .map_err(|m| Error::invalid(self.describe(), m))
    }

    fn step(&mut self, params: &mut dyn Parameters<T>) -> Result<(), Error> {
        let lr = T::of(self.lr);
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
/// `v += (1 - beta2)(g^2 - v)`, `p -= lr_t * m / (sqrt(v) + 1e-7)`; `m` and
/// `v` are flushed to zero where they would be subnormal.
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
    ///
    /// ```
    /// use layers::{Adam, Affine, Layer, Mode, Optimizer};
    /// use ndarray::{ArrayD, array};
    ///
    /// let mut fc = Affine::from_weights(array![[1.0f64], [2.0]], array![0.0])?;
    /// fc.forward(ArrayD::ones(vec![1, 2]).view(), Mode::Train)?;
    /// fc.backward(ArrayD::from_elem(vec![1, 1], 3.0).view())?;
    /// let mut adam = Adam::new(0.1);
    /// adam.step(&mut fc)?;
    /// // Adam's first step moves every parameter by about lr against its
    /// // gradient's sign, whatever the gradient's size (section 6.1.6).
    /// assert!((fc.weight()[[0, 0]] - 0.9).abs() < 1e-6);
    /// assert!((fc.bias()[0] + 0.1).abs() < 1e-6);
    /// assert_eq!(adam.steps(), 1);
    /// # Ok::<(), layers::Error>(())
    /// ```
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
    fn spec(&self) -> OptimizerSpec {
        OptimizerSpec::Adam {
            lr: self.lr,
            beta1: self.beta1,
            beta2: self.beta2,
        }
    }

    fn state(&self) -> OptimizerState<T> {
        OptimizerState {
            steps: self.t,
            tensors: self.slots.export(["m", "v"]),
        }
    }

    fn state_views(&self) -> (u64, Vec<(String, ArrayViewD<'_, T>)>) {
        (self.t, self.slots.views(["m", "v"]))
    }

    fn set_state(&mut self, state: OptimizerState<T>) -> Result<(), Error> {
        self.slots
            .import(["m", "v"], state.tensors)
            .map_err(|m| Error::invalid(self.describe(), m))?;
        self.t = state.steps;
        Ok(())
    }

    fn step(&mut self, params: &mut dyn Parameters<T>) -> Result<(), Error> {
        self.t += 1;
        let t = self.t as i32;
        // Bias correction in f64, so f32 training does not lose it early on.
        let lr_t = T::of(self.lr * (1.0 - self.beta2.powi(t)).sqrt() / (1.0 - self.beta1.powi(t)));
        let (b1, b2) = (T::of(1.0 - self.beta1), T::of(1.0 - self.beta2));
        let eps = T::of(1e-7);
        let update = move |p: &mut T, g: T, m: &mut T, v: &mut T| {
            *m = flush(*m + b1 * (g - *m));
            *v = flush(*v + b2 * (g * g - *v));
            *p -= lr_t * *m / (v.sqrt() + eps);
        };
        let result = self.slots.visit(params, |mut p, g, [m, v]| {
            let slices = (p.as_slice_mut(), g.as_slice(), m.as_slice_mut(), v.as_slice_mut());
            if let (Some(p), Some(g), Some(m), Some(v)) = slices {
                // Element by element, so splitting among threads changes no bit.
                let per = crate::par::per_part(p.len()).max(1 << 14);
                p.par_chunks_mut(per)
                    .zip(g.par_chunks(per))
                    .zip(m.par_chunks_mut(per).zip(v.par_chunks_mut(per)))
                    .for_each(|((p, g), (m, v))| {
                        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                            update(p, g, m, v);
                        }
                    });
            } else {
                Zip::from(&mut p)
                    .and(&g)
                    .and(m)
                    .and(v)
                    .for_each(|p, &g, m, v| update(p, g, m, v));
            }
        });
        result.map_err(|m| {
            self.t -= 1;
            Error::invalid(self.describe(), m)
        })
    }
}
