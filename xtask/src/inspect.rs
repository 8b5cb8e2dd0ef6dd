//! `cargo xtask eval` and `cargo xtask features`: what a saved network does,
//! and how each of its layers responds to one image.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use models::{LayerSummary, Network, checkpoint};

use crate::model::ModelChoice;
use ndarray::{ArrayView3, Axis, s};

use datasets::Dataset;

use crate::pictures::{Figure, Panel, Scale, Section};
use crate::train::load_dataset;

/// A trained network and the data set it is run on: `--checkpoint`,
/// `--model`, `--dataset`, `--data-dir` and the image-folder flags.
#[derive(clap::Args)]
pub struct NetworkOnData {
    /// A model.safetensors written by `cargo xtask train` (or, with
    /// --model, any safetensors file of the network's weights).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// The file holds weights only, in PyTorch's names and layouts (a state
    /// dict saved with `safetensors`): build this network (a name of
    /// MODELS.md's or a .toml file) for the data set and load them.
    #[arg(long)]
    model: Option<ModelChoice>,
    /// embedded, mnist, fashion-mnist, cifar10, or a directory of IDX files or image folders.
    #[arg(long, default_value = "embedded")]
    pub dataset: String,
    /// Where the data set's files are (for mnist, fashion-mnist and cifar10).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    folders: crate::train::FolderArgs,
}

impl NetworkOnData {
    /// The data set and the network, refused unless the network takes the
    /// data set's images, the test split has images, and (if `same_classes`)
    /// the network has the data set's classes.
    pub fn open(&self, same_classes: bool) -> Result<(Network<f32>, Dataset)> {
        let data = load_dataset(&self.dataset, self.data_dir.as_deref(), self.folders)?;
        let net = open_network(
            &self.checkpoint,
            self.model.as_ref(),
            data.input_shape(),
            data.classes.len(),
        )?;
        ensure!(
            !data.test.is_empty(),
            "--dataset {}: the test split has no images",
            self.dataset
        );
        ensure!(
            net.input_shape() == data.input_shape(),
            "--checkpoint {}: the model takes images of {:?}, --dataset {} has {:?}",
            self.checkpoint.display(),
            net.input_shape(),
            self.dataset,
            data.input_shape()
        );
        ensure!(
            !same_classes || net.classes() == data.classes.len(),
            "--checkpoint {}: the model has {} classes, --dataset {} has {}",
            self.checkpoint.display(),
            net.classes(),
            self.dataset,
            data.classes.len()
        );
        Ok((net, data))
    }
}

#[derive(clap::Args)]
pub struct EvalArgs {
    #[command(flatten)]
    on: NetworkOnData,
    /// Also write the test images as the network takes them (`input`,
    /// float32 NCHW), its scores (`scores`, float32) and the labels
    /// (`labels`, int64) to this safetensors file: a reference for the
    /// network run elsewhere (an ONNX export, PyTorch).
    #[arg(long)]
    scores: Option<PathBuf>,
}

/// The network in `path`: one `cargo xtask train` wrote (its metadata
/// says which), or with `model`, MODELS.md's `model` for `input` and
/// `classes` holding the file's tensors, which must be exactly the
/// network's parameters in PyTorch's names and layouts.
pub fn open_network(
    path: &Path,
    model: Option<&ModelChoice>,
    input: [usize; 3],
    classes: usize,
) -> Result<Network<f32>> {
    let Some(model) = model else {
        return checkpoint::load(path).map_err(hint_model);
    };
    let mut net = model.build(input, classes, 0, models::BuildOptions::default())?;
    checkpoint::load_into(&mut net, path).with_context(|| format!("--checkpoint with --model {model}"))?;
    Ok(net)
}

/// A checkpoint error, with what to do when the file lacks our metadata.
pub fn hint_model(e: models::Error) -> anyhow::Error {
    match e {
        models::Error::Checkpoint { ref message, .. } if message.starts_with("metadata has no") => {
            anyhow::anyhow!("{e}; a file of weights alone (such as a PyTorch state dict) needs --model")
        }
        e => e.into(),
    }
}

/// The network and the data set `eval` would use, once both are read and
/// known to fit each other.
pub fn prepare_eval(args: &EvalArgs) -> Result<(Network<f32>, Dataset)> {
    let (net, data) = args.on.open(true)?;
    if let Some(out) = &args.scores {
        check_file_out("--scores", out, &args.on.checkpoint)?;
    }
    Ok((net, data))
}

