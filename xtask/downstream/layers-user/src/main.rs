//! Trains a two-layer network made of `layers` alone, with the book's
//! loop: forward, loss, backward in reverse order, an optimizer step.

use layers::{Adam, Affine, Init, Layer, Mode, Optimizer, Relu, SoftmaxWithLoss};
use ndarray::ArrayD;
use rand::SeedableRng;

fn main() -> Result<(), layers::Error> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let mut fc1 = Affine::<f32>::new(2, 16, Init::He, &mut rng)?;
    let mut relu = Relu::new();
    let mut fc2 = Affine::<f32>::new(16, 2, Init::He, &mut rng)?;
    let mut loss = SoftmaxWithLoss::new();
    let (mut opt1, mut opt2) = (Adam::new(0.05), Adam::new(0.05));
    // XOR-like quadrants: no straight line separates them.
    let points = [[-1.0, -1.0], [1.0, 1.0], [-1.0, 1.0], [1.0, -1.0]];
    let x = ArrayD::from_shape_fn(vec![4, 2], |d| points[d[0]][d[1]]);
    let labels = [0, 0, 1, 1];
    let mut last = f32::INFINITY;
    for _ in 0..300 {
        let h = fc1.forward(x.view(), Mode::Train)?.clone();
        let h = relu.forward(h.view(), Mode::Train)?.clone();
        let scores = fc2.forward(h.view(), Mode::Train)?.clone();
        last = loss.forward(scores.view(), &labels)?;
        let d = loss.backward()?.clone();
        let d = fc2.backward(d.view())?.clone();
        let d = relu.backward(d.view())?.clone();
        fc1.backward(d.view())?;
        opt1.step(&mut fc1)?;
        opt2.step(&mut fc2)?;
    }
    assert!(last < 0.05, "loss {last}");
    println!("layers-user: XOR learned by Affine-ReLU-Affine, loss {last:.4}");
    Ok(())
}
