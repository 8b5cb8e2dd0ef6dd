//! `cargo xtask train`: the main job. Loads a dataset, trains one of the
//! three networks, shows progress, writes metrics, prints the test accuracy.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use layers::{AdaGrad, Adam, ConvMethod, Init, Momentum, Optimizer, Parameters, PoolMethod, Sgd};
use models::{BuildOptions, Event, Network, Pixels, TrainConfig, checkpoint};
use ndarray::Array4;

use crate::model::ModelChoice;
use crate::pictures;

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum OptimizerKind {
    Sgd,
    Momentum,
    Adagrad,
    Adam,
}

/// `--init`: whose weight initialisation.
#[derive(Clone, Copy, Debug, PartialEq, clap::ValueEnum)]
pub enum InitKind {
    /// MODELS.md's for the model (SimpleConvNet N(0, 0.01^2), LeNet Xavier, AlexNet-lite He).
    Model,
    /// PyTorch's default for Conv2d and Linear: weights and biases U(-b, b), b = sqrt(1/fan_in).
    Pytorch,
    /// He normal, std sqrt(2/fan_in), in every layer.
    He,
    /// Xavier normal, std sqrt(1/fan_in), in every layer.
    Xavier,
}

impl InitKind {
    fn init(self) -> Option<Init> {
        match self {
            InitKind::Model => None,
            InitKind::Pytorch => Some(Init::PyTorch),
            InitKind::He => Some(Init::He),
            InitKind::Xavier => Some(Init::Xavier),
        }
    }
}

#[derive(clap::Args)]
pub struct Args {
    /// simple-conv-net, lenet, alexnet-lite, or a network's .toml file
    /// (see crates/models/networks/ for the three as files).
    #[arg(long, default_value = "simple-conv-net")]
    model: ModelChoice,
    /// embedded, mnist, fashion-mnist, cifar10, or a directory: the four
    /// IDX files, or image folders (DIR/train/<class>/* and
    /// DIR/test/<class>/*, or one tree DIR/<class>/* with --test-split).
    #[arg(long, default_value = "embedded")]
    dataset: String,
    /// Where the dataset's files are (for mnist, fashion-mnist and cifar10).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Passes over the training set [default: 10; when resuming, the run's own].
    #[arg(long)]
    epochs: Option<usize>,
    /// Images per step.
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// The update rule.
    #[arg(long, value_enum, default_value = "adam")]
    optimizer: OptimizerKind,
    /// Learning rate.
    #[arg(long, default_value_t = 0.001)]
    lr: f64,
    /// Seed of the weights and of the shuffling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// How the weights are drawn: the model's own (MODELS.md), or one rule for every layer.
    #[arg(long, value_enum, default_value = "model")]
    init: InitKind,
    /// How the convolutions compute: auto (the engine's choice per shape),
    /// chapter (the book's im2col, one product, col2im; each ReLU a layer
    /// of its own), columns, implicit (columns packed from the input,
    /// never written) or direct (stride 1 only) [default: auto; when
    /// resuming, the run's own].
    #[arg(long)]
    conv_method: Option<ConvMethod>,
    /// How the pooling layers compute: direct or chapter (the book's
    /// im2col and a max per row); the same bits either way (so a resumed
    /// run pools directly).
    #[arg(long, default_value_t = PoolMethod::Direct)]
    pool_method: PoolMethod,
    /// Worker threads (default: one per core). Results are the same for any count.
    #[arg(long)]
    threads: Option<usize>,
    /// The kernels' instruction set: avx512, avx2 or portable [default: the
    /// fastest for this CPU]. avx512 and avx2 give the same bits; portable
    /// (no fused multiply-add) rounds differently, as a CPU without FMA does.
    #[arg(long)]
    isa: Option<kernels::Isa>,
    /// Directory for model.safetensors, checkpoint.safetensors, metrics.csv,
    /// curves.png and the filter pictures.
    #[arg(long, default_value = "runs/latest")]
    out: PathBuf,
    /// Continue the run saved in this checkpoint.safetensors (written after
    /// every epoch and on Ctrl-C). The model, weights, data, optimizer, batch
    /// size and seed come from the file (so `--init` has nothing to do); the
    /// result is bit-identical to a run never stopped.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Start from the weights in this safetensors file (one `train` wrote,
    /// or a PyTorch state dict of the same network in its names and
    /// layouts) instead of drawing them.
    #[arg(long, conflicts_with = "resume")]
    init_from: Option<PathBuf>,
    #[command(flatten)]
    folders: FolderArgs,
}

