//! `cargo xtask fuzz`: a seeded mutation fuzzer for the parsers that read
//! users' files (IDX, CIFAR-10, checkpoints). Each case is arbitrary bytes
//! or a valid file mutated (bits flipped, bytes set to boundary values,
//! header fields set to huge or zero sizes, truncation, insertion, gzip
//! around it); every parse runs under `catch_unwind`, and any panic fails
//! the run with the seed and case that reproduce it.

use std::collections::BTreeMap;
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use anyhow::{Result, bail};
use rand::{Rng, RngExt, SeedableRng};

#[derive(clap::Args)]
pub struct Args {
    /// Cases per target.
    #[arg(long, default_value_t = 1_000_000)]
    cases: u64,
    /// Seed of the case generator.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Only this target: idx, cifar10 or checkpoint.
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

/// Parses one input; returns a short description of the outcome.
type Parse = Box<dyn Fn(&[u8]) -> String>;

struct Target {
    name: &'static str,
    seeds: Vec<Vec<u8>>,
    gzip: bool,
    /// Parses the bytes; Ok(label of the outcome) or the error's first words.
    run: Parse,
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
    let net = models::Architecture::LeNet.build::<f32>([1, 28, 28], 10, 0)?;
    models::checkpoint::save(&net, &path)?;
    let ckpt_seeds = vec![std::fs::read(&path)?];

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
    Ok(vec![
        Target {
            name: "idx",
            seeds: idx_seeds,
            gzip: true,
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
            seeds: ckpt_seeds,
            gzip: false,
            run: Box::new(move |b| {
                // What `checkpoint::load` does after reading the file.
                let path = std::path::Path::new("fuzz.safetensors");
                let loaded =
                    models::checkpoint::load_bytes::<f32>(b.to_vec(), path).map(|net| net.name().to_string());
                kind(loaded.map_err(|e| e.to_string()))
            }),
        },
    ])
}

pub fn run(args: Args) -> Result<()> {
    // A panic is what we are looking for: keep the default hook from
    // printing a backtrace for each one; they are reported below.
    let targets = targets()?;
    if let Some(t) = args
        .target
        .as_deref()
        .filter(|t| !targets.iter().any(|x| x.name == *t))
    {
        let names: Vec<&str> = targets.iter().map(|x| x.name).collect();
        bail!(
            "--target {t:?}: no such target; expected one of {}",
            names.join(", ")
        );
    }
    std::panic::set_hook(Box::new(|_| {}));
    let mut panics = 0;
    for target in targets {
        if args.target.as_deref().is_some_and(|t| t != target.name) {
            continue;
        }
        let started = Instant::now();
        let mut rng = rand_pcg::Pcg64::seed_from_u64(args.seed);
        let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
        for case in 0..args.cases {
            let input = mutate(&mut rng, &target.seeds, target.gzip);
            match catch_unwind(AssertUnwindSafe(|| (target.run)(&input))) {
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
            "{}: {} cases in {secs:.1} s ({:.0}/s), no panic{}",
            target.name,
            args.cases,
            args.cases as f64 / secs,
            if panics > 0 { " -- except those above" } else { "" }
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
    if panics > 0 {
        bail!("{panics} case(s) panicked");
    }
    Ok(())
}
