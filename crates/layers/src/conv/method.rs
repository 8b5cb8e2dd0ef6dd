//! How a convolution computes: the methods a user may choose, and the one
//! `match` that turns a method into the algorithm that runs.

use tensor4d::Window;

use crate::Error;

/// The least window depth `C*FH*FW` for which [`ConvMethod::Auto`] packs
/// windows straight from the input ([`ConvMethod::Implicit`]).
const IMPLICIT_DEPTH: usize = 256;

/// The least input channels for which [`ConvMethod::Implicit`] takes the
/// input gradient as a transposed convolution rather than by `col2im`:
/// its product has a row per input channel, and with fewer each packed
/// panel of windows serves too few of them to pay for its packing.
const TRANSPOSED_CHANNELS: usize = 64;

/// How a [`Convolution`](crate::Convolution) computes. All methods compute the chapter's
/// numbers; the engine's differ from [`ConvMethod::Chapter`] only in
/// rounding (the order in which each output's sum is added up, and fused
/// multiply-adds where the CPU has them), and tests hold them to it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ConvMethod {
    /// The engine's choice, by the shapes alone, the same for forward and
    /// backward: for stride 1, [`ConvMethod::Direct`] with at most 16
    /// filters, else [`ConvMethod::Implicit`] for windows of at least 256
    /// elements (`C*FH*FW`); otherwise [`ConvMethod::Columns`].
    #[default]
    Auto,
    /// Section 7.4.3 as the book writes it ([`Convolution::forward_chapter`](crate::Convolution::forward_chapter),
    /// [`Convolution::backward_chapter`](crate::Convolution::backward_chapter)): the whole batch unrolled by
    /// `im2col` into `(N*OH*OW, C*FH*FW)`, one product with the filters
    /// reshaped to `(C*FH*FW, FN)`, plus the bias, reshaped and transposed
    /// to NCHW; backward through the same matrices and `col2im`.
    Chapter,
    /// Each image's windows as the columns of a `(C*FH*FW, OH*OW)` matrix
    /// (small outputs several images side by side), multiplied by the
    /// filters on the packed GEMM: the product is already NCHW, and images
    /// are shared among the threads.
    Columns,
    /// [`ConvMethod::Columns`] without writing the columns: the GEMM packs
    /// each panel of windows straight from the input
    /// ([`kernels::gemm_windows_with`], an implicit im2col), in forward and
    /// in the weight gradient, with the same bits as packing written
    /// columns. For stride 1, padding narrower than the window and inputs of
    /// at least 64 channels, the input gradient is the convolution of `dout` with the filters flipped and
    /// their channels swapped (the transposed convolution), on windows of
    /// `dout` packed the same way: nothing is written to be folded back.
    /// Its sums run over filters and window positions at once, so they
    /// round otherwise than `col2im`'s. Elsewhere dx is folded back by
    /// `col2im`, with Columns' bits.
    Implicit,
    /// No `im2col` at all (stride 1 only): each window row is a
    /// contiguous run of the padded input, which the small-matrix kernels
    /// read in place.
    Direct,
}

impl ConvMethod {
    /// The one place that decides how a convolution computes: the method
    /// set, or for [`ConvMethod::Auto`] the engine's rule by the shapes.
    pub(super) fn algorithm(self, filters: usize, channels: usize, win: Window) -> Algorithm {
        let stride_1 = (win.sh, win.sw) == (1, 1);
        match self {
            ConvMethod::Chapter => Algorithm::Chapter,
            ConvMethod::Columns => Algorithm::Columns,
            ConvMethod::Implicit => Algorithm::Implicit,
            ConvMethod::Direct => Algorithm::Direct,
            ConvMethod::Auto if !stride_1 => Algorithm::Columns,
            // Packing pays off only for enough rows of filters: up to 16
            // it does not. From 30 on, it is at least as fast as the small
            // kernels, a first layer's weight gradient included.
            ConvMethod::Auto if filters <= 16 => Algorithm::Direct,
            // Deep windows: packing them from the input saves im2col's
            // pass. Shallow ones make products small enough for the GEMM
            // to read written columns in place, where packing costs more.
            ConvMethod::Auto if channels * win.area() >= IMPLICIT_DEPTH => Algorithm::Implicit,
            ConvMethod::Auto => Algorithm::Columns,
        }
    }

    /// Whether [`Algorithm::Implicit`] takes the input gradient as the
    /// transposed convolution: stride 1 (a larger one would need `dout`
    /// spread out with zeros), padding narrower than the window (the
    /// transposed one pads by `FH - 1 - PH`), and enough input channels.
    pub(super) fn transposed_input_grad(channels: usize, win: Window) -> bool {
        (win.sh, win.sw) == (1, 1) && win.ph < win.fh && win.pw < win.fw && channels >= TRANSPOSED_CHANNELS
    }

    /// Every method, [`ConvMethod::Auto`] first.
    pub const ALL: [ConvMethod; 5] = [
        ConvMethod::Auto,
        ConvMethod::Chapter,
        ConvMethod::Columns,
        ConvMethod::Implicit,
        ConvMethod::Direct,
    ];

    /// Its name in lower case: `auto`, `chapter`, `columns`, `implicit`,
    /// `direct`.
    pub fn name(self) -> &'static str {
        match self {
            ConvMethod::Auto => "auto",
            ConvMethod::Chapter => "chapter",
            ConvMethod::Columns => "columns",
            ConvMethod::Implicit => "implicit",
            ConvMethod::Direct => "direct",
        }
    }
}

impl std::fmt::Display for ConvMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for ConvMethod {
    type Err = Error;

    /// The method of that [`ConvMethod::name`].
    fn from_str(s: &str) -> Result<Self, Error> {
        ConvMethod::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                Error::invalid(
                    "Convolution",
                    format!("unknown method {s:?}; expected auto, chapter, columns, implicit or direct"),
                )
            })
    }
}

/// What actually runs: a method, [`ConvMethod::Auto`] resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Algorithm {
    Chapter,
    Columns,
    Implicit,
    Direct,
}
