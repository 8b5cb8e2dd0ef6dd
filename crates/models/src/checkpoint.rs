//! Checkpoints as safetensors files (dtype F32) with the tensor names and
//! layouts of `MODELS.md`, so PyTorch's `safetensors` loads them into the
//! same architecture: `conv1.weight` `[out, in, FH, FW]`, `fc1.weight`
//! `[out, in]` (the chapter's Affine keeps `[in, out]`, so every 2-D weight
//! is transposed on save and load), biases `[out]`. The file's metadata
//! records the model, its input shape and classes, so [`load`] needs
//! nothing else.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use layers::{ConvMethod, Optimizer, OptimizerSpec, OptimizerState, Parameters};
use ndarray::{ArrayD, ArrayViewD, IxDyn};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use tensor4d::Float;

use crate::{Architecture, BuildOptions, EpochMetrics, Error, Network, Resume, TrainConfig};

/// Metadata key: the model's name (an [`Architecture`] name for the three networks).
pub const META_MODEL: &str = "model";
/// Metadata key: the input shape as `C,H,W`.
pub const META_INPUT: &str = "input_shape";
/// Metadata key: the number of classes.
pub const META_CLASSES: &str = "classes";
/// Metadata key: the seed of the network (its dropout masks derive from it).
pub const META_SEED: &str = "seed";
/// Metadata key: how the convolutions compute ([`layers::ConvMethod`]'s
/// name), present when it is not the default `auto`: the chapter's method
/// keeps its activations as layers of their own, so the network it builds
/// differs.
pub const META_CONV_METHOD: &str = "conv_method";
/// Metadata key: the TOML description of a network built from one
/// ([`crate::NetworkSpec`]); absent for the three networks of `MODELS.md`.
pub const META_NETWORK: &str = "network";
/// Metadata key: the format, [`FORMAT`].
pub const META_FORMAT: &str = "format";
/// This crate's checkpoint format.
pub const FORMAT: &str = "convnet-rs/1";

fn err(path: &Path, message: impl Into<String>) -> Error {
    Error::Checkpoint {
        path: path.display().to_string(),
        message: message.into(),
    }
}

/// A parameter as the file stores it: 2-D weights transposed to `[out, in]`.
fn to_file_layout<T: Float>(value: ArrayViewD<'_, T>) -> (Vec<usize>, Vec<u8>) {
    let v = if value.ndim() == 2 {
        value.reversed_axes()
    } else {
        value
    };
    let shape = v.shape().to_vec();
    // `iter` walks the (possibly transposed) view in row-major order.
    let bytes = v.iter().flat_map(|x| (x.as_f64() as f32).to_le_bytes()).collect();
    (shape, bytes)
}

/// A tensor on its way to the file. Views are converted to bytes only when
/// the writer reaches them, one at a time, so saving never holds a second
/// copy of the optimizer's state or a buffer of the whole file.
enum Tensor<'a, T> {
    Bytes(Vec<usize>, Vec<u8>),
    F32(ArrayViewD<'a, f32>),
    Cast(ArrayViewD<'a, T>),
}

impl<T: Float> Tensor<'_, T> {
    fn shape(&self) -> &[usize] {
        match self {
            Tensor::Bytes(shape, _) => shape,
            Tensor::F32(v) => v.shape(),
            Tensor::Cast(v) => v.shape(),
        }
    }

    /// The little-endian f32 bytes, made when the writer reaches the tensor.
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        match self {
            Tensor::Bytes(_, bytes) => bytes.into(),
            Tensor::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>().into(),
            Tensor::Cast(v) => v
                .iter()
                .flat_map(|x| (x.as_f64() as f32).to_le_bytes())
                .collect::<Vec<u8>>()
                .into(),
        }
    }

    fn data_len(&self) -> usize {
        4 * self.shape().iter().product::<usize>()
    }
}

