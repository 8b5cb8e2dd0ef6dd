//! Ctrl-C during `cargo xtask train` saves a resumable checkpoint, and
//! `--resume` ends with weights bit-identical to a run never interrupted.

use std::path::Path;
use std::process::{Command, Stdio};

use layers::Parameters;

const XTASK: &str = env!("CARGO_BIN_EXE_xtask");

fn train(out: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(XTASK);
    c.args([
        "train",
        "--model",
        "lenet",
        "--epochs",
        "2",
        "--batch-size",
        "200",
        "--out",
    ])
    .arg(out)
    .args(extra)
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    c
}

fn weights(path: &Path) -> Vec<u32> {
    let net: models::Network<f32> = models::checkpoint::load(path).unwrap();
    let mut bits = Vec::new();
    net.visit_params(&mut |_, v, _| bits.extend(v.iter().map(|x| x.to_bits())));
    bits
}

#[test]
fn ctrl_c_then_resume_is_bit_identical_to_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let straight = dir.path().join("straight");
    let started = std::time::Instant::now();
    assert!(train(&straight, &[]).status().unwrap().success());
    let full = started.elapsed();
    let reference = weights(&straight.join("model.safetensors"));

    let mut interrupted_mid_run = 0;
    for (k, fraction) in [0.35, 0.7].into_iter().enumerate() {
        let out = dir.path().join(format!("interrupted-{k}"));
        let child = train(&out, &[]).spawn().unwrap();
        std::thread::sleep(full.mul_f64(fraction));
        // SIGINT, as Ctrl-C sends it.
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        if output.status.code() == Some(130) {
            interrupted_mid_run += 1;
            assert!(
                stderr.contains("resume with: cargo xtask train --resume"),
                "{stderr}"
            );
            let resumed = train(&out, &["--resume"])
                .arg(out.join("checkpoint.safetensors"))
                .output()
                .unwrap();
            assert!(
                resumed.status.success(),
                "{}",
                String::from_utf8_lossy(&resumed.stderr)
            );
        } else {
            assert!(output.status.success(), "{stderr}");
        }
        assert_eq!(
            weights(&out.join("model.safetensors")),
            reference,
            "interruption {k}"
        );
    }
    assert!(interrupted_mid_run > 0, "no interruption landed during training");
}
