//! Uses im2col as its README documents it: a convolution of its own as
//! im2col, one product and a reshape, checked against direct loops.

use im2col::im2col;
use ndarray::{Array2, Array4};
use tensor4d::Window;

fn main() {
    let x = Array4::from_shape_fn((2, 3, 7, 7), |(n, c, i, j)| (n + 2 * c + 3 * i + 5 * j) as f64 % 7.0);
    let w = Array4::from_shape_fn((4, 3, 5, 5), |(f, c, i, j)| ((f + c + i * j) % 3) as f64 - 1.0);
    let col = im2col(x.view(), Window::square(5)).expect("5x5 windows tile 7x7");
    assert_eq!(col.dim(), (2 * 3 * 3, 75));
    let w_col: Array2<f64> = w.to_shape((4, 75)).expect("contiguous").t().to_owned();
    let out = col.dot(&w_col); // (N*OH*OW, FN)
    for n in 0..2 {
        for f in 0..4 {
            for (i, j) in (0..3).flat_map(|i| (0..3).map(move |j| (i, j))) {
                let mut direct = 0.0;
                for c in 0..3 {
                    for (a, b) in (0..5).flat_map(|a| (0..5).map(move |b| (a, b))) {
                        direct += x[[n, c, i + a, j + b]] * w[[f, c, a, b]];
                    }
                }
                assert_eq!(out[[n * 9 + i * 3 + j, f]], direct);
            }
        }
    }
    println!("im2col-user: col {:?}, convolution by im2col equals direct loops", col.dim());
}
