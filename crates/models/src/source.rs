use ndarray::{ArrayView4, ArrayViewMut4, Axis};
use tensor4d::Float;

/// Where images come from for training and evaluation: anything that can
/// copy chosen images into a float batch. Lets a training run keep its
/// dataset as bytes (a quarter of the memory) and convert a batch at a time.
pub trait ImageSource<T: Float>: Sync {
    /// Number of images.
    fn len(&self) -> usize;

    /// Whether there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shape `[C, H, W]` of one image.
    fn image_shape(&self) -> [usize; 3];

    /// Copies images `indices` into `out`, of shape `(indices.len(), C, H, W)`.
    fn copy_batch(&self, indices: &[usize], out: ArrayViewMut4<'_, T>);

    /// Copies images `start..start + out.len_of(Axis(0))` into `out`.
    fn copy_range(&self, start: usize, mut out: ArrayViewMut4<'_, T>) {
        for (k, dst) in out.outer_iter_mut().enumerate() {
            self.copy_batch(&[start + k], dst.insert_axis(Axis(0)));
        }
    }
}

impl<T: Float> ImageSource<T> for ArrayView4<'_, T> {
    fn len(&self) -> usize {
        self.len_of(Axis(0))
    }

    fn image_shape(&self) -> [usize; 3] {
        let (_, c, h, w) = self.dim();
        [c, h, w]
    }

    fn copy_batch(&self, indices: &[usize], mut out: ArrayViewMut4<'_, T>) {
        for (mut dst, &i) in out.outer_iter_mut().zip(indices) {
            dst.assign(&self.index_axis(Axis(0), i));
        }
    }
}

/// Images stored as bytes, seen as floats in `[0, 1]` (`byte / 255`, the
/// same arithmetic as `datasets::Split::images`).
///
/// ```
/// use models::{ImageSource, Pixels};
/// let bytes = ndarray::Array4::<u8>::from_elem((2, 1, 2, 2), 255);
/// let src = Pixels(bytes.view());
/// let mut out = ndarray::Array4::<f32>::zeros((1, 1, 2, 2));
/// src.copy_batch(&[1], out.view_mut());
/// assert!(out.iter().all(|&v| v == 1.0));
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Pixels<'a>(pub ArrayView4<'a, u8>);

impl<T: Float> ImageSource<T> for Pixels<'_> {
    fn len(&self) -> usize {
        self.0.len_of(Axis(0))
    }

    fn image_shape(&self) -> [usize; 3] {
        let (_, c, h, w) = self.0.dim();
        [c, h, w]
    }

    fn copy_batch(&self, indices: &[usize], mut out: ArrayViewMut4<'_, T>) {
        let scale = T::one() / T::of(255.0);
        for (mut dst, &i) in out.outer_iter_mut().zip(indices) {
            dst.zip_mut_with(&self.0.index_axis(Axis(0), i), |d, &p| {
                *d = T::of(p as f64) * scale
            });
        }
    }
}
