//! `cargo xtask predict`: a trained network's verdict on images of one's
//! own, prepared as the network's training images were made.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use datasets::images::{self, Preparation};
use layers::Mode;
use models::{Network, checkpoint};

use crate::model::ModelChoice;
use ndarray::{Array4, ArrayD};

use crate::pictures::{Figure, Panel, Scale, Section};

/// `--checkpoint`, and for a file of weights alone `--model`, `--input`
/// and `--classes`: a trained network without a data set.
#[derive(clap::Args)]
pub struct WeightsArgs {
    /// A model.safetensors written by `cargo xtask train` (or, with
    /// --model, any safetensors file of the network's weights).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// The file holds weights only, in PyTorch's names and layouts (a state
    /// dict saved with `safetensors`): build MODELS.md's network of this
    /// name for --input and --classes and load them.
    #[arg(long)]
    model: Option<ModelChoice>,
    /// With --model: the input shape C,H,W.
    #[arg(long, default_value = "1,28,28", requires = "model")]
    input: String,
    /// With --model: the number of classes.
    #[arg(long, default_value_t = 10, requires = "model")]
    classes: usize,
}

impl WeightsArgs {
    /// The network's .toml file, if `--model` names one.
    pub fn model_file(&self) -> Option<&Path> {
        match &self.model {
            Some(ModelChoice::File(path, _)) => Some(Path::new(path)),
            _ => None,
        }
    }

    /// The network and its class names (the checkpoint's, or the indices).
    pub fn open(&self) -> Result<(Network<f32>, Vec<String>)> {
        let (net, meta) = match &self.model {
            None => {
                checkpoint::load_with_metadata::<f32>(&self.checkpoint).map_err(crate::inspect::hint_model)?
            }
            Some(model) => {
                let (input, classes) = match model.own_shape() {
                    Some(shape) => shape,
                    None => (crate::summary::parse_input(&self.input)?, self.classes),
                };
                crate::summary::check_classes(classes)?;
                let net = crate::inspect::open_network(&self.checkpoint, Some(model), input, classes)?;
                (net, HashMap::new())
            }
        };
        let classes = class_names(&meta, net.classes());
        Ok((net, classes))
    }
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    weights: WeightsArgs,
    /// PNG or JPEG files, any size, colour or grey.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// How to turn a picture into the network's input: mnist (grey, light
    /// ink on dark, the ink's box scaled into 20x20 and centred by its
    /// centre of mass, as MNIST's digits were made; one-channel networks),
    /// resize (scaled to the input as it is), or auto (mnist for one-channel
    /// networks, resize otherwise).
    #[arg(long, value_enum, default_value = "auto")]
    prepare: Rule,
    /// Also write, for each image, the input the network saw as a PNG
    /// into this directory.
    #[arg(long)]
    save_input: Option<PathBuf>,
    /// Print one JSON object per image instead of a line of text.
    #[arg(long)]
    json: bool,
    /// How many of the most probable classes to show.
    #[arg(long, default_value_t = 3)]
    top: usize,
}

/// `--prepare`.
#[derive(Clone, Copy, Debug, PartialEq, clap::ValueEnum)]
pub enum Rule {
    Auto,
    Mnist,
    Resize,
}

/// The network, its class names and the rule, once the flags are checked.
pub struct Prepared {
    net: Network<f32>,
    classes: Vec<String>,
    mnist: bool,
}

pub fn prepare(args: &Args) -> Result<Prepared> {
    let (net, classes) = args.weights.open()?;
    let k = net.classes();
    ensure!(
        (1..=k).contains(&args.top),
        "--top {}: between 1 and the network's {k} classes",
        args.top
    );
    let [c, ..] = net.input_shape();
    let mnist = match args.prepare {
        Rule::Auto => c == 1,
        Rule::Mnist if c != 1 => bail!(
            "--prepare mnist: the network takes {c}-channel images; the MNIST rule makes one-channel ones (use resize)"
        ),
        Rule::Mnist => true,
        Rule::Resize => false,
    };
    if let Some(dir) = &args.save_input
        && dir.exists()
        && !dir.is_dir()
    {
        bail!("--save-input {}: exists and is not a directory", dir.display());
    }
    Ok(Prepared { classes, net, mnist })
}

/// The class names a checkpoint records, or the indices as names.
fn class_names(meta: &HashMap<String, String>, k: usize) -> Vec<String> {
    meta.get(crate::train::META_CLASSES)
        .and_then(|s| serde_json::from_str::<Vec<String>>(s).ok())
        .filter(|names| names.len() == k)
        .unwrap_or_else(|| (0..k).map(|i| i.to_string()).collect())
}

