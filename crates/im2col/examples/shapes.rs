//! The shapes of section 7.4.2: im2col on the chapter's inputs, col2im back,
//! and how stride and padding change the output size and the matrix.
//!
//! Run with `cargo run -p convnet-im2col --example shapes`.

use ndarray::{Array4, Axis};
use tensor4d::{ShapeError, Window};

fn main() -> Result<(), ShapeError> {
    // The chapter's `x1 = np.random.rand(1, 3, 7, 7)`, filled with a
    // pattern instead so that the example prints the same on every run.
    let x1 = Array4::from_shape_fn((1, 3, 7, 7), |(_, c, i, j)| (100 * c + 10 * i + j) as f32);
    let win = Window::square(5);
    let col1 = im2col::im2col(x1.view(), win)?;
    println!("x1 {:?}, filter 5x5 -> col1 {:?}", x1.dim(), col1.dim());
    assert_eq!(col1.dim(), (9, 75));

    // `x2 = np.random.rand(10, 3, 7, 7)`: ten times the rows.
    let x2 = Array4::from_shape_fn((10, 3, 7, 7), |(n, c, i, j)| (n + c + i + j) as f32);
    let col2 = im2col::im2col(x2.view(), win)?;
    println!("x2 {:?}, filter 5x5 -> col2 {:?}", x2.dim(), col2.dim());
    assert_eq!(col2.dim(), (90, 75));

    // col2im folds back to the input's shape, adding up each pixel's
    // copies: a pixel in k windows comes back k times its value.
    let back = im2col::col2im(col2.view(), win, x2.dim())?;
    println!("col2im(col2) -> {:?}", back.dim());
    assert_eq!(back.dim(), x2.dim());
    let ones = Array4::<f32>::ones((1, 1, 7, 7));
    let counts = im2col::col2im(im2col::im2col(ones.view(), win)?.view(), win, (1, 1, 7, 7))?;
    println!("windows over each pixel of a 7x7 image, 5x5 filter:");
    for row in counts.index_axis(Axis(0), 0).index_axis(Axis(0), 0).rows() {
        let cells: Vec<String> = row.iter().map(|v| format!("{v}")).collect();
        println!("  {}", cells.join(" "));
    }
    assert_eq!(counts[[0, 0, 3, 3]], 9.0);
    assert_eq!(back[[4, 2, 3, 3]], 9.0 * x2[[4, 2, 3, 3]]);

    // Stride and padding: OH = (H + 2P - FH) / S + 1, one row per output
    // position and image.
    println!("\nx1 {:?} with a 3x3 filter:", x1.dim());
    println!("  stride pad  output  col");
    for (stride, pad, out, rows) in [
        (1, 0, 5, 25),
        (1, 1, 7, 49),
        (2, 0, 3, 9),
        (2, 1, 4, 16),
        (3, 1, 3, 9),
    ] {
        let w = Window::square(3).with_stride(stride).with_pad(pad);
        let s = im2col::col_shape(x1.dim(), w)?;
        let col = im2col::im2col(x1.view(), w)?;
        println!("  {stride:>6} {pad:>3}  {:>2}x{:<3}  {:?}", s.oh, s.ow, col.dim());
        assert_eq!((s.oh, s.ow, col.dim()), (out, out, (rows, 27)));
        assert_eq!(im2col::col2im(col.view(), w, x1.dim())?.dim(), x1.dim());
    }

    // Stride 2 with no padding over 8 columns does not tile them: refused.
    let err = im2col::col_shape((1, 3, 8, 8), Window::square(3).with_stride(2)).unwrap_err();
    println!("\n(1, 3, 8, 8), 3x3 filter, stride 2: error: {err}");
    Ok(())
}
