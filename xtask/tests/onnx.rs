//! ONNX out: `cargo xtask export` writes each of MODELS.md's networks as an
//! ONNX model that onnxruntime -- an implementation independent of this
//! project, through `xtask/interop/check_onnx.py` -- runs to the scores
//! `cargo xtask eval --scores` reports: the same class for every image of
//! the embedded test split, every score within 1e-4.
//!
//! The runtime checks need Python with `onnx`, `onnxruntime`, `numpy` and
//! `safetensors`. Without them they are reported as ignored (skipped), not
//! passed; under CI (`CI=true`, where `.ci/run` installs them) they fail.
//! A harness of its own (libtest-mimic) is what lets a test be skipped at
//! run time.

mod run;
use run::run;

use std::path::{Path, PathBuf};
use std::process::Command;

use layers::{Init, Parameters};
use libtest_mimic::{Arguments, Failed, Trial};
use models::{Architecture, BuildOptions, checkpoint};

fn ensure(ok: bool, what: String) -> Result<(), Failed> {
    if ok { Ok(()) } else { Err(what.into()) }
}

/// `arch` with He-initialised weights (scores of order one, so that a
/// tolerance of 1e-4 means something) saved as a checkpoint in `dir`.
fn checkpoint_of(arch: Architecture, dir: &Path) -> PathBuf {
    let options = BuildOptions {
        init: Some(Init::He),
        ..BuildOptions::default()
    };
    let net = arch.build_with::<f32>([1, 28, 28], 10, 3, options).unwrap();
    let path = dir.join("model.safetensors");
    checkpoint::save(&net, &path).unwrap();
    path
}

/// A network of none of MODELS.md's shapes: windows wider than tall,
/// padded max pooling over negative values (where zero padding and ONNX's
/// -inf differ) and padded average pooling (once padded as much as its window, which
/// onnxruntime's own pads refuse), LRN, dropout.
const ODD_NETWORK: &str = r#"
name = "odd"
input = [1, 28, 28]
classes = 10
init = "he"

[[layers]]
kind = "conv"
filters = 6
size = [3, 5]
pad = 1

[[layers]]
kind = "max-pool"
size = 2
pad = 1

[[layers]]
kind = "sigmoid"

[[layers]]
kind = "conv"
filters = 8
size = 3

[[layers]]
kind = "relu"

[[layers]]
kind = "lrn"

[[layers]]
kind = "avg-pool"
size = 3
stride = 1
pad = 1

[[layers]]
kind = "avg-pool"
size = 2
stride = 1
pad = 2

[[layers]]
kind = "dropout"
ratio = 0.5

[[layers]]
kind = "affine"
"#;

fn odd_checkpoint(dir: &Path) -> PathBuf {
    let spec = models::NetworkSpec::parse(ODD_NETWORK, "odd.toml").unwrap();
    let mut net = spec.build::<f32>(5, BuildOptions::default()).unwrap();
    // MNIST's borders are blank: a negative bias makes the values the
    // padded windows see there negative.
    net.visit_params_mut(&mut |name, mut value, _| {
        if name == "conv1.bias" {
            value.fill(-0.5);
        }
    });
    let path = dir.join("model.safetensors");
    checkpoint::save(&net, &path).unwrap();
    path
}

/// Export, reference scores, and onnxruntime's verdict on them.
fn same_in_onnxruntime(name: &str, make: impl FnOnce(&Path) -> PathBuf) -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let ckpt = make(dir.path());
    let (onnx, scores) = (
        dir.path().join("model.onnx"),
        dir.path().join("scores.safetensors"),
    );
    let (ok, out, e) = run(&[
        "export",
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--onnx",
        onnx.to_str().unwrap(),
    ]);
    ensure(ok && out.contains("opset 13"), format!("export: {out}{e}"))?;
    // Readable as any file `File::create` makes there (the umask applies),
    // not owner-only as a temporary file starts.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).map(|m| m.permissions().mode() & 0o777);
        let probe = dir.path().join("probe");
        std::fs::File::create(&probe)?;
        ensure(
            mode(&onnx)? == mode(&probe)?,
            format!("mode {:o}, not {:o}", mode(&onnx)?, mode(&probe)?),
        )?;
    }
    let (ok, out, e) = run(&[
        "eval",
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--scores",
        scores.to_str().unwrap(),
    ]);
    ensure(ok, format!("eval: {out}{e}"))?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/check_onnx.py");
    let check = Command::new("python3")
        .arg(script)
        .arg(&onnx)
        .arg(&scores)
        .arg("1e-4")
        .output()?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    ensure(
        check.status.success() && said.contains("same class for 2000 of 2000"),
        format!("{name}: check_onnx.py: {said}"),
    )
}

