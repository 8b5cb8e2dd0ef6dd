//! `cargo xtask fuzz`: a seeded fuzzer for the parsers that read users'
//! files (IDX, CIFAR-10, checkpoints, the `--resume` state). Each case is
//! arbitrary bytes, a valid file mutated (bits flipped, bytes set to
//! boundary values, header fields set to huge or zero sizes, truncation,
//! insertion, gzip around it), or, for the structured targets, a valid
//! checkpoint whose metadata entries and tensor headers are set to boundary
//! values. Every parse runs under `catch_unwind` and the counting
//! allocator: a panic, or a case that has more memory live at once than
//! its target's bound, fails the run with the seed and case that
//! reproduce it.

use std::collections::BTreeMap;
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use anyhow::{Result, bail, ensure};
use ndarray::Array4;
use rand::{Rng, RngExt, SeedableRng};
use serde_json::{Value, json};

use crate::alloc;

#[derive(clap::Args)]
pub struct Args {
    /// Cases per target.
    #[arg(long, default_value_t = 1_000_000)]
    cases: u64,
    /// Seed of the case generator.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Only this target: idx, cifar10, checkpoint, checkpoint-fields or resume.
    #[arg(long)]
    target: Option<String>,
}

fn idx_file(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = magic.to_be_bytes().to_vec();
    for d in dims {
        v.extend(d.to_be_bytes());
    }
    v.extend_from_slice(data);
    v
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes)
        .unwrap_or_else(|_| unreachable!("writing to a Vec"));
    e.finish().unwrap_or_else(|_| unreachable!("writing to a Vec"))
}

/// A few mutations of one of `seeds`, or arbitrary bytes; `gzip_too` adds
/// compressing the result (for readers that detect gzip).
fn mutate(rng: &mut impl Rng, seeds: &[Vec<u8>], gzip_too: bool) -> Vec<u8> {
    if rng.random_range(0..10) == 0 {
        let n = rng.random_range(0..512);
        return (0..n).map(|_| rng.random()).collect();
    }
    let mut v = seeds[rng.random_range(0..seeds.len())].clone();
    for _ in 0..rng.random_range(1..5) {
        if v.is_empty() {
            break;
        }
        let i = rng.random_range(0..v.len());
        match rng.random_range(0..if gzip_too { 7 } else { 6 }) {
            0 => v[i] ^= 1 << rng.random_range(0..8),
            1 => v[i] = [0, 1, 0x7f, 0x80, 0xff][rng.random_range(0..5)],
            2 => {
                // A 4-byte field (a header size) set to a boundary value.
                let word: u32 = [0, 1, 2, 0x7fff_ffff, 0xffff_ffff, 60000, 1 << 20][rng.random_range(0..7)];
                let at = i.min(v.len().saturating_sub(4));
                let end = (at + 4).min(v.len());
                v[at..end].copy_from_slice(&word.to_be_bytes()[..end - at]);
            }
            3 => v.truncate(i),
            4 => {
                let extra: Vec<u8> = (0..rng.random_range(1..16)).map(|_| rng.random()).collect();
                v.splice(i..i, extra);
            }
            5 => {
                let end = (i + rng.random_range(1..64)).min(v.len());
                v.drain(i..end);
            }
            _ => v = gzip(&v),
        }
    }
    v
}

/// A safetensors file's JSON header and the bytes after it.
fn split_safetensors(bytes: &[u8]) -> Option<(Value, &[u8])> {
    let n = usize::try_from(u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?)).ok()?;
    let header = bytes.get(8..8usize.checked_add(n)?)?;
    Some((serde_json::from_slice(header).ok()?, &bytes[8 + n..]))
}

fn join_safetensors(header: &Value, data: &[u8]) -> Vec<u8> {
    let text = header.to_string();
    let mut v = (text.len() as u64).to_le_bytes().to_vec();
    v.extend(text.as_bytes());
    v.extend(data);
    v
}

