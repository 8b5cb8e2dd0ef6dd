//! Optimizers against their update formulas computed by hand, one scalar at
//! a time, and against a network they were not made for.

use layers::{AdaGrad, Adam, Affine, Momentum, Optimizer, ParamVisitor, ParamVisitorMut, Parameters, Sgd};
use ndarray::{ArrayD, IxDyn, arr1, arr2};
use tensor4d::Float;

/// One parameter vector with a settable gradient.
struct Toy {
    name: &'static str,
    p: ArrayD<f64>,
    g: ArrayD<f64>,
}

impl Parameters<f64> for Toy {
    fn visit_params(&self, f: &mut ParamVisitor<'_, f64>) {
        f(self.name, self.p.view(), self.g.view());
    }
    fn visit_params_mut(&mut self, f: &mut ParamVisitorMut<'_, f64>) {
        f(self.name, self.p.view_mut(), self.g.view());
    }
}

fn toy() -> Toy {
    Toy {
        name: "w",
        p: ArrayD::from_shape_vec(IxDyn(&[2]), vec![1.0, -2.0]).unwrap(),
        g: ArrayD::zeros(IxDyn(&[2])),
    }
}

const GRADS: [[f64; 2]; 3] = [[0.5, -1.0], [0.25, 2.0], [-1.5, 0.1]];

fn run(opt: &mut dyn Optimizer<f64>) -> Vec<f64> {
    let mut t = toy();
    for g in GRADS {
        t.g = ArrayD::from_shape_vec(IxDyn(&[2]), g.to_vec()).unwrap();
        opt.step(&mut t).unwrap();
    }
    t.p.into_raw_vec_and_offset().0
}

fn close(a: &[f64], b: &[f64]) {
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() < 1e-14, "{a:?} vs {b:?}");
    }
}

/// Each rule written out for one scalar, as in the book's optimizer.py.
fn by_hand(rule: &str, p0: f64, grads: &[f64]) -> f64 {
    let (lr, mut p, mut a, mut b) = (0.1, p0, 0.0, 0.0);
    for (t, &g) in grads.iter().enumerate() {
        match rule {
            "sgd" => p -= lr * g,
            "momentum" => {
                a = 0.9 * a - lr * g;
                p += a;
            }
            "adagrad" => {
                a += g * g;
                p -= lr * g / (a.sqrt() + 1e-7);
            }
            "adam" => {
                let t = t as i32 + 1;
                let lr_t = lr * (1.0 - 0.999f64.powi(t)).sqrt() / (1.0 - 0.9f64.powi(t));
                a += (1.0 - 0.9) * (g - a);
                b += (1.0 - 0.999) * (g * g - b);
                p -= lr_t * a / (b.sqrt() + 1e-7);
            }
            _ => unreachable!(),
        }
    }
    p
}

#[test]
fn updates_follow_the_books_formulas() {
    let want = |rule| {
        [0, 1]
            .map(|i| by_hand(rule, [1.0, -2.0][i], &GRADS.map(|g| g[i])))
            .to_vec()
    };
    close(&run(&mut Sgd::new(0.1)), &want("sgd"));
    close(&run(&mut Momentum::new(0.1, 0.9)), &want("momentum"));
    close(&run(&mut AdaGrad::new(0.1)), &want("adagrad"));
    close(&run(&mut Adam::new(0.1)), &want("adam"));
}

#[test]
fn state_made_for_another_network_is_refused() {
    let mut adam = Adam::new(0.1);
    let mut fc = Affine::from_weights(arr2(&[[1.0, 2.0]]), arr1(&[0.0, 0.0])).unwrap();
    adam.step(&mut fc).unwrap();
    let mut other = Affine::from_weights(arr2(&[[1.0], [2.0]]), arr1(&[0.0])).unwrap();
    let e = adam.step(&mut other).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.starts_with("adam lr=0.1") && msg.contains("[2, 1]") && msg.contains("[1, 2]"),
        "{msg}"
    );
    assert_eq!(adam.steps(), 1, "a refused step does not count");
    let mut t = toy();
    let e = Momentum::new(0.1, 0.9)
        .step(&mut t)
        .and_then(|_| Momentum::new(0.1, 0.9).step(&mut fc));
    assert!(e.is_ok(), "a fresh optimizer accepts any network");
}

