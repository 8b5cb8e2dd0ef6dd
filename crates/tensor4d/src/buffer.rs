use ndarray::{Array2, Array4, ArrayD, Dimension, IntoDimension, Ix2, Ix4, IxDyn};
use num_traits::Zero;

fn reuse_dim<T: Clone + Zero + Default, D: Dimension>(buf: &mut ndarray::Array<T, D>, shape: D) -> bool {
    if buf.raw_dim() == shape {
        return false;
    }
    // Keep the allocation: a smaller last batch, or the switch between
    // training and evaluation batch sizes, must not reallocate every time.
    let (mut v, _) = std::mem::take(buf).into_raw_vec_and_offset();
    v.clear();
    v.resize(shape.size(), T::zero());
    *buf = ndarray::Array::from_shape_vec(shape, v)
        .unwrap_or_else(|_| unreachable!("vector resized to the shape's size"));
    true
}

/// Gives `buf` the shape `shape`, keeping its allocation where it can.
/// Returns `true` when the shape changed (the contents are then zero);
/// when it did not, the old contents are left for the caller to overwrite.
///
/// ```
/// let mut b = ndarray::ArrayD::<f32>::zeros(vec![0]);
/// assert!(tensor4d::reuse(&mut b, &[2, 3]));
/// assert!(!tensor4d::reuse(&mut b, &[2, 3]));
/// assert_eq!(b.shape(), &[2, 3]);
/// ```
pub fn reuse<T: Clone + Zero + Default>(buf: &mut ArrayD<T>, shape: &[usize]) -> bool {
    reuse_dim::<T, IxDyn>(buf, shape.into_dimension())
}

/// [`reuse`] for a 2-D buffer.
pub fn reuse2<T: Clone + Zero + Default>(buf: &mut Array2<T>, shape: (usize, usize)) -> bool {
    reuse_dim::<T, Ix2>(buf, shape.into_dimension())
}

/// [`reuse`] for a 4-D buffer.
pub fn reuse4<T: Clone + Zero + Default>(buf: &mut Array4<T>, shape: (usize, usize, usize, usize)) -> bool {
    reuse_dim::<T, Ix4>(buf, shape.into_dimension())
}

/// The first `len` elements of `v`, growing it to that length if it is
/// shorter and never shrinking it: workspaces kept per parallel part, or
/// packing space, keep their allocations when a call needs fewer or less
/// of them, so the next call that needs them does not allocate again.
///
/// ```
/// let mut v: Vec<Vec<f32>> = Vec::new();
/// assert_eq!(tensor4d::grow(&mut v, 3).len(), 3);
/// assert_eq!(tensor4d::grow(&mut v, 2).len(), 2);
/// assert_eq!(v.len(), 3);
/// ```
pub fn grow<X: Clone + Default>(v: &mut Vec<X>, len: usize) -> &mut [X] {
    if v.len() < len {
        v.resize(len, X::default());
    }
    &mut v[..len]
}
