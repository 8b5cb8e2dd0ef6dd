//! The datasets crate's integration tests that can share a process, as one
//! test binary: each binary links the crate and its dependencies on its
//! own, so a binary per file would cost the test build one link each. Two
//! keep binaries of their own: `allocation.rs` counts with a global
//! allocator, and `real_data.rs` has a harness that reports a dataset it
//! was not given as skipped. `xtask/tests/tidy.rs` checks that every file
//! under `tests/` is compiled.

mod download;
mod folders;
mod images;
mod readers;