#[test]
fn state_views_are_the_state_without_a_copy() {
    let mut opts: Vec<Box<dyn Optimizer<f64>>> = vec![
        Box::new(Sgd::new(0.1)),
        Box::new(Momentum::new(0.1, 0.9)),
        Box::new(AdaGrad::new(0.1)),
        Box::new(Adam::new(0.1)),
    ];
    for opt in &mut opts {
        run(opt.as_mut());
        let state = opt.state();
        let (steps, views) = opt.state_views();
        assert_eq!(steps, state.steps, "{}", opt.describe());
        let views: Vec<(String, ArrayD<f64>)> = views.into_iter().map(|(n, v)| (n, v.to_owned())).collect();
        assert_eq!(views, state.tensors, "{}", opt.describe());
    }
}

/// Parameters of any precision whose gradient the test sets.
struct Decaying<T> {
    p: ArrayD<T>,
    g: ArrayD<T>,
}

impl<T: Float> Parameters<T> for Decaying<T> {
    fn visit_params(&self, f: &mut ParamVisitor<'_, T>) {
        f("w", self.p.view(), self.g.view());
    }
    fn visit_params_mut(&mut self, f: &mut ParamVisitorMut<'_, T>) {
        f("w", self.p.view_mut(), self.g.view());
    }
}

/// A few steps of gradients from 1e-3 down to 1e-30, then zero gradients
/// until every state element has decayed: after each step, no element of
/// the state may be subnormal. Geometric decay by 0.9 crosses the
/// subnormal range (2^23 in f32, 2^52 in f64) in 150 to 350 steps, so
/// unflushed state would be caught many times over.
fn state_never_subnormal<T: Float>(opt: &mut dyn Optimizer<T>, zero_steps: usize) {
    let n = 64;
    let mut w = Decaying {
        p: ArrayD::from_elem(IxDyn(&[n]), T::one()),
        g: ArrayD::from_shape_fn(IxDyn(&[n]), |i| T::of(10f64.powi(-3 - (i[0] % 28) as i32))),
    };
    for _ in 0..3 {
        opt.step(&mut w).unwrap();
    }
    w.g.fill(T::zero());
    let (mut seen_nonzero, mut last_nonzero) = (0, 0);
    for step in 0..zero_steps {
        opt.step(&mut w).unwrap();
        let (_, views) = opt.state_views();
        for (name, v) in &views {
            for &x in v.iter() {
                assert!(
                    x == T::zero() || x.abs() >= T::min_positive_value(),
                    "{}: {name} holds the subnormal {x:?} after {step} zero-gradient steps",
                    opt.describe()
                );
                if x != T::zero() {
                    seen_nonzero += 1;
                    last_nonzero = step;
                }
            }
        }
        assert!(w.p.iter().all(|p| p.is_finite()));
    }
    assert!(
        seen_nonzero > 0,
        "{}: the state never held anything",
        opt.describe()
    );
    assert!(
        last_nonzero + 1 < zero_steps,
        "{}: the state had not decayed to zero after {zero_steps} steps, so the test saw no crossing",
        opt.describe()
    );
}

#[test]
fn decaying_state_is_flushed_never_subnormal() {
    // beta2 = 0.9 makes Adam's second moment decay as fast as its first.
    state_never_subnormal::<f32>(&mut Momentum::new(0.01, 0.9), 1200);
    state_never_subnormal::<f32>(&mut Adam::with_betas(0.001, 0.9, 0.9), 1200);
    state_never_subnormal::<f64>(&mut Momentum::new(0.01, 0.9), 7500);
    state_never_subnormal::<f64>(&mut Adam::with_betas(0.001, 0.9, 0.9), 7500);
}
