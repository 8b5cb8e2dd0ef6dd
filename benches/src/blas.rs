//! OpenBLAS's `cblas_sgemm`, loaded at run time to be the benchmarks'
//! yardstick. Nothing links against it: a machine without OpenBLAS builds
//! and runs the benchmarks all the same, and the report then measures
//! against `matrixmultiply` and says so.

use std::ffi::{CStr, c_char, c_int};
use std::sync::OnceLock;

use crate::products::Mat;

/// The environment variable naming the library to load before the
/// [`LIBRARY_NAMES`] (a path, or a name the dynamic loader searches for).
pub const ENV_VAR: &str = "BENCH_BLAS";

/// The libraries tried after [`ENV_VAR`], in order: Debian's
/// `libopenblas0` provides the first, `libopenblas-dev` the second.
pub const LIBRARY_NAMES: [&str; 2] = ["libopenblas.so.0", "libopenblas.so"];

/// What the report says when no library loads.
pub const NOT_FOUND: &str = "reference BLAS: not found (set BENCH_BLAS or install libopenblas-dev)";

// CBLAS's enumerations (`CBLAS_ORDER`, `CBLAS_TRANSPOSE`).
const ROW_MAJOR: c_int = 101;
const NO_TRANS: c_int = 111;
const TRANS: c_int = 112;

/// `cblas_sgemm(order, transa, transb, m, n, k, alpha, a, lda, b, ldb,
/// beta, c, ldc)` with 32-bit integers (the LP64 interface that
/// `libopenblas.so.0` exports; the 64-bit one has other symbol names).
type SgemmFn = unsafe extern "C" fn(
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    f32,
    *const f32,
    c_int,
    *const f32,
    c_int,
    f32,
    *mut f32,
    c_int,
);
type SetThreadsFn = unsafe extern "C" fn(c_int);
type NameFn = unsafe extern "C" fn() -> *const c_char;

/// A loaded CBLAS library: its `cblas_sgemm`, and OpenBLAS's thread
/// setting where the library has one.
pub struct Blas {
    sgemm: SgemmFn,
    set_threads: Option<SetThreadsFn>,
    source: String,
    description: String,
    // The functions above point into the library: it must stay loaded as
    // long as they can be called, so it lives (and is dropped) with them.
    _library: libloading::Library,
}

impl std::fmt::Debug for Blas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blas")
            .field("source", &self.source)
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

impl Blas {
    /// Loads the first library that opens and exports `cblas_sgemm`: the
    /// one [`ENV_VAR`] names if set, then the [`LIBRARY_NAMES`]. The error
    /// lists what was tried and why each failed.
    pub fn load() -> Result<Blas, String> {
        Self::load_with(std::env::var(ENV_VAR).ok().as_deref())
    }

    /// [`Blas::load`] with `first` in place of [`ENV_VAR`]'s value (for a
    /// caller that passes the variable on to a child process, resolved).
    pub fn load_with(first: Option<&str>) -> Result<Blas, String> {
        let mut failures = Vec::new();
        for name in first.filter(|s| !s.is_empty()).into_iter().chain(LIBRARY_NAMES) {
            match Self::open(name) {
                Ok(blas) => return Ok(blas),
                Err(e) => failures.push(format!("{name}: {e}")),
            }
        }
        Err(failures.join("; "))
    }

    fn open(name: &str) -> Result<Blas, libloading::Error> {
        // SAFETY: loading a library runs its initialisers. The names tried
        // are OpenBLAS's own, or the one the person running the benchmarks
        // chose with BENCH_BLAS; a BLAS's initialisers set up its thread
        // pool and CPU dispatch and nothing this process relies on.
        let library = unsafe { libloading::Library::new(name)? };
        // SAFETY: each symbol is given the type that the CBLAS and OpenBLAS
        // headers declare for it; the function pointers copied out are
        // kept beside `library`, which stays loaded while they exist.
        let (sgemm, set_threads, config, corename) = unsafe {
            (
                *library.get::<SgemmFn>(b"cblas_sgemm\0")?,
                library
                    .get::<SetThreadsFn>(b"openblas_set_num_threads\0")
                    .ok()
                    .map(|s| *s),
                library.get::<NameFn>(b"openblas_get_config\0").ok().map(|s| *s),
                library.get::<NameFn>(b"openblas_get_corename\0").ok().map(|s| *s),
            )
        };
        let text = |f: Option<NameFn>| {
            // SAFETY: OpenBLAS returns a pointer to a static NUL-terminated
            // string (or null, checked) that lives as long as the library.
            f.map(|f| unsafe { f() })
                .filter(|p| !p.is_null())
                .map(|p| unsafe { CStr::from_ptr(p) }.to_string_lossy().trim().to_string())
        };
        let description = match (text(config), text(corename)) {
            (Some(config), Some(core)) => format!("{config}, core {core}"),
            (Some(config), None) => config,
            (None, _) => "a CBLAS library (not OpenBLAS: no openblas_get_config)".into(),
        };
        Ok(Blas {
            sgemm,
            set_threads,
            source: name.to_string(),
            description,
            _library: library,
        })
    }

