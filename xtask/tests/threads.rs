//! `cargo xtask train` writes the same model, byte for byte, on one thread
//! and on two.

use std::process::Command;

#[test]
fn one_and_two_threads_write_byte_identical_models() {
    let dir = tempfile::tempdir().unwrap();
    let model = |threads: &str| {
        let out = dir.path().join(format!("threads-{threads}"));
        let status = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["train", "--epochs", "1", "--threads", threads, "--out"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            status.status.success(),
            "{}",
            String::from_utf8_lossy(&status.stderr)
        );
        std::fs::read(out.join("model.safetensors")).unwrap()
    };
    assert!(
        model("1") == model("2"),
        "model.safetensors differs between 1 and 2 threads"
    );
}
