//! `cargo xtask bench`: runs the criterion benchmarks, then reads
//! criterion's estimates and writes `target/bench-report.md`: one row per
//! benchmark with median time, images/s, GFLOP/s (FLOPs counted from the
//! shapes) and, for convolutions and matrix products, the share of the
//! GFLOP/s that the yardstick sgemm (OpenBLAS, loaded at run time, or
//! `matrixmultiply` without it) reaches on the same shapes in the same run;
//! then a table of every product by each engine as a share of the yardstick.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use benches::blas::{self, Blas};
use benches::products::{Engine, Product};

#[derive(clap::Args)]
pub struct Args {
    /// Short measurements (about five minutes in all) instead of criterion's defaults.
    #[arg(long)]
    quick: bool,
    /// Threads for rayon's pool (RAYON_NUM_THREADS), and for OpenBLAS and the gemm crate on a
    /// whole product [default: rayon's, one per CPU]
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Only benchmarks whose id contains this (criterion's filter).
    filter: Option<String>,
}

/// Median nanoseconds per iteration of every benchmark criterion measured
/// since `since` (it keeps earlier runs' results beside this run's).
fn read_estimates(dir: &Path, since: SystemTime) -> Result<HashMap<String, f64>> {
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
                && e.metadata().and_then(|m| m.modified()).is_ok_and(|t| t >= since)
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

/// The CPU's model name and the vector features that matter to a GEMM
/// which it has, from `/proc/cpuinfo` (empty on other systems).
fn cpu() -> (String, Vec<&'static str>) {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let model = field("model name").unwrap_or_else(|| "unknown CPU".into());
    let flags = field("flags").unwrap_or_default();
    let flags: Vec<&str> = flags.split_whitespace().collect();
    let wanted = [
        ("sse4_2", "sse4.2"),
        ("avx", "avx"),
        ("avx2", "avx2"),
        ("fma", "fma"),
        ("avx_vnni", "avx_vnni"),
        ("avx512f", "avx512f"),
        ("avx512bw", "avx512bw"),
        ("avx512vl", "avx512vl"),
        ("avx512_vnni", "avx512_vnni"),
        ("avx512_bf16", "avx512_bf16"),
        ("avx512_fp16", "avx512_fp16"),
        ("amx_tile", "amx_tile"),
        ("amx_bf16", "amx_bf16"),
        ("amx_int8", "amx_int8"),
    ];
    let present = wanted
        .iter()
        .filter(|(flag, _)| flags.contains(flag))
        .map(|&(_, name)| name)
        .collect();
    (model, present)
}

/// GFLOP/s of `flops` in `ns` nanoseconds.
fn gflops(flops: u64, ns: f64) -> f64 {
    flops as f64 / ns
}

/// The row a share is taken of for `p`: OpenBLAS's if this run measured
/// it, else `matrixmultiply`'s; with its engine and GFLOP/s.
fn yardstick(p: &Product, medians: &HashMap<String, f64>) -> Option<(Engine, String, f64)> {
    [Engine::OpenBlas, Engine::Matrixmultiply]
        .into_iter()
        .find_map(|e| medians.get(&p.id(e)).map(|&ns| (e, p.id(e), gflops(p.flops, ns))))
}

/// Refuses flags the benchmarks could not run with.
pub fn check(args: &Args) -> Result<()> {
    if args.threads == Some(0) {
        bail!("--threads 0: at least 1");
    }
    Ok(())
}

pub fn run(args: Args) -> Result<()> {
    check(&args)?;
    let root = crate::workspace_root();
    // The benches run in their package's directory: a relative path must
    // name the same file there as here.
    let blas_env = std::env::var(blas::ENV_VAR)
        .ok()
        .filter(|s| !s.is_empty())
        .map(|s| {
            if s.contains('/') {
                std::fs::canonicalize(&s).map_or(s, |p| p.display().to_string())
            } else {
                s
            }
        });
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
            // Drawing criterion's plots takes longer than measuring a row.
            "--noplot",
        ]);
    }
    if let Some(f) = &args.filter {
        cmd.arg(f);
    }
    if let Some(n) = args.threads {
        cmd.env("RAYON_NUM_THREADS", n.to_string());
    }
    if let Some(b) = &blas_env {
        cmd.env(blas::ENV_VAR, b);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let criterion = target.join("criterion");
    // The file system's clock, not ours, dates criterion's files: a file of
    // its own, written now, says when this run started.
    let marker = criterion.join(".xtask-bench-started");
    std::fs::create_dir_all(&criterion).with_context(|| format!("creating {}", criterion.display()))?;
    std::fs::write(&marker, b"").with_context(|| format!("writing {}", marker.display()))?;
    let started = std::fs::metadata(&marker)
        .and_then(|m| m.modified())
        .with_context(|| format!("reading {}", marker.display()))?;
    let status = cmd.status().context("running cargo bench")?;
    if !status.success() {
        bail!("cargo bench failed");
    }
    let medians = read_estimates(&criterion, started)?;
    let threads = args.threads.unwrap_or_else(rayon::current_num_threads);
    let (model, features) = cpu();
    let reference = Blas::load_with(blas_env.as_deref());
    let catalog = benches::catalog();
    let mut report = String::new();
    writeln!(report, "# Benchmark report\n")?;
    let mut command = String::from("cargo xtask bench");
    if args.quick {
        command += " --quick";
    }
    if let Some(n) = args.threads {
        write!(command, " --threads {n}")?;
    }
    if let Some(f) = &args.filter {
        write!(command, " {f}")?;
    }
    writeln!(report, "`{command}`: criterion medians.\n")?;
    writeln!(
        report,
        "- CPU: {model}; vector features: {}.",
        if features.is_empty() {
            "none of SSE4.2, AVX, AVX2, FMA, AVX-512, AMX".to_string()
        } else {
            features.join(" ")
        }
    )?;
    writeln!(
        report,
        "- Ours: `kernels::gemm` on its `{}` path ({}x{} GEMM tile), as `kernels::Isa::detect` picks it for this CPU.",
        benches::kernels_path(),
        kernels::Isa::active().gemm_tile().0,
        kernels::Isa::active().gemm_tile().1,
    )?;
    let threads_text = if threads == 1 {
        "1 thread".to_string()
    } else {
        format!("{threads} threads")
    };
    let (one_thread, whole) = if reference.is_ok() {
        (" (OpenBLAS set to 1 thread there)", "OpenBLAS and the gemm crate")
    } else {
        ("", "the gemm crate")
    };
    writeln!(
        report,
        "- Threads: {threads}. A convolution's per-image products are shared among rayon's {threads_text}, each product computed on one thread{one_thread}; an affine layer's product and the square one are one whole product: ours and `matrixmultiply` shared among rayon's threads as the layers share theirs (`crates/layers/src/par.rs`), {whole} given {threads_text}."
    )?;
    match &reference {
        Ok(b) => {
            writeln!(
                report,
                "- Yardstick: OpenBLAS's `cblas_sgemm` ({}, loaded as `{}`){}.",
                b.description(),
                b.source(),
                if b.has_thread_setting() {
                    ""
                } else {
                    "; it has no `openblas_set_num_threads`, so it ran at its own thread count"
                }
            )?;
        }
        Err(_) => writeln!(
            report,
            "- {}. Yardstick: `matrixmultiply`'s sgemm (AVX2 and FMA at most).",
            blas::NOT_FOUND
        )?,
    }
    writeln!(
        report,
        "- FLOPs are counted from the shapes (a multiply-add is 2). \"Share\" divides a row's GFLOP/s by those of the yardstick's sgemm on the same product (a convolution: its forward GEMMs, image by image), measured in the same run; \"of\" names the yardstick, `matrixmultiply` wherever OpenBLAS did not run. The machine may be shared: the same row can vary by 30% between runs. {}\n",
        if args.quick {
            "Criterion's plots are not drawn with `--quick`."
        } else {
            "Criterion's HTML report: `target/criterion/report/index.html`."
        }
    )?;
    writeln!(
        report,
        "| benchmark | median | images/s | GFLOP/s | share of sgemm | of |"
    )?;
    writeln!(report, "|---|---:|---:|---:|---:|---|")?;
    for e in &catalog {
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
        let g = gflops(e.flops, ns);
        let gflops_text = if e.flops > 0 { format!("{g:.1}") } else { "".into() };
        let yard = e.against.as_ref().and_then(|p| yardstick(p, &medians));
        let (share, of) = match &yard {
            Some((_, id, _)) if *id == e.id => ("".into(), "(yardstick)"),
            Some((engine, _, yg)) => (format!("{:.0}%", 100.0 * g / yg), engine.label()),
            None => (String::new(), ""),
        };
        writeln!(
            report,
            "| {} | {} | {images} | {gflops_text} | {share} | {of} |",
            e.id,
            human(ns)
        )?;
        // A convolution's whole training cost: forward and backward together.
        if let (Some(conv), Some((engine, _, yg))) = (e.id.strip_suffix("/backward"), &yard)
            && let Some(&fwd) = medians.get(&format!("{conv}/forward"))
        {
            let both = (fwd + ns) / 1e9;
            let flops = e.flops as f64 * 1.5; // forward F plus backward 2F
            let g = flops / both / 1e9;
            writeln!(
                report,
                "| {conv}/forward+backward | {} | {:.0} | {g:.1} | {:.0}% | {} |",
                human(both * 1e9),
                e.images as f64 / both,
                100.0 * g / yg,
                engine.label()
            )?;
        }
    }
    products_table(&mut report, &medians, args.filter.as_deref(), reference.is_ok())?;
    let path = target.join("bench-report.md");
    std::fs::write(&path, &report).with_context(|| format!("writing {}", path.display()))?;
    println!("{report}");
    println!("wrote {}", path.display());
    Ok(())
}

