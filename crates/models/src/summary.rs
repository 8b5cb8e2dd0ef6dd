//! What a network is made of, layer by layer (the table Keras'
//! `model.summary()` and torchinfo print), and what part of the input each
//! output of a layer sees (its receptive field, section 7.6.2's question
//! of what deeper layers respond to).

use std::fmt;

use layers::{Error as LayerError, LayerHooks};
use ndarray::{Array3, ArrayView3, s};
use tensor4d::Float;

use crate::{Error, Network};

/// One layer of a [`Summary`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerSummary {
    /// Its label (`conv1`, `fc2`, ...).
    pub label: String,
    /// Labels of activations fused into it (`relu1`).
    pub fused: Vec<String>,
    /// The layer's own description (`Convolution 30@5x5 p0/s1`).
    pub description: String,
    /// Its output for one image, without the batch axis (`[30, 24, 24]`).
    pub output: Vec<usize>,
    /// Its parameter count.
    pub params: usize,
    /// Floating-point operations of its inference forward pass for one
    /// image ([`LayerHooks::forward_flops`]); `None` if the layer does not say.
    pub flops: Option<u64>,
}

/// A network described layer by layer: [`Network::summary`]. Its
/// `Display` is a table with totals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// The network's name.
    pub name: String,
    /// Its input shape `[C, H, W]`.
    pub input: [usize; 3],
    /// Its layers in order.
    pub layers: Vec<LayerSummary>,
    /// All parameters.
    pub params: usize,
    /// All forward FLOPs per image; `None` if some layer does not say.
    pub flops: Option<u64>,
}

impl<T: Float> Network<T> {
    /// Each layer's label, output shape, parameter count and forward FLOPs
    /// for one image, with totals.
    ///
    /// ```
    /// use models::Architecture;
    /// let net = Architecture::SimpleConvNet.build::<f32>([1, 28, 28], 10, 0)?;
    /// let summary = net.summary();
    /// assert_eq!(summary.params, 433_890);
    /// assert_eq!(summary.layers[0].output, [30, 24, 24]);
    /// println!("{summary}");
    /// # Ok::<(), models::Error>(())
    /// ```
    pub fn summary(&self) -> Summary {
        let [c, h, w] = self.input_shape();
        let mut shape = vec![1, c, h, w];
        let mut layers = Vec::new();
        for (label, fused, layer) in self.slots() {
            let flops = layer.forward_flops(&shape);
            // The builder checked every shape, so this cannot fail.
            shape = layer.output_shape(&shape).unwrap_or_default();
            layers.push(LayerSummary {
                label: label.to_string(),
                fused: fused.to_vec(),
                description: layer.describe(),
                output: shape.get(1..).unwrap_or_default().to_vec(),
                params: layer.param_count(),
                flops,
            });
        }
        let flops = layers
            .iter()
            .try_fold(0u64, |total, l| l.flops.and_then(|f| total.checked_add(f)));
        Summary {
            name: self.name().to_string(),
            input: self.input_shape(),
            params: layers.iter().map(|l| l.params).sum(),
            layers,
            flops,
        }
    }

    /// The part of the input that one output position of the layer
    /// labelled `label` sees, worked out from the windows, strides and
    /// padding of the layers up to it. Refused for layers at or after the
    /// first one without a spatial output (an affine layer sees everything).
    ///
    /// ```
    /// use models::{Architecture, ReceptiveField};
    /// let net = Architecture::LeNet.build::<f32>([1, 28, 28], 10, 0)?;
    /// // conv1 5x5 p2, pool 2x2 s2, conv2 5x5: 5 + 1 + 4x2 = 14 pixels.
    /// let field = net.receptive_field("conv2")?;
    /// assert_eq!(field, ReceptiveField { size: [14, 14], jump: [2, 2], start: [-2, -2] });
    /// # Ok::<(), models::Error>(())
    /// ```
    pub fn receptive_field(&self, label: &str) -> Result<ReceptiveField, Error> {
        let end = self.find(label)?;
        let mut field = ReceptiveField::PIXEL;
        let [c, h, w] = self.input_shape();
        let mut shape = vec![1, c, h, w];
        for (label, _, layer) in self.slots().take(end + 1) {
            if shape.len() != 4 {
                return Err(no_field(label, layer, "its input is no longer an image"));
            }
            shape = layer.output_shape(&shape).unwrap_or_default();
            if shape.len() != 4 {
                return Err(no_field(label, layer, "each of its outputs sees the whole input"));
            }
            if let Some(win) = layer.window() {
                field = field.through([win.fh, win.fw], [win.sh, win.sw], [win.ph, win.pw]);
            }
        }
        Ok(field)
    }
}

/// The error for a layer without a receptive field.
fn no_field<T: Float>(label: &str, layer: &dyn LayerHooks<T>, why: &str) -> Error {
    Error::Layer {
        label: label.to_string(),
        error: LayerError::Invalid {
            layer: layer.describe(),
            message: format!("no receptive field: {why}"),
        },
    }
}

/// What part of a network's input one output position of a layer sees
/// ([`Network::receptive_field`]). Output position `(y, x)` sees rows
/// `start[0] + y * jump[0]` up to `size[0]` rows further, and the same for
/// columns; parts before 0 or past the image lie in the zero padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReceptiveField {
    /// Height and width of the field, in input pixels.
    pub size: [usize; 2],
    /// How far the field moves when the output position moves by one: the
    /// product of the strides so far.
    pub jump: [usize; 2],
    /// Top-left corner of output position (0, 0)'s field; negative where it
    /// starts in the padding.
    pub start: [i64; 2],
}

