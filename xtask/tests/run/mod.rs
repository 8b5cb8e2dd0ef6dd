//! Running the built `xtask` binary as a user runs it, for the tests that
//! check commands end to end.

use std::process::Command;

/// The binary under test.
pub const XTASK: &str = env!("CARGO_BIN_EXE_xtask");

/// Runs xtask; returns whether it succeeded, its stdout and its stderr.
pub fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(XTASK).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
