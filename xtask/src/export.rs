//! `cargo xtask export`: a trained network as an ONNX model, for
//! onnxruntime, tract, a browser or a phone (`models::onnx` says which
//! operators each layer becomes).

use std::path::PathBuf;

use anyhow::Result;
use models::{Network, onnx};

use crate::predict::WeightsArgs;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    weights: WeightsArgs,
    /// Where to write the ONNX model (replaced only once it is complete).
    #[arg(long)]
    onnx: PathBuf,
}

/// The model's key-value properties.
type Metadata = Vec<(String, String)>;

/// The network and its metadata, once the flags and files are checked.
pub fn prepare(args: &Args) -> Result<(Network<f32>, Metadata)> {
    crate::inspect::check_file_out("--onnx", &args.onnx, &args.weights.checkpoint)?;
    if let Some(toml) = args.weights.model_file() {
        crate::inspect::check_file_out("--onnx", &args.onnx, toml)?;
    }
    let (net, classes) = args.weights.open()?;
    let meta = vec![
        ("network".to_string(), net.name().to_string()),
        ("classes".to_string(), serde_json::to_string(&classes)?),
        (
            "input".to_string(),
            "float32 NCHW, each pixel's byte times 1/255 as in training".to_string(),
        ),
    ];
    Ok((net, meta))
}

pub fn run(args: Args) -> Result<()> {
    let (net, meta) = prepare(&args)?;
    let pairs: Vec<(&str, &str)> = meta.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let bytes = net.to_onnx(&pairs)?;
    crate::inspect::write_whole(&args.onnx, &bytes)?;
    let [c, h, w] = net.input_shape();
    println!(
        "{}: {} as ONNX (opset {}, {} bytes); input {:?} float32 [batch, {c}, {h}, {w}], outputs {:?} and {:?} [batch, {}]",
        args.onnx.display(),
        net.name(),
        onnx::OPSET,
        bytes.len(),
        onnx::INPUT,
        onnx::SCORES,
        onnx::PROBABILITIES,
        net.classes()
    );
    Ok(())
}
