//! xtask's integration tests that can share a process, as one test binary:
//! each binary links and instantiates the whole stack on its own, so a
//! binary per file would cost the test build one such build each. Two keep
//! binaries of their own: `alloc.rs` counts with a global allocator, and
//! `onnx.rs` has a harness that reports a missing onnxruntime as skipped.
//! `tidy.rs` checks that every file under `tests/` is compiled.

mod bridges;
mod cli;
mod common;
mod flags;
mod pictures;
mod resume;
mod run;
mod section76;
mod threads;
mod tidy;
