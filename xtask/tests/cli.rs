//! The command line over its whole argument space, in process: random
//! commands of boundary and nonsense values, through clap's parser and the
//! command's own checks (`Cli::check`, what a command does before it
//! writes). None panics; a refusal names the flag or file at fault; `--out`
//! is never touched; and what is accepted is valid by the rules stated
//! here, independently of the code that checks it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::OnceLock;

use crate::common::contents;
use clap::Parser;
use proptest::prelude::*;
use xtask::Cli;

/// Files the commands are pointed at, made once.
struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let out = root.join("out");
        std::fs::create_dir(&out).unwrap();
        std::fs::write(out.join("model.safetensors"), b"a trained model").unwrap();
        std::fs::create_dir(root.join("empty")).unwrap();
        std::fs::write(root.join("garbage.safetensors"), b"not a checkpoint").unwrap();
        let net = models::Architecture::LeNet
            .build::<f32>([1, 28, 28], 10, 0)
            .unwrap();
        models::checkpoint::save(&net, &root.join("lenet.safetensors")).unwrap();
        // A run of one completed epoch, to resume.
        let mut net = models::Architecture::SimpleConvNet
            .build::<f32>([1, 28, 28], 10, 0)
            .unwrap();
        let mut adam = layers::Adam::new(0.001);
        let x = ndarray::Array4::<f32>::zeros((4, 1, 28, 28));
        let labels = [0, 1, 2, 3];
        let config = models::TrainConfig {
            epochs: 1,
            batch_size: 2,
            eval_batch_size: 2,
            ..models::TrainConfig::default()
        };
        let data = (&x.view() as &dyn models::ImageSource<f32>, &labels[..]);
        let history = models::train(&mut net, &mut adam, data, data, &config, &mut |_| {
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
        let at = models::Resume {
            epoch: 2,
            completed: history.epochs,
            ..models::Resume::default()
        };
        let path = root.join("run.safetensors");
        models::checkpoint::save_training(&net, &adam, &config, &at, &path, &[]).unwrap();
        Fixture { _dir: dir, root }
    })
}

/// Numbers at the edges and beyond, and words that are not numbers.
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "0",
            "1",
            "2",
            "3",
            "7",
            "100",
            "7999",
            "8000",
            "8001",
            "-1",
            "-0",
            "0.5",
            "1e-300",
            "1e308",
            "NaN",
            "inf",
            "-inf",
            "18446744073709551615",
            "18446744073709551616",
            "1000000000000",
            "",
            "x",
        ])
        .prop_map(String::from),
        any::<u32>().prop_map(|v| v.to_string()),
    ]
}

/// A path among the fixture's files (or none there), `{}` standing for the fixture's root.
fn path() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "{}/lenet.safetensors",
        "{}/garbage.safetensors",
        "{}/run.safetensors",
        "{}/missing.safetensors",
        "{}/empty",
        "{}/out/model.safetensors",
        "",
    ])
    .prop_map(String::from)
}

fn word(words: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::sample::select(words.to_vec()).prop_map(String::from)
}

/// A value for the flag `name`.
fn value_of(name: &'static str) -> BoxedStrategy<String> {
    match name {
        "--model" => word(&["simple-conv-net", "lenet", "alexnet-lite", "resnet", ""]).boxed(),
        "--dataset" => word(&[
            "embedded",
            "embedded",
            "mnist",
            "fashion-mnist",
            "cifar10",
            "{}/empty",
            "nope",
        ])
        .boxed(),
        "--optimizer" => word(&["sgd", "momentum", "adagrad", "adam", "rmsprop"]).boxed(),
        "--init" => word(&["model", "pytorch", "he", "xavier", "zeros"]).boxed(),
        "--conv-method" => word(&["auto", "chapter", "columns", "implicit", "direct", "fft"]).boxed(),
        "--pool-method" => word(&["direct", "chapter", "fast"]).boxed(),
        "--isa" => word(&["avx512", "avx2", "portable", "sse"]).boxed(),
        "--layer" => word(&[
            "convolution",
            "pooling",
            "affine",
            "relu",
            "lrn",
            "softmax",
            "conv",
            "conv1",
            "pool2",
            "fc1",
            "all",
        ])
        .boxed(),
        "--target" => word(&[
            "idx",
            "cifar10",
            "checkpoint",
            "checkpoint-fields",
            "resume",
            "nope",
        ])
        .boxed(),
        "--resume" | "--checkpoint" | "--save-input" | "--init-from" => path().boxed(),
        "--input" => word(&[
            "1,28,28",
            "3,32,32",
            "3,31,32",
            "0,28,28",
            "1,28",
            "x",
            "99999,1,1",
        ])
        .boxed(),
        "--prepare" => word(&["auto", "mnist", "resize", "none"]).boxed(),
        "--quick" => word(&["true", "false", ""]).boxed(),
        _ => prop_oneof![9 => number(), 1 => path()].boxed(),
    }
}

