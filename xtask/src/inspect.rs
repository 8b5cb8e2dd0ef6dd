//! `cargo xtask eval` and `cargo xtask features`: what a saved network does.

use std::path::PathBuf;

use anyhow::{Context, Result, ensure};
use models::{Network, checkpoint};
use ndarray::{Axis, s};

use datasets::Dataset;

use crate::{pictures, train::load_dataset};

#[derive(clap::Args)]
pub struct EvalArgs {
    /// A model.safetensors written by `cargo xtask train`.
    #[arg(long)]
    checkpoint: PathBuf,
    /// embedded, mnist, fashion-mnist, cifar10, or a directory holding the four IDX files.
    #[arg(long, default_value = "embedded")]
    dataset: String,
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// The network and the data set `eval` would use, once both are read and
/// known to fit each other.
pub fn prepare_eval(args: &EvalArgs) -> Result<(Network<f32>, Dataset)> {
    let net: Network<f32> = checkpoint::load(&args.checkpoint)?;
    let data = load_dataset(&args.dataset, args.data_dir.as_deref())?;
    ensure!(
        !data.test.is_empty(),
        "--dataset {}: the test split has no images to evaluate on",
        args.dataset
    );
    let k = data.classes.len();
    ensure!(
        net.classes() == k,
        "--checkpoint {}: the model has {} classes, --dataset {} has {k}",
        args.checkpoint.display(),
        net.classes(),
        args.dataset
    );
    Ok((net, data))
}

/// Test accuracy and the confusion matrix (rows: true class, columns: predicted).
pub fn eval(args: EvalArgs) -> Result<()> {
    let (mut net, data) = prepare_eval(&args)?;
    let x = data.test.images::<f32>();
    let labels = data.test.labels_usize();
    let k = data.classes.len();
    let mut confusion = vec![vec![0usize; k]; k];
    for start in (0..labels.len()).step_by(500) {
        let end = (start + 500).min(labels.len());
        let predicted = net.classify(x.slice(s![start..end, .., .., ..]).into_dyn())?;
        for (&p, &t) in predicted.iter().zip(&labels[start..end]) {
            confusion[t][p] += 1;
        }
    }
    let correct: usize = (0..k).map(|i| confusion[i][i]).sum();
    let width = data.classes.iter().map(String::len).max().unwrap_or(1).max(5);
    println!(
        "{} on {} ({} test images); rows: true class, columns: predicted",
        net.name(),
        data.name,
        labels.len()
    );
    print!("{:>width$}", "");
    for j in 0..k {
        print!(" {j:>5}");
    }
    println!();
    for (i, row) in confusion.iter().enumerate() {
        print!("{:>width$}", data.classes[i]);
        for v in row {
            print!(" {v:>5}");
        }
        println!();
    }
    println!(
        "test accuracy: {:.2}%",
        100.0 * correct as f64 / labels.len() as f64
    );
    Ok(())
}

#[derive(clap::Args)]
pub struct FeaturesArgs {
    /// A model.safetensors written by `cargo xtask train`.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Which test image (0-based).
    #[arg(long, default_value_t = 0)]
    image: usize,
    #[arg(long, default_value = "embedded")]
    dataset: String,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The PNG to write.
    #[arg(long, default_value = "runs/latest/features.png")]
    out: PathBuf,
}

/// Saves the first convolution's response maps for one test image (section 7.6.2).
/// The network and the data set `features` would use, once both are read
/// and the image is known to be there.
pub fn prepare_features(args: &FeaturesArgs) -> Result<(Network<f32>, Dataset)> {
    let net: Network<f32> = checkpoint::load(&args.checkpoint)?;
    let data = load_dataset(&args.dataset, args.data_dir.as_deref())?;
    ensure!(
        args.image < data.test.len(),
        "--image {}: the test set has {} images",
        args.image,
        data.test.len()
    );
    ensure!(
        net.input_shape() == data.input_shape(),
        "--checkpoint {}: the model takes images of {:?}, --dataset {} has {:?}",
        args.checkpoint.display(),
        net.input_shape(),
        args.dataset,
        data.input_shape()
    );
    Ok((net, data))
}

pub fn features(args: FeaturesArgs) -> Result<()> {
    let (mut net, data) = prepare_features(&args)?;
    let x = data.test.images::<f32>();
    let one = x.slice(s![args.image..args.image + 1, .., .., ..]).into_dyn();
    let (label, what) = net
        .layers()
        .next()
        .map(|(l, layer)| (l.to_string(), layer.describe()))
        .context("the network has no layers")?;
    let maps = net.forward_to(one, &label)?.clone();
    let maps = maps
        .index_axis(Axis(0), 0)
        .into_dimensionality()
        .context("the first layer's output is not (C, H, W)")?;
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    pictures::responses(maps, &args.out)?;
    println!(
        "wrote the {} response maps of {label} ({what}) for test image {} (class {}) to {}",
        maps.len_of(Axis(0)),
        args.image,
        data.classes[data.test.labels()[args.image] as usize],
        args.out.display()
    );
    Ok(())
}
