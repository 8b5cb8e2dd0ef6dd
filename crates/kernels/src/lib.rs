//! The engine under the `layers` crate: matrix products for the shapes a
//! convolutional network meets, chosen by the CPU at run time.
//!
//! - [`gemm_with`] (and [`gemm`], [`gemm_view_with`]): a bounds-checked
//!   strided GEMM. For `f32` it is this crate's own packed GEMM, BLIS's
//!   loops around a register tile (12 x 32 for AVX-512 where 512-bit
//!   units are whole, 6 x 16 elsewhere), packing into a [`GemmScratch`]
//!   the caller keeps, so repeated products of the same shapes allocate nothing; for
//!   `f64` (gradient checks) it is
//!   `matrixmultiply`'s dgemm. Transposes are stride swaps on [`MatRef`],
//!   never copies.
//! - [`gemm_few_rows`] and [`gemm_dots`]: the two products a packed GEMM
//!   serves badly, a few rows of A (a convolution's few filters) and long
//!   dot products (a weight gradient), reading B as [`Rows`] wherever its
//!   rows start, so a stride-1 convolution can read its windows in place.
//! - [`gemm_windows_with`]: the GEMM by a convolution's column matrix
//!   ([`Windows`], or its transpose for a weight gradient) without
//!   writing it: each panel of B is packed straight from a padded copy of
//!   the images, with the bits of [`gemm_with`] on the written columns.
//! - [`max_pool_2x2`], [`avg_pool_2x2`] and their backward passes: 2x2
//!   pooling at stride 2 over planes, whose short rows the compiler's own
//!   vectors serve badly.
//! - [`Isa`]: the instruction sets, chosen at run time by
//!   [`Isa::detect`] (AVX-512, AVX2 with FMA, or the portable path that
//!   every CPU runs); its methods run a kernel on a path of the caller's
//!   choosing, and [`with_simd`] runs a closure compiled for the best.
//!
//! Results depend on the shapes and on FMA or not (the portable path has
//! none), never on the number of threads or the vector width: every
//! element's sum runs in a fixed order.
//!
//! ```
//! use kernels::{gemm_with, GemmScratch, MatMut, MatRef};
//! let mut scratch = GemmScratch::default();
//! let a = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]; // 2x3
//! let mut c = [0.0f32; 4];
//! // A A^T without copying A: the transpose swaps strides.
//! let a = MatRef::row_major(&a, 2, 3);
//! gemm_with(&mut scratch, 1.0, a, a.t(), 0.0, MatMut::row_major(&mut c, 2, 2));
//! assert_eq!(c, [14.0, 32.0, 32.0, 77.0]);
//! ```

#![deny(missing_docs)]

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

mod gemm;
mod packed;
mod pool;
mod small;
mod windows;

// The README's examples run as doctests, so it cannot drift from the code.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

pub use gemm::{MatMut, MatRef, gemm, gemm_view_with, gemm_with};
pub use packed::GemmScratch;
pub use pool::{avg_pool_2x2, avg_pool_2x2_backward, max_pool_2x2, max_pool_2x2_backward};
pub use small::{FEW_ROWS_COLS, Rows, gemm_dots, gemm_few_rows};
pub use windows::{Windows, gemm_windows_with};

/// Rows of the tile of [`gemm_few_rows`] (and of the AVX2 GEMM tile): 6
/// rows of 2 AVX2 vectors are 12 accumulators, which fit the 16 registers
/// beside a loaded row of B and a broadcast element of A. Callers whose
/// cost depends on whole tiles (an affine layer choosing whether a batch
/// is few enough rows to read its weights in place) read it here.
pub const TILE_ROWS: usize = 6;

/// Columns of the widest GEMM tile (two AVX-512 vectors of `f32`), a
/// multiple of every path's: the packed GEMM packs B in panels of its
/// tile's width, so a caller that splits C's columns among threads splits
/// them in multiples of this.
pub const TILE_COLS: usize = 32;

/// Multiply-adds that each part of a product shared among threads should
/// have at least: handing a part to another thread (waking it, and each
/// part packing its own operands) costs microseconds, which a smaller part
/// does not repay. How a product is split never changes its bits.
pub const MIN_PART_WORK: usize = 1 << 20;

