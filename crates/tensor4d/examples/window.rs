//! The output-size formula of section 7.2.4, equation (7.1),
//! `OH = (H + 2P - FH) / S + 1`, over the chapter's examples, and what
//! happens when a window does not tile its input.
//!
//! Run with `cargo run -p convnet-tensor4d --example window`.

use tensor4d::{ShapeError, Window};

/// Prints the formula worked out for a square input and window.
fn show(what: &str, h: usize, win: Window) -> Result<(usize, usize), ShapeError> {
    let (oh, ow) = win.output_size(h, h)?;
    let input = format!("{h}x{h}");
    println!(
        "{what:<27} {input:>5}  {win:<10}  ({h} + 2*{p} - {f}) / {s} + 1 = {oh}",
        win = win.to_string(),
        p = win.ph,
        f = win.fh,
        s = win.sh,
    );
    Ok((oh, ow))
}

fn main() -> Result<(), ShapeError> {
    println!(
        "{:<27} {:>5}  {:<10}  OH = (H + 2P - FH) / S + 1",
        "", "input", "window"
    );
    // Figure 7-6: padding 1 keeps a 4x4 input's size under a 3x3 filter.
    assert_eq!(
        show("figure 7-6 (padding 1)", 4, Window::square(3).with_pad(1))?,
        (4, 4)
    );
    // Figure 7-7: stride 2 over a 7x7 input.
    assert_eq!(
        show("figure 7-7 (stride 2)", 7, Window::square(3).with_stride(2))?,
        (3, 3)
    );
    // Section 7.5, SimpleConvNet: a 5x5 convolution, then 2x2 pooling with stride 2.
    assert_eq!(
        show("SimpleConvNet convolution", 28, Window::square(5))?,
        (24, 24)
    );
    assert_eq!(
        show("SimpleConvNet pooling", 24, Window::square(2).with_stride(2))?,
        (12, 12)
    );

    // A window that does not tile the input is refused, never floored as
    // numpy's `//` or Python's `int()` would silently do.
    println!();
    let bad = Window::square(5).with_stride(2);
    let err = bad.output_size(28, 28).unwrap_err();
    println!("28x28, window {bad}: error: {err}");
    assert!(matches!(
        err,
        ShapeError::NotExact {
            span: 23,
            stride: 2,
            ..
        }
    ));
    let big = Window::square(5);
    let err = big.output_size(3, 3).unwrap_err();
    println!("3x3, window {big}: error: {err}");
    assert!(matches!(err, ShapeError::FilterTooLarge { .. }));
    Ok(())
}