/// Writes a safetensors file of f32 tensors to `out`: the 8-byte header
/// length, the JSON header (metadata, then the tensors, each in name order,
/// padded with spaces to a multiple of 8 as the format asks), then the
/// tensors' bytes one after another in that order. The `safetensors`
/// crate's writer takes the metadata as a `HashMap` and writes it in that
/// map's random order; this header is the same for the same state, so two
/// saves of one network give the same bytes.
fn write_safetensors<T: Float>(
    out: &mut impl std::io::Write,
    mut tensors: Vec<(String, Tensor<'_, T>)>,
    metadata: &BTreeMap<String, String>,
) -> Result<(), String> {
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(w) = tensors.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(format!("two tensors named {:?}", w[0].0));
    }
    let json = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| unreachable!("a string serialises"));
    let entries: Vec<String> = metadata
        .iter()
        .map(|(k, v)| format!("{}:{}", json(k), json(v)))
        .collect();
    let mut header = format!("{{\"__metadata__\":{{{}}}", entries.join(","));
    let mut offset = 0;
    for (name, t) in &tensors {
        let shape: Vec<String> = t.shape().iter().map(usize::to_string).collect();
        let end = offset + t.data_len();
        header += &format!(
            ",{}:{{\"dtype\":\"F32\",\"shape\":[{}],\"data_offsets\":[{offset},{end}]}}",
            json(name),
            shape.join(",")
        );
        offset = end;
    }
    header.push('}');
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let io = |e: std::io::Error| e.to_string();
    out.write_all(&(header.len() as u64).to_le_bytes()).map_err(io)?;
    out.write_all(header.as_bytes()).map_err(io)?;
    for (_, t) in &tensors {
        out.write_all(&t.data()).map_err(io)?;
    }
    out.flush().map_err(io)
}

/// Writes `net`'s parameters to `path` atomically: a temporary file in the
/// same directory, flushed and synced, then renamed over `path`, so the path
/// always holds either the old or the new complete checkpoint.
/// `extra` tensors (f32, any names not clashing with parameters) and
/// `metadata` entries are stored beside them.
///
/// Tested on Linux (what CI runs). The rename is made durable by syncing
/// the directory where the platform allows it; on Windows, which does not,
/// saving works but is not tested, and a crash may lose the rename.
pub fn save_with<T: Float>(
    net: &Network<T>,
    path: &Path,
    extra: &[(String, ArrayD<f32>)],
    metadata: &[(String, String)],
) -> Result<(), Error> {
    let extra = extra
        .iter()
        .map(|(n, t)| (n.clone(), Tensor::F32(t.view())))
        .collect();
    save_tensors(net, path, extra, metadata)
}

