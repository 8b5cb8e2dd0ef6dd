//! The `cargo xtask` binary: parses the command line, runs the command,
//! reports its error. The commands are in the `xtask` library.

use clap::Parser;

#[global_allocator]
static COUNTING: xtask::alloc::Counting = xtask::alloc::Counting;

fn main() {
    if let Err(e) = xtask::Cli::parse().run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
