//! A [`Network`] as an ONNX model, for runtimes outside this library
//! (onnxruntime, tract, a browser, a phone). Each layer says what it
//! computes through [`LayerHooks::operator`], and becomes the standard
//! operators of [`OPSET`]:
//!
//! | layer | ONNX |
//! |---|---|
//! | Convolution (+ fused ReLU / sigmoid) | `Conv` (+ `Relu` / `Sigmoid`) |
//! | max Pooling | `MaxPool`, after a zero `Pad` if the window pads (ours pads with zeros, ONNX's `MaxPool` with -inf) |
//! | average Pooling | `AveragePool`, after a zero `Pad` if the window pads (so the padding counts in the mean, as ours) |
//! | Affine | `Flatten` (after a 4-D layer) and `Gemm` with `transB = 1`, weight `(outputs, inputs)` as PyTorch's |
//! | ReLU, Sigmoid | `Relu`, `Sigmoid` |
//! | LRN | `LRN`, `alpha` multiplied by `size` (ONNX divides it by `size`) |
//! | Dropout | nothing: the identity at inference |
//!
//! The graph's input [`INPUT`] is what the network takes, float32 NCHW
//! with the pixels scaled as in training; its outputs are the scores
//! [`SCORES`], `(batch, classes)`, and their softmax [`PROBABILITIES`]. The
//! batch axis is the symbolic dimension `batch`. Weights are stored as
//! float32 initializers under their checkpoint names and layouts
//! (`conv1.weight`, `fc1.weight` `(outputs, inputs)`).

use layers::{Activation, LayerHooks, Operator, PoolKind};
use protobuf::Message;
use tensor4d::{Float, Window};

use crate::{Error, Network};
use proto::onnx::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto,
    TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
    attribute_proto::AttributeType,
    tensor_proto::DataType,
    tensor_shape_proto::{Dimension, dimension},
    type_proto,
};

/// ONNX's messages (`proto::onnx::ModelProto`, ...), generated at build time
/// from ONNX's own schema (`proto/onnx.proto`, ONNX 1.22.0) by
/// rust-protobuf, whose [`protobuf::Message`] reads and writes them.
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/mod.rs"));
}

/// Re-exported so that users of [`proto`] need no version of their own.
pub use protobuf;

/// The ONNX operator set the export uses (the default domain's).
pub const OPSET: i64 = 13;
/// The ONNX IR version written: 7, the one that came with opset 13.
pub const IR_VERSION: i64 = 7;
/// The graph's input: float32 `(batch, C, H, W)`.
pub const INPUT: &str = "input";
/// The graph's first output: the scores, float32 `(batch, classes)`.
pub const SCORES: &str = "scores";
/// The graph's second output: the scores' softmax over the classes.
pub const PROBABILITIES: &str = "probabilities";

/// The graph being written: its nodes and weights, and the tensor the
/// layers so far end in with its rank.
struct Graph {
    nodes: Vec<NodeProto>,
    weights: Vec<TensorProto>,
    current: String,
    rank: usize,
}

impl Graph {
    /// Appends the node `op` reading `inputs` and writing the tensor
    /// `output`, which becomes the current one.
    fn node(&mut self, op: &str, inputs: &[&str], output: &str, attributes: Vec<AttributeProto>) {
        self.nodes.push(NodeProto {
            name: Some(output.to_string()),
            op_type: Some(op.to_string()),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.to_string()],
            attribute: attributes,
            ..NodeProto::default()
        });
        self.current = output.to_string();
    }

    /// As [`Graph::node`], reading the current tensor alone.
    fn unary(&mut self, op: &str, output: &str, attributes: Vec<AttributeProto>) {
        let input = self.current.clone();
        self.node(op, &[&input], output, attributes);
    }

    /// Flattens the current tensor to `(batch, rest)` if it has more axes.
    fn flatten(&mut self, output: &str) {
        if self.rank > 2 {
            self.unary("Flatten", output, vec![int_attr("axis", 1)]);
            self.rank = 2;
        }
    }

    fn activation(&mut self, act: Activation, output: &str) {
        let op = match act {
            Activation::Relu => "Relu",
            Activation::Sigmoid => "Sigmoid",
        };
        self.unary(op, output, Vec::new());
    }
}

fn ints_attr(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_string()),
        type_: Some(AttributeType::INTS.into()),
        ints: values.to_vec(),
        ..AttributeProto::default()
    }
}

fn int_attr(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_string()),
        type_: Some(AttributeType::INT.into()),
        i: Some(value),
        ..AttributeProto::default()
    }
}

fn float_attr(name: &str, value: f32) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_string()),
        type_: Some(AttributeType::FLOAT.into()),
        f: Some(value),
        ..AttributeProto::default()
    }
}

fn string_attr(name: &str, value: &str) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_string()),
        type_: Some(AttributeType::STRING.into()),
        s: Some(value.as_bytes().to_vec()),
        ..AttributeProto::default()
    }
}

