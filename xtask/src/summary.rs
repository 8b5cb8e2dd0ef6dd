//! `cargo xtask summary`: a network's layers, output shapes, parameters
//! and forward FLOPs, from its name or from a checkpoint.

use std::path::PathBuf;

use anyhow::{Result, bail};
use models::{BuildOptions, Network, checkpoint};

use crate::model::ModelChoice;

#[derive(clap::Args)]
pub struct Args {
    /// simple-conv-net, lenet, alexnet-lite, or a network's .toml file.
    #[arg(long, conflicts_with = "checkpoint", required_unless_present = "checkpoint")]
    model: Option<ModelChoice>,
    /// A model.safetensors written by `cargo xtask train`, instead of --model.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// The input shape C,H,W for --model (3,32,32 for CIFAR-10).
    #[arg(long, default_value = "1,28,28", conflicts_with = "checkpoint")]
    input: String,
    /// The number of classes for --model.
    #[arg(long, default_value_t = 10, conflicts_with = "checkpoint")]
    classes: usize,
}

/// The network the flags describe.
pub fn network(args: &Args) -> Result<Network<f32>> {
    if let Some(path) = &args.checkpoint {
        return Ok(checkpoint::load(path)?);
    }
    let Some(model) = &args.model else {
        bail!("give --model or --checkpoint");
    };
    if let Some((input, classes)) = model.own_shape() {
        return model.build(input, classes, 0, BuildOptions::default());
    }
    let input = parse_input(&args.input)?;
    check_classes(args.classes)?;
    model
        .build(input, args.classes, 0, BuildOptions::default())
        .map_err(|e| anyhow::anyhow!("--model {model} --input {}: {e}", args.input))
}

pub fn run(args: Args) -> Result<()> {
    println!("{}", network(&args)?.summary());
    Ok(())
}

/// `--input C,H,W`.
pub fn parse_input(text: &str) -> Result<[usize; 3]> {
    let dims: Vec<usize> = text
        .split(',')
        .map(|d| d.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .unwrap_or_default();
    match <[usize; 3]>::try_from(dims) {
        Ok(d) if d.iter().all(|v: &usize| (1..=4096).contains(v)) => Ok(d),
        _ => bail!("--input {text:?}: three sizes C,H,W from 1 to 4096, such as 1,28,28"),
    }
}

/// `--classes K`.
pub fn check_classes(classes: usize) -> Result<()> {
    if !(1..=100_000).contains(&classes) {
        bail!("--classes {classes}: between 1 and 100000");
    }
    Ok(())
}