/// Softmax of one row of finite scores, in f64.
fn probabilities(scores: &[f32]) -> Vec<f64> {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let exp: Vec<f64> = scores.iter().map(|&s| (s as f64 - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.iter().map(|e| e / sum).collect()
}

/// The input as the network takes it: bytes scaled to [0, 1] as in training.
fn input(bytes: &[u8], shape: [usize; 3]) -> Result<Array4<f32>> {
    let [c, h, w] = shape;
    let pixels = bytes.iter().map(|&b| f32::from(b) / 255.0).collect();
    Ok(Array4::from_shape_vec((1, c, h, w), pixels)?)
}

/// One image's verdict: the top classes with their probabilities.
struct Verdict {
    top: Vec<(usize, f64)>,
    how: Preparation,
    x: Array4<f32>,
}

fn judge(p: &mut Prepared, path: &Path, top: usize) -> Result<Verdict> {
    let shape = p.net.input_shape();
    let picture = images::read_picture(path)?;
    let (bytes, how) = if p.mnist {
        images::prepare(&picture, shape)?
    } else {
        images::resize(&picture, shape)?
    };
    let x = input(&bytes, shape)?;
    let scores = p.net.predict(x.view().into_dyn(), Mode::Inference)?;
    let scores: Vec<f32> = scores.iter().copied().collect();
    ensure!(
        scores.iter().all(|s| s.is_finite()),
        "{}: the network's scores are not all finite ({scores:?}): its weights overflow",
        path.display()
    );
    let probs = probabilities(&scores);
    let mut order: Vec<usize> = (0..probs.len()).collect();
    // Ties keep the lower index first, as `classify` does.
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
    order.truncate(top);
    Ok(Verdict {
        top: order.into_iter().map(|i| (i, probs[i])).collect(),
        how,
        x,
    })
}

fn describe(how: &Preparation) -> String {
    match how {
        Preparation::Mnist { inverted, ink_box } => format!(
            "{}ink {} rows x {} columns from row {}, column {}, scaled into 20x20 and centred by mass",
            if *inverted { "inverted, " } else { "" },
            ink_box[2],
            ink_box[3],
            ink_box[0],
            ink_box[1]
        ),
        Preparation::Resized { from } => format!("resized from {}x{}", from[0], from[1]),
    }
}

/// Writes the input the network saw into `dir`: `NAME.input.png`, its
/// pixels exactly (MNIST's polarity, `predict --prepare resize` reads it
/// back to the same verdict), and `NAME.seen.png`, the same titled with the
/// verdict for people. `NAME` is the image's file name, numbered when two
/// images of a run share it.
fn save_input(
    dir: &Path,
    path: &Path,
    v: &Verdict,
    classes: &[String],
    taken: &mut Vec<String>,
) -> Result<PathBuf> {
    let file = path
        .file_name()
        .map_or("image".into(), |s| s.to_string_lossy().into_owned());
    let mut name = file.clone();
    let mut n = 1;
    while taken.contains(&name) {
        n += 1;
        name = format!("{file}-{n}");
    }
    taken.push(name.clone());
    std::fs::create_dir_all(dir).with_context(|| format!("creating --save-input {}", dir.display()))?;
    let (raw, seen) = (
        dir.join(format!("{name}.input.png")),
        dir.join(format!("{name}.seen.png")),
    );
    let x = v.x.index_axis(ndarray::Axis(0), 0);
    let (c, h, w) = x.dim();
    let bytes: Vec<u8> = if c == 1 {
        x.iter().map(|&v| (v * 255.0).round() as u8).collect()
    } else {
        // (C, H, W) to interleaved RGB.
        x.permuted_axes([1, 2, 0])
            .iter()
            .map(|&v| (v * 255.0).round() as u8)
            .collect()
    };
    let color = if c == 1 {
        image::ExtendedColorType::L8
    } else {
        image::ExtendedColorType::Rgb8
    };
    image::save_buffer(&raw, &bytes, w as u32, h as u32, color)
        .with_context(|| format!("writing {}", raw.display()))?;

    let x: ArrayD<f32> = x.to_owned().into_dyn();
    let image = if c == 1 {
        x.index_axis(ndarray::Axis(0), 0).to_owned().into_dyn()
    } else {
        x
    };
    let (best, p) = v.top[0];
    let figure = Figure {
        title: format!("what the network saw: {}", path.display()),
        subtitle: format!("{} ({:.1}%); {}", classes[best], 100.0 * p, describe(&v.how)),
        sections: vec![Section {
            heading: "network input (ink is high, as in MNIST)".into(),
            panels: vec![Panel {
                label: crate::inspect::dims(image.shape()),
                image,
            }],
            columns: 1,
        }],
        scale: Scale::Fixed { lo: 0.0, hi: 1.0 },
    };
    figure.write(&seen)?;
    Ok(raw)
}

pub fn run(args: Args) -> Result<()> {
    let mut p = prepare(&args)?;
    let mut failed = 0;
    let mut taken = Vec::new();
    for path in &args.images {
        let v = match judge(&mut p, path, args.top) {
            Ok(v) => v,
            Err(e) => {
                if args.json {
                    println!(
                        "{}",
                        serde_json::json!({"file": path.display().to_string(), "error": format!("{e:#}")})
                    );
                }
                eprintln!("error: {e:#}");
                failed += 1;
                continue;
            }
        };
        let saved = match &args.save_input {
            Some(dir) => Some(save_input(dir, path, &v, &p.classes, &mut taken)?),
            None => None,
        };
        if args.json {
            let top: Vec<_> = v
                .top
                .iter()
                .map(|&(i, prob)| serde_json::json!({"index": i, "class": p.classes[i], "probability": prob}))
                .collect();
            let mut line = serde_json::json!({"file": path.display().to_string(), "top": top});
            if let Some(s) = &saved {
                line["input_png"] = serde_json::json!(s.display().to_string());
            }
            println!("{line}");
        } else {
            let top: Vec<String> = v
                .top
                .iter()
                .map(|&(i, prob)| format!("{} ({:.1}%)", p.classes[i], 100.0 * prob))
                .collect();
            println!("{}: {}  [{}]", path.display(), top.join(", "), describe(&v.how));
            if let Some(s) = saved {
                println!(
                    "  wrote the network's input to {} (and a titled .seen.png)",
                    s.display()
                );
            }
        }
    }
    ensure!(
        failed == 0,
        "{failed} of {} images could not be judged",
        args.images.len()
    );
    Ok(())
}