/// `kernel_shape` and `strides` of a window, and its `pads` (begin
/// height, begin width, end height, end width).
fn window_attrs(window: Window, with_pads: bool) -> Vec<AttributeProto> {
    let d = |v: usize| v as i64;
    let mut attrs = vec![
        ints_attr("kernel_shape", &[d(window.fh), d(window.fw)]),
        ints_attr("strides", &[d(window.sh), d(window.sw)]),
    ];
    if with_pads {
        let (ph, pw) = (d(window.ph), d(window.pw));
        attrs.push(ints_attr("pads", &[ph, pw, ph, pw]));
    }
    attrs
}

/// A float32 or int64 tensor `(dims, little-endian bytes)` as an initializer.
fn tensor(name: &str, dims: &[usize], data_type: DataType, raw: Vec<u8>) -> TensorProto {
    TensorProto {
        name: Some(name.to_string()),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: Some(data_type as i32),
        raw_data: Some(raw),
        ..TensorProto::default()
    }
}

/// A float32 tensor type with a symbolic batch axis and the fixed `rest`.
fn batched(name: &str, rest: &[usize]) -> ValueInfoProto {
    let mut dim = vec![Dimension {
        value: Some(dimension::Value::DimParam("batch".into())),
        ..Dimension::default()
    }];
    dim.extend(rest.iter().map(|&d| Dimension {
        value: Some(dimension::Value::DimValue(d as i64)),
        ..Dimension::default()
    }));
    let shape = TensorShapeProto {
        dim,
        ..TensorShapeProto::default()
    };
    ValueInfoProto {
        name: Some(name.to_string()),
        type_: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(DataType::FLOAT as i32),
                shape: Some(shape).into(),
                ..type_proto::Tensor::default()
            })),
            ..TypeProto::default()
        })
        .into(),
        ..ValueInfoProto::default()
    }
}

