//! The ONNX graph `Network::to_onnx` writes, read back with the protobuf
//! messages: the operators and attributes each layer becomes, the weights
//! under their checkpoint names and layouts, the named input and outputs
//! with a symbolic batch axis, and the refusal of a layer with no ONNX
//! form. (That onnxruntime computes the network's scores from the export
//! is `xtask/tests/onnx.rs`.)

use layers::{Init, Layer, LayerHooks, Mode, Parameters};
use models::onnx::proto::onnx::{ModelProto, NodeProto, TensorProto, ValueInfoProto};
use models::onnx::protobuf::Message;
use models::{Architecture, Network, onnx};
use ndarray::{ArrayD, ArrayViewD};
use tensor4d::Window;

fn parse(net: &Network<f32>) -> ModelProto {
    ModelProto::parse_from_bytes(&net.to_onnx(&[("k", "v")]).unwrap()).unwrap()
}

fn ops(model: &ModelProto) -> Vec<&str> {
    model.graph.node.iter().map(|n| n.op_type()).collect()
}

fn node<'m>(model: &'m ModelProto, op: &str) -> &'m NodeProto {
    model.graph.node.iter().find(|n| n.op_type() == op).unwrap()
}

fn ints(node: &NodeProto, name: &str) -> Vec<i64> {
    let a = node.attribute.iter().find(|a| a.name() == name).unwrap();
    if a.ints.is_empty() {
        vec![a.i()]
    } else {
        a.ints.clone()
    }
}

fn float(node: &NodeProto, name: &str) -> f32 {
    node.attribute.iter().find(|a| a.name() == name).unwrap().f()
}

fn dims(v: &ValueInfoProto) -> Vec<String> {
    use models::onnx::proto::onnx::tensor_shape_proto::dimension::Value;
    let Some(models::onnx::proto::onnx::type_proto::Value::TensorType(t)) = &v.type_.value else {
        panic!("not a tensor type");
    };
    t.shape
        .dim
        .iter()
        .map(|d| match &d.value {
            Some(Value::DimParam(p)) => p.clone(),
            Some(Value::DimValue(v)) => v.to_string(),
            _ => "?".into(),
        })
        .collect()
}

