//! `cargo xtask bench`: runs the criterion benchmarks, then reads
//! criterion's estimates and writes `target/bench-report.md`: one row per
//! benchmark with median time, images/s, GFLOP/s (FLOPs counted from the
//! shapes) and, for convolutions, the share of the GFLOP/s that a plain
//! sgemm of the same shapes reaches in the same run.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

#[derive(clap::Args)]
pub struct Args {
    /// Short measurements (about two minutes in all) instead of criterion's defaults.
    #[arg(long)]
    quick: bool,
    /// Only benchmarks whose id contains this (criterion's filter).
    filter: Option<String>,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Median nanoseconds per iteration of every benchmark criterion has results for.
fn read_estimates(dir: &Path) -> Result<HashMap<String, f64>> {
    let mut out = HashMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == "benchmark.json")
                && p.parent().is_some_and(|q| q.ends_with("new"))
            {
                let meta: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p)?)?;
                let est_path = p.with_file_name("estimates.json");
                let est: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&est_path)?)?;
                if let (Some(id), Some(ns)) =
                    (meta["full_id"].as_str(), est["median"]["point_estimate"].as_f64())
                {
                    out.insert(id.to_string(), ns);
                }
            }
        }
    }
    Ok(out)
}

fn human(ns: f64) -> String {
    match ns {
        n if n >= 1e9 => format!("{:.2} s", n / 1e9),
        n if n >= 1e6 => format!("{:.2} ms", n / 1e6),
        n if n >= 1e3 => format!("{:.1} µs", n / 1e3),
        n => format!("{n:.0} ns"),
    }
}

pub fn run(args: Args) -> Result<()> {
    let root = workspace_root();
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(&root).args(["bench", "-p", "benches", "--"]);
    if args.quick {
        cmd.args([
            "--warm-up-time",
            "0.3",
            "--measurement-time",
            "1",
            "--sample-size",
            "10",
        ]);
    }
    if let Some(f) = &args.filter {
        cmd.arg(f);
    }
    let status = cmd.status().context("running cargo bench")?;
    if !status.success() {
        bail!("cargo bench failed");
    }

    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let medians = read_estimates(&target.join("criterion"))?;
    let threads = rayon::current_num_threads();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mut report = String::new();
    writeln!(report, "# Benchmark report\n")?;
    writeln!(
        report,
        "`cargo xtask bench{}`: criterion medians, {threads} threads, {cpu}. FLOPs are counted from the shapes (a multiply-add is 2); \"share of sgemm\" divides a convolution's GFLOP/s (or that of this workspace's own GEMM, `gemm-same-shape`) by that of `matrixmultiply`'s sgemm on the same (M, N, K), measured in the same run. Criterion's HTML report: `target/criterion/report/index.html`.\n",
        if args.quick { " --quick" } else { "" }
    )?;
    writeln!(
        report,
        "| benchmark | median | images/s | GFLOP/s | share of sgemm |"
    )?;
    writeln!(report, "|---|---:|---:|---:|---:|")?;
    for e in benches::catalog() {
        // Criterion keeps earlier runs' results: report only what this run measured.
        if args.filter.as_ref().is_some_and(|f| !e.id.contains(f.as_str())) {
            continue;
        }
        let Some(&ns) = medians.get(&e.id) else { continue };
        let secs = ns / 1e9;
        let images = if e.images > 0 {
            format!("{:.0}", e.images as f64 / secs)
        } else {
            "".into()
        };
        let gflops = if e.flops > 0 {
            e.flops as f64 / secs / 1e9
        } else {
            0.0
        };
        let gflops_text = if e.flops > 0 {
            format!("{gflops:.1}")
        } else {
            "".into()
        };
        let share = e
            .sgemm
            .as_ref()
            .and_then(|s| {
                benches::catalog()
                    .into_iter()
                    .find(|x| &x.id == s)
                    .zip(medians.get(s))
            })
            .map(|(s, &sns)| format!("{:.0}%", 100.0 * gflops / (s.flops as f64 / (sns / 1e9) / 1e9)))
            .unwrap_or_default();
        writeln!(
            report,
            "| {} | {} | {images} | {gflops_text} | {share} |",
            e.id,
            human(ns)
        )?;
        // A convolution's whole training cost: forward and backward together.
        if let (Some(conv), Some(sgemm)) = (e.id.strip_suffix("/backward"), &e.sgemm)
            && let (Some(&fwd), Some(&sns)) = (medians.get(&format!("{conv}/forward")), medians.get(sgemm))
        {
            let both = (fwd + ns) / 1e9;
            let flops = e.flops as f64 * 1.5; // forward F plus backward 2F
            let g = flops / both / 1e9;
            let sg = e.flops as f64 / 2.0 / (sns / 1e9) / 1e9;
            writeln!(
                report,
                "| {conv}/forward+backward | {} | {:.0} | {g:.1} | {:.0}% |",
                human(both * 1e9),
                e.images as f64 / both,
                100.0 * g / sg
            )?;
        }
    }
    let path = target.join("bench-report.md");
    std::fs::write(&path, &report).with_context(|| format!("writing {}", path.display()))?;
    println!("{report}");
    println!("wrote {}", path.display());
    Ok(())
}
