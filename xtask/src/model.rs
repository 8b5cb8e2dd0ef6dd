//! `--model`: one of the three networks of `MODELS.md` by name, or a
//! network described in a TOML file (`models::NetworkSpec`).

use std::path::Path;
use std::str::FromStr;

use anyhow::{Result, bail};
use models::{Architecture, BuildOptions, Network, NetworkSpec};

/// What `--model` names.
#[derive(Clone, Debug)]
pub enum ModelChoice {
    /// simple-conv-net, lenet or alexnet-lite.
    Builtin(Architecture),
    /// A TOML file, read and checked when the flag is parsed.
    File(String, NetworkSpec),
}

impl FromStr for ModelChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Ok(arch) = s.parse::<Architecture>() {
            return Ok(ModelChoice::Builtin(arch));
        }
        if !s.ends_with(".toml") && !Path::new(s).is_file() {
            return Err(format!(
                "unknown model {s:?}; expected simple-conv-net, lenet, alexnet-lite or a network's .toml file"
            ));
        }
        let text = std::fs::read_to_string(s).map_err(|e| format!("{s}: {e}"))?;
        let spec = NetworkSpec::parse(&text, s).map_err(|e| e.to_string())?;
        Ok(ModelChoice::File(s.to_string(), spec))
    }
}

impl std::fmt::Display for ModelChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelChoice::Builtin(arch) => write!(f, "{arch}"),
            ModelChoice::File(path, _) => f.write_str(path),
        }
    }
}

impl ModelChoice {
    /// The network for data of `input` images and `classes` classes. A
    /// built-in network adapts to them; a file's must match them.
    pub fn build(
        &self,
        input: [usize; 3],
        classes: usize,
        seed: u64,
        options: BuildOptions,
    ) -> Result<Network<f32>> {
        match self {
            ModelChoice::Builtin(arch) => Ok(arch.build_with(input, classes, seed, options)?),
            ModelChoice::File(path, spec) => {
                if spec.input() != input || spec.classes() != classes {
                    bail!(
                        "--model {path}: the network takes {:?} images and {} classes; the data has {input:?} and {classes}",
                        spec.input(),
                        spec.classes()
                    );
                }
                Ok(spec.build(seed, options)?)
            }
        }
    }

    /// The input shape and classes the model has of its own: a file's;
    /// `None` for a built-in network, which takes its data's.
    pub fn own_shape(&self) -> Option<([usize; 3], usize)> {
        match self {
            ModelChoice::Builtin(_) => None,
            ModelChoice::File(_, spec) => Some((spec.input(), spec.classes())),
        }
    }
}