/// Up to four distinct flags of `command`, each with a value.
fn flags(command: &'static str) -> impl Strategy<Value = Vec<(&'static str, String)>> {
    let names: &'static [&'static str] = match command {
        "train" => &[
            "--model",
            "--dataset",
            "--epochs",
            "--batch-size",
            "--optimizer",
            "--lr",
            "--seed",
            "--init",
            "--conv-method",
            "--pool-method",
            "--threads",
            "--isa",
            "--resume",
            "--init-from",
            "--test-split",
        ],
        "gradcheck" => &["--layer", "--model", "--seed", "--eps", "--tol", "--coords"],
        "fuzz" => &["--cases", "--seed", "--target"],
        "eval" => &[
            "--checkpoint",
            "--checkpoint",
            "--dataset",
            "--model",
            "--test-split",
        ],
        "features" => &[
            "--checkpoint",
            "--checkpoint",
            "--image",
            "--dataset",
            "--layer",
            "--model",
        ],
        "summary" => &["--model", "--checkpoint", "--input", "--classes"],
        "patches" => &[
            "--checkpoint",
            "--checkpoint",
            "--layer",
            "--channels",
            "--per-channel",
            "--images",
            "--dataset",
        ],
        "predict" => &[
            "--checkpoint",
            "--checkpoint",
            "--top",
            "--prepare",
            "--save-input",
        ],
        _ => &["--threads", "--quick"],
    };
    prop::sample::subsequence(names.to_vec(), 0..=4.min(names.len())).prop_flat_map(|chosen| {
        let mut seen = Vec::new();
        chosen
            .into_iter()
            .filter(|n| {
                let fresh = !seen.contains(n);
                seen.push(*n);
                fresh
            })
            .map(|n| value_of(n).prop_map(move |v| (n, v)))
            .collect::<Vec<_>>()
    })
}

fn command_line() -> impl Strategy<Value = Vec<String>> {
    word(&[
        "train",
        "train",
        "train",
        "gradcheck",
        "fuzz",
        "eval",
        "features",
        "summary",
        "patches",
        "predict",
        "bench",
    ])
    .prop_flat_map(|command| {
        let c: &'static str = match command.as_str() {
            "train" => "train",
            "gradcheck" => "gradcheck",
            "fuzz" => "fuzz",
            "eval" => "eval",
            "features" => "features",
            "summary" => "summary",
            "patches" => "patches",
            "predict" => "predict",
            _ => "bench",
        };
        (flags(c), 0..16u8).prop_map(move |(flags, bogus)| {
            let root = fixture().root.display().to_string();
            let mut argv = vec!["cargo xtask".to_string(), c.to_string()];
            for (name, value) in flags {
                argv.push(format!("{name}={}", value.replace("{}", &root)));
            }
            if bogus == 0 {
                argv.push("--bogus=1".into());
            }
            // Never a download, never the real data sets: a named data
            // set is looked for in an empty directory.
            if matches!(c, "train" | "eval" | "features" | "patches") {
                argv.push(format!("--data-dir={root}/empty"));
            }
            if matches!(c, "train" | "features" | "patches") {
                argv.push(format!("--out={root}/out"));
            }
            if c == "predict" {
                argv.push(format!("{root}/garbage.safetensors"));
            }
            argv
        })
    })
}

/// The value given to `--name`, if any (the last one, as clap takes it).
fn value<'a>(argv: &'a [String], name: &str) -> Option<&'a str> {
    argv.iter()
        .rev()
        .find_map(|a| a.strip_prefix(name)?.strip_prefix('='))
}