/// Values a metadata entry is set to: numbers at the edges of their types,
/// shapes that overflow or are empty, names of the right and wrong kind.
const BOUNDARY_TEXT: &[&str] = &[
    "",
    "0",
    "1",
    "-1",
    "2",
    "10",
    "100",
    "4294967295",
    "4294967296",
    "18446744073709551615",
    "18446744073709551616",
    "4611686018427387904",
    "3000000000",
    "NaN",
    "inf",
    "-inf",
    "1e308",
    "-0",
    "0.5",
    " 1",
    "1,1,1",
    "0,28,28",
    "1,0,28",
    "1,28,28",
    "3,32,32",
    "1,65534,65534",
    "65535,1,1",
    "4611686018427387904,28,28",
    "18446744073709551615,18446744073709551615,1",
    "1,28",
    "1,28,28,1",
    "lenet",
    "simple-conv-net",
    "alexnet-lite",
    "adam",
    "sgd",
    "momentum",
    "adagrad",
    "adam lr=NaN",
    "sgd lr=1e308",
    "chapter",
    "columns",
    "implicit",
    "direct",
    ";",
    ",",
    "1,2,3,4,5,6",
    "1,NaN,0,0,0,0",
    "18446744073709551615,0,0,0,0,0",
    "x",
];

/// Network descriptions put into a checkpoint's `network` entry: sizes at
/// the edges, windows that cannot work, and text that is not TOML.
const NETWORK_TEXT: &[&str] = &[
    "name = \"n\"\ninput = [1, 28, 28]\nclasses = 10\n[[layers]]\nkind = \"conv\"\nfilters = 18446744073709551615\nsize = 5\n[[layers]]\nkind = \"affine\"\n",
    "name = \"n\"\ninput = [1, 28, 28]\nclasses = 10\n[[layers]]\nkind = \"conv\"\nfilters = 4\nsize = 0\n[[layers]]\nkind = \"affine\"\n",
    "name = \"n\"\ninput = [1, 28, 28]\nclasses = 10\n[[layers]]\nkind = \"max-pool\"\nsize = 4611686018427387904\nstride = 0\n[[layers]]\nkind = \"affine\"\n",
    "name = \"n\"\ninput = [1, 28, 28]\nclasses = 10\n[[layers]]\nkind = \"avg-pool\"\nsize = [28, 28]\npad = 18446744073709551615\n[[layers]]\nkind = \"affine\"\n",
    "name = \"n\"\ninput = [1, 28, 28]\nclasses = 10\n[[layers]]\nkind = \"dropout\"\nratio = nan\n[[layers]]\nkind = \"affine\"\n",
    "name = \"n\"\ninput = [1, 65534, 65534]\nclasses = 3000000000\n[[layers]]\nkind = \"affine\"\ninit = { normal = inf }\n",
    "name = \"n\"\ninput = [1, 28, 28]\nclasses = 10\nlayers = []\n",
    "[[[[[[[[[[[[[[[[",
    "name = \"",
];

/// Values a tensor header's sizes are set to.
const BOUNDARY_SIZES: &[u64] = &[0, 1, 2, 3, 5, 10, 255, 65535, 1 << 31, 1 << 32, 1 << 62, u64::MAX];

const DTYPES: &[&str] = &[
    "F32", "F64", "F16", "BF16", "I8", "U8", "I64", "U64", "BOOL", "F8_E4M3", "X",
];

fn pick<'a, T>(rng: &mut impl Rng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