fn save_tensors<T: Float>(
    net: &Network<T>,
    path: &Path,
    extra: Vec<(String, Tensor<'_, T>)>,
    metadata: &[(String, String)],
) -> Result<(), Error> {
    let mut tensors: Vec<(String, Tensor<'_, T>)> = Vec::new();
    net.visit_params(&mut |name, value, _| {
        let (shape, bytes) = to_file_layout(value);
        tensors.push((name.to_string(), Tensor::Bytes(shape, bytes)));
    });
    tensors.extend(extra);
    let mut info: BTreeMap<String, String> = metadata.iter().cloned().collect();
    let [c, h, w] = net.input_shape();
    info.insert(META_MODEL.into(), net.name().into());
    if let Some(text) = net.spec() {
        info.insert(META_NETWORK.into(), text.into());
    }
    info.insert(META_INPUT.into(), format!("{c},{h},{w}"));
    info.insert(META_CLASSES.into(), net.classes().to_string());
    info.insert(META_SEED.into(), net.seed().to_string());
    if net.conv_method() != ConvMethod::Auto {
        info.insert(META_CONV_METHOD.into(), net.conv_method().to_string());
    }
    info.insert(META_FORMAT.into(), FORMAT.into());
    write_atomically_with(path, |tmp| {
        let file = std::fs::File::create(tmp).map_err(|e| e.to_string())?;
        write_safetensors(&mut std::io::BufWriter::new(file), tensors, &info)
    })
}

/// [`save_with`] without extra tensors or metadata.
///
/// ```
/// use models::{Architecture, checkpoint};
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("model.safetensors");
/// let net = Architecture::LeNet.build::<f32>([1, 28, 28], 10, 3)?;
/// checkpoint::save(&net, &path)?;
/// let back: models::Network<f32> = checkpoint::load(&path)?;
/// assert_eq!(back.name(), "lenet");
/// # Ok::<(), models::Error>(())
/// ```
pub fn save<T: Float>(net: &Network<T>, path: &Path) -> Result<(), Error> {
    save_with(net, path, &[], &[])
}

/// Replaces `path` by what `write` puts in the temporary file it is given
/// (in the same directory), once that file is synced to disk.
fn write_atomically_with(path: &Path, write: impl FnOnce(&Path) -> Result<(), String>) -> Result<(), Error> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| err(path, "not a file path"))?;
    let tmp = dir.join(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
    let io = |what: &str, e: std::io::Error| err(path, format!("{what}: {e}"));
    let cleanup = |e: Error| {
        let _ = std::fs::remove_file(&tmp);
        e
    };
    write(&tmp).map_err(|e| cleanup(err(path, format!("writing: {e}"))))?;
    let file = std::fs::File::open(&tmp).map_err(|e| cleanup(io("reopening the temporary file", e)))?;
    file.sync_all().map_err(|e| cleanup(io("syncing", e)))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(|e| cleanup(io("renaming the temporary file into place", e)))?;
    // Make the rename itself durable (where directories can be synced).
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The file's contents and its metadata.
struct Contents {
    bytes: Vec<u8>,
    /// The metadata strings.
    metadata: HashMap<String, String>,
}

impl Contents {
    /// Reads and parses a checkpoint file.
    fn read(path: &Path) -> Result<Self, Error> {
        let bytes = std::fs::read(path).map_err(|e| err(path, e.to_string()))?;
        Self::from_bytes(bytes, path)
    }

    /// Parses a checkpoint's bytes; `path` names it in errors.
    fn from_bytes(bytes: Vec<u8>, path: &Path) -> Result<Self, Error> {
        let (_, meta) = SafeTensors::read_metadata(&bytes)
            .map_err(|e| err(path, format!("not a safetensors file: {e}")))?;
        let metadata = meta.metadata().clone().unwrap_or_default();
        SafeTensors::deserialize(&bytes).map_err(|e| err(path, format!("not a safetensors file: {e}")))?;
        Ok(Contents { bytes, metadata })
    }

    fn tensors(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.bytes).unwrap_or_else(|_| unreachable!("checked in read"))
    }

    /// A tensor stored beside the parameters (f32), if present.
    fn extra(&self, name: &str) -> Option<Result<ArrayD<f32>, String>> {
        let st = self.tensors();
        let t = st.tensor(name).ok()?;
        Some(f32_tensor(&t).map_err(|m| format!("tensor {name}: {m}")))
    }

    /// The names of all tensors in the file.
    fn names(&self) -> Vec<String> {
        self.tensors().names().into_iter().map(String::from).collect()
    }
}

fn f32_tensor(t: &TensorView<'_>) -> Result<ArrayD<f32>, String> {
    if t.dtype() != Dtype::F32 {
        return Err(format!("dtype {:?}, expected F32", t.dtype()));
    }
    let values = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    ArrayD::from_shape_vec(IxDyn(t.shape()), values).map_err(|e| e.to_string())
}

/// Copies the checkpoint's parameters into `net`, refusing the first name,
/// shape or dtype that does not match. Tensors whose names start with
/// `extra_prefix` (training state) may be present and are ignored here; any
/// other tensor the network lacks is a mismatch.
fn load_contents_into<T: Float>(
    net: &mut Network<T>,
    contents: &Contents,
    path: &Path,
    extra_prefix: &str,
) -> Result<(), Error> {
    let st = contents.tensors();
    let mut problem: Option<String> = None;
    let mut expected = Vec::new();
    net.visit_params_mut(&mut |name, mut value, _| {
        expected.push(name.to_string());
        if problem.is_some() {
            return;
        }
        let want: Vec<usize> = if value.ndim() == 2 {
            value.shape().iter().rev().copied().collect()
        } else {
            value.shape().to_vec()
        };
        let t = match st.tensor(name) {
            Ok(t) => t,
            Err(_) => {
                problem = Some(format!(
                    "tensor {name} is missing (the model needs shape {want:?})"
                ));
                return;
            }
        };
        if t.shape() != want.as_slice() {
            problem = Some(format!(
                "tensor {name} has shape {:?}, the model needs {want:?}",
                t.shape()
            ));
            return;
        }
        match f32_tensor(&t) {
            Ok(a) => {
                let a = if a.ndim() == 2 { a.reversed_axes() } else { a };
                value.zip_mut_with(&a, |dst, &src| *dst = T::of(src as f64));
            }
            Err(m) => problem = Some(format!("tensor {name}: {m}")),
        }
    });
    if problem.is_none()
        && let Some(stray) = st
            .names()
            .into_iter()
            .filter(|n| !n.starts_with(extra_prefix) || extra_prefix.is_empty())
            .find(|n| !expected.iter().any(|e| e == n))
    {
        problem = Some(format!("tensor {stray} is not a parameter of {}", net.name()));
    }
    problem.map_or(Ok(()), |p| Err(err(path, p)))
}

/// Copies the parameters in the file at `path` into `net`, refusing the
/// first name, shape or dtype that does not match. A training checkpoint's
/// state tensors ([`STATE_PREFIX`]) are ignored; any other extra tensor is
/// refused.
///
/// ```
/// use models::{Architecture, checkpoint};
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("lenet.safetensors");
/// checkpoint::save(&Architecture::LeNet.build::<f32>([1, 28, 28], 10, 1)?, &path)?;
///
/// let mut other_seed = Architecture::LeNet.build::<f32>([1, 28, 28], 10, 2)?;
/// checkpoint::load_into(&mut other_seed, &path)?; // now seed 1's weights
/// let mut wrong = Architecture::SimpleConvNet.build::<f32>([1, 28, 28], 10, 0)?;
/// let e = checkpoint::load_into(&mut wrong, &path).unwrap_err();
/// assert!(e.to_string().contains("lenet.safetensors"), "{e}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn load_into<T: Float>(net: &mut Network<T>, path: &Path) -> Result<(), Error> {
    load_contents_into(net, &Contents::read(path)?, path, STATE_PREFIX)
}

