//! Networks described in a TOML file: the input shape, the classes, and
//! the layers in order with their settings, everything
//! [`Network::builder`] can make. The three networks of `MODELS.md` ship
//! as such files (`crates/models/networks/`), and a network built from a
//! file keeps the file's text, so a checkpoint of it can be read back.
//!
//! ```toml
//! name = "small"
//! input = [1, 28, 28]
//! classes = 10
//! init = "he"                 # he, xavier, pytorch, or { normal = 0.01 }
//!
//! [[layers]]
//! kind = "conv"               # conv, affine, relu, sigmoid, max-pool,
//! filters = 16                # avg-pool, lrn, dropout
//! size = 5                    # or [height, width]
//! pad = 2                     # stride = 1 and pad = 0 unless given
//!
//! [[layers]]
//! kind = "relu"
//!
//! [[layers]]
//! kind = "max-pool"
//! size = 2                    # stride = size unless given
//!
//! [[layers]]
//! kind = "affine"             # the last layer: outputs = classes
//! ```

use layers::Init;
use serde::Deserialize;
use tensor4d::{Float, Window};
use toml::Spanned;

use crate::{BuildOptions, Error, Network};

/// A network description read from TOML ([`NetworkSpec::parse`]).
#[derive(Clone, Debug)]
pub struct NetworkSpec {
    file: File,
    text: String,
    source: String,
}

/// The file as written; each layer is read on its own, so that an error
/// in one names its line.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    name: String,
    input: [usize; 3],
    classes: usize,
    init: Option<InitSpec>,
    layers: Vec<Spanned<toml::Table>>,
}

#[derive(Clone, Debug)]
struct File {
    name: String,
    input: [usize; 3],
    classes: usize,
    init: Option<InitSpec>,
    /// Each layer with the line of its `[[layers]]` header.
    layers: Vec<(usize, LayerSpec)>,
}

