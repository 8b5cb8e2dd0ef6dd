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

/// A SimpleConvNet trained by `train --epochs 1` on the embedded subset,
/// once per test binary: its model.safetensors and what `train` printed.
#[allow(dead_code, reason = "not every test binary trains")]
pub struct Trained {
    pub model: std::path::PathBuf,
    pub stdout: String,
}

#[allow(dead_code, reason = "not every test binary trains")]
impl Trained {
    /// `train`'s last line, `test accuracy: NN.NN%`.
    pub fn accuracy(&self) -> &str {
        self.stdout.lines().last().unwrap_or_default()
    }
}

#[allow(dead_code, reason = "not every test binary trains")]
pub fn trained() -> &'static Trained {
    static RUN: std::sync::OnceLock<Trained> = std::sync::OnceLock::new();
    RUN.get_or_init(|| {
        let out = tempfile::tempdir().unwrap().keep().join("run");
        let (ok, stdout, e) = run(&[
            "train",
            "--epochs",
            "1",
            "--threads",
            "2",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(ok, "{stdout}\n{e}");
        let trained = Trained {
            model: out.join("model.safetensors"),
            stdout,
        };
        assert!(
            trained.accuracy().starts_with("test accuracy: "),
            "{}",
            trained.stdout
        );
        trained
    })
}