fn floats(t: &TensorProto) -> Vec<f32> {
    t.raw_data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

#[test]
fn the_three_networks_become_the_standard_operators() {
    let want: [(Architecture, &[&str]); 3] = [
        (
            Architecture::SimpleConvNet,
            &[
                "Conv", "Relu", "MaxPool", "Flatten", "Gemm", "Relu", "Gemm", "Softmax",
            ],
        ),
        (
            Architecture::LeNet,
            &[
                "Conv",
                "Sigmoid",
                "AveragePool",
                "Conv",
                "Sigmoid",
                "AveragePool",
                "Flatten",
                "Gemm",
                "Sigmoid",
                "Gemm",
                "Sigmoid",
                "Gemm",
                "Softmax",
            ],
        ),
        (
            Architecture::AlexNetLite,
            &[
                "Conv", "Relu", "LRN", "MaxPool", "Conv", "Relu", "LRN", "MaxPool", "Conv", "Relu", "Conv",
                "Relu", "Conv", "Relu", "MaxPool", "Flatten", "Gemm", "Relu", "Gemm", "Relu", "Gemm",
                "Softmax",
            ],
        ),
    ];
    for (arch, ops_want) in want {
        let net = arch.build::<f32>([1, 28, 28], 10, 0).unwrap();
        let model = parse(&net);
        assert_eq!(ops(&model), ops_want, "{}", arch.name());
        assert_eq!(
            (model.ir_version(), model.opset_import[0].version()),
            (7, onnx::OPSET)
        );
        assert_eq!(model.opset_import[0].domain(), "");
        assert_eq!(model.metadata_props[0].key(), "k");
        let g = &model.graph;
        assert_eq!(g.input.len(), 1);
        assert_eq!(
            (g.input[0].name(), dims(&g.input[0])),
            (
                "input",
                vec!["batch".into(), "1".into(), "28".into(), "28".into()]
            )
        );
        let outs: Vec<_> = g.output.iter().map(|o| (o.name(), dims(o))).collect();
        let k = vec!["batch".to_string(), "10".to_string()];
        assert_eq!(outs, [("scores", k.clone()), ("probabilities", k)]);
        // The scores come from the last Gemm, the softmax reads them over the classes.
        let n = g.node.len();
        assert_eq!(g.node[n - 2].output, ["scores"]);
        assert_eq!(
            (g.node[n - 1].input.as_slice(), ints(&g.node[n - 1], "axis")),
            (&["scores".to_string()][..], vec![1])
        );
        // Every tensor read is the input, a weight, or written before.
        let mut known: Vec<String> = vec!["input".into()];
        known.extend(g.initializer.iter().map(|t| t.name().to_string()));
        for node in &g.node {
            for i in &node.input {
                assert!(
                    known.contains(i),
                    "{}: {} reads {i} before it is written",
                    arch.name(),
                    node.name()
                );
            }
            known.extend(node.output.iter().cloned());
        }
        // The weights: the checkpoint's names, PyTorch's layouts, the values.
        let mut params = Vec::new();
        net.visit_params(&mut |name, value, _| params.push((name.to_string(), value.to_owned())));
        assert_eq!(g.initializer.len(), params.len());
        for (t, (name, value)) in g.initializer.iter().zip(&params) {
            assert_eq!(t.name(), name);
            let value = if name.starts_with("fc") && name.ends_with("weight") {
                value.t().to_owned()
            } else {
                value.clone()
            };
            let shape: Vec<i64> = value.shape().iter().map(|&d| d as i64).collect();
            assert_eq!(t.dims, shape, "{name}");
            assert_eq!(floats(t), value.iter().copied().collect::<Vec<_>>(), "{name}");
        }
        let gemm = node(&model, "Gemm");
        assert_eq!((ints(gemm, "transA"), ints(gemm, "transB")), (vec![0], vec![1]));
    }
}

#[test]
fn windows_and_lrn_keep_their_meaning() {
    let net = Architecture::AlexNetLite
        .build::<f32>([1, 28, 28], 10, 0)
        .unwrap();
    let model = parse(&net);
    let conv1 = node(&model, "Conv");
    assert_eq!(ints(conv1, "kernel_shape"), [5, 5]);
    assert_eq!(ints(conv1, "pads"), [2, 2, 2, 2]);
    assert_eq!(ints(conv1, "strides"), [1, 1]);
    let lrn = node(&model, "LRN");
    // ONNX divides alpha by size; ours does not.
    assert_eq!(ints(lrn, "size"), [5]);
    assert_eq!(
        (float(lrn, "alpha"), float(lrn, "beta"), float(lrn, "bias")),
        (5e-4, 0.75, 2.0)
    );
    let pools: Vec<_> = model
        .graph
        .node
        .iter()
        .filter(|n| n.op_type() == "MaxPool")
        .collect();
    assert_eq!(ints(pools[2], "kernel_shape"), [3, 3]);
    assert_eq!(ints(pools[2], "strides"), [2, 2]);
    assert!(
        pools
            .iter()
            .all(|p| p.attribute.iter().all(|a| a.name() != "pads"))
    );
}

#[test]
fn padded_pooling_pads_with_zeros_as_ours_does() {
    let net = Network::<f32>::builder("padded", [2, 7, 7], 0)
        .max_pool(Window::square(3).with_stride(2).with_pad(1))
        .unwrap()
        .avg_pool(Window::square(3).with_pad(1))
        .unwrap()
        .build()
        .unwrap();
    let model = parse(&net);
    // Zero padding, then the max (ONNX's own MaxPool pads would be -inf) or
    // the mean (the padding counts, as in ours).
    assert_eq!(
        ops(&model),
        ["Pad", "MaxPool", "Pad", "AveragePool", "Flatten", "Softmax"]
    );
    for (pad, p) in [(0, 1), (2, 1)] {
        let pad = &model.graph.node[pad];
        let pads = model
            .graph
            .initializer
            .iter()
            .find(|t| t.name() == pad.input[1])
            .unwrap();
        let values: Vec<i64> = pads
            .raw_data()
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(values, [0, 0, p, p, 0, 0, p, p]);
    }
    for pool in [&model.graph.node[1], &model.graph.node[3]] {
        assert!(
            pool.attribute.iter().all(|a| a.name() != "pads"),
            "{}",
            pool.op_type()
        );
    }
    // A network ending in a 4-D layer gives flat scores: (batch, 2*4*4).
    assert_eq!(dims(&model.graph.output[0]), ["batch", "32"]);
    assert_eq!(model.graph.node[4].output, ["scores"]);
}

#[test]
fn dropout_is_left_out_and_an_empty_graph_still_has_its_outputs() {
    let net = Network::<f32>::builder("drop", [1, 4, 4], 0)
        .affine(3, Init::He)
        .unwrap()
        .dropout(0.5)
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(ops(&parse(&net)), ["Flatten", "Gemm", "Softmax"]);
    let net = Network::<f32>::builder("only-dropout", [1, 1, 3], 0)
        .dropout(0.5)
        .unwrap()
        .build()
        .unwrap();
    let model = parse(&net);
    assert_eq!(ops(&model), ["Flatten", "Softmax"]);
    assert_eq!(model.graph.node[0].output, ["scores"]);
}

#[test]
fn an_activation_fused_before_the_layer_was_pushed_is_exported() {
    use layers::{Activation, Convolution};
    use rand::SeedableRng;
    let mut rng = rand_pcg::Pcg64::seed_from_u64(0);
    let mut conv = Convolution::<f32>::new(1, 2, Window::square(3), Init::He, &mut rng).unwrap();
    assert!(conv.fuse(Activation::Sigmoid));
    let net = Network::<f32>::builder("pre-fused", [1, 5, 5], 0)
        .push("conv", Box::new(conv))
        .unwrap()
        .affine(3, Init::He)
        .unwrap()
        .build()
        .unwrap();
    let model = parse(&net);
    assert_eq!(ops(&model), ["Conv", "Sigmoid", "Flatten", "Gemm", "Softmax"]);
    assert_eq!(model.graph.node[1].output, ["conv1.Sigmoid"]);
}

/// A layer of one's own that does not say what it computes.
struct Doubler(ArrayD<f32>);

impl Parameters<f32> for Doubler {}

impl Layer<f32> for Doubler {
    fn describe(&self) -> String {
        "Doubler".into()
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, layers::Error> {
        Ok(input.to_vec())
    }
    fn forward(&mut self, x: ArrayViewD<'_, f32>, _: Mode) -> Result<&ArrayD<f32>, layers::Error> {
        self.0 = x.mapv(|v| 2.0 * v);
        Ok(&self.0)
    }
    fn backward(&mut self, dout: ArrayViewD<'_, f32>) -> Result<&ArrayD<f32>, layers::Error> {
        self.0 = dout.mapv(|v| 2.0 * v);
        Ok(&self.0)
    }
}

impl LayerHooks<f32> for Doubler {}

#[test]
fn a_layer_without_an_onnx_form_is_named() {
    let net = Network::<f32>::builder("custom", [1, 4, 4], 0)
        .affine(8, Init::He)
        .unwrap()
        .push("double", Box::new(Doubler(ArrayD::zeros(vec![0]))))
        .unwrap()
        .build()
        .unwrap();
    let e = net.to_onnx(&[]).unwrap_err().to_string();
    assert_eq!(
        e,
        "double1: cannot export: Doubler has no ONNX form (its LayerHooks::operator is None)"
    );
}

#[test]
fn f64_networks_export_as_float32() {
    let net = Architecture::LeNet.build::<f64>([1, 28, 28], 10, 0).unwrap();
    let model = ModelProto::parse_from_bytes(&net.to_onnx(&[]).unwrap()).unwrap();
    let w = &model.graph.initializer[0];
    let mut first = None;
    net.visit_params(&mut |_, v, _| {
        first.get_or_insert(v.iter().next().copied().unwrap());
    });
    assert_eq!(floats(w)[0], first.unwrap() as f32);
    assert_eq!(w.data_type(), 1, "FLOAT");
}
