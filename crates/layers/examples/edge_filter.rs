//! A single Convolution and Pooling, forward and backward, on a small
//! image, in the spirit of the chapter's `apply_filter` script: two
//! hand-made 3x3 filters (vertical and horizontal edges) respond to a
//! drawn shape, max pooling keeps each 2x2 window's strongest response,
//! and backward shows where the gradient goes.
//!
//! Run with `cargo run -p convnet-layers --example edge_filter`.

use layers::{Convolution, Layer, Mode, Pooling, Window};
use ndarray::{Array1, Array4, ArrayD, ArrayView2, Axis, s};

/// A 12x12 image: a bright square with a bar through it.
fn image() -> Array4<f64> {
    let rows = [
        "............",
        "............",
        "..########..",
        "..#......#..",
        "..#......#..",
        "..#.####.#..",
        "..#.####.#..",
        "..#......#..",
        "..#......#..",
        "..########..",
        "............",
        "............",
    ];
    Array4::from_shape_fn((1, 1, 12, 12), |(_, _, i, j)| {
        if rows[i].as_bytes()[j] == b'#' { 1.0 } else { 0.0 }
    })
}

/// One map as characters: `+`/`#` for positive, `-`/`=` for negative.
fn show(title: &str, map: ArrayView2<'_, f64>) {
    println!("{title} ({}x{}):", map.nrows(), map.ncols());
    let top = map.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-12);
    for row in map.rows() {
        let line: String = row
            .iter()
            .map(|&v| match v / top {
                r if r > 0.5 => '#',
                r if r > 0.1 => '+',
                r if r < -0.5 => '=',
                r if r < -0.1 => '-',
                _ => '.',
            })
            .collect();
        println!("  {line}");
    }
}

fn main() -> Result<(), layers::Error> {
    let x = image();
    show("input", x.slice(s![0, 0, .., ..]));

    // Two filters, FN=2, C=1, 3x3, padding 1 keeps the 12x12 size.
    let vertical = [[1.0, 0.0, -1.0], [1.0, 0.0, -1.0], [1.0, 0.0, -1.0]];
    let mut w = Array4::zeros((2, 1, 3, 3));
    for i in 0..3 {
        for j in 0..3 {
            w[[0, 0, i, j]] = vertical[i][j];
            w[[1, 0, i, j]] = vertical[j][i]; // the transpose: horizontal edges
        }
    }
    let mut conv = Convolution::from_weights(w, Array1::zeros(2), Window::square(3).with_pad(1))?;
    let mut pool = Pooling::max(Window::square(2).with_stride(2));

    let y = conv.forward(x.view().into_dyn(), Mode::Train)?.clone();
    show("vertical-edge response", y.slice(s![0, 0, .., ..]));
    show("horizontal-edge response", y.slice(s![0, 1, .., ..]));
    let p = pool.forward(y.view(), Mode::Train)?.clone();
    show("max-pooled vertical response", p.slice(s![0, 0, .., ..]));
    println!(
        "shapes: input {:?} -> conv {:?} -> pool {:?}",
        x.shape(),
        y.shape(),
        p.shape()
    );

    // Backward from a gradient of ones on the pooled maps: pooling routes
    // each to its window's winner, the convolution spreads it back.
    let dp = ArrayD::ones(p.raw_dim());
    let dy = pool.backward(dp.view())?.clone();
    let winners = dy.iter().filter(|&&g| g != 0.0).count();
    assert_eq!(winners, p.len());
    let dx_shape = conv.backward(dy.view())?.shape().to_vec();
    println!(
        "backward: {winners} of {} conv outputs receive a gradient; dx {:?}, dW {:?}, db {:?}",
        dy.len(),
        dx_shape,
        conv.dw().shape(),
        conv.db().to_vec()
    );
    // db sums the gradient reaching each filter's outputs: one per pooled cell.
    let per_filter = p.len_of(Axis(2)) * p.len_of(Axis(3));
    assert!(conv.db().iter().all(|&d| d == per_filter as f64));
    Ok(())
}