/// Whether Python has what check_onnx.py imports.
fn have_runtime() -> bool {
    Command::new("python3")
        .args(["-c", "import onnx, onnxruntime, numpy, safetensors"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Refused exports name the flag and leave the file there as it was.
fn refusals_name_the_flag_and_write_nothing() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let ckpt = checkpoint_of(Architecture::LeNet, dir.path());
    let c = ckpt.to_str().unwrap();
    let kept = dir.path().join("kept.onnx");
    std::fs::write(&kept, b"an earlier export")?;
    let nowhere = dir.path().join("no/such/dir/m.onnx");
    let cases: [(&[&str], &str); 5] = [
        (&["--onnx", dir.path().to_str().unwrap()], "is a directory"),
        (&["--onnx", nowhere.to_str().unwrap()], "does not exist"),
        (&["--onnx", c], "is the file read from"),
        (&["--onnx", kept.to_str().unwrap(), "--model", "nope"], "nope"),
        (
            &[
                "--onnx",
                kept.to_str().unwrap(),
                "--model",
                "lenet",
                "--classes",
                "7",
            ],
            "fc3",
        ),
    ];
    for (flags, want) in cases {
        let (ok, _, e) = run(&[&["export", "--checkpoint", c][..], flags].concat());
        ensure(!ok && e.contains(want), format!("{flags:?}: {e}"))?;
    }
    let (ok, _, e) = run(&[
        "export",
        "--checkpoint",
        "missing.safetensors",
        "--onnx",
        kept.to_str().unwrap(),
    ]);
    ensure(!ok && e.contains("missing.safetensors"), e)?;
    // Nor the network's own description, read for --model.
    let toml = dir.path().join("odd.toml");
    std::fs::write(&toml, ODD_NETWORK)?;
    std::fs::create_dir(dir.path().join("odd"))?;
    let odd = odd_checkpoint(&dir.path().join("odd"));
    let (ok, _, e) = run(&[
        "export",
        "--checkpoint",
        odd.to_str().unwrap(),
        "--model",
        toml.to_str().unwrap(),
        "--onnx",
        toml.to_str().unwrap(),
    ]);
    ensure(!ok && e.contains("is the file read from"), e)?;
    ensure(
        std::fs::read_to_string(&toml)? == ODD_NETWORK,
        "the .toml was changed".into(),
    )?;
    ensure(
        std::fs::read(&kept)? == b"an earlier export" && std::fs::read(&ckpt)?.len() > 100_000,
        "a refused export changed a file".into(),
    )?;
    // `eval --scores` refuses the same way before evaluating anything.
    let (ok, _, e) = run(&["eval", "--checkpoint", c, "--scores", c]);
    ensure(
        !ok && e.contains("--scores") && e.contains("is the file read from"),
        e,
    )
}

fn main() {
    let args = Arguments::from_args();
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let runtime = have_runtime();
    let mut trials = vec![Trial::test(
        "refusals_name_the_flag_and_write_nothing",
        refusals_name_the_flag_and_write_nothing,
    )];
    for arch in [
        Architecture::SimpleConvNet,
        Architecture::LeNet,
        Architecture::AlexNetLite,
    ] {
        let name = format!("{}_runs_the_same_in_onnxruntime", arch.name().replace('-', "_"));
        trials.push(
            Trial::test(name, move || {
                if !runtime {
                    return Err(
                        "python3 lacks onnx, onnxruntime, numpy or safetensors, and CI=true needs them"
                            .into(),
                    );
                }
                same_in_onnxruntime(arch.name(), |dir| checkpoint_of(arch, dir))
            })
            .with_ignored_flag(!runtime && !in_ci),
        );
    }
    trials.push(
        Trial::test(
            "a_network_with_padded_pooling_runs_the_same_in_onnxruntime",
            move || {
                if !runtime {
                    return Err(
                        "python3 lacks onnx, onnxruntime, numpy or safetensors, and CI=true needs them"
                            .into(),
                    );
                }
                same_in_onnxruntime("odd", odd_checkpoint)
            },
        )
        .with_ignored_flag(!runtime && !in_ci),
    );
    libtest_mimic::run(&args, trials).exit();
}