/// Builds the network a checkpoint's metadata names and loads its weights
/// (from `model.safetensors` or a training `checkpoint.safetensors`).
///
/// ```
/// use layers::Mode;
/// use models::{Architecture, Network, checkpoint};
/// use ndarray::ArrayD;
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("model.safetensors");
/// let mut net = Architecture::SimpleConvNet.build::<f32>([1, 28, 28], 10, 0)?;
/// checkpoint::save(&net, &path)?;
///
/// let mut loaded: Network<f32> = checkpoint::load(&path)?;
/// assert_eq!(loaded.name(), "simple-conv-net");
/// let x = ArrayD::from_elem(vec![1, 1, 28, 28], 0.5f32);
/// assert_eq!(loaded.predict(x.view(), Mode::Inference)?, net.predict(x.view(), Mode::Inference)?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn load<T: Float>(path: &Path) -> Result<Network<T>, Error> {
    let bytes = std::fs::read(path).map_err(|e| err(path, e.to_string()))?;
    load_bytes(bytes, path)
}

/// [`load`] from a checkpoint's bytes; `path` names them in errors.
///
/// ```
/// use models::checkpoint;
/// use std::path::Path;
/// // Not a safetensors file: an error naming it, not a panic.
/// let loaded = checkpoint::load_bytes::<f32>(b"garbage".to_vec(), Path::new("x.safetensors"));
/// let e = loaded.err().expect("refused");
/// assert!(e.to_string().contains("x.safetensors"), "{e}");
/// ```
pub fn load_bytes<T: Float>(bytes: Vec<u8>, path: &Path) -> Result<Network<T>, Error> {
    load_bytes_within(bytes, path, crate::MAX_PARAMS)
}