    /// The library [`Blas::load`] found, loaded once per process; `None`
    /// when none loads.
    pub fn shared() -> Option<&'static Blas> {
        static BLAS: OnceLock<Option<Blas>> = OnceLock::new();
        BLAS.get_or_init(|| Blas::load().ok()).as_ref()
    }

    /// The name or path it was loaded by.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// What the library says it is: OpenBLAS's build configuration and the
    /// CPU core its kernels were chosen for.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Whether [`Blas::set_threads`] can set its thread count.
    pub fn has_thread_setting(&self) -> bool {
        self.set_threads.is_some()
    }

    /// Sets how many threads OpenBLAS uses for each call, for the whole
    /// process; without `openblas_set_num_threads`, nothing.
    pub fn set_threads(&self, threads: usize) {
        if let Some(f) = self.set_threads {
            let n = c_int::try_from(threads.max(1)).unwrap_or(c_int::MAX);
            // SAFETY: OpenBLAS's `void openblas_set_num_threads(int)`, any
            // count at least 1.
            unsafe { f(n) }
        }
    }

    /// `C <- A B + beta C`, with C a row-major matrix of A's rows and B's
    /// columns whose rows start `ldc` elements apart (the whole matrix, or
    /// a band of rows of one). Panics on sizes that do not agree or do not
    /// fit in the slices, or that CBLAS's 32-bit integers cannot hold.
    pub fn sgemm(&self, a: Mat<'_>, b: Mat<'_>, beta: f32, c: &mut [f32], ldc: usize) {
        let (m, n, k) = (a.rows(), b.cols(), a.cols());
        assert_eq!(k, b.rows(), "cblas_sgemm: inner sizes");
        if m == 0 || n == 0 {
            return;
        }
        assert!(
            ldc >= n && c.len() >= (m - 1) * ldc + n,
            "cblas_sgemm: a {m}x{n} C with rows {ldc} apart in {}",
            c.len()
        );
        let int = |x: usize| c_int::try_from(x).expect("cblas_sgemm: a size over i32::MAX");
        let (ta, lda) = a.cblas();
        let (tb, ldb) = b.cblas();
        // SAFETY: `Mat` checked that A's and B's elements lie in their
        // slices, and the assertion above that C's do; `&mut` keeps C apart
        // from A and B. With `k == 0` CBLAS reads neither A nor B.
        unsafe {
            (self.sgemm)(
                ROW_MAJOR,
                ta,
                tb,
                int(m),
                int(n),
                int(k),
                1.0,
                a.as_ptr(),
                int(lda),
                b.as_ptr(),
                int(ldb),
                beta,
                c.as_mut_ptr(),
                int(ldc),
            )
        }
    }
}

impl Mat<'_> {
    /// CBLAS's transpose flag and leading dimension for this matrix in
    /// row-major order: a matrix whose rows are contiguous is itself, one
    /// whose columns are is the transpose of a row-major one.
    fn cblas(&self) -> (c_int, usize) {
        let (rs, cs) = self.strides();
        if cs == 1 && rs >= self.cols().max(1) {
            (NO_TRANS, rs)
        } else if rs == 1 && cs >= self.rows().max(1) {
            (TRANS, cs)
        } else {
            panic!("cblas_sgemm: strides ({rs}, {cs}) are neither row- nor column-major")
        }
    }
}