/// A valid checkpoint with one to three of its metadata entries or tensor
/// headers (dtype, shape, data offsets, name) replaced by boundary values,
/// removed or added, and now and then its data cut or lengthened.
fn mutate_fields(rng: &mut impl Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let seed = pick(rng, seeds);
    let Some((mut header, data)) = split_safetensors(seed) else {
        return seed.clone();
    };
    let Some(map) = header.as_object_mut() else {
        return seed.clone();
    };
    for _ in 0..rng.random_range(1..4) {
        let tensors: Vec<String> = map.keys().filter(|k| *k != "__metadata__").cloned().collect();
        if rng.random_bool(0.7) || tensors.is_empty() {
            let Some(meta) = map.get_mut("__metadata__").and_then(Value::as_object_mut) else {
                continue;
            };
            let keys: Vec<String> = meta.keys().cloned().collect();
            let key = match rng.random_range(0..9) {
                0 => "train.unexpected".to_string(),
                1 => {
                    meta.insert("network".into(), json!(pick(rng, NETWORK_TEXT)));
                    continue;
                }
                _ if keys.is_empty() => continue,
                _ => pick(rng, &keys).clone(),
            };
            match rng.random_range(0..12) {
                0 => {
                    meta.remove(&key);
                }
                1 => {
                    // A long value: a parser must not do more than linear work in it.
                    let unit = *pick(rng, &["9", "1,", "1,1,1,1,1,1;", "\0"]);
                    meta.insert(key, json!(unit.repeat(rng.random_range(100..20_000))));
                }
                _ => {
                    meta.insert(key, json!(pick(rng, BOUNDARY_TEXT)));
                }
            }
        } else {
            let name = pick(rng, &tensors).clone();
            match rng.random_range(0..6) {
                0 => map[&name]["dtype"] = json!(pick(rng, DTYPES)),
                1 => {
                    if let Some(shape) = map[&name]["shape"].as_array_mut().filter(|s| !s.is_empty()) {
                        let i = rng.random_range(0..shape.len());
                        shape[i] = json!(pick(rng, BOUNDARY_SIZES));
                    }
                }
                2 => {
                    if let Some(shape) = map[&name]["shape"].as_array_mut() {
                        if rng.random_bool(0.5) {
                            shape.push(json!(pick(rng, BOUNDARY_SIZES)));
                        } else {
                            shape.pop();
                        }
                    }
                }
                3 => {
                    let len = data.len() as u64;
                    let v = *pick(
                        rng,
                        &[0, 1, len.saturating_sub(1), len, len + 1, 1 << 32, u64::MAX],
                    );
                    if let Some(offsets) = map[&name]["data_offsets"]
                        .as_array_mut()
                        .filter(|o| !o.is_empty())
                    {
                        let i = rng.random_range(0..offsets.len());
                        offsets[i] = json!(v);
                    }
                }
                4 => {
                    map.remove(&name);
                }
                _ => {
                    let other = pick(rng, &tensors).clone();
                    let renamed = match rng.random_range(0..3) {
                        0 => format!("{name}.extra"),
                        1 => format!("train.optimizer.{name}"),
                        _ => other,
                    };
                    if let Some(t) = map.remove(&name) {
                        map.insert(renamed, t);
                    }
                }
            }
        }
    }
    let mut out = join_safetensors(&header, data);
    match rng.random_range(0..10) {
        0 => out.truncate(out.len() - rng.random_range(0..data.len().max(1))),
        1 => out.extend((0..rng.random_range(1..64)).map(|_| rng.random::<u8>())),
        _ => {}
    }
    out
}

/// Parses one input; returns a short description of the outcome.
type Parse = Box<dyn Fn(&[u8]) -> String>;

struct Target {
    name: &'static str,
    seeds: Vec<Vec<u8>>,
    gzip: bool,
    /// Mutates metadata entries and tensor headers rather than bytes (in
    /// three cases of four; bytes in the fourth).
    structured: bool,
    /// The most bytes a case of this many bytes may have live at once.
    bound: fn(usize) -> usize,
    /// Parses the bytes; Ok(label of the outcome) or the error's first words.
    run: Parse,
}

/// The structured targets build networks of at most this many parameters,
/// so that a case costs milliseconds; the bound below scales with it, as
/// it would with [`models::MAX_PARAMS`].
const FUZZ_MAX_PARAMS: usize = 1 << 20;

const MIB: usize = 1 << 20;

/// A network of `p` parameters holds its weights, their gradients and the
/// initialiser's draws, each `p` floats of 4 bytes; the file is held twice
/// at most (the bytes and a tensor's values).
fn checkpoint_bound(len: usize) -> usize {
    4 * MIB + 3 * len + 4 * 4 * FUZZ_MAX_PARAMS
}

/// A seed checkpoint of a training run: LeNet after one epoch of Adam on
/// four blank images, as `cargo xtask train` saves it.
fn training_seed(path: &std::path::Path) -> Result<Vec<u8>> {
    let mut net = models::Architecture::LeNet.build::<f32>([1, 28, 28], 10, 0)?;
    let mut adam = layers::Adam::new(0.001);
    let x = Array4::<f32>::zeros((4, 1, 28, 28));
    let labels = [0, 1, 2, 3];
    let config = models::TrainConfig {
        epochs: 1,
        batch_size: 2,
        train_eval_samples: 4,
        eval_batch_size: 2,
        ..models::TrainConfig::default()
    };
    let data = (&x.view() as &dyn models::ImageSource<f32>, &labels[..]);
    let history = models::train(&mut net, &mut adam, data, data, &config, &mut |_| {
        std::ops::ControlFlow::Continue(())
    })?;
    let at = models::Resume {
        epoch: 2,
        completed: history.epochs,
        ..models::Resume::default()
    };
    let meta = [("dataset".to_string(), "embedded".to_string())];
    models::checkpoint::save_training(&net, &adam, &config, &at, path, &meta)?;
    Ok(std::fs::read(path)?)
}