/// `init = "he"` or `init = { normal = 0.01 }`.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(untagged)]
enum InitSpec {
    Named(Named),
    Normal { normal: f64 },
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Named {
    He,
    Xavier,
    Pytorch,
}

/// `size = 5` or `size = [3, 5]`.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(untagged)]
enum Size {
    Square(usize),
    Rect([usize; 2]),
}

#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
enum LayerSpec {
    Conv {
        filters: usize,
        size: Size,
        stride: Option<usize>,
        pad: Option<usize>,
        init: Option<InitSpec>,
    },
    Affine {
        outputs: Option<usize>,
        init: Option<InitSpec>,
    },
    Relu,
    Sigmoid,
    MaxPool {
        size: Size,
        stride: Option<usize>,
        pad: Option<usize>,
    },
    AvgPool {
        size: Size,
        stride: Option<usize>,
        pad: Option<usize>,
    },
    Lrn,
    Dropout {
        ratio: f64,
    },
}

impl InitSpec {
    fn init(self) -> Init {
        match self {
            InitSpec::Named(Named::He) => Init::He,
            InitSpec::Named(Named::Xavier) => Init::Xavier,
            InitSpec::Named(Named::Pytorch) => Init::PyTorch,
            InitSpec::Normal { normal } => Init::Normal { std: normal },
        }
    }
}

impl Size {
    fn dims(self) -> [usize; 2] {
        match self {
            Size::Square(s) => [s, s],
            Size::Rect(r) => r,
        }
    }
}

/// The window of `size`, `stride` (default `default_stride`) and `pad`,
/// or what is wrong with it.
fn window(
    size: Size,
    stride: Option<usize>,
    pad: Option<usize>,
    default_stride: Option<usize>,
) -> Result<Window, String> {
    let [fh, fw] = size.dims();
    let [sh, sw] = stride.map_or_else(|| default_stride.map_or([fh, fw], |s| [s, s]), |s| [s, s]);
    let pad = pad.unwrap_or(0);
    if fh == 0 || fw == 0 {
        return Err(format!("size {fh}x{fw}: at least 1"));
    }
    if sh == 0 || sw == 0 {
        return Err("stride 0: at least 1".into());
    }
    Ok(Window {
        fh,
        fw,
        sh,
        sw,
        ph: pad,
        pw: pad,
    })
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

impl NetworkSpec {
    /// Parses a description; `source` (the file's name) names it in errors,
    /// each with the line at fault.
    ///
    /// ```
    /// use models::NetworkSpec;
    /// let text = "name = \"tiny\"\ninput = [1, 8, 8]\nclasses = 2\n\n[[layers]]\nkind = \"conv\"\nfilters = 0\nsize = 3\n\n[[layers]]\nkind = \"affine\"\n";
    /// let e = NetworkSpec::parse(text, "tiny.toml").unwrap_err();
    /// assert_eq!(e.to_string(), "tiny.toml:5: layer 1 (conv): filters 0: at least 1");
    /// # Ok::<(), models::Error>(())
    /// ```
    pub fn parse(text: &str, source: &str) -> Result<NetworkSpec, Error> {
        let raw: Raw = toml::from_str(text).map_err(|e| Error::Spec {
            file: source.to_string(),
            line: e.span().map_or(1, |s| line_of(text, s.start)),
            message: e.message().trim_end().to_string(),
        })?;
        let mut layers = Vec::with_capacity(raw.layers.len());
        for (i, table) in raw.layers.into_iter().enumerate() {
            // A layer's span is its `[[layers]]` header.
            let line = line_of(text, table.span().start);
            let kind = table
                .get_ref()
                .get("kind")
                .and_then(|k| k.as_str())
                .unwrap_or("?")
                .to_string();
            let layer = toml::Value::Table(table.into_inner())
                .try_into::<LayerSpec>()
                .map_err(|e| Error::Spec {
                    file: source.to_string(),
                    line,
                    message: format!("layer {} ({kind}): {}", i + 1, e.message().trim_end()),
                })?;
            layers.push((line, layer));
        }
        let file = File {
            name: raw.name,
            input: raw.input,
            classes: raw.classes,
            init: raw.init,
            layers,
        };
        let spec = NetworkSpec {
            file,
            text: text.to_string(),
            source: source.to_string(),
        };
        spec.check()?;
        Ok(spec)
    }

    /// The error for layer `i` (0-based).
    fn at(&self, i: usize, message: impl std::fmt::Display) -> Error {
        let (line, layer) = &self.file.layers[i];
        let kind = match layer {
            LayerSpec::Conv { .. } => "conv",
            LayerSpec::Affine { .. } => "affine",
            LayerSpec::Relu => "relu",
            LayerSpec::Sigmoid => "sigmoid",
            LayerSpec::MaxPool { .. } => "max-pool",
            LayerSpec::AvgPool { .. } => "avg-pool",
            LayerSpec::Lrn => "lrn",
            LayerSpec::Dropout { .. } => "dropout",
        };
        Error::Spec {
            file: self.source.clone(),
            line: *line,
            message: format!("layer {} ({kind}): {message}", i + 1),
        }
    }

    /// The checks the builder does not make.
    fn check(&self) -> Result<(), Error> {
        // The line that sets `key`, for errors about it.
        let key = |key: &str, message: String| Error::Spec {
            file: self.source.clone(),
            line: self
                .text
                .lines()
                .position(|l| {
                    l.trim_start()
                        .strip_prefix(key)
                        .is_some_and(|r| r.trim_start().starts_with('='))
                })
                .map_or(1, |i| i + 1),
            message,
        };
        let f = &self.file;
        if f.input.contains(&0) {
            return Err(key(
                "input",
                format!("input {:?}: every size at least 1", f.input),
            ));
        }
        if f.classes == 0 {
            return Err(key("classes", "classes 0: at least 1".into()));
        }
        let n = f.layers.len();
        match f.layers.last() {
            None => return Err(key("layers", "no layers: give at least an affine one".into())),
            Some((_, LayerSpec::Affine { .. })) => {}
            Some(_) => {
                return Err(self.at(
                    n - 1,
                    "the last layer must be an affine one, giving the class scores",
                ));
            }
        }
        for (i, (_, layer)) in f.layers.iter().enumerate() {
            match layer {
                LayerSpec::Conv { filters: 0, .. } => return Err(self.at(i, "filters 0: at least 1")),
                LayerSpec::Affine { outputs: Some(0), .. } => return Err(self.at(i, "outputs 0: at least 1")),
                LayerSpec::Affine { outputs: None, .. } if i + 1 < n => {
                    return Err(self.at(i, "outputs missing (only the last layer takes `classes`)"));
                }
                LayerSpec::Affine { outputs: Some(o), .. } if i + 1 == n && *o != f.classes => {
                    return Err(self.at(i, format!("outputs {o}, but classes = {}", f.classes)));
                }
                LayerSpec::Dropout { ratio } if !(0.0..1.0).contains(ratio) => {
                    return Err(self.at(i, format!("ratio {ratio}: in [0, 1)")));
                }
                LayerSpec::Conv {
                    init: Some(InitSpec::Normal { normal }),
                    ..
                }
                | LayerSpec::Affine {
                    init: Some(InitSpec::Normal { normal }),
                    ..
                } if !(normal.is_finite() && *normal >= 0.0) => {
                    return Err(self.at(i, format!("init normal {normal}: a finite std >= 0")));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The network's name.
    pub fn name(&self) -> &str {
        &self.file.name
    }

    /// The input shape `[C, H, W]`.
    pub fn input(&self) -> [usize; 3] {
        self.file.input
    }

    /// The number of classes.
    pub fn classes(&self) -> usize {
        self.file.classes
    }

    /// The file's text, as a checkpoint keeps it.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Builds the network, weights drawn from `seed`; `options` as for
    /// [`crate::Architecture::build_with`] (its `init`, if given, replaces
    /// every layer's). A layer the builder refuses (a window that does
    /// not tile its input, too many parameters) is an error naming its line.
    pub fn build<T: Float>(&self, seed: u64, options: BuildOptions) -> Result<Network<T>, Error> {
        let f = &self.file;
        let default = f.init.map_or(Init::He, InitSpec::init);
        let init = |own: &Option<InitSpec>| {
            options
                .init
                .unwrap_or_else(|| own.map_or(default, InitSpec::init))
        };
        let mut b = Network::builder(&f.name, f.input, seed)
            .max_params(options.max_params.unwrap_or(crate::MAX_PARAMS))
            .conv_method(options.conv_method)?
            .pool_method(options.pool_method);
        for (i, (_, layer)) in f.layers.iter().enumerate() {
            let at = |e: Error| self.at(i, e);
            let win =
                |size, stride, pad, default| window(size, stride, pad, default).map_err(|m| self.at(i, m));
            b = match layer {
                LayerSpec::Conv {
                    filters,
                    size,
                    stride,
                    pad,
                    init: own,
                } => b.conv(*filters, win(*size, *stride, *pad, Some(1))?, init(own)),
                LayerSpec::Affine { outputs, init: own } => b.affine(outputs.unwrap_or(f.classes), init(own)),
                LayerSpec::Relu => b.relu(),
                LayerSpec::Sigmoid => b.sigmoid(),
                LayerSpec::MaxPool { size, stride, pad } => b.max_pool(win(*size, *stride, *pad, None)?),
                LayerSpec::AvgPool { size, stride, pad } => b.avg_pool(win(*size, *stride, *pad, None)?),
                LayerSpec::Lrn => b.lrn(),
                LayerSpec::Dropout { ratio } => b.dropout(*ratio),
            }
            .map_err(at)?;
        }
        let mut net = b.build()?;
        if net.classes() != f.classes {
            return Err(self.at(
                f.layers.len() - 1,
                format!("gives {} scores, not {}", net.classes(), f.classes),
            ));
        }
        net.set_spec(self.text.clone());
        Ok(net)
    }
}