/// Whether a command accepted with these flags is valid by the stated rules.
fn valid(argv: &[String]) -> Result<(), String> {
    let num = |name: &str| value(argv, name).map(|v| v.parse::<f64>().unwrap_or(f64::NAN));
    // No data set of the fixture is a tree of image folders.
    if value(argv, "--test-split").is_some() {
        return Err("--test-split accepted for a data set that is no image folder".into());
    }
    match argv[1].as_str() {
        "train" => {
            let resuming = value(argv, "--resume").is_some();
            if let Some(e) = num("--epochs").filter(|&e| e < 1.0 || (resuming && e < 2.0)) {
                return Err(format!("--epochs {e} accepted"));
            }
            if !resuming && let Some(b) = num("--batch-size").filter(|&b| !(1.0..=8000.0).contains(&b)) {
                return Err(format!("--batch-size {b} accepted for 8000 images"));
            }
            if let Some(lr) = num("--lr").filter(|&lr| !(lr.is_finite() && lr > 0.0)) {
                return Err(format!("--lr {lr} accepted"));
            }
            if num("--threads") == Some(0.0) {
                return Err("--threads 0 accepted".into());
            }
            if resuming && value(argv, "--epochs").is_none() {
                return Err("a finished run resumed without more epochs".into());
            }
        }
        "gradcheck" => {
            // A tolerance of 0 asks for exact gradients: strict, not vacuous.
            if let Some(t) = num("--tol").filter(|&t| !(t.is_finite() && t >= 0.0)) {
                return Err(format!("--tol {t} accepted"));
            }
            if let Some(e) = num("--eps").filter(|&e| !(e.is_finite() && e > 0.0)) {
                return Err(format!("--eps {e} accepted"));
            }
            if num("--coords") == Some(0.0) {
                return Err("--coords 0 accepted".into());
            }
        }
        "fuzz" if num("--cases") == Some(0.0) => return Err("--cases 0 accepted".into()),
        "features" if num("--image").is_some_and(|i| i >= 2000.0) => {
            return Err("--image past the 2000 test images accepted".into());
        }
        "summary" if num("--classes") == Some(0.0) => return Err("--classes 0 accepted".into()),
        "patches" => {
            if let Some(c) = num("--channels").filter(|&c| !(1.0..=256.0).contains(&c)) {
                return Err(format!("--channels {c} accepted"));
            }
            if let Some(c) = num("--per-channel").filter(|&c| !(1.0..=64.0).contains(&c)) {
                return Err(format!("--per-channel {c} accepted"));
            }
            if let Some(n) = num("--images").filter(|&n| !(1.0..=2000.0).contains(&n)) {
                return Err(format!("--images {n} accepted for 2000 test images"));
            }
        }
        "predict" => {
            if let Some(t) = num("--top").filter(|&t| !(1.0..=10.0).contains(&t)) {
                return Err(format!("--top {t} accepted for 10 classes"));
            }
        }
        _ => {}
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn every_command_line_is_parsed_and_checked_without_panic_or_write(argv in command_line()) {
        let out = fixture().root.join("out");
        let before = contents(&out);
        let checked = catch_unwind(AssertUnwindSafe(|| {
            Cli::try_parse_from(&argv).map(|cli| cli.check().map_err(|e| format!("{e:#}")))
        }));
        let Ok(parsed) = checked else {
            return Err(TestCaseError::fail(format!("panicked on {argv:?}")));
        };
        match parsed {
            // clap's own refusal names the flag or the value.
            Err(e) => prop_assert!(e.kind() != clap::error::ErrorKind::DisplayHelp, "{e}"),
            Ok(Err(message)) => {
                let names_a_flag = argv[2..].iter().any(|a| {
                    let (name, v) = a.split_once('=').unwrap_or((a, ""));
                    message.contains(name) || (!v.is_empty() && message.contains(v))
                });
                prop_assert!(names_a_flag, "{argv:?} refused without naming a flag or file: {message}");
                prop_assert_eq!(message.matches(": ").count() < 8, true, "{}", message);
            }
            Ok(Ok(())) => prop_assert!(valid(&argv).is_ok(), "{argv:?}: {:?}", valid(&argv)),
        }
        prop_assert!(contents(&out) == before, "{argv:?} changed {}", out.display());
    }
}
