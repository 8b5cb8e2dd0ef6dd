//! The models crate's integration tests that can share a process, as one
//! test binary: each binary links and instantiates the whole stack on its
//! own, so a binary per file would cost the test build one such build each.
//! Two keep binaries of their own: `allocation.rs` counts with a global
//! allocator, and `paths.rs` switches the process-wide kernel path.
//! `xtask/tests/tidy.rs` checks that every file under `tests/` is compiled.

mod architectures;
mod checkpoints;
mod common;
mod gradients;
mod no_panic;
mod onnx;
mod specs;
mod summary;
mod threads;
mod training;
