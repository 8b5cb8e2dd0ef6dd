/// What went wrong in a model, its training or its checkpoint.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A layer refused its input or configuration; `label` says which
    /// (`conv1`, `fc2`, ...).
    #[error("{label}: {error}")]
    Layer {
        /// The layer's label in the network.
        label: String,
        /// The layer's own error, naming the sizes.
        error: layers::Error,
    },
    /// The input batch does not have the network's input shape.
    #[error("{model}: expected input {expected}, found {found:?}")]
    Input {
        /// The model's name.
        model: String,
        /// The shape it takes.
        expected: String,
        /// What it was given.
        found: Vec<usize>,
    },
    /// The loss layer refused the scores or labels.
    #[error(transparent)]
    Loss(layers::Error),
    /// The optimizer refused the parameters.
    #[error(transparent)]
    Optimizer(layers::Error),
    /// A layer that would take the network past its size limit
    /// ([`crate::Builder::max_params`]), or whose size cannot be counted.
    #[error("{label}: {detail}")]
    TooLarge {
        /// The layer's label in the network.
        label: String,
        /// The sizes and the limit.
        detail: String,
    },
    /// A layer with no form in the export's format (ONNX), or a weight it
    /// cannot hold; `label` says which.
    #[error("{label}: cannot export: {reason}")]
    Export {
        /// The layer's label in the network.
        label: String,
        /// Why, naming the layer's kind or the weight.
        reason: String,
    },
    /// A network was built without any layer.
    #[error("a network needs at least one layer")]
    NoLayers,
    /// An architecture name that is not one of ours.
    #[error("unknown model {0:?}; expected one of simple-conv-net, lenet, alexnet-lite")]
    UnknownModel(String),
    /// Training produced a loss that is not a finite number.
    #[error("loss became {loss} at epoch {epoch}, step {step}; stopping (the last good weights are kept)")]
    NonFinite {
        /// 1-based epoch.
        epoch: usize,
        /// 1-based step within the epoch.
        step: usize,
        /// The offending loss.
        loss: f64,
    },
    /// A checkpoint file that cannot be read, written or used.
    #[error("{path}: {message}")]
    Checkpoint {
        /// The file.
        path: String,
        /// What is wrong: the first mismatching name, shape or dtype, or the I/O error.
        message: String,
    },
    /// A network description ([`crate::NetworkSpec`]) that cannot be used.
    #[error("{file}:{line}: {message}")]
    Spec {
        /// The file.
        file: String,
        /// The 1-based line at fault.
        line: usize,
        /// What is wrong, naming the layer.
        message: String,
    },
    /// A layer label the network does not have.
    #[error("{model} has no layer {label:?}; its layers are {valid}")]
    UnknownLayer {
        /// The network's name.
        model: String,
        /// The label asked for.
        label: String,
        /// The labels it has, comma-separated.
        valid: String,
    },
    /// Training settings that cannot work (zero batch size, empty data).
    #[error("training: {0}")]
    Config(String),
}