/// The instruction sets the kernels are written for, best first. Every
/// entry point without an `Isa` runs on [`Isa::active`]'s ([`Isa::detect`]'s
/// unless [`Isa::select`] chose another); the methods of `Isa` run on the
/// one given, so tests and benchmarks can compare paths on one machine. AVX-512 and AVX2 give the same bits (both fuse
/// multiply-adds and sum in the same order); the portable path does not
/// fuse, so its results differ in rounding.
///
/// ```
/// use kernels::Isa;
/// let best = Isa::detect();
/// assert!(best.is_available() && Isa::Portable.is_available());
/// println!("kernels: {}", best.name());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// AVX-512F with AVX2 and FMA (x86-64): the kernels compiled for
    /// 512-bit vectors, and the 12 x 32 GEMM tile, or the 6 x 16 one on a
    /// CPU that runs each 512-bit operation as two 256-bit halves (AMD's
    /// Zen 4), where the wide tile was measured slower. The two tiles give
    /// the same bits.
    Avx512,
    /// AVX2 and FMA (x86-64): a 6 x 16 GEMM tile.
    Avx2,
    /// Any CPU: baseline instructions, no fused multiply-add.
    Portable,
}

impl Isa {
    /// Every path, best first.
    pub const ALL: [Isa; 3] = [Isa::Avx512, Isa::Avx2, Isa::Portable];

    /// The fastest path for this CPU, decided on the first call: the best
    /// it has.
    ///
    /// ```
    /// use kernels::Isa;
    /// let isa = Isa::detect();
    /// assert!(isa.is_available());
    /// // Never the portable path on a CPU that has a faster one.
    /// assert!(isa != Isa::Portable || !Isa::Avx2.is_available());
    /// assert_eq!(Isa::detect(), isa); // decided once
    /// ```
    pub fn detect() -> Isa {
        // CPUID is slow (a hypervisor may trap it), and entry points ask
        // on every call: decide once.
        static DETECTED: OnceLock<Isa> = OnceLock::new();
        *DETECTED.get_or_init(|| {
            if Isa::Avx512.is_available() {
                Isa::Avx512
            } else if Isa::Avx2.is_available() {
                Isa::Avx2
            } else {
                Isa::Portable
            }
        })
    }

    /// The path of every entry point that takes no `Isa`: the one last
    /// given to [`Isa::select`], or [`Isa::detect`]'s. [`Isa::select`]'s
    /// example shows both.
    pub fn active() -> Isa {
        match SELECTED.load(Ordering::Relaxed) {
            0 => Isa::detect(),
            i => Isa::ALL[usize::from(i) - 1],
        }
    }

    /// Makes `isa` the path of every entry point that takes no `Isa`, for
    /// the whole process (`None`: back to [`Isa::detect`]'s), so a run can
    /// reproduce another path's bits, such as the portable path's on a CPU
    /// with FMA. Refused, changing nothing, if this CPU lacks the path.
    ///
    /// ```
    /// use kernels::Isa;
    /// Isa::select(Some(Isa::Portable)).unwrap();
    /// assert_eq!(Isa::active(), Isa::Portable);
    /// Isa::select(None).unwrap();
    /// assert_eq!(Isa::active(), Isa::detect());
    /// ```
    pub fn select(isa: Option<Isa>) -> Result<(), Unavailable> {
        let code = match isa {
            None => 0,
            Some(isa) if !isa.is_available() => return Err(Unavailable(isa)),
            Some(isa) => Isa::ALL.iter().position(|&i| i == isa).map_or(0, |i| i as u8 + 1),
        };
        SELECTED.store(code, Ordering::Relaxed);
        Ok(())
    }

