use std::fmt;

use crate::ShapeError;

/// Output size along one axis, `(size + 2*pad - filter) / stride + 1`, the
/// book's formula (7.1), refusing shapes where the division is not exact or
/// the filter does not fit. `axis` names the axis in the error.
/// [`Window::output_size`] applies it to both axes.
///
/// ```
/// use tensor4d::output_size;
/// assert_eq!(output_size("height", 28, 5, 1, 0), Ok(24));
/// assert_eq!(output_size("height", 7, 3, 2, 1), Ok(4));
/// assert!(output_size("width", 28, 5, 2, 0).is_err()); // 23 / 2
/// ```
pub fn output_size(
    axis: &'static str,
    size: usize,
    filter: usize,
    stride: usize,
    pad: usize,
) -> Result<usize, ShapeError> {
    if filter == 0 {
        return Err(ShapeError::Zero { what: "filter size" });
    }
    if stride == 0 {
        return Err(ShapeError::Zero { what: "stride" });
    }
    let padded = pad
        .checked_mul(2)
        .and_then(|p| p.checked_add(size))
        .ok_or_else(|| ShapeError::TooLarge {
            what: "padded input",
            detail: format!("{size} + 2*{pad}"),
        })?;
    if filter > padded {
        return Err(ShapeError::FilterTooLarge {
            axis,
            size,
            padded,
            filter,
        });
    }
    let span = padded - filter;
    if !span.is_multiple_of(stride) {
        return Err(ShapeError::NotExact {
            axis,
            size,
            pad,
            filter,
            stride,
            span,
        });
    }
    Ok(span / stride + 1)
}

/// A filter or pooling window sliding over the last two axes of NCHW input:
/// its size, stride and zero padding (rectangular windows allowed).
///
/// ```
/// use tensor4d::Window;
/// let w = Window::new(2, 3).with_pads(1, 0).with_strides(1, 2);
/// assert_eq!(w.output_size(4, 7).unwrap(), (5, 3));
/// assert_eq!(w.to_string(), "2x3 p(1,0)/s(1,2)");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Window {
    /// Filter height.
    pub fh: usize,
    /// Filter width.
    pub fw: usize,
    /// Vertical stride.
    pub sh: usize,
    /// Horizontal stride.
    pub sw: usize,
    /// Zero padding above and below.
    pub ph: usize,
    /// Zero padding left and right.
    pub pw: usize,
}

impl Window {
    /// A `fh` x `fw` window, stride 1, no padding.
    ///
    /// ```
    /// use tensor4d::Window;
    /// let w = Window::new(2, 3);
    /// assert_eq!((w.fh, w.fw, w.sh, w.sw, w.ph, w.pw), (2, 3, 1, 1, 0, 0));
    /// assert_eq!(w.output_size(4, 4).unwrap(), (3, 2)); // 4-2+1, 4-3+1
    /// ```
    pub fn new(fh: usize, fw: usize) -> Self {
        Window {
            fh,
            fw,
            sh: 1,
            sw: 1,
            ph: 0,
            pw: 0,
        }
    }

    /// A square `f` x `f` window, stride 1, no padding.
    ///
    /// ```
    /// use tensor4d::Window;
    /// assert_eq!(Window::square(5), Window::new(5, 5));
    /// // SimpleConvNet's convolution over MNIST (section 7.5): 28 - 5 + 1.
    /// assert_eq!(Window::square(5).output_size(28, 28).unwrap(), (24, 24));
    /// ```
    pub fn square(f: usize) -> Self {
        Window::new(f, f)
    }

    /// The same window with stride `s` on both axes.
    ///
    /// ```
    /// use tensor4d::Window;
    /// // Figure 7-7: a 7x7 input, a 3x3 filter, stride 2: (7 - 3)/2 + 1 = 3.
    /// assert_eq!(Window::square(3).with_stride(2).output_size(7, 7).unwrap(), (3, 3));
    /// // Pooling as in section 7.3: 2x2 windows, stride 2, halve each side.
    /// assert_eq!(Window::square(2).with_stride(2).output_size(24, 24).unwrap(), (12, 12));
    /// ```
    pub fn with_stride(self, s: usize) -> Self {
        self.with_strides(s, s)
    }

    /// The same window with strides `sh` (vertical) and `sw` (horizontal).
    ///
    /// ```
    /// use tensor4d::Window;
    /// let w = Window::square(2).with_strides(1, 2);
    /// assert_eq!(w.output_size(4, 4).unwrap(), (3, 2)); // (4-2)/1+1, (4-2)/2+1
    /// ```
    pub fn with_strides(self, sh: usize, sw: usize) -> Self {
        Window { sh, sw, ..self }
    }

