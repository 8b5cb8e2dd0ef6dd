//! `cargo xtask patches`: what each filter responds to. For each chosen
//! layer, its most active channels, and for each the test images whose
//! part in the channel's receptive field excites it most, cut from the
//! input as the network sees it (zero padding included).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use datasets::Dataset;
use models::{LayerSummary, Network, ReceptiveField};
use ndarray::{ArrayD, ArrayView3, Axis, s};

use crate::inspect::{NetworkOnData, dims, spatial_layers};
use crate::pictures::{Figure, Panel, Scale, Section};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    on: NetworkOnData,
    /// A layer to draw (conv2, pool1, ...; repeat for more, or `all`)
    /// [default: every convolution].
    #[arg(long)]
    layer: Vec<String>,
    /// How many channels of each layer: the most active, by the mean over
    /// the test images of each image's strongest response.
    #[arg(long, default_value_t = 8)]
    channels: usize,
    /// How many patches per channel, each from a different image.
    #[arg(long, default_value_t = 9)]
    per_channel: usize,
    /// Use only the first N test images [default: all].
    #[arg(long)]
    images: Option<usize>,
    /// The directory for patches-<layer>.png, one figure per layer.
    #[arg(long, default_value = "runs/latest")]
    out: PathBuf,
}

/// What `patches` works on, its flags checked.
pub struct Prepared {
    net: Network<f32>,
    data: Dataset,
    layers: Vec<(LayerSummary, ReceptiveField)>,
    images: usize,
}

pub fn prepare(args: &Args) -> Result<Prepared> {
    ensure!(
        (1..=256).contains(&args.channels),
        "--channels {}: between 1 and 256",
        args.channels
    );
    ensure!(
        (1..=64).contains(&args.per_channel),
        "--per-channel {}: between 1 and 64",
        args.per_channel
    );
    // Any images of the network's shape will do: what excites a filter
    // needs no labels, so the classes may differ.
    let (net, data) = args.on.open(false)?;
    let available = data.test.len();
    let images = args.images.unwrap_or(available);
    ensure!(
        (1..=available).contains(&images),
        "--images {images}: between 1 and the {available} test images"
    );
    let layers = spatial_layers(&net, &args.layer, "conv")?
        .into_iter()
        .map(|l| {
            let field = net.receptive_field(&l.label)?;
            Ok((l, field))
        })
        .collect::<Result<Vec<_>>>()?;
    if args.out.exists() && !args.out.is_dir() {
        anyhow::bail!("--out {}: exists and is not a directory", args.out.display());
    }
    Ok(Prepared {
        net,
        data,
        layers,
        images,
    })
}

/// One channel's strongest response in one image, and where.
#[derive(Clone, Copy)]
struct Hit {
    value: f32,
    image: usize,
    y: usize,
    x: usize,
}

/// Per channel: the sum of each image's strongest response, and the
/// `keep` images with the strongest, best first.
struct Channels {
    sum_of_max: Vec<f64>,
    best: Vec<Vec<Hit>>,
    keep: usize,
}

impl Channels {
    fn new(channels: usize, keep: usize) -> Self {
        Channels {
            sum_of_max: vec![0.0; channels],
            best: vec![Vec::with_capacity(keep + 1); channels],
            keep,
        }
    }

    /// Takes one image's output `(C, OH, OW)`.
    fn add(&mut self, image: usize, out: ArrayView3<'_, f32>) {
        for (c, map) in out.outer_iter().enumerate() {
            // The first position wins ties, so the result does not depend on threads.
            let mut hit = Hit {
                value: f32::NEG_INFINITY,
                image,
                y: 0,
                x: 0,
            };
            for ((y, x), &v) in map.indexed_iter() {
                if v > hit.value {
                    hit = Hit {
                        value: v,
                        image,
                        y,
                        x,
                    };
                }
            }
            self.sum_of_max[c] += f64::from(hit.value);
            let best = &mut self.best[c];
            if best.len() < self.keep || best.last().is_some_and(|w| hit.value > w.value) {
                let at = best
                    .iter()
                    .position(|b| hit.value > b.value)
                    .unwrap_or(best.len());
                best.insert(at, hit);
                best.truncate(self.keep);
            }
        }
    }
}

pub fn run(args: Args) -> Result<()> {
    let Prepared {
        mut net,
        data,
        layers,
        images,
    } = prepare(&args)?;
    let started = Instant::now();
    let x = data.test.images::<f32>();
    let mut found: Vec<Channels> = layers
        .iter()
        .map(|(l, _)| Channels::new(l.output[0], args.per_channel))
        .collect();
    let batch = 200;
    for start in (0..images).step_by(batch) {
        let end = (start + batch).min(images);
        net.predict_visiting(
            x.slice(s![start..end, .., .., ..]).into_dyn(),
            &mut |label, out: &ArrayD<f32>| {
                if let Some(i) = layers.iter().position(|(l, _)| l.label == label) {
                    for (n, one) in out.outer_iter().enumerate() {
                        if let Ok(one) = one.into_dimensionality() {
                            found[i].add(start + n, one);
                        }
                    }
                }
            },
        )?;
    }
    let seconds = started.elapsed().as_secs_f64();
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    for ((layer, field), channels) in layers.iter().zip(&found) {
        let mut order: Vec<usize> = (0..channels.sum_of_max.len()).collect();
        order.sort_by(|&a, &b| {
            channels.sum_of_max[b]
                .total_cmp(&channels.sum_of_max[a])
                .then(a.cmp(&b))
        });
        order.truncate(args.channels);
        let sections = order
            .iter()
            .map(|&c| Section {
                heading: format!(
                    "channel #{c}: mean strongest response {:.3}",
                    channels.sum_of_max[c] / images as f64
                ),
                panels: channels.best[c]
                    .iter()
                    .map(|hit| {
                        let patch = field.patch(x.index_axis(Axis(0), hit.image), hit.y, hit.x);
                        let image: ArrayD<f32> = if patch.len_of(Axis(0)) == 1 {
                            patch.index_axis(Axis(0), 0).to_owned().into_dyn()
                        } else {
                            patch.into_dyn()
                        };
                        Panel {
                            label: format!("img {} ({:.2})", hit.image, hit.value),
                            image,
                        }
                    })
                    .collect(),
                columns: args.per_channel,
            })
            .collect();
        let names = std::iter::once(&layer.label)
            .chain(&layer.fused)
            .cloned()
            .collect::<Vec<_>>()
            .join("+");
        let figure = Figure {
            title: format!(
                "{} {names} ({}, {}): the {images} test images' patches that excite each channel most",
                net.name(),
                layer.description,
                dims(&layer.output)
            ),
            subtitle: format!(
                "receptive field {}x{} pixels, moving {}x{} pixels per output position; the zero padding shows as 0; {} of {} channels",
                field.size[0],
                field.size[1],
                field.jump[0],
                field.jump[1],
                order.len(),
                layer.output[0]
            ),
            sections,
            scale: Scale::Fixed { lo: 0.0, hi: 1.0 },
        };
        let path = args.out.join(format!("patches-{}.png", layer.label));
        figure.write(&path)?;
        println!(
            "{names}: receptive field {}x{}, wrote {}",
            field.size[0],
            field.size[1],
            path.display()
        );
    }
    println!("searched {images} test images in {seconds:.1} s");
    Ok(())
}