fn targets() -> Result<Vec<Target>> {
    let idx_seeds = vec![
        idx_file(2051, &[3, 4, 5], &[7; 60]),
        idx_file(2049, &[5], &[1, 2, 3, 4, 9]),
        gzip(&idx_file(2051, &[2, 2, 2], &[1; 8])),
        gzip(&idx_file(2049, &[3], &[0, 1, 2])),
    ];
    let mut record = vec![3u8];
    record.extend((0..3072).map(|i| (i % 251) as u8));
    let cifar_seeds = vec![record.clone(), [record.clone(), record].concat()];

    // A real checkpoint of a small network, saved through the real writer.
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("seed.safetensors");
    let mut ckpt_seeds = Vec::new();
    for arch in [models::Architecture::LeNet, models::Architecture::SimpleConvNet] {
        models::checkpoint::save(&arch.build::<f32>([1, 28, 28], 10, 0)?, &path)?;
        ckpt_seeds.push(std::fs::read(&path)?);
    }
    let resume_seeds = vec![training_seed(&dir.path().join("training.safetensors"))?];

    let kind = |r: Result<String, String>| match r {
        Ok(s) => format!("ok {s}"),
        Err(e) => {
            // Classify errors by their wording after the file name, numbers blanked.
            let tail = e.split_once(": ").map_or(e.as_str(), |(_, t)| t);
            let words: Vec<String> = tail
                .split_whitespace()
                .take(4)
                .map(|w| {
                    if w.chars().any(|c| c.is_ascii_digit()) {
                        "#".to_string()
                    } else {
                        w.to_string()
                    }
                })
                .collect();
            format!("error: {}", words.join(" "))
        }
    };
    // What `checkpoint::load` does after reading the file.
    let load_model = move |b: &[u8]| {
        let path = std::path::Path::new("fuzz.safetensors");
        let loaded = models::checkpoint::load_bytes_within::<f32>(b.to_vec(), path, FUZZ_MAX_PARAMS)
            .map(|net| net.name().to_string());
        kind(loaded.map_err(|e| e.to_string()))
    };
    Ok(vec![
        Target {
            name: "idx",
            seeds: idx_seeds,
            gzip: true,
            structured: false,
            // The gzip reader reserves up to deflate's 1032:1 expansion.
            bound: |len| 4 * MIB + 2 * 1032 * len,
            run: Box::new(move |b| {
                kind(
                    datasets::maybe_gunzip(b.to_vec(), "fuzz")
                        .and_then(|raw| datasets::parse_idx_owned(raw, "fuzz"))
                        .and_then(|i| match i.dims.len() {
                            1 => {
                                datasets::idx_labels(i, "fuzz").map(|l| format!("labels {}", l.len().min(1)))
                            }
                            _ => datasets::idx_images(i, "fuzz").map(|a| format!("images {}", a.ndim())),
                        })
                        .map_err(|e| e.to_string()),
                )
            }),
        },
        Target {
            name: "cifar10",
            seeds: cifar_seeds,
            gzip: false,
            structured: false,
            bound: |len| 4 * MIB + 3 * len,
            run: Box::new(move |b| {
                kind(
                    datasets::parse_cifar10(b, "fuzz")
                        .map(|_| "batch".to_string())
                        .map_err(|e| e.to_string()),
                )
            }),
        },
        Target {
            name: "checkpoint",
            seeds: ckpt_seeds.clone(),
            gzip: false,
            structured: false,
            bound: checkpoint_bound,
            run: Box::new(load_model),
        },
        Target {
            name: "checkpoint-fields",
            seeds: ckpt_seeds,
            gzip: false,
            structured: true,
            bound: checkpoint_bound,
            run: Box::new(load_model),
        },
        Target {
            name: "resume",
            seeds: resume_seeds,
            gzip: false,
            structured: true,
            bound: checkpoint_bound,
            run: Box::new(move |b| {
                // What `cargo xtask train --resume` does after reading the file.
                let path = std::path::Path::new("fuzz.safetensors");
                let loaded =
                    models::checkpoint::load_training_bytes::<f32>(b.to_vec(), path, FUZZ_MAX_PARAMS)
                        .map(|t| format!("{} epoch {}", t.net.name(), t.config.start.epoch.min(3)));
                kind(loaded.map_err(|e| e.to_string()))
            }),
        },
    ])
}

