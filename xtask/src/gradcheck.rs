//! `cargo xtask gradcheck`: every gradient in the workspace against
//! numerical differentiation, as a table (or JSON), failing loudly.

use std::time::Instant;

use anyhow::{Result, bail};
use layers::Layer;
use layers::gradcheck::{
    Check, Settings, check_layer, check_softmax_with_loss, kink_free_input, layer_cases,
};
use models::Architecture;
use serde_json::json;

#[derive(clap::Args)]
pub struct Args {
    /// Check only layers of this kind: convolution, pooling, affine, relu,
    /// sigmoid, dropout, lrn or softmax (no model, unless --model is given too).
    #[arg(long)]
    layer: Option<String>,
    /// Check only this network: simple-conv-net, lenet or alexnet-lite (no
    /// layer, unless --layer is given too).
    #[arg(long)]
    model: Option<Architecture>,
    /// Seed of the inputs, weights and sampled coordinates.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Step of the central differences.
    #[arg(long, default_value_t = 1e-5)]
    eps: f64,
    /// Largest relative error that passes.
    #[arg(long, default_value_t = 1e-6)]
    tol: f64,
    /// Coordinates checked per tensor; larger tensors are sampled.
    #[arg(long, default_value_t = 64)]
    coords: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

struct Row {
    what: String,
    check: Check,
}

const LAYER_KINDS: [&str; 8] = [
    "convolution",
    "pooling",
    "affine",
    "relu",
    "sigmoid",
    "dropout",
    "lrn",
    "softmax",
];

/// The `--layer` name of a layer: the first word of its description,
/// in lower case (`Convolution 4@3x3 p1/s1 + ReLU` is a `convolution`).
fn kind(layer: &dyn Layer<f64>) -> String {
    let describe = layer.describe();
    describe
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_lowercase()
}

/// The checks' settings, once the flags are known to check something: a
/// NaN tolerance would pass every check.
pub fn settings(args: &Args) -> Result<Settings> {
    if let Some(l) = &args.layer
        && !LAYER_KINDS.contains(&l.as_str())
    {
        bail!(
            "--layer {l:?}: no such layer; expected one of {}",
            LAYER_KINDS.join(", ")
        );
    }
    let settings = Settings {
        eps: args.eps,
        tol: args.tol,
        max_coords: args.coords,
        seed: args.seed,
        ..Settings::default()
    };
    settings
        .validate()
        .map_err(|e| anyhow::anyhow!("--eps/--tol/--coords: {e}"))?;
    Ok(settings)
}

pub fn run(args: Args) -> Result<()> {
    let settings = settings(&args)?;
    let started = Instant::now();
    let want_layers = args.layer.is_some() || args.model.is_none();
    let want_models = args.model.is_some() || args.layer.is_none();
    let mut rows = Vec::new();

    if want_layers {
        for mut case in layer_cases(args.seed)? {
            if args
                .layer
                .as_deref()
                .is_some_and(|l| l != kind(case.layer.as_ref()))
            {
                continue;
            }
            let what = format!("{} on {:?}", case.layer.describe(), case.input);
            let x = kink_free_input(&case.input, args.seed ^ 0x11);
            for check in check_layer(case.layer.as_mut(), &x, &settings)? {
                rows.push(Row {
                    what: what.clone(),
                    check,
                });
            }
        }
        if args.layer.as_deref().is_none_or(|l| l == "softmax") {
            let check = check_softmax_with_loss(6, 10, &settings)?;
            rows.push(Row {
                what: "SoftmaxWithLoss on [6, 10]".into(),
                check,
            });
        }
    }
    if want_models {
        for arch in Architecture::ALL {
            if args.model.is_some_and(|m| m != arch) {
                continue;
            }
            for check in models::gradcheck::check_architecture(arch, &settings)? {
                rows.push(Row {
                    what: format!("{arch} (batch of 2, loss)"),
                    check,
                });
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let failed = rows.iter().filter(|r| !r.check.passed).count();
    let figure = if want_models {
        Some(models::gradcheck::chapter_figure(args.seed)?)
    } else {
        None
    };

    if args.json {
        let checks: Vec<_> = rows
            .iter()
            .map(|r| {
                json!({
                    "what": r.what, "tensor": r.check.tensor, "checked": r.check.checked,
                    "total": r.check.total, "skipped_at_kinks": r.check.skipped,
                    "max_abs_error": r.check.max_abs, "max_rel_error": r.check.max_rel,
                    "passed": r.check.passed,
                })
            })
            .collect();
        let figure: Vec<_> = figure
            .iter()
            .flatten()
            .map(|(book, ours, diff)| json!({"book": book, "tensor": ours, "mean_abs_difference": diff}))
            .collect();
        let report = json!({
            "settings": {"eps": settings.eps, "tol": settings.tol, "floor": settings.floor,
                         "coords": settings.max_coords, "seed": settings.seed},
            "checks": checks,
            "chapter_figure_f32": figure,
            "summary": {"checks": rows.len(), "passed": rows.len() - failed, "failed": failed, "seconds": seconds},
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let width = rows.iter().map(|r| r.what.len()).max().unwrap_or(4).max(4);
        println!(
            "{:<width$}  {:<13} {:>36}  {:>9}  {:>9}  result",
            "what", "tensor", "coordinates", "max abs", "max rel"
        );
        for r in &rows {
            let c = &r.check;
            let coords = if c.total > args.coords {
                let redrawn = if c.skipped > 0 {
                    format!(", {} redrawn at kinks", c.skipped)
                } else {
                    String::new()
                };
                format!("{} of {} sampled{redrawn}", c.checked, c.total)
            } else if c.skipped > 0 {
                format!("{} of {}, {} left out at kinks", c.checked, c.total, c.skipped)
            } else {
                format!("all {}", c.total)
            };
            println!(
                "{:<width$}  {:<13} {:>36}  {:>9.2e}  {:>9.2e}  {}",
                r.what,
                c.tensor,
                coords,
                c.max_abs,
                c.max_rel,
                if c.passed { "pass" } else { "FAIL" }
            );
        }
        if let Some(figure) = &figure {
            println!();
            println!(
                "The chapter's figure (ch07/gradient_check.py): f32 SimpleConvNet on 1x10x10, mean |backprop - numerical|, h = 1e-4"
            );
            for (book, ours, diff) in figure {
                println!("  {book}:{diff:.3e}   ({ours})");
            }
        }
        println!();
        println!(
            "gradcheck: {} checks, {} passed, {failed} failed (f64, eps {:e}, relative tolerance {:e} with floor {:e}) in {seconds:.1} s",
            rows.len(),
            rows.len() - failed,
            settings.eps,
            settings.tol,
            settings.floor
        );
    }
    if failed > 0 {
        bail!("{failed} gradient check(s) failed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--layer` filters by `kind`: every standard case must have a kind
    /// the flag accepts, and every kind but softmax (checked apart) a case.
    #[test]
    fn every_layer_case_has_a_kind_the_flag_names() {
        let kinds: Vec<String> = layer_cases(0)
            .unwrap()
            .iter()
            .map(|c| kind(c.layer.as_ref()))
            .collect();
        for k in &kinds {
            assert!(LAYER_KINDS.contains(&k.as_str()), "{k} is not in {LAYER_KINDS:?}");
        }
        for k in LAYER_KINDS.iter().filter(|&&k| k != "softmax") {
            assert!(kinds.iter().any(|c| c == k), "no case of kind {k}");
        }
    }
}
