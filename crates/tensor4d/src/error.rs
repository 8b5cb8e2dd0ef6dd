use thiserror::Error;

/// A shape that a tensor operation cannot handle, with the sizes that made it
/// so. Layers wrap it with their own name; the message here names the sizes.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ShapeError {
    /// The window does not tile the padded input: `(size + 2*pad - filter)`
    /// is not a multiple of `stride`.
    #[error(
        "output {axis} is not whole: ({size} + 2*{pad} - {filter}) = {span} is not a multiple of stride {stride}"
    )]
    NotExact {
        /// `"height"` or `"width"`.
        axis: &'static str,
        /// Input size along the axis.
        size: usize,
        /// Zero padding on each side.
        pad: usize,
        /// Filter size along the axis.
        filter: usize,
        /// Stride along the axis.
        stride: usize,
        /// `size + 2*pad - filter`.
        span: usize,
    },
    /// The filter is larger than the padded input, so the output is empty.
    #[error("filter {axis} {filter} is larger than the input {axis} {size} padded to {padded}")]
    FilterTooLarge {
        /// `"height"` or `"width"`.
        axis: &'static str,
        /// Input size along the axis.
        size: usize,
        /// Input size plus padding on both sides.
        padded: usize,
        /// Filter size along the axis.
        filter: usize,
    },
    /// A size that must be positive is zero (a filter, a stride, a count).
    #[error("{what} must be at least 1, found 0")]
    Zero {
        /// What was zero, e.g. `"stride"`.
        what: &'static str,
    },
    /// The input has the wrong number of axes.
    #[error("expected an input of rank {expected}, found shape {found:?}")]
    Rank {
        /// The rank expected, with the axes' meaning.
        expected: &'static str,
        /// The shape found.
        found: Vec<usize>,
    },
    /// A tensor has an empty axis.
    #[error("shape {shape:?} has an empty axis")]
    Empty {
        /// The shape found.
        shape: Vec<usize>,
    },
    /// Any other disagreement between what is expected and what was found.
    #[error("{what}: expected {expected}, found {found}")]
    Mismatch {
        /// What disagrees, e.g. `"input channels"`.
        what: String,
        /// The expected value.
        expected: String,
        /// The value found.
        found: String,
    },
    /// Sizes whose product overflows `usize` or exceeds what can be allocated.
    #[error("{what} is too large: {detail}")]
    TooLarge {
        /// What overflowed.
        what: &'static str,
        /// The sizes involved.
        detail: String,
    },
}

impl ShapeError {
    /// Shorthand for [`ShapeError::Mismatch`].
    pub fn mismatch(
        what: impl Into<String>,
        expected: impl std::fmt::Display,
        found: impl std::fmt::Display,
    ) -> Self {
        ShapeError::Mismatch {
            what: what.into(),
            expected: expected.to_string(),
            found: found.to_string(),
        }
    }
}