const TARGETS: [&str; 5] = ["idx", "cifar10", "checkpoint", "checkpoint-fields", "resume"];

/// Refuses a run that would check nothing: an unknown target, no cases.
pub fn check(args: &Args) -> Result<()> {
    if let Some(t) = args.target.as_deref().filter(|t| !TARGETS.contains(t)) {
        bail!(
            "--target {t:?}: no such target; expected one of {}",
            TARGETS.join(", ")
        );
    }
    ensure!(args.cases > 0, "--cases 0: at least 1");
    Ok(())
}

pub fn run(args: Args) -> Result<()> {
    check(&args)?;
    let targets = targets()?;
    // `check` knows the targets by these names before any is built.
    assert!(targets.iter().map(|t| t.name).eq(TARGETS));
    ensure!(
        alloc::counting(),
        "the counting allocator is not installed: run the fuzzer through the xtask binary"
    );
    // A panic is what we are looking for: keep the default hook from
    // printing a backtrace for each one; they are reported below.
    std::panic::set_hook(Box::new(|_| {}));
    let mut panics = 0;
    let mut over = 0;
    for target in targets {
        if args.target.as_deref().is_some_and(|t| t != target.name) {
            continue;
        }
        let started = Instant::now();
        let mut rng = rand_pcg::Pcg64::seed_from_u64(args.seed);
        let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
        // The case that came nearest its bound: (share of it, case, bytes).
        let mut nearest = (0.0f64, 0, 0);
        for case in 0..args.cases {
            let input = if target.structured && rng.random_range(0..4) > 0 {
                mutate_fields(&mut rng, &target.seeds)
            } else {
                mutate(&mut rng, &target.seeds, target.gzip)
            };
            let (result, peak) =
                alloc::peak_during(|| catch_unwind(AssertUnwindSafe(|| (target.run)(&input))));
            let bound = (target.bound)(input.len());
            if peak as f64 / bound as f64 > nearest.0 {
                nearest = (peak as f64 / bound as f64, case, peak);
            }
            if peak > bound {
                over += 1;
                eprintln!(
                    "OVER BOUND: target {} case {case} (seed {}), {} bytes in, {peak} bytes live at once, bound {bound}",
                    target.name,
                    args.seed,
                    input.len()
                );
            }
            match result {
                Ok(outcome) => *outcomes.entry(outcome).or_default() += 1,
                Err(_) => {
                    panics += 1;
                    eprintln!(
                        "PANIC: target {} case {case} (seed {}), {} bytes",
                        target.name,
                        args.seed,
                        input.len()
                    );
                }
            }
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{}: {} cases in {secs:.1} s ({:.0}/s), no panic{}; most memory live at once {:.1} MiB (case {}), {:.0}% of its bound",
            target.name,
            args.cases,
            args.cases as f64 / secs,
            if panics + over > 0 {
                " or overrun but those above"
            } else {
                ""
            },
            nearest.2 as f64 / MIB as f64,
            nearest.1,
            100.0 * nearest.0
        );
        let mut sorted: Vec<_> = outcomes.into_iter().collect();
        sorted.sort_by_key(|&(_, n)| std::cmp::Reverse(n));
        for (outcome, n) in sorted.iter().take(10) {
            println!("  {n:>9}  {outcome}");
        }
        if sorted.len() > 10 {
            println!("  ... and {} rarer outcomes", sorted.len() - 10);
        }
    }
    let _ = std::panic::take_hook();
    if panics + over > 0 {
        bail!("{panics} case(s) panicked, {over} overran their memory bound");
    }
    Ok(())
}