/// Refuses a run that could not train or would overwrite `--out` with
/// nothing learned, naming the flag, what it must be and what it is.
fn check_run(args: &Args, config: &TrainConfig, train: usize, test: usize) -> Result<()> {
    let done = config.start.epoch.saturating_sub(1);
    if config.epochs <= done {
        match (done, &args.resume) {
            (0, _) => bail!("--epochs {}: at least 1", config.epochs),
            (_, Some(path)) if args.epochs.is_none() => bail!(
                "--resume {}: the run has completed all its {done} epochs; ask for more with --epochs",
                path.display()
            ),
            _ => bail!(
                "--epochs {}: the run being resumed has completed {done}; ask for more",
                config.epochs
            ),
        }
    }
    let lr = args.lr;
    if config.batch_size == 0 || config.batch_size > train {
        bail!(
            "--batch-size {}: between 1 and the {train} training images",
            config.batch_size
        );
    }
    if !(lr.is_finite() && lr > 0.0) {
        bail!("--lr {lr}: a finite number > 0");
    }
    if test == 0 {
        bail!("the dataset's test split is empty: nothing to measure the accuracy on");
    }
    Ok(())
}

/// Set by Ctrl-C: finish the current step, save, stop.
static STOP: AtomicBool = AtomicBool::new(false);

/// Metadata keys xtask adds to checkpoints so that `--resume` finds the data.
const META_DATASET: &str = "xtask.dataset";
const META_DATA_DIR: &str = "xtask.data_dir";
/// How a single tree of image folders was split, for `--resume`.
const META_TEST_SPLIT: &str = "xtask.test_split";
const META_SPLIT_SEED: &str = "xtask.split_seed";
/// The data set's class names, a JSON list, for `predict`.
pub const META_CLASSES: &str = "xtask.classes";