impl<T: Float> Network<T> {
    /// The network as a serialized ONNX model (see the [`crate::onnx`]
    /// module for the operators, input and outputs), with `metadata` as
    /// the model's key-value properties (class names, the data set).
    /// Refuses, naming it, a layer with no ONNX form (one without a
    /// [`LayerHooks::operator`]) or a weight outside float32's range.
    ///
    /// ```
    /// use models::{Architecture, onnx};
    /// use onnx::proto::onnx::ModelProto;
    /// use onnx::protobuf::Message;
    /// let net = Architecture::LeNet.build::<f32>([1, 28, 28], 10, 0)?;
    /// let bytes = net.to_onnx(&[("classes", "0,1,2,3,4,5,6,7,8,9")])?;
    /// let model = ModelProto::parse_from_bytes(&bytes).unwrap();
    /// assert_eq!(model.opset_import[0].version(), onnx::OPSET);
    /// let ops: Vec<_> = model.graph.node.iter().map(|n| n.op_type()).collect();
    /// assert_eq!(
    ///     ops,
    ///     ["Conv", "Sigmoid", "AveragePool", "Conv", "Sigmoid", "AveragePool", "Flatten", "Gemm",
    ///      "Sigmoid", "Gemm", "Sigmoid", "Gemm", "Softmax"]
    /// );
    /// # Ok::<(), models::Error>(())
    /// ```
    pub fn to_onnx(&self, metadata: &[(&str, &str)]) -> Result<Vec<u8>, Error> {
        let mut g = Graph {
            nodes: Vec::new(),
            weights: Vec::new(),
            current: INPUT.to_string(),
            rank: 4,
        };
        for (label, fused, layer) in self.slots() {
            let refuse = |reason: String| Error::Export {
                label: label.to_string(),
                reason,
            };
            let op = layer.operator().ok_or_else(|| {
                refuse(format!(
                    "{} has no ONNX form (its LayerHooks::operator is None)",
                    layer.describe()
                ))
            })?;
            // PyTorch's layout for an affine weight, `(outputs, inputs)`, as
            // checkpoints store it and `torch.onnx` exports it.
            let transpose = op == Operator::Affine;
            let names = params(label, layer, transpose, &mut g.weights).map_err(refuse)?;
            let [weight, bias] = [0, 1].map(|i| names.get(i).cloned().unwrap_or_default());
            match op {
                Operator::Convolution { window, then } => {
                    let input = g.current.clone();
                    let mut attrs = window_attrs(window, true);
                    attrs.push(ints_attr("dilations", &[1, 1]));
                    attrs.push(int_attr("group", 1));
                    g.node("Conv", &[&input, &weight, &bias], label, attrs);
                    if let Some(act) = then {
                        // The builder names a fused activation (`relu1`); a
                        // layer fused before it was pushed has no name of its own.
                        let name = fused
                            .first()
                            .cloned()
                            .unwrap_or_else(|| format!("{label}.{act:?}"));
                        g.activation(act, &name);
                    }
                }
                Operator::Pooling { kind, window } => {
                    // Ours pads with zeros, for the max as for the mean: a zero
                    // `Pad` first (ONNX's `MaxPool` would pad with -inf, and
                    // onnxruntime refuses pads as large as the window).
                    if window.ph > 0 || window.pw > 0 {
                        let (ph, pw) = (window.ph as i64, window.pw as i64);
                        let pads = format!("{label}.pads");
                        let raw = [0, 0, ph, pw, 0, 0, ph, pw]
                            .iter()
                            .flat_map(|v: &i64| v.to_le_bytes())
                            .collect();
                        g.weights.push(tensor(&pads, &[8], DataType::INT64, raw));
                        let input = g.current.clone();
                        let mode = string_attr("mode", "constant");
                        g.node("Pad", &[&input, &pads], &format!("{label}.padded"), vec![mode]);
                    }
                    let op = match kind {
                        PoolKind::Max => "MaxPool",
                        PoolKind::Average => "AveragePool",
                    };
                    g.unary(op, label, window_attrs(window, false));
                }
                Operator::Affine => {
                    g.flatten(&format!("{label}.flat"));
                    let input = g.current.clone();
                    let attrs = vec![
                        float_attr("alpha", 1.0),
                        float_attr("beta", 1.0),
                        int_attr("transA", 0),
                        int_attr("transB", 1),
                    ];
                    g.node("Gemm", &[&input, &weight, &bias], label, attrs);
                    g.rank = 2;
                }
                Operator::Activation(act) => g.activation(act, label),
                Operator::Lrn { size, alpha, beta, k } => {
                    let attrs = vec![
                        int_attr("size", size as i64),
                        float_attr("alpha", (alpha * size as f64) as f32),
                        float_attr("beta", beta as f32),
                        float_attr("bias", k as f32),
                    ];
                    g.unary("LRN", label, attrs);
                }
                Operator::Dropout => {}
                other => return Err(refuse(format!("{other:?} has no ONNX form"))),
            }
        }
        g.flatten("scores.flat");
        // The last tensor is the scores: rename it, or copy the input to it
        // when no node wrote anything.
        match g.nodes.last_mut() {
            Some(last) => last.output = vec![SCORES.to_string()],
            None => g.unary("Identity", SCORES, Vec::new()),
        }
        g.node("Softmax", &[SCORES], PROBABILITIES, vec![int_attr("axis", 1)]);

        let classes = self.classes();
        let graph = GraphProto {
            name: Some(self.name().to_string()),
            node: g.nodes,
            initializer: g.weights,
            input: vec![batched(INPUT, &self.input_shape())],
            output: vec![batched(SCORES, &[classes]), batched(PROBABILITIES, &[classes])],
            ..GraphProto::default()
        };
        let model = ModelProto {
            ir_version: Some(IR_VERSION),
            opset_import: vec![OperatorSetIdProto {
                domain: Some(String::new()),
                version: Some(OPSET),
                ..OperatorSetIdProto::default()
            }],
            producer_name: Some("convnet-models".into()),
            producer_version: Some(env!("CARGO_PKG_VERSION").into()),
            doc_string: Some(format!("{}, exported by convnet-models", self.name())),
            graph: Some(graph).into(),
            metadata_props: metadata
                .iter()
                .map(|(k, v)| StringStringEntryProto {
                    key: Some(k.to_string()),
                    value: Some(v.to_string()),
                    ..StringStringEntryProto::default()
                })
                .collect(),
            ..ModelProto::default()
        };
        model.write_to_bytes().map_err(|e| Error::Export {
            label: self.name().to_string(),
            reason: format!("encoding the ONNX model: {e}"),
        })
    }
}

/// Adds the layer's parameters as float32 initializers named
/// `label.name`, matrices transposed if `transpose`; returns their names
/// in visiting order.
fn params<T: Float>(
    label: &str,
    layer: &dyn LayerHooks<T>,
    transpose: bool,
    weights: &mut Vec<TensorProto>,
) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    let mut fault = None;
    layer.visit_params(&mut |name, value, _| {
        let full = format!("{label}.{name}");
        let value = if transpose && value.ndim() == 2 {
            value.reversed_axes()
        } else {
            value
        };
        let mut raw = Vec::with_capacity(value.len() * 4);
        // Logical (row-major) order, whatever the view's strides.
        for v in value.iter() {
            match v.to_f32().filter(|x| x.is_finite() || !v.is_finite()) {
                Some(x) => raw.extend_from_slice(&x.to_le_bytes()),
                None => {
                    fault.get_or_insert_with(|| format!("{full} holds {v}, outside float32's range"));
                    return;
                }
            }
        }
        weights.push(tensor(&full, value.shape(), DataType::FLOAT, raw));
        names.push(full);
    });
    match fault {
        Some(f) => Err(f),
        None => Ok(names),
    }
}