/// [`load_bytes`] refusing, before anything is built, a network of more
/// than `max_params` parameters (the metadata decides the network's size,
/// so this bounds the memory a file can make the reader ask for).
///
/// ```
/// use models::{Architecture, checkpoint};
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("model.safetensors");
/// checkpoint::save(&Architecture::LeNet.build::<f32>([1, 28, 28], 10, 0)?, &path)?;
/// let bytes = std::fs::read(&path)?;
/// assert!(checkpoint::load_bytes_within::<f32>(bytes.clone(), &path, 61_706).is_ok());
/// let e = checkpoint::load_bytes_within::<f32>(bytes, &path, 60_000).err().expect("too large");
/// assert!(e.to_string().contains("limit of 60000 parameters"), "{e}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn load_bytes_within<T: Float>(
    bytes: Vec<u8>,
    path: &Path,
    max_params: usize,
) -> Result<Network<T>, Error> {
    let contents = Contents::from_bytes(bytes, path)?;
    let mut net = network_for(&contents, path, max_params)?;
    load_contents_into(&mut net, &contents, path, STATE_PREFIX)?;
    Ok(net)
}

/// [`load`], also returning every metadata entry of the file (those
/// [`save_with`] was given among them).
///
/// ```
/// use models::{Architecture, checkpoint};
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("model.safetensors");
/// let net = Architecture::LeNet.build::<f32>([1, 28, 28], 10, 0)?;
/// checkpoint::save_with(&net, &path, &[], &[("dataset".into(), "mnist".into())])?;
/// let (back, meta) = checkpoint::load_with_metadata::<f32>(&path)?;
/// assert_eq!((back.name(), meta["dataset"].as_str()), ("lenet", "mnist"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn load_with_metadata<T: Float>(path: &Path) -> Result<(Network<T>, HashMap<String, String>), Error> {
    let contents = Contents::read(path)?;
    let mut net = network_for(&contents, path, crate::MAX_PARAMS)?;
    load_contents_into(&mut net, &contents, path, STATE_PREFIX)?;
    Ok((net, contents.metadata))
}

