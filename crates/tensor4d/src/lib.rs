//! What a tensor and a window are, for the rest of the workspace: the
//! [`Float`] trait that every layer is generic over (f32 for training, f64
//! for gradient checks), the geometry of a convolution or pooling
//! [`Window`] with the book's output size `(H + 2P - F) / S + 1` (an
//! error, never a silent floor, when it is not whole), the [`ShapeError`]
//! that names the sizes at fault, NCHW helpers ([`as_nchw`],
//! [`check_nonempty`], [`contiguous`]) and helpers that reuse buffers
//! ([`reuse`], [`grow`]).
//!
//! Tensors are plain `ndarray` arrays (`Array4`, `ArrayD` and their views); this
//! crate adds no wrapper type. It knows nothing of layers, im2col or matrix
//! products (those are the `kernels` crate's), and holds no `unsafe` code.
//!
//! ```
//! use tensor4d::Window;
//! // The chapter's example: 28x28 input, 5x5 filter, no padding, stride 1.
//! assert_eq!(Window::square(5).output_size(28, 28).unwrap(), (24, 24));
//! // 28 + 2*0 - 5 = 23 is odd: stride 2 does not tile it, and that is an error.
//! assert!(Window::square(5).with_stride(2).output_size(28, 28).is_err());
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

// The README's examples run as doctests, so it cannot drift from the code.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

mod buffer;
mod error;
mod float;
mod window;

pub use buffer::{grow, reuse, reuse2, reuse4};
pub use error::ShapeError;
pub use float::Float;
pub use window::{Window, output_size};

use std::borrow::Cow;

use ndarray::{ArrayView, ArrayView4, ArrayViewD, Dimension, Ix4};

/// Views a dynamic-rank array as NCHW, or says why it cannot.
///
/// ```
/// use ndarray::ArrayD;
/// let x = ArrayD::<f32>::zeros(vec![2, 1, 28, 28]);
/// let v = tensor4d::as_nchw(x.view()).unwrap();
/// assert_eq!(v.dim(), (2, 1, 28, 28));
/// assert!(tensor4d::as_nchw(ArrayD::<f32>::zeros(vec![2, 784]).view()).is_err());
/// ```
pub fn as_nchw<T>(x: ArrayViewD<'_, T>) -> Result<ArrayView4<'_, T>, ShapeError> {
    if x.ndim() != 4 {
        return Err(ShapeError::Rank {
            expected: "4 (N, C, H, W)",
            found: x.shape().to_vec(),
        });
    }
    // The shape is copied only for the error: this runs on every forward.
    Ok(x.into_dimensionality::<Ix4>()
        .unwrap_or_else(|_| unreachable!("checked to be 4-D")))
}

/// Returns an error when any axis of `shape` is empty: every layer refuses
/// empty batches, channels or images rather than returning an empty result
/// that would surface later as a NaN mean.
pub fn check_nonempty(shape: &[usize]) -> Result<(), ShapeError> {
    if shape.contains(&0) {
        return Err(ShapeError::Empty {
            shape: shape.to_vec(),
        });
    }
    Ok(())
}

/// The elements of `x` in row-major order as one slice: borrowed when `x` is
/// already contiguous row-major (the usual case), copied otherwise.
///
/// ```
/// let a = ndarray::arr2(&[[1.0f32, 2.0], [3.0, 4.0]]);
/// assert!(matches!(tensor4d::contiguous(&a.view()), std::borrow::Cow::Borrowed(_)));
/// assert_eq!(&*tensor4d::contiguous(&a.t()), &[1.0, 3.0, 2.0, 4.0]);
/// ```
pub fn contiguous<'a, T: Clone, D: Dimension>(x: &'a ArrayView<'_, T, D>) -> Cow<'a, [T]> {
    match x.as_slice() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(x.iter().cloned().collect()),
    }
}
