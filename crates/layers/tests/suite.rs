//! The layers crate's integration tests, as one test binary: each binary
//! links and instantiates the whole stack on its own, so a binary per file
//! would cost the test build one such build each. `xtask/tests/tidy.rs`
//! checks that every file under `tests/` is compiled.

mod common;
mod definitions;
mod gradients;
mod no_panic;
mod optim;
mod oracles;