/// The (untrained) network a checkpoint's metadata describes.
fn network_for<T: Float>(contents: &Contents, path: &Path, max_params: usize) -> Result<Network<T>, Error> {
    let meta = |key: &str| {
        contents
            .metadata
            .get(key)
            .ok_or_else(|| err(path, format!("metadata has no {key:?} entry")))
    };
    let model = meta(META_MODEL)?;
    let input_text = meta(META_INPUT)?;
    let input: Vec<usize> = input_text
        .split(',')
        .map(|v| v.trim().parse())
        .collect::<Result<_, _>>()
        .map_err(|_| err(path, format!("metadata {META_INPUT} {input_text:?} is not C,H,W")))?;
    let &[c, h, w] = input.as_slice() else {
        return Err(err(
            path,
            format!("metadata {META_INPUT} {input_text:?} is not C,H,W"),
        ));
    };
    let classes_text = meta(META_CLASSES)?;
    let classes = classes_text.parse().map_err(|_| {
        err(
            path,
            format!("metadata {META_CLASSES} {classes_text:?} is not a number"),
        )
    })?;
    // A file written by another tool may lack it: seed 0 (only dropout masks depend on it).
    let seed = match contents.metadata.get(META_SEED) {
        Some(text) => text
            .parse()
            .map_err(|_| err(path, format!("metadata {META_SEED} {text:?} is not a number")))?,
        None => 0,
    };
    let conv_method = match contents.metadata.get(META_CONV_METHOD) {
        Some(text) => text.parse().map_err(|_| {
            let names: Vec<&str> = ConvMethod::ALL.iter().map(|m| m.name()).collect();
            let expected = names.join(", ");
            err(
                path,
                format!("metadata {META_CONV_METHOD} {text:?} is not one of {expected}"),
            )
        })?,
        None => ConvMethod::Auto,
    };
    let options = BuildOptions {
        conv_method,
        max_params: Some(max_params),
        ..BuildOptions::default()
    };
    if let Some(text) = contents.metadata.get(META_NETWORK) {
        let name = format!("{} (metadata {META_NETWORK})", path.display());
        let spec = crate::NetworkSpec::parse(text, &name)?;
        if spec.input() != [c, h, w] || spec.classes() != classes {
            return Err(err(
                path,
                format!(
                    "metadata {META_NETWORK} describes {:?} inputs and {} classes, {META_INPUT} {input_text:?} and {META_CLASSES} {classes_text:?}",
                    spec.input(),
                    spec.classes()
                ),
            ));
        }
        return spec.build(seed, options);
    }
    let arch: Architecture = model.parse().map_err(|e: Error| err(path, e.to_string()))?;
    arch.build_with([c, h, w], classes, seed, options).map_err(|e| {
        let what = format!("metadata {META_INPUT} {input_text:?} and {META_CLASSES} {classes_text:?}");
        err(
            path,
            format!("{what} describe a {arch} that cannot be built: {e}"),
        )
    })
}

/// Prefix of the tensors and metadata entries that hold a training run's
/// state (optimizer tensors, position, configuration) beside the weights.
pub const STATE_PREFIX: &str = "train.";

fn write_f64(v: f64) -> String {
    // Rust prints the shortest string that parses back to the same f64.
    v.to_string()
}

fn history_to_text(epochs: &[EpochMetrics]) -> String {
    epochs
        .iter()
        .map(|m| {
            [
                m.epoch as f64,
                m.loss,
                m.train_accuracy,
                m.test_accuracy,
                m.seconds,
                m.images_per_sec,
            ]
            .map(write_f64)
            .join(",")
        })
        .collect::<Vec<_>>()
        .join(";")
}

fn history_from_text(text: &str) -> Option<Vec<EpochMetrics>> {
    text.split(';')
        .filter(|r| !r.is_empty())
        .map(|row| {
            let v: Vec<f64> = row.split(',').map(|x| x.parse().ok()).collect::<Option<_>>()?;
            let &[
                epoch,
                loss,
                train_accuracy,
                test_accuracy,
                seconds,
                images_per_sec,
            ] = v.as_slice()
            else {
                return None;
            };
            Some(EpochMetrics {
                epoch: epoch as usize,
                loss,
                train_accuracy,
                test_accuracy,
                seconds,
                images_per_sec,
            })
        })
        .collect()
}