    /// The same window with padding `p` on all four sides.
    ///
    /// ```
    /// use tensor4d::Window;
    /// // Figure 7-6: a 4x4 input padded by 1, a 3x3 filter: the output stays 4x4.
    /// assert_eq!(Window::square(3).with_pad(1).output_size(4, 4).unwrap(), (4, 4));
    /// ```
    pub fn with_pad(self, p: usize) -> Self {
        self.with_pads(p, p)
    }

    /// The same window with padding `ph` above and below, `pw` left and right.
    ///
    /// ```
    /// use tensor4d::Window;
    /// let w = Window::square(3).with_pads(1, 0);
    /// assert_eq!(w.output_size(4, 4).unwrap(), (4, 2)); // 4+2-3+1, 4-3+1
    /// ```
    pub fn with_pads(self, ph: usize, pw: usize) -> Self {
        Window { ph, pw, ..self }
    }

    /// `fh * fw`, the number of input pixels one window covers per channel.
    ///
    /// ```
    /// // One row of the chapter's im2col matrix holds C * area values: 3 * 25.
    /// assert_eq!(3 * tensor4d::Window::square(5).area(), 75);
    /// ```
    pub fn area(&self) -> usize {
        // Saturating: a window too large to count is refused by the sizes
        // checked after this, never wrapped around to a small one.
        self.fh.saturating_mul(self.fw)
    }

    /// Output height and width for an `h` x `w` input: the free function
    /// [`output_size`] on each axis, `(h + 2*ph - fh)/sh + 1` and
    /// `(w + 2*pw - fw)/sw + 1`. An error names the axis and sizes at fault.
    ///
    /// ```
    /// use tensor4d::{ShapeError, Window};
    /// let w = Window::square(5).with_pad(2);
    /// assert_eq!(w.output_size(28, 28), Ok((28, 28))); // "same" padding
    /// // A 3-wide window with stride 2 over 8 columns: 8 - 3 = 5 is odd.
    /// let err = Window::square(3).with_stride(2).output_size(9, 8).unwrap_err();
    /// assert!(matches!(err, ShapeError::NotExact { axis: "width", span: 5, .. }));
    /// // A filter larger than the padded input.
    /// assert!(matches!(
    ///     Window::square(5).output_size(3, 3),
    ///     Err(ShapeError::FilterTooLarge { .. })
    /// ));
    /// ```
    pub fn output_size(&self, h: usize, w: usize) -> Result<(usize, usize), ShapeError> {
        Ok((
            output_size("height", h, self.fh, self.sh, self.ph)?,
            output_size("width", w, self.fw, self.sw, self.pw)?,
        ))
    }
}

impl fmt::Display for Window {
    /// `5x5 p2/s1`, the notation of `MODELS.md`; pairs where the axes differ.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{} ", self.fh, self.fw)?;
        if self.ph == self.pw {
            write!(f, "p{}", self.ph)?;
        } else {
            write!(f, "p({},{})", self.ph, self.pw)?;
        }
        if self.sh == self.sw {
            write!(f, "/s{}", self.sh)
        } else {
            write!(f, "/s({},{})", self.sh, self.sw)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn chapter_examples() {
        // Section 7.2.4: 4x4 input, 3x3 filter, padding 1, stride 1 -> 4x4.
        assert_eq!(Window::square(3).with_pad(1).output_size(4, 4), Ok((4, 4)));
        // 7x7, 3x3, stride 2 -> 3x3.
        assert_eq!(Window::square(3).with_stride(2).output_size(7, 7), Ok((3, 3)));
    }

    #[test]
    fn errors_name_the_sizes() {
        let e = output_size("height", 28, 5, 2, 0).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("28") && msg.contains("stride 2") && msg.contains("23"),
            "{msg}"
        );
        let e = output_size("width", 3, 5, 1, 0).unwrap_err();
        assert!(matches!(e, ShapeError::FilterTooLarge { filter: 5, .. }), "{e}");
        assert_eq!(
            output_size("width", 3, 1, 0, 0),
            Err(ShapeError::Zero { what: "stride" })
        );
        assert!(output_size("width", usize::MAX, 1, 1, 1).is_err());
    }

    proptest! {
        // Oracle: count window positions by stepping, independent of the formula.
        #[test]
        fn output_size_counts_positions(size in 0usize..40, f in 1usize..8, s in 1usize..5, p in 0usize..4) {
            let padded = size + 2 * p;
            let mut starts = 0;
            let mut last_end = 0;
            let mut start = 0;
            while start + f <= padded {
                starts += 1;
                last_end = start + f;
                start += s;
            }
            match output_size("height", size, f, s, p) {
                Ok(o) => {
                    prop_assert_eq!(o, starts);
                    prop_assert_eq!(last_end, padded, "an exact window ends at the padded edge");
                }
                Err(_) => prop_assert!(starts == 0 || last_end != padded),
            }
        }
    }
}