/// Refuses an output file `out` (given by `flag`) that is a directory, lies
/// in no directory, or is the file `input` itself.
pub fn check_file_out(flag: &str, out: &Path, input: &Path) -> Result<()> {
    ensure!(
        !out.is_dir(),
        "{flag} {}: is a directory; name the file to write",
        out.display()
    );
    let parent = parent_dir(out);
    ensure!(
        parent.is_dir(),
        "{flag} {}: the directory {} does not exist",
        out.display(),
        parent.display()
    );
    if let (Ok(a), Ok(b)) = (out.canonicalize(), input.canonicalize()) {
        ensure!(a != b, "{flag} {}: is the file read from", out.display());
    }
    Ok(())
}

/// The directory a file path lies in (`.` for a bare name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Writes `bytes` to `path` through a temporary file beside it, so that
/// `path` is replaced only by a complete file.
pub fn write_whole(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = parent_dir(path);
    let mut builder = tempfile::Builder::new();
    // The mode `File::create` gives (the umask applies), not tempfile's
    // owner-only default: an export is for other programs to read.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let mut file = builder
        .tempfile_in(dir)
        .with_context(|| format!("writing into {}", dir.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.as_file().sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    file.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// `--scores`: the inputs, scores and labels as a safetensors file.
fn write_scores(path: &Path, x: &ndarray::Array4<f32>, scores: &[f32], labels: &[usize]) -> Result<()> {
    use safetensors::tensor::{Dtype, TensorView};
    let bytes_f32 = |v: &[f32]| v.iter().flat_map(|f| f.to_le_bytes()).collect::<Vec<u8>>();
    let input = bytes_f32(x.as_standard_layout().as_slice().unwrap_or_default());
    let out = bytes_f32(scores);
    let label_bytes: Vec<u8> = labels.iter().flat_map(|&l| (l as i64).to_le_bytes()).collect();
    let n = labels.len();
    let k = scores.len().checked_div(n).unwrap_or(0);
    fn view(dtype: Dtype, shape: Vec<usize>, data: &[u8]) -> Result<TensorView<'_>> {
        TensorView::new(dtype, shape, data).map_err(|e| anyhow::anyhow!("--scores: {e}"))
    }
    let tensors = vec![
        ("input", view(Dtype::F32, x.shape().to_vec(), &input)?),
        ("scores", view(Dtype::F32, vec![n, k], &out)?),
        ("labels", view(Dtype::I64, vec![n], &label_bytes)?),
    ];
    let bytes = safetensors::serialize(tensors, None).map_err(|e| anyhow::anyhow!("--scores: {e}"))?;
    write_whole(path, &bytes)
}

/// Test accuracy and the confusion matrix (rows: true class, columns: predicted).
pub fn eval(args: EvalArgs) -> Result<()> {
    let (mut net, data) = prepare_eval(&args)?;
    let x = data.test.images::<f32>();
    let labels = data.test.labels_usize();
    let k = data.classes.len();
    let mut confusion = vec![vec![0usize; k]; k];
    let mut scores = Vec::new();
    for start in (0..labels.len()).step_by(500) {
        let end = (start + 500).min(labels.len());
        let batch = x.slice(s![start..end, .., .., ..]).into_dyn();
        if args.scores.is_some() {
            let out = net.predict(batch.view(), layers::Mode::Inference)?;
            scores.extend(out.iter().copied());
        }
        let predicted = net.classify(batch)?;
        for (&p, &t) in predicted.iter().zip(&labels[start..end]) {
            confusion[t][p] += 1;
        }
    }
    if let Some(path) = &args.scores {
        write_scores(path, &x, &scores, &labels)?;
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
    #[command(flatten)]
    on: NetworkOnData,
    /// Which test image (0-based).
    #[arg(long, default_value_t = 0)]
    image: usize,
    /// Draw this layer's responses (conv2, pool1, lrn1, ...; repeat for
    /// more, or `all` for every layer whose output is still an image)
    /// [default: every convolution].
    #[arg(long)]
    layer: Vec<String>,
    /// The PNG to write.
    #[arg(long, default_value = "runs/latest/features.png")]
    out: PathBuf,
}

/// The layers `--layer` names (labels of slots, as `Summary` lists them),
/// or the error naming the wrong one and the valid ones.
pub fn spatial_layers(
    net: &Network<f32>,
    asked: &[String],
    default_prefix: &str,
) -> Result<Vec<LayerSummary>> {
    let rows: Vec<LayerSummary> = net
        .summary()
        .layers
        .into_iter()
        .filter(|l| l.output.len() == 3)
        .collect();
    let valid = || {
        rows.iter()
            .flat_map(|r| std::iter::once(&r.label).chain(&r.fused))
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    };
    if asked.is_empty() {
        return Ok(rows
            .into_iter()
            .filter(|r| r.label.starts_with(default_prefix))
            .collect());
    }
    // Each name must exist, `all` or not; the layers come in the network's order.
    let mut keep = vec![false; rows.len()];
    for a in asked {
        if a == "all" {
            keep.fill(true);
            continue;
        }
        let i = rows
            .iter()
            .position(|r| &r.label == a || r.fused.contains(a))
            .with_context(|| {
                format!(
                    "--layer {a}: {} has no such layer with image-shaped output; choose from {}, or all",
                    net.name(),
                    valid()
                )
            })?;
        keep[i] = true;
    }
    Ok(rows
        .into_iter()
        .zip(keep)
        .filter(|(_, k)| *k)
        .map(|(r, _)| r)
        .collect())
}

/// The network, the data set and the layers `features` would use, once
/// all are read and the image is known to be there.
pub fn prepare_features(args: &FeaturesArgs) -> Result<(Network<f32>, Dataset, Vec<LayerSummary>)> {
    let (net, data) = args.on.open(true)?;
    ensure!(
        args.image < data.test.len(),
        "--image {}: the test set has {} images (0 to {})",
        args.image,
        data.test.len(),
        data.test.len().saturating_sub(1)
    );
    let layers = spatial_layers(&net, &args.layer, "conv")?;
    Ok((net, data, layers))
}

/// One image as a panel: (H, W) for one channel, (3, H, W) for colour.
pub fn image_panel(x: ArrayView3<'_, f32>, label: String) -> Panel {
    let image = if x.len_of(Axis(0)) == 1 {
        x.index_axis(Axis(0), 0).to_owned().into_dyn()
    } else {
        x.to_owned().into_dyn()
    };
    Panel { label, image }
}

/// `[30, 24, 24]` as `30x24x24`.
pub fn dims(shape: &[usize]) -> String {
    shape.iter().map(usize::to_string).collect::<Vec<_>>().join("x")
}

/// Draws one test image and the responses of the chosen layers to it
/// (section 7.6.2: edges and blobs first, then larger parts).
pub fn features(args: FeaturesArgs) -> Result<()> {
    let (mut net, data, layers) = prepare_features(&args)?;
    let x = data.test.images::<f32>();
    let one = x.slice(s![args.image..args.image + 1, .., .., ..]);
    let mut maps = Vec::new();
    let scores = net
        .predict_visiting(one.into_dyn(), &mut |label, out| {
            if layers.iter().any(|l| l.label == label) {
                maps.push(out.index_axis(Axis(0), 0).to_owned());
            }
        })?
        .clone();
    let predicted = scores
        .iter()
        .enumerate()
        .fold(
            (0, f32::NEG_INFINITY),
            |b, (i, &v)| if v > b.1 { (i, v) } else { b },
        )
        .0;
    let truth = data.test.labels()[args.image] as usize;
    let mut sections = vec![Section {
        heading: format!("input {}", dims(&net.input_shape())),
        panels: vec![image_panel(one.index_axis(Axis(0), 0), "image".into())],
        columns: 1,
    }];
    for (row, out) in layers.iter().zip(&maps) {
        let names = std::iter::once(&row.label)
            .chain(&row.fused)
            .cloned()
            .collect::<Vec<_>>()
            .join("+");
        let panels = out
            .outer_iter()
            .enumerate()
            .map(|(k, m)| Panel {
                label: format!("#{k}"),
                image: m.to_owned(),
            })
            .collect::<Vec<_>>();
        sections.push(Section {
            heading: format!("{names}: {} -> {}", row.description, dims(&row.output)),
            columns: panels.len().clamp(1, 16),
            panels,
        });
    }
    let figure = Figure {
        title: format!(
            "{}: responses to {} test image {} (class {}, predicted {})",
            net.name(),
            data.name,
            args.image,
            data.classes[truth],
            data.classes[predicted]
        ),
        subtitle: "each map is one channel's output for this image".into(),
        sections,
        scale: Scale::PerPanel,
    };
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    figure.write(&args.out)?;
    let labels: Vec<&str> = layers.iter().map(|l| l.label.as_str()).collect();
    println!(
        "wrote the responses of {} to test image {} (class {}, predicted {}) to {}",
        labels.join(", "),
        args.image,
        data.classes[truth],
        data.classes[predicted],
        args.out.display()
    );
    Ok(())
}