/// Writes a checkpoint that can continue training: the weights as [`save`]
/// writes them, plus the optimizer's state as `train.optimizer.*` tensors
/// and, as `train.*` metadata, the configuration, the position `at`, the
/// dropout counters and the completed epochs' metrics. `metadata` adds
/// entries of the caller's (such as the dataset's name).
pub fn save_training<T: Float>(
    net: &Network<T>,
    optimizer: &dyn Optimizer<T>,
    config: &TrainConfig,
    at: &Resume,
    path: &Path,
    metadata: &[(String, String)],
) -> Result<(), Error> {
    let (steps, views) = optimizer.state_views();
    let tensors: Vec<(String, Tensor<'_, T>)> = views
        .into_iter()
        .map(|(n, t)| (format!("{STATE_PREFIX}optimizer.{n}"), Tensor::Cast(t)))
        .collect();
    let noise: Vec<String> = net.noise_states().iter().map(u64::to_string).collect();
    let mut meta: Vec<(String, String)> = vec![
        ("optimizer".into(), optimizer.spec().to_string()),
        ("optimizer_steps".into(), steps.to_string()),
        ("epochs".into(), config.epochs.to_string()),
        ("batch_size".into(), config.batch_size.to_string()),
        ("seed".into(), config.seed.to_string()),
        ("train_eval_samples".into(), config.train_eval_samples.to_string()),
        ("eval_batch_size".into(), config.eval_batch_size.to_string()),
        ("epoch".into(), at.epoch.to_string()),
        ("step".into(), at.step.to_string()),
        ("loss_sum".into(), write_f64(at.loss_sum)),
        ("seconds".into(), write_f64(at.seconds)),
        ("completed".into(), history_to_text(&at.completed)),
        ("noise".into(), noise.join(",")),
    ];
    for (k, _) in &mut meta {
        *k = format!("{STATE_PREFIX}{k}");
    }
    meta.extend(metadata.iter().cloned());
    save_tensors(net, path, tensors, &meta)
}

/// A training run restored by [`load_training`].
pub struct Training<T: Float> {
    /// The network with its weights.
    pub net: Network<T>,
    /// The optimizer with its state.
    pub optimizer: Box<dyn Optimizer<T>>,
    /// The run's configuration, with `start` set to where it stopped.
    pub config: TrainConfig,
    /// All metadata entries of the file (including the caller's own).
    pub metadata: HashMap<String, String>,
}

/// Reads a checkpoint written by [`save_training`] and restores the network,
/// the optimizer and the configuration, ready for [`crate::train`].
///
/// ```
/// use layers::Adam;
/// use models::{Architecture, Resume, TrainConfig, checkpoint};
/// use ndarray::Array4;
/// use std::ops::ControlFlow;
///
/// let x = Array4::<f32>::zeros((4, 1, 28, 28));
/// let labels = [0, 1, 0, 1];
/// let data = (&x.view() as &dyn models::ImageSource<f32>, &labels[..]);
/// let config = TrainConfig { epochs: 1, batch_size: 2, ..TrainConfig::default() };
/// let mut net = Architecture::LeNet.build::<f32>([1, 28, 28], 2, 0)?;
/// let mut adam = Adam::new(0.001);
/// let history = models::train(&mut net, &mut adam, data, data, &config, &mut |_| ControlFlow::Continue(()))?;
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("checkpoint.safetensors");
/// let at = Resume { epoch: 2, completed: history.epochs, ..Resume::default() };
/// checkpoint::save_training(&net, &adam, &config, &at, &path, &[])?;
///
/// let restored = checkpoint::load_training::<f32>(&path)?;
/// assert_eq!(restored.config.start.epoch, 2);
/// assert_eq!(restored.optimizer.describe(), "adam lr=0.001 beta1=0.9 beta2=0.999");
/// assert_eq!(restored.config.batch_size, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn load_training<T: Float>(path: &Path) -> Result<Training<T>, Error> {
    let bytes = std::fs::read(path).map_err(|e| err(path, e.to_string()))?;
    load_training_bytes(bytes, path, crate::MAX_PARAMS)
}