/// Downloads `remote` into the cache (verifying each file), drawing a bar.
fn download(remote: &datasets::download::Remote) -> Result<PathBuf> {
    use datasets::download::Progress;
    let cache =
        datasets::download::default_cache_dir().context("no cache directory: set HOME or XDG_CACHE_HOME")?;
    eprintln!(
        "{}: not found locally; downloading into {}",
        remote.name,
        cache.join(remote.name).display()
    );
    let mut bar: Option<(String, ProgressBar)> = None;
    let dir = datasets::download::fetch_remote(remote, &cache, &mut |p| match p {
        Progress::Cached { file } => eprintln!("  {file}: cached, checksum verified"),
        Progress::Bytes { file, done, total } => {
            if bar.as_ref().is_none_or(|(f, _)| f != file) {
                if let Some((_, b)) = bar.take() {
                    b.finish();
                }
                let b = ProgressBar::new(total.unwrap_or(0));
                b.set_style(
                    ProgressStyle::with_template(
                        "  {prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                b.set_prefix(file.to_string());
                bar = Some((file.to_string(), b));
            }
            if let Some((_, b)) = &bar {
                b.set_position(done);
            }
        }
        Progress::MirrorFailed { url, reason } => eprintln!("  {url}: {reason}; trying the next mirror"),
    })?;
    if let Some((_, b)) = bar {
        b.finish();
    }
    Ok(dir)
}

/// Finds the dataset the user named: a known name or a directory. MNIST and
/// Fashion-MNIST are looked for in `--data-dir`, then `MNIST_DIR` /
/// `FASHION_MNIST_DIR`, then (Fashion-MNIST) Debian's package, and
/// downloaded into the cache as a last resort.
/// `--test-split` and `--split-seed`: how a single tree of image folders
/// is split.
#[derive(clap::Args, Clone, Copy, Debug, Default)]
pub struct FolderArgs {
    /// For --dataset DIR holding one tree DIR/<class>/<image>: the share
    /// of each class held out as the test split, in (0, 1).
    #[arg(long)]
    test_split: Option<f64>,
    /// Seeds which images --test-split holds out.
    #[arg(long, default_value_t = 0)]
    split_seed: u64,
}

/// Reads image folders, drawing a bar.
fn load_folders(dir: &Path, folders: FolderArgs) -> Result<datasets::Dataset> {
    let options = datasets::folders::FolderOptions {
        test_split: folders.test_split,
        seed: folders.split_seed,
        shape: None,
    };
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("  reading images [{bar:30}] {pos}/{len} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let data = datasets::folders::load_image_folders(dir, &options, &mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    });
    bar.finish_and_clear();
    // The library's errors name the file or folder; say which flag to change.
    let data = data.map_err(|e| {
        let text = e.to_string();
        match folders.test_split {
            Some(f) if text.contains("test split") => anyhow::anyhow!("--test-split {f}: {text}"),
            None if text.contains("give a test split") => anyhow::anyhow!("{text} (--test-split FRACTION)"),
            _ => e.into(),
        }
    })?;
    eprintln!(
        "{}: {} training and {} test images of {:?} in {} classes ({})",
        dir.display(),
        data.train.len(),
        data.test.len(),
        data.input_shape(),
        data.classes.len(),
        data.classes.join(", ")
    );
    Ok(data)
}

pub fn load_dataset(name: &str, data_dir: Option<&Path>, folders: FolderArgs) -> Result<datasets::Dataset> {
    if let Some(f) = folders.test_split
        && !datasets::folders::is_image_folder(Path::new(name))
    {
        bail!("--test-split {f}: applies to image folders, and --dataset {name} is not a directory of them");
    }
    let local = |var: &str, fallback: Option<&str>| -> Option<PathBuf> {
        data_dir
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os(var).map(PathBuf::from))
            .or_else(|| fallback.map(PathBuf::from).filter(|p| p.is_dir()))
    };
    Ok(match name {
        "embedded" => datasets::embedded()?,
        "mnist" => {
            let dir = match local("MNIST_DIR", None) {
                Some(d) => d,
                None => download(&datasets::download::MNIST).context(
                    "MNIST is not here and could not be downloaded: give its four files with \
                         --data-dir or MNIST_DIR",
                )?,
            };
            datasets::load_idx_dir(&dir, "mnist", &datasets::MNIST_CLASSES)?
        }
        "fashion-mnist" => {
            let dir = match local("FASHION_MNIST_DIR", Some(datasets::DEBIAN_FASHION_MNIST)) {
                Some(d) => d,
                None => download(&datasets::download::FASHION_MNIST).with_context(|| {
                    format!(
                        "Fashion-MNIST is not here and could not be downloaded: give its four files \
                         with --data-dir or FASHION_MNIST_DIR, or install Debian's \
                         dataset-fashion-mnist (into {})",
                        datasets::DEBIAN_FASHION_MNIST
                    )
                })?,
            };
            datasets::load_idx_dir(&dir, "fashion-mnist", &datasets::FASHION_MNIST_CLASSES)?
        }
        "cifar10" => {
            let dir = local("CIFAR10_DIR", None).context(
                "dataset cifar10: give its directory (the binary version) with --data-dir or CIFAR10_DIR",
            )?;
            datasets::load_cifar10_dir(&dir)?
        }
        path if datasets::folders::is_image_folder(Path::new(path)) => {
            load_folders(Path::new(path), folders)?
        }
        path if Path::new(path).is_dir() => {
            datasets::load_idx_dir(Path::new(path), path, &datasets::MNIST_CLASSES)?
        }
        other => {
            bail!(
                "--dataset {other:?}: no such data set or directory; use embedded, mnist, fashion-mnist, cifar10 or a directory"
            )
        }
    })
}

fn optimizer(kind: OptimizerKind, lr: f64) -> Box<dyn Optimizer<f32>> {
    match kind {
        OptimizerKind::Sgd => Box::new(Sgd::new(lr)),
        OptimizerKind::Momentum => Box::new(Momentum::new(lr, 0.9)),
        OptimizerKind::Adagrad => Box::new(AdaGrad::new(lr)),
        OptimizerKind::Adam => Box::new(Adam::new(lr)),
    }
}

/// Shows progress: a bar on a terminal, a line now and then otherwise.
struct Progress {
    bar: Option<ProgressBar>,
    last_line: Instant,
    /// The process's CPU time when the epoch's training began.
    cpu_from: Option<f64>,
    /// The first step this process ran of the epoch (not 1 when resumed).
    first_step: Option<usize>,
    /// CPU seconds of the epoch's training, where this process ran it all.
    cpu_seconds: Option<f64>,
}

/// CPU seconds this process has used, all its threads together, if the
/// platform has the clock. Beside wall time, it tells a slower epoch from
/// time taken by other tenants of the machine, which it does not count.
fn process_cpu_seconds() -> Option<f64> {
    #[cfg(unix)]
    {
        let mut t = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `t` is a timespec for the call to write.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
        (rc == 0).then_some(t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9)
    }
    #[cfg(not(unix))]
    None
}

impl Progress {
    fn new() -> Self {
        Progress {
            bar: None,
            last_line: Instant::now(),
            cpu_from: None,
            first_step: None,
            cpu_seconds: None,
        }
    }

    fn event(&mut self, event: Event<'_>) {
        let tty = std::io::stderr().is_terminal();
        match event {
            // `models::train` runs one epoch per call here, so each epoch
            // starts with its own `Start`.
            Event::Start { .. } => {
                self.cpu_from = process_cpu_seconds();
                self.first_step = None;
            }
            Event::Step {
                epoch,
                step,
                steps_per_epoch,
                loss,
                images_per_sec,
            } => {
                self.first_step.get_or_insert(step);
                if tty {
                    let bar = self.bar.get_or_insert_with(|| {
                        let bar = ProgressBar::new(steps_per_epoch as u64);
                        bar.set_style(
                            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} eta {eta}")
                                .unwrap_or_else(|_| ProgressStyle::default_bar())
                                .progress_chars("=> "),
                        );
                        bar
                    });
                    bar.set_prefix(format!("epoch {epoch}"));
                    bar.set_position(step as u64);
                    bar.set_message(format!("loss {loss:.4} {images_per_sec:.0} img/s"));
                } else if step == steps_per_epoch || self.last_line.elapsed() > Duration::from_secs(10) {
                    eprintln!(
                        "epoch {epoch} step {step}/{steps_per_epoch} loss {loss:.4} {images_per_sec:.0} img/s"
                    );
                    self.last_line = Instant::now();
                }
            }
            Event::Evaluating { .. } => {
                self.cpu_seconds = match (self.first_step, self.cpu_from, process_cpu_seconds()) {
                    (Some(1), Some(from), Some(to)) => Some(to - from),
                    _ => None,
                };
                if let Some(bar) = self.bar.take() {
                    bar.finish_and_clear();
                }
            }
            Event::Epoch(m) => {
                let cpu = self
                    .cpu_seconds
                    .map(|s| format!(", {s:.1} s CPU"))
                    .unwrap_or_default();
                println!(
                    "epoch {}: loss {:.4}, train accuracy {:.2}%, test accuracy {:.2}%, {:.1} s ({:.0} img/s{cpu})",
                    m.epoch,
                    m.loss,
                    100.0 * m.train_accuracy,
                    100.0 * m.test_accuracy,
                    m.seconds,
                    m.images_per_sec
                );
            }
        }
    }
}

/// The first convolution's filters, `(FN, C, FH, FW)`, if the network has one.
pub fn first_filters(net: &Network<f32>) -> Option<Array4<f32>> {
    let mut found = None;
    net.visit_params(&mut |name, value, _| {
        if found.is_none() && value.ndim() == 4 && name.ends_with(".weight") {
            found = value.to_owned().into_dimensionality().ok();
        }
    });
    found
}

fn write_metrics(out: &Path, epochs: &[models::EpochMetrics]) -> Result<()> {
    let mut csv = String::from("epoch,loss,train_accuracy,test_accuracy,seconds\n");
    for m in epochs {
        writeln!(
            csv,
            "{},{:.6},{:.6},{:.6},{:.3}",
            m.epoch, m.loss, m.train_accuracy, m.test_accuracy, m.seconds
        )?;
    }
    let path = out.join("metrics.csv");
    std::fs::write(&path, csv).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// A run with every flag checked and its network, optimizer, configuration
/// and data in hand; nothing written yet.
pub struct Prepared {
    net: Network<f32>,
    opt: Box<dyn Optimizer<f32>>,
    config: TrainConfig,
    dataset: String,
    data_dir: Option<PathBuf>,
    data: datasets::Dataset,
    folders: FolderArgs,
}

/// Checks every flag, reads the data (and the checkpoint to resume), builds
/// the network: everything `run` does before it writes to `--out`.
pub fn prepare(args: &Args) -> Result<Prepared> {
    if args.threads == Some(0) {
        bail!("--threads 0: at least 1");
    }
    if let Some(isa) = args.isa.filter(|i| !i.is_available()) {
        bail!("--isa {isa}: {}", kernels::Unavailable(isa));
    }
    let mut folders = args.folders;
    let (net, opt, mut config, dataset, data_dir, loaded) = match &args.resume {
        Some(path) => {
            let t = checkpoint::load_training::<f32>(path)?;
            if let Some(m) = args.conv_method.filter(|&m| m != t.net.conv_method()) {
                bail!(
                    "--conv-method {m}: the run in {} computes by {}, and a resumed run keeps its method",
                    path.display(),
                    t.net.conv_method()
                );
            }
            let dataset = t
                .metadata
                .get(META_DATASET)
                .cloned()
                .unwrap_or_else(|| "embedded".into());
            let data_dir = args
                .data_dir
                .clone()
                .or_else(|| t.metadata.get(META_DATA_DIR).map(PathBuf::from));
            if folders.test_split.is_none() {
                folders = FolderArgs {
                    test_split: t.metadata.get(META_TEST_SPLIT).and_then(|v| v.parse().ok()),
                    split_seed: t
                        .metadata
                        .get(META_SPLIT_SEED)
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0),
                };
            }
            (t.net, t.optimizer, t.config, dataset, data_dir, None)
        }
        None => {
            let data = load_dataset(&args.dataset, args.data_dir.as_deref(), args.folders)?;
            let options = BuildOptions {
                init: args.init.init(),
                conv_method: args.conv_method.unwrap_or_default(),
                pool_method: args.pool_method,
                ..BuildOptions::default()
            };
            let mut net = args
                .model
                .build(data.input_shape(), data.classes.len(), args.seed, options)?;
            if let Some(path) = &args.init_from {
                checkpoint::load_into(&mut net, path).context("--init-from")?;
            }
            let config = TrainConfig {
                epochs: 10,
                batch_size: args.batch_size,
                seed: args.seed,
                eval_batch_size: args.batch_size,
                ..TrainConfig::default()
            };
            (
                net,
                optimizer(args.optimizer, args.lr),
                config,
                args.dataset.clone(),
                args.data_dir.clone(),
                Some(data),
            )
        }
    };
    if let Some(e) = args.epochs {
        config.epochs = e;
    }
    let data = match loaded {
        Some(data) => data,
        None => load_dataset(&dataset, data_dir.as_deref(), folders)?,
    };
    check_run(args, &config, data.train.len(), data.test.len())?;
    Ok(Prepared {
        net,
        opt,
        config,
        dataset,
        data_dir,
        data,
        folders,
    })
}

pub fn run(args: Args) -> Result<()> {
    // The pool and the kernels are chosen before anything runs on them.
    if let Some(isa) = args.isa {
        kernels::Isa::select(Some(isa)).map_err(|e| anyhow::anyhow!("--isa {isa}: {e}"))?;
    }
    if let Some(n) = args.threads.filter(|&n| n > 0) {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .context("setting the number of threads")?;
    }
    // Every flag checked before anything is written to --out.
    let Prepared {
        mut net,
        mut opt,
        mut config,
        dataset,
        data_dir,
        data,
        folders,
    } = prepare(&args)?;
    if args.resume.is_some() {
        println!(
            "resuming {} on {dataset} at epoch {} step {} ({}, batch {}, seed {})",
            net.name(),
            config.start.epoch,
            config.start.step,
            opt.describe(),
            config.batch_size,
            config.seed
        );
    }
    // The first Ctrl-C asks for a clean stop; a second one stops at once.
    ctrlc::set_handler(|| {
        if STOP.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nstopping after this step (Ctrl-C again to quit without saving)");
    })
    .context("installing the Ctrl-C handler")?;
    println!(
        "{} ({} parameters) on {}: {} training and {} test images, {} epochs of batch {}, {} threads, {} kernels",
        net.name(),
        net.param_count(),
        data.name,
        data.train.len(),
        data.test.len(),
        config.epochs,
        config.batch_size,
        rayon::current_num_threads(),
        kernels::Isa::active()
    );
    println!("{}", net.summary());
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    if args.resume.is_none()
        && let Some(w) = first_filters(&net)
    {
        let title = format!(
            "{} conv1 filters before training (seed {})",
            net.name(),
            net.seed()
        );
        pictures::filters(w.view(), &title, &args.out.join("filters-before.png"))?;
    }
    // Keep the images as bytes and convert a batch at a time: a quarter of
    // the memory of converting the whole dataset to f32.
    let (train_x, train_y) = (Pixels(data.train.pixels().view()), data.train.labels_usize());
    let (test_x, test_y) = (Pixels(data.test.pixels().view()), data.test.labels_usize());
    let mut meta = vec![
        (META_DATASET.to_string(), dataset.clone()),
        (META_CLASSES.to_string(), serde_json::to_string(&data.classes)?),
    ];
    if let Some(d) = &data_dir {
        meta.push((META_DATA_DIR.to_string(), d.display().to_string()));
    }
    if let Some(f) = folders.test_split {
        meta.push((META_TEST_SPLIT.to_string(), f.to_string()));
        meta.push((META_SPLIT_SEED.to_string(), folders.split_seed.to_string()));
    }
    let (model_path, state_path) = (
        args.out.join("model.safetensors"),
        args.out.join("checkpoint.safetensors"),
    );
    let mut progress = Progress::new();
    let total_epochs = config.epochs;
    // One epoch at a time, saving after each, so that the last good
    // checkpoint survives a crash or a diverging loss.
    let mut epochs = config.start.completed.clone();
    for epoch in config.start.epoch..=total_epochs {
        let run = TrainConfig {
            epochs: epoch,
            ..config.clone()
        };
        let history = models::train(
            &mut net,
            opt.as_mut(),
            (&train_x, &train_y),
            (&test_x, &test_y),
            &run,
            &mut |e| {
                progress.event(e);
                if STOP.load(Ordering::SeqCst) {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        );
        let history = match history {
            Ok(h) => h,
            Err(e @ models::Error::NonFinite { .. }) => {
                bail!(
                    "{e}\nthe last good checkpoint is {} (after epoch {})",
                    state_path.display(),
                    epoch - 1
                )
            }
            Err(e) => return Err(e.into()),
        };
        epochs = history.epochs.clone();
        if let Some(at) = history.stopped_at {
            if let Some(bar) = progress.bar.take() {
                bar.finish_and_clear();
            }
            checkpoint::save_training(&net, opt.as_ref(), &config, &at, &state_path, &meta)?;
            write_metrics(&args.out, &epochs)?;
            eprintln!(
                "interrupted at epoch {}, step {}; saved {}\nresume with: cargo xtask train --resume {}",
                at.epoch,
                at.step,
                state_path.display(),
                state_path.display()
            );
            std::process::exit(130);
        }
        config.start = models::Resume {
            epoch: epoch + 1,
            completed: epochs.clone(),
            ..models::Resume::default()
        };
        checkpoint::save_training(&net, opt.as_ref(), &config, &config.start, &state_path, &meta)?;
        checkpoint::save_with(&net, &model_path, &[], &meta)?;
        write_metrics(&args.out, &epochs)?;
    }

    pictures::curves(&epochs, &args.out.join("curves.png"))?;
    if let Some(w) = first_filters(&net) {
        let title = format!(
            "{} conv1 filters after {} epochs on {}",
            net.name(),
            epochs.len(),
            data.name
        );
        pictures::filters(w.view(), &title, &args.out.join("filters-after.png"))?;
    }
    checkpoint::save_with(&net, &model_path, &[], &meta)?;
    println!(
        "wrote model.safetensors, checkpoint.safetensors, metrics.csv, curves.png, filters-before.png and filters-after.png to {}",
        args.out.display()
    );
    let last = epochs.last().context("no epoch was trained (--epochs 0?)")?;
    println!("test accuracy: {:.2}%", 100.0 * last.test_accuracy);
    Ok(())
}