impl ReceptiveField {
    /// The input itself: each position sees one pixel.
    pub const PIXEL: ReceptiveField = ReceptiveField {
        size: [1, 1],
        jump: [1, 1],
        start: [0, 0],
    };

    /// The field after one more layer sliding a window of `size` with
    /// `stride` and `pad` over the current output.
    pub fn through(self, size: [usize; 2], stride: [usize; 2], pad: [usize; 2]) -> Self {
        let mut next = self;
        for a in 0..2 {
            next.start[a] = self.start[a] - (pad[a] * self.jump[a]) as i64;
            next.size[a] = self.size[a] + (size[a].saturating_sub(1)) * self.jump[a];
            next.jump[a] = self.jump[a] * stride[a];
        }
        next
    }

    /// The top-left corner of output position `(y, x)`'s field.
    pub fn corner(&self, y: usize, x: usize) -> [i64; 2] {
        [
            self.start[0] + (y * self.jump[0]) as i64,
            self.start[1] + (x * self.jump[1]) as i64,
        ]
    }

    /// The input pixels output position `(y, x)` sees, `(C, size[0],
    /// size[1])` cut from one image `(C, H, W)`, with zeros where the field
    /// lies in the padding (as the network sees them).
    ///
    /// ```
    /// use models::ReceptiveField;
    /// use ndarray::Array3;
    /// // A 3x3 window with padding 1 over a 4x4 image of 1..=16.
    /// let field = ReceptiveField::PIXEL.through([3, 3], [1, 1], [1, 1]);
    /// let image = Array3::from_shape_fn((1, 4, 4), |(_, y, x)| (4 * y + x + 1) as f32);
    /// let corner = field.patch(image.view(), 0, 0);
    /// assert_eq!(corner.into_raw_vec_and_offset().0, [0., 0., 0., 0., 1., 2., 0., 5., 6.]);
    /// ```
    pub fn patch<T: Float>(&self, image: ArrayView3<'_, T>, y: usize, x: usize) -> Array3<T> {
        let (c, h, w) = image.dim();
        let [top, left] = self.corner(y, x);
        let mut patch = Array3::zeros((c, self.size[0], self.size[1]));
        if let Some([t, l, rows, cols]) = self.within(y, x, h, w) {
            let (dt, dl) = ((t as i64 - top) as usize, (l as i64 - left) as usize);
            patch
                .slice_mut(s![.., dt..dt + rows, dl..dl + cols])
                .assign(&image.slice(s![.., t..t + rows, l..l + cols]));
        }
        patch
    }

    /// The part of output position `(y, x)`'s field inside an input of
    /// `height` x `width`, as `[top, left, rows, columns]`; `None` if it
    /// lies wholly in the padding.
    pub fn within(&self, y: usize, x: usize, height: usize, width: usize) -> Option<[usize; 4]> {
        let [top, left] = self.corner(y, x);
        let clip = |lo: i64, len: usize, limit: usize| {
            let a = lo.clamp(0, limit as i64);
            let b = (lo + len as i64).clamp(0, limit as i64);
            (b > a).then_some((a as usize, (b - a) as usize))
        };
        let (t, rows) = clip(top, self.size[0], height)?;
        let (l, cols) = clip(left, self.size[1], width)?;
        Some([t, l, rows, cols])
    }
}

/// `1234567` as `1,234,567`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// `[30, 24, 24]` as `30x24x24`.
fn dims(shape: &[usize]) -> String {
    shape.iter().map(usize::to_string).collect::<Vec<_>>().join("x")
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self
            .layers
            .iter()
            .map(|l| {
                std::iter::once(&l.label)
                    .chain(&l.fused)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("+")
            })
            .collect();
        let flops = |v: Option<u64>| v.map_or_else(|| "?".to_string(), grouped);
        let name_w = names.iter().map(String::len).chain([5]).max().unwrap_or(5);
        let kind_w = self
            .layers
            .iter()
            .map(|l| l.description.len())
            .chain([4])
            .max()
            .unwrap_or(4);
        let out_w = self
            .layers
            .iter()
            .map(|l| dims(&l.output).len())
            .chain([6])
            .max()
            .unwrap_or(6);
        let par_w = grouped(self.params as u64).len().max(6);
        let flo_w = flops(self.flops).len().max("FLOPs per image".len());
        let rule = "-".repeat(name_w + kind_w + out_w + par_w + flo_w + 8);
        writeln!(f, "{}, input {}", self.name, dims(&self.input))?;
        writeln!(
            f,
            "{:<name_w$}  {:<kind_w$}  {:>out_w$}  {:>par_w$}  {:>flo_w$}",
            "layer", "kind", "output", "params", "FLOPs per image"
        )?;
        writeln!(f, "{rule}")?;
        for (l, name) in self.layers.iter().zip(&names) {
            writeln!(
                f,
                "{name:<name_w$}  {:<kind_w$}  {:>out_w$}  {:>par_w$}  {:>flo_w$}",
                l.description,
                dims(&l.output),
                grouped(l.params as u64),
                flops(l.flops)
            )?;
        }
        writeln!(f, "{rule}")?;
        writeln!(f, "total parameters: {}", grouped(self.params as u64))?;
        write!(
            f,
            "forward FLOPs per image: {} (a multiply-add counts two)",
            flops(self.flops)
        )
    }
}