/// Every product this run measured (whose rows `filter` selects), one row
/// each: the yardstick's GFLOP/s and each other engine's as a share of them.
fn products_table(
    report: &mut String,
    medians: &HashMap<String, f64>,
    filter: Option<&str>,
    openblas: bool,
) -> Result<()> {
    let selected = |id: &String| filter.is_none_or(|f| id.contains(f)) && medians.contains_key(id);
    let measured: Vec<Product> = benches::products::products()
        .into_iter()
        .filter(|p| Engine::ALL.iter().any(|&e| selected(&p.id(e))))
        .collect();
    if measured.is_empty() {
        return Ok(());
    }
    let yard = if openblas {
        Engine::OpenBlas
    } else {
        Engine::Matrixmultiply
    };
    let others: Vec<Engine> = Engine::ALL
        .into_iter()
        .filter(|&e| e != yard && (openblas || e != Engine::OpenBlas))
        .collect();
    writeln!(
        report,
        "\n## Products: each engine as a share of {}\n",
        yard.label()
    )?;
    writeln!(
        report,
        "The same rows as above, side by side: the share of {}'s GFLOP/s, and each engine's own GFLOP/s in parentheses. \"ours\" is `kernels::gemm`.\n",
        yard.label()
    )?;
    write!(report, "| product | shape | {} GFLOP/s |", yard.label())?;
    for e in &others {
        write!(report, " {} |", e.label())?;
    }
    write!(report, "\n|---|---|---:|")?;
    for _ in &others {
        write!(report, "---:|")?;
    }
    writeln!(report)?;
    for p in measured {
        let g = |e: Engine| medians.get(&p.id(e)).map(|&ns| gflops(p.flops, ns));
        let base = g(yard);
        write!(
            report,
            "| {} | {} | {} |",
            p.group,
            p.shape,
            base.map(|b| format!("{b:.1}")).unwrap_or_default()
        )?;
        for &e in &others {
            let cell = match (g(e), base) {
                (Some(x), Some(b)) => format!("{:.0}% ({x:.1})", 100.0 * x / b),
                (Some(x), None) => format!("({x:.1})"),
                _ => String::new(),
            };
            write!(report, " {cell} |")?;
        }
        writeln!(report)?;
    }
    Ok(())
}
