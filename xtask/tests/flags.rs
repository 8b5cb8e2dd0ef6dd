//! Bad flags are refused before anything is written: each refusal names
//! the flag with what it must be and what it was, exits non-zero, and
//! leaves `--out` as it found it.

use crate::common::contents;
use std::process::Command;

const XTASK: &str = env!("CARGO_BIN_EXE_xtask");

/// Runs xtask with `args`; returns whether it succeeded and its stderr.
fn run(args: &[&str]) -> (bool, String) {
    let out = Command::new(XTASK).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn refused_runs_name_the_flag_and_touch_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("model.safetensors"), b"a trained model").unwrap();
    let before = contents(&out);
    let out_s = out.to_str().unwrap();
    for (flags, says) in [
        (&["--epochs", "0"][..], "--epochs 0: at least 1"),
        (
            &["--batch-size", "0"],
            "--batch-size 0: between 1 and the 8000 training images",
        ),
        (
            &["--batch-size", "1000000000000"],
            "--batch-size 1000000000000: between 1 and",
        ),
        (&["--lr", "NaN"], "--lr NaN: a finite number > 0"),
        (&["--lr=-1"], "--lr -1: a finite number > 0"),
        (
            &["--isa", "sse"],
            "unknown instruction set \"sse\"; expected avx512, avx2 or portable",
        ),
    ] {
        let mut args = vec!["train", "--out", out_s];
        args.extend_from_slice(flags);
        let (ok, stderr) = run(&args);
        assert!(!ok, "{flags:?} was accepted");
        assert!(stderr.contains(says), "{flags:?}: {stderr}");
        assert_eq!(stderr.matches(says).count(), 1, "said once: {stderr}");
        assert_eq!(contents(&out), before, "{flags:?} touched {out_s}");
    }
}

#[test]
fn other_commands_refuse_what_would_check_nothing() {
    let (ok, stderr) = run(&["gradcheck", "--layer", "relu", "--tol", "NaN"]);
    assert!(
        !ok && stderr.contains("tol must be a finite number >= 0, found NaN"),
        "{stderr}"
    );
    let (ok, stderr) = run(&["gradcheck", "--layer", "relu", "--coords", "0"]);
    assert!(
        !ok && stderr.contains("max_coords must be at least 1"),
        "{stderr}"
    );
    // Refused before cargo bench starts: no benchmark runs on zero threads.
    let (ok, stderr) = run(&["bench", "--quick", "--threads", "0"]);
    assert!(!ok && stderr.contains("--threads 0: at least 1"), "{stderr}");
    // Refused before the tests are built or Bochs starts.
    let (ok, stderr) = run(&["emulate-avx512", "--timeout", "0"]);
    assert!(
        !ok && stderr.contains("--timeout 0: between 1 and 10080 minutes"),
        "{stderr}"
    );
    let dir = tempfile::tempdir().unwrap();
    let not_a_kernel = dir.path().join("vmlinuz");
    std::fs::write(&not_a_kernel, vec![0u8; 4096]).unwrap();
    let k = not_a_kernel.to_str().unwrap();
    let (ok, stderr) = run(&["emulate-avx512", "--kernel", k]);
    assert!(
        !ok && stderr.contains(&format!("--kernel {k}: expected an x86 bzImage")),
        "{stderr}"
    );
    let (ok, stderr) = run(&["emulate-avx512", "--kernel", "/no/such/vmlinuz"]);
    assert!(
        !ok && stderr.contains("--kernel /no/such/vmlinuz: no such file"),
        "{stderr}"
    );
    let (ok, stderr) = run(&["fuzz", "--target", "typo", "--cases", "1"]);
    assert!(
        !ok && stderr.contains("--target \"typo\": no such target"),
        "{stderr}"
    );
}