/// [`load_training`] from a checkpoint's bytes (`path` names them in
/// errors), refusing a network of more than `max_params` parameters as
/// [`load_bytes_within`] does.
pub fn load_training_bytes<T: Float>(
    bytes: Vec<u8>,
    path: &Path,
    max_params: usize,
) -> Result<Training<T>, Error> {
    let contents = Contents::from_bytes(bytes, path)?;
    let mut net = network_for::<T>(&contents, path, max_params)?;
    load_contents_into(&mut net, &contents, path, STATE_PREFIX)?;
    let meta = |key: &str| {
        contents
            .metadata
            .get(&format!("{STATE_PREFIX}{key}"))
            .ok_or_else(|| {
                err(
                    path,
                    format!("no training state: metadata has no {STATE_PREFIX}{key} entry"),
                )
            })
    };
    fn num<N: std::str::FromStr>(path: &Path, key: &str, text: &str) -> Result<N, Error> {
        text.parse().map_err(|_| {
            err(
                path,
                format!("metadata {STATE_PREFIX}{key} {text:?} is not a number"),
            )
        })
    }
    let spec: OptimizerSpec = meta("optimizer")?
        .parse()
        .map_err(|e: layers::Error| err(path, e.to_string()))?;
    let mut optimizer = spec.build::<T>();
    let mut tensors = Vec::new();
    for name in contents.names() {
        if let Some(slot) = name.strip_prefix(&format!("{STATE_PREFIX}optimizer.")) {
            let t = contents
                .extra(&name)
                .unwrap_or_else(|| Err(format!("tensor {name} vanished")))
                .map_err(|m| err(path, m))?;
            tensors.push((slot.to_string(), t.mapv(|v| T::of(v as f64))));
        }
    }
    // Restore the optimizer's order: slot by slot, parameters in visiting order.
    let mut order = Vec::new();
    net.visit_params(&mut |n, _, _| order.push(n.to_string()));
    let rank = |name: &str| {
        let (slot, param) = name.split_once('.').unwrap_or((name, ""));
        (
            slot.to_string(),
            order.iter().position(|p| p == param).unwrap_or(usize::MAX),
        )
    };
    tensors.sort_by_key(|(n, _)| rank(n));
    let steps = num(path, "optimizer_steps", meta("optimizer_steps")?)?;
    optimizer
        .set_state(OptimizerState { steps, tensors })
        .map_err(|e| err(path, e.to_string()))?;
    let noise: Vec<u64> = meta("noise")?
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| num(path, "noise", s))
        .collect::<Result<_, _>>()?;
    net.set_noise_states(&noise)
        .map_err(|e| err(path, e.to_string()))?;
    let completed = history_from_text(meta("completed")?)
        .ok_or_else(|| err(path, format!("metadata {STATE_PREFIX}completed is malformed")))?;
    let config = TrainConfig {
        epochs: num(path, "epochs", meta("epochs")?)?,
        batch_size: num(path, "batch_size", meta("batch_size")?)?,
        seed: num(path, "seed", meta("seed")?)?,
        train_eval_samples: num(path, "train_eval_samples", meta("train_eval_samples")?)?,
        eval_batch_size: num(path, "eval_batch_size", meta("eval_batch_size")?)?,
        start: Resume {
            epoch: num(path, "epoch", meta("epoch")?)?,
            step: num(path, "step", meta("step")?)?,
            loss_sum: num(path, "loss_sum", meta("loss_sum")?)?,
            seconds: num(path, "seconds", meta("seconds")?)?,
            completed,
        },
    };
    Ok(Training {
        net,
        optimizer,
        config,
        metadata: contents.metadata.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::path::PathBuf;

    /// The path `write_atomically_with` hands its writer, for a target `path`;
    /// the writer fails, so nothing is left behind.
    fn temporary_for(path: &Path) -> PathBuf {
        let seen = RefCell::new(None);
        let result = write_atomically_with(path, |tmp| {
            *seen.borrow_mut() = Some(tmp.to_path_buf());
            Err("stop before writing".into())
        });
        assert!(result.is_err());
        seen.into_inner().expect("the writer was called")
    }

    #[test]
    fn the_temporary_file_sits_beside_its_target() {
        // A rename is atomic only within one file system, so the temporary
        // file must be in the target's directory, not the working one.
        let dir = Path::new("some").join("dir");
        let tmp = temporary_for(&dir.join("model.safetensors"));
        assert_eq!(tmp.parent(), Some(dir.as_path()));
        let name = tmp.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with(".model.safetensors.tmp-"), "{name}");

        let bare = temporary_for(Path::new("model.safetensors"));
        assert_eq!(bare.parent(), Some(Path::new(".")));
    }
}