    /// Whether this CPU has the instructions of this path.
    ///
    /// ```
    /// use kernels::Isa;
    /// let paths: Vec<Isa> = Isa::ALL.into_iter().filter(|i| i.is_available()).collect();
    /// assert_eq!(paths.last(), Some(&Isa::Portable)); // every CPU runs it
    /// // AVX-512 here also means AVX2 and FMA.
    /// assert!(!Isa::Avx512.is_available() || Isa::Avx2.is_available());
    /// ```
    pub fn is_available(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => std::is_x86_feature_detected!("avx512f") && Isa::Avx2.is_available(),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma"),
            Isa::Portable => true,
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// `avx512`, `avx2` or `portable`, the spelling [`str::parse`] takes
    /// back.
    ///
    /// ```
    /// use kernels::Isa;
    /// for isa in Isa::ALL {
    ///     assert_eq!(isa.name().parse::<Isa>(), Ok(isa));
    /// }
    /// assert!("sse2".parse::<Isa>().is_err());
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "avx512",
            Isa::Avx2 => "avx2",
            Isa::Portable => "portable",
        }
    }

    /// Rows and columns of the packed GEMM's register tile on this path and
    /// this CPU: 12 x 32 for AVX-512, but 6 x 16 where 512-bit operations
    /// run as two 256-bit halves (AMD's Zen 4); 6 x 16 for AVX2 and the
    /// portable path. The tiles give the same bits: this is speed alone.
    ///
    /// ```
    /// use kernels::Isa;
    /// assert_eq!(Isa::Avx2.gemm_tile(), (6, 16));
    /// assert!([(12, 32), (6, 16)].contains(&Isa::Avx512.gemm_tile()));
    /// ```
    pub fn gemm_tile(self) -> (usize, usize) {
        packed::MicroKernel::of(self).size()
    }

    /// Panics unless this path is available (a bug in the caller, who
    /// checks [`Isa::is_available`] before asking for a path).
    pub(crate) fn assert_available(self) {
        assert!(
            self.is_available(),
            "the {} kernels need CPU features this CPU lacks",
            self.name()
        );
    }

    /// Runs `f` compiled for this path's instructions (which must be
    /// available): loops inlined into `f` are vectorised 16 `f32` wide for
    /// AVX-512, 8 for AVX2, 4 for baseline x86-64. `f` receives whether
    /// the path has FMA; the compiler never fuses a multiply and an add on
    /// its own, so a loop that does not ask for `mul_add` gives the same
    /// bits on every path.
    ///
    /// Panics if this CPU lacks the path's instructions.
    ///
    /// ```
    /// use kernels::Isa;
    /// let x: Vec<f32> = (0..1000).map(|i| i as f32).collect();
    /// for isa in Isa::ALL.into_iter().filter(|i| i.is_available()) {
    ///     let (fma, sum_sq) = isa.run(|fma| (fma, x.iter().map(|v| v * v).sum::<f32>()));
    ///     assert_eq!(fma, isa != Isa::Portable);
    ///     // A sequential sum, with no mul_add asked for: the same bits everywhere.
    ///     assert_eq!(sum_sq, x.iter().map(|v| v * v).sum::<f32>());
    /// }
    /// ```
    #[inline(always)]
    pub fn run<R>(self, f: impl FnOnce(bool) -> R) -> R {
        self.assert_available();
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx512f,avx2,fma")]
            fn avx512<R>(f: impl FnOnce(bool) -> R) -> R {
                f(true)
            }
            #[target_feature(enable = "avx2,fma")]
            fn avx2<R>(f: impl FnOnce(bool) -> R) -> R {
                f(true)
            }
            match self {
                // SAFETY: the CPU was just seen to have the path's features.
                Isa::Avx512 => return unsafe { avx512(f) },
                // SAFETY: as above.
                Isa::Avx2 => return unsafe { avx2(f) },
                Isa::Portable => {}
            }
        }
        f(false)
    }
}

/// Whether this CPU runs each 512-bit operation as two 256-bit halves, so
/// that the GEMM's wide AVX-512 tile does not pay: an AMD CPU of family 19h
/// (Zen 3 and Zen 4, of which only Zen 4 has AVX-512). Decided once.
pub(crate) fn halves_512_bit_operations() -> bool {
    static HALVES: OnceLock<bool> = OnceLock::new();
    *HALVES.get_or_init(amd_family_19h)
}

fn amd_family_19h() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::__cpuid;
        // SAFETY: CPUID exists on every x86-64 CPU (an unsafe call on older
        // toolchains only).
        #[allow(unused_unsafe)]
        let (vendor, signature) = unsafe { (__cpuid(0), __cpuid(1).eax) };
        let amd = (vendor.ebx, vendor.edx, vendor.ecx) == (0x6874_7541, 0x6974_6E65, 0x444D_4163);
        let base = (signature >> 8) & 0xf;
        let family = if base == 0xf {
            base + ((signature >> 20) & 0xff)
        } else {
            base
        };
        amd && family == 0x19
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// The path [`Isa::select`] chose: 0 for none, else 1 + its index in
/// [`Isa::ALL`].
static SELECTED: AtomicU8 = AtomicU8::new(0);

/// A path this CPU lacks the instructions for, asked of [`Isa::select`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unavailable(pub Isa);

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let available: Vec<&str> = Isa::ALL
            .iter()
            .filter(|i| i.is_available())
            .map(|i| i.name())
            .collect();
        write!(
            f,
            "the {} kernels need CPU features this CPU lacks; it can run {}",
            self.0,
            available.join(", ")
        )
    }
}

impl std::error::Error for Unavailable {}

impl std::str::FromStr for Isa {
    type Err = String;

    /// The path of that [`Isa::name`].
    fn from_str(s: &str) -> Result<Self, String> {
        Isa::ALL
            .into_iter()
            .find(|i| i.name() == s)
            .ok_or_else(|| format!("unknown instruction set {s:?}; expected avx512, avx2 or portable"))
    }
}

impl std::fmt::Display for Isa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Runs `f` compiled for [`Isa::active`]'s instructions (`f` receives
/// whether they include FMA).
///
/// ```
/// let sum: f32 = kernels::with_simd(|_| (1..=4).map(|v| v as f32).sum());
/// assert_eq!(sum, 10.0);
/// ```
#[inline(always)]
pub fn with_simd<R>(f: impl FnOnce(bool) -> R) -> R {
    Isa::active().run(f)
}
