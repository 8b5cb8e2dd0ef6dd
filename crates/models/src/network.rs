use layers::{
    Activation, Affine, ConvMethod, Convolution, Dropout, Init, Layer, LayerHooks, Lrn, Mode, ParamVisitor,
    ParamVisitorMut, Parameters, PoolMethod, Pooling, Relu, Sigmoid, SoftmaxWithLoss,
};
use ndarray::{Array4, ArrayD, ArrayViewD};
use rand::SeedableRng;
use rand_pcg::Pcg64;
use tensor4d::{Float, Window, reuse4};

use crate::ImageSource;

use crate::Error;

/// One layer with its name in the network (`conv1`, `relu2`, `fc1`, ...).
struct Slot<T: Float> {
    label: String,
    /// Labels of layers fused into this one (`relu1` into `conv1`).
    fused: Vec<String>,
    layer: Box<dyn LayerHooks<T>>,
    /// Full parameter names, `conv1.weight`, in the layer's visiting order,
    /// made once so that visiting allocates nothing.
    param_names: Vec<String>,
}

/// A feed-forward network: layers in order, ending in [`SoftmaxWithLoss`].
/// It has the chapter's interface ([`Network::predict`], [`Network::loss`],
/// [`Network::gradient`], [`Network::accuracy`]), and its parameters are
/// visited by name (`conv1.weight`, `fc2.bias`, ...) through [`Parameters`].
///
/// Build one with [`Network::builder`], which checks every layer's shape as
/// it goes, or take one of [`crate::Architecture`].
///
/// ```
/// use layers::{Init, Mode, Parameters};
/// use models::Network;
/// use tensor4d::Window;
/// let mut net = Network::<f32>::builder("tiny", [1, 8, 8], 0)
///     .conv(4, Window::square(3).with_pad(1), Init::He)?
///     .relu()?
///     .max_pool(Window::square(2).with_stride(2))?
///     .affine(10, Init::He)?
///     .build()?;
/// assert_eq!(net.param_count(), 4 * 9 + 4 + 64 * 10 + 10);
/// let x = ndarray::ArrayD::zeros(vec![3, 1, 8, 8]);
/// assert_eq!(net.predict(x.view(), Mode::Inference)?.shape(), &[3, 10]);
/// # Ok::<(), models::Error>(())
/// ```
pub struct Network<T: Float> {
    name: String,
    input: [usize; 3],
    slots: Vec<Slot<T>>,
    loss: SoftmaxWithLoss<T>,
    /// Scores per image: the product of the last layer's output axes.
    classes: usize,
    /// The seed the weights and dropout masks were drawn from.
    seed: u64,
    /// How its convolutions compute.
    conv_method: ConvMethod,
    /// The TOML it was built from ([`crate::NetworkSpec`]), if any.
    spec: Option<String>,
}

/// Runs `x` through every slot; a free function so that the caller can
/// borrow the loss layer beside the result.
fn forward_all<'a, T: Float>(
    slots: &'a mut [Slot<T>],
    x: ArrayViewD<'_, T>,
    mode: Mode,
) -> Result<&'a ArrayD<T>, Error> {
    let (last, rest) = slots.split_last_mut().ok_or(Error::NoLayers)?;
    let mut cur = x;
    for slot in rest {
        cur = slot
            .layer
            .forward(cur, mode)
            .map_err(|e| at(&slot.label, e))?
            .view();
    }
    last.layer.forward(cur, mode).map_err(|e| at(&last.label, e))
}

/// Prefixes a layer error with the layer's label in the network.
fn at(label: &str, source: layers::Error) -> Error {
    Error::Layer {
        label: label.to_string(),
        error: source,
    }
}

/// The index of the largest score in each row of `(N, K)` scores (the
/// first on ties).
pub(crate) fn argmax_rows<T: Float>(scores: &ArrayD<T>) -> Vec<usize> {
    let n = scores.shape().first().copied().unwrap_or(0);
    let k = scores.len().checked_div(n).unwrap_or(0);
    let view = scores.view();
    let flat = tensor4d::contiguous(&view);
    flat.chunks_exact(k.max(1))
        .take(n)
        .map(|row| {
            row.iter()
                .enumerate()
                .fold(
                    (0, T::neg_infinity()),
                    |(bi, bv), (i, &v)| if v > bv { (i, v) } else { (bi, bv) },
                )
                .0
        })
        .collect()
}

impl<T: Float> Network<T> {
    /// Starts a network called `name` for inputs of shape `[C, H, W]`;
    /// weights and dropout masks are drawn from `seed`. Each layer is
    /// checked against the shape the layers before it produce, and labelled
    /// as the chapter's `params` keys are (`conv1`, `fc1`, ...).
    ///
    /// ```
    /// use layers::{Init, Parameters, Window};
    /// use models::Network;
    ///
    /// // The chapter's SimpleConvNet (section 7.5), by hand.
    /// let net = Network::<f32>::builder("my-net", [1, 28, 28], 0)
    ///     .conv(30, Window::square(5), Init::Normal { std: 0.01 })?
    ///     .relu()?
    ///     .max_pool(Window::square(2).with_stride(2))?
    ///     .affine(100, Init::Normal { std: 0.01 })?
    ///     .relu()?
    ///     .affine(10, Init::Normal { std: 0.01 })?
    ///     .build()?;
    /// // 30*1*5*5 + 30, 4320*100 + 100, 100*10 + 10
    /// assert_eq!(net.param_count(), 780 + 432_100 + 1_010);
    /// assert_eq!(net.classes(), 10);
    ///
    /// // A window that does not tile the input is refused, naming the layer.
    /// let e = Network::<f32>::builder("bad", [1, 28, 28], 0)
    ///     .conv(4, Window::square(5).with_stride(2), Init::He)
    ///     .err()
    ///     .expect("28 - 5 is odd");
    /// assert!(e.to_string().starts_with("conv1"), "{e}");
    /// # Ok::<(), models::Error>(())
    /// ```
    pub fn builder(name: &str, input: [usize; 3], seed: u64) -> Builder<T> {
        Builder {
            net: Network {
                name: name.to_string(),
                input,
                slots: Vec::new(),
                loss: SoftmaxWithLoss::new(),
                classes: 0,
                seed,
                conv_method: ConvMethod::Auto,
                spec: None,
            },
            shape: vec![1, input[0], input[1], input[2]],
            rng: Pcg64::seed_from_u64(seed),
            seed,
            counts: Vec::new(),
            pushed: 0,
            fusing: true,
            pool_method: PoolMethod::Direct,
            params: 0,
            max_params: MAX_PARAMS,
        }
    }

    /// The network's name, e.g. `SimpleConvNet`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The input shape `[C, H, W]`.
    pub fn input_shape(&self) -> [usize; 3] {
        self.input
    }

    /// The seed its weights and dropout masks were drawn from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// How many scores the network gives per image.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// How its convolutions compute ([`Builder::conv_method`]).
    pub fn conv_method(&self) -> ConvMethod {
        self.conv_method
    }

    /// The TOML description it was built from ([`crate::NetworkSpec`]),
    /// which a checkpoint keeps; `None` for networks built otherwise.
    pub fn spec(&self) -> Option<&str> {
        self.spec.as_deref()
    }

    pub(crate) fn set_spec(&mut self, text: String) {
        self.spec = Some(text);
    }

    /// The layers with their labels, in order.
    pub fn layers(&self) -> impl Iterator<Item = (&str, &dyn Layer<T>)> {
        self.slots
            .iter()
            .map(|s| (s.label.as_str(), s.layer.as_ref() as &dyn Layer<T>))
    }

    /// The layer labelled `label` (`conv1`, `fc2`, ...), to describe it or
    /// visit its parameters and their gradients ([`Parameters`]); `None`
    /// if there is none. A convolution with a fused activation answers to
    /// both labels.
    pub fn layer(&self, label: &str) -> Option<&dyn Layer<T>> {
        self.position(label)
            .map(|i| self.slots[i].layer.as_ref() as &dyn Layer<T>)
    }

    /// The slot of the layer labelled `label`, fused labels included.
    fn position(&self, label: &str) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| s.label == label || s.fused.iter().any(|f| f == label))
    }

    /// As `position`, or the error naming the labels there are.
    pub(crate) fn find(&self, label: &str) -> Result<usize, Error> {
        self.position(label).ok_or_else(|| Error::UnknownLayer {
            model: self.name.clone(),
            label: label.to_string(),
            valid: self.labels().join(", "),
        })
    }

    /// Every label, fused ones included, in order.
    pub fn labels(&self) -> Vec<&str> {
        self.slots
            .iter()
            .flat_map(|s| std::iter::once(&s.label).chain(&s.fused))
            .map(String::as_str)
            .collect()
    }

    /// Each slot's label, the labels fused into it, and its layer, in order.
    pub(crate) fn slots(&self) -> impl Iterator<Item = (&str, &[String], &dyn LayerHooks<T>)> {
        self.slots
            .iter()
            .map(|s| (s.label.as_str(), s.fused.as_slice(), s.layer.as_ref()))
    }

    /// Every parameter's gradient as the last [`Network::gradient`] left
    /// it, by name (`conv1.weight`, ...), in the visiting order: the
    /// book's `grads` dictionary.
    pub fn grads(&self) -> Vec<(String, ArrayD<T>)> {
        let mut out = Vec::new();
        self.visit_params(&mut |name, _, grad| out.push((name.to_string(), grad.to_owned())));
        out
    }

    /// Makes dropout layers reuse their current masks while `hold` is true
    /// (for gradient checks).
    pub(crate) fn hold_noise(&mut self, hold: bool) {
        for s in &mut self.slots {
            s.layer.hold_noise(hold);
        }
    }

    /// Each layer's [`LayerHooks::noise_state`] (dropout masks drawn), in order.
    pub(crate) fn noise_states(&self) -> Vec<u64> {
        self.slots.iter().map(|s| s.layer.noise_state()).collect()
    }

    /// Restores what `noise_states` returned.
    pub(crate) fn set_noise_states(&mut self, states: &[u64]) -> Result<(), Error> {
        if states.len() != self.slots.len() {
            return Err(Error::Config(format!(
                "{} noise states for the {} layers of {}",
                states.len(),
                self.slots.len(),
                self.name
            )));
        }
        for (slot, &s) in self.slots.iter_mut().zip(states) {
            slot.layer.set_noise_state(s);
        }
        Ok(())
    }

    /// The combined [`LayerHooks::kink_state`] of every layer after the
    /// last forward pass: equal fingerprints mean the same ReLU signs and
    /// pooling winners.
    pub(crate) fn kink_state(&self) -> u64 {
        layers::gradcheck::fingerprint(self.slots.iter().map(|s| s.layer.kink_state()))
    }

    fn check_input(&self, shape: &[usize]) -> Result<(), Error> {
        if shape.len() != 4 || shape[1..] != self.input || shape[0] == 0 {
            return Err(Error::Input {
                model: self.name.clone(),
                expected: format!(
                    "[N, {}, {}, {}] with N >= 1",
                    self.input[0], self.input[1], self.input[2]
                ),
                found: shape.to_vec(),
            });
        }
        Ok(())
    }

    /// Class scores `(N, classes)` for a batch `x` of shape `(N, C, H, W)`.
    pub fn predict(&mut self, x: ArrayViewD<'_, T>, mode: Mode) -> Result<&ArrayD<T>, Error> {
        self.check_input(x.shape())?;
        let slots = &mut self.slots;
        // One hand-over to the pool for the whole pass, even for one image,
        // whose layers' loops would otherwise each hand over on their own.
        layers::in_pool(move || forward_all(slots, x, mode))
    }

    /// The output of the layer labelled `label` (`conv1`, `relu1`, ...) for
    /// `x`, in inference mode: what section 7.6.2 draws. A convolution with
    /// a fused ReLU answers to both labels with its activated output.
    pub fn forward_to(&mut self, x: ArrayViewD<'_, T>, label: &str) -> Result<&ArrayD<T>, Error> {
        self.check_input(x.shape())?;
        let end = self.find(label)?;
        forward_all(&mut self.slots[..=end], x, Mode::Inference)
    }

    /// Class scores for `x` in inference mode, showing `visit` each layer's
    /// output on the way (by its slot's label, `conv1` for a convolution
    /// with a fused `relu1`): every layer's response in one pass.
    pub fn predict_visiting(
        &mut self,
        x: ArrayViewD<'_, T>,
        visit: &mut dyn FnMut(&str, &ArrayD<T>),
    ) -> Result<&ArrayD<T>, Error> {
        self.check_input(x.shape())?;
        let (last, rest) = self.slots.split_last_mut().ok_or(Error::NoLayers)?;
        let mut cur = x;
        for slot in rest {
            let out = slot
                .layer
                .forward(cur, Mode::Inference)
                .map_err(|e| at(&slot.label, e))?;
            visit(&slot.label, out);
            cur = out.view();
        }
        let out = last
            .layer
            .forward(cur, Mode::Inference)
            .map_err(|e| at(&last.label, e))?;
        visit(&last.label, out);
        Ok(out)
    }

    /// The mean cross-entropy loss on `(x, labels)`, as in training (dropout on).
    pub fn loss(&mut self, x: ArrayViewD<'_, T>, labels: &[usize]) -> Result<T, Error> {
        self.check_input(x.shape())?;
        let scores = forward_all(&mut self.slots, x, Mode::Train)?;
        self.loss.forward(scores.view(), labels).map_err(Error::Loss)
    }

    /// Forward and backward on `(x, labels)` by backpropagation: afterwards
    /// every parameter's gradient is held by its layer (read them with
    /// [`Network::grads`], [`Network::layer`] or [`Parameters::visit_params`]).
    /// The first layer computes its parameter gradients alone: nothing lies
    /// below it to take an input gradient. Returns the loss.
    pub fn gradient(&mut self, x: ArrayViewD<'_, T>, labels: &[usize]) -> Result<T, Error> {
        layers::in_pool(|| {
            let loss = self.loss(x, labels)?;
            let mut d = self.loss.backward().map_err(Error::Loss)?.view();
            let (first, rest) = self.slots.split_first_mut().ok_or(Error::NoLayers)?;
            for slot in rest.iter_mut().rev() {
                d = slot.layer.backward(d).map_err(|e| at(&slot.label, e))?.view();
            }
            first.layer.backward_params(d).map_err(|e| at(&first.label, e))?;
            Ok(loss)
        })
    }

    /// The predicted class of each image in `x`.
    pub fn classify(&mut self, x: ArrayViewD<'_, T>) -> Result<Vec<usize>, Error> {
        Ok(argmax_rows(self.predict(x, Mode::Inference)?))
    }

    /// The fraction of `x` classified as `labels`, predicting `batch_size`
    /// images at a time in inference mode. `x` is an `ArrayView4` or any
    /// other [`ImageSource`] (such as [`crate::Pixels`] over bytes).
    pub fn accuracy(
        &mut self,
        x: &dyn ImageSource<T>,
        labels: &[usize],
        batch_size: usize,
    ) -> Result<f64, Error> {
        if labels.len() != x.len() || labels.is_empty() || batch_size == 0 {
            return Err(Error::Input {
                model: self.name.clone(),
                expected: format!("{} labels and a batch size >= 1", x.len()),
                found: vec![labels.len(), batch_size],
            });
        }
        let [c, h, w] = x.image_shape();
        let mut batch = Array4::<T>::zeros((0, c, h, w));
        let mut correct = 0usize;
        for start in (0..labels.len()).step_by(batch_size) {
            let end = (start + batch_size).min(labels.len());
            reuse4(&mut batch, (end - start, c, h, w));
            x.copy_range(start, batch.view_mut());
            let classes = self.classify(batch.view().into_dyn())?;
            correct += classes
                .iter()
                .zip(&labels[start..end])
                .filter(|(p, t)| p == t)
                .count();
        }
        Ok(correct as f64 / labels.len() as f64)
    }
}

impl<T: Float> Parameters<T> for Network<T> {
    fn visit_params(&self, f: &mut ParamVisitor<'_, T>) {
        for slot in &self.slots {
            let mut k = 0;
            slot.layer.visit_params(&mut |_, v, g| {
                f(&slot.param_names[k], v, g);
                k += 1;
            });
        }
    }

    fn visit_params_mut(&mut self, f: &mut ParamVisitorMut<'_, T>) {
        for slot in &mut self.slots {
            let names = &slot.param_names;
            let mut k = 0;
            slot.layer.visit_params_mut(&mut |_, v, g| {
                f(&names[k], v, g);
                k += 1;
            });
        }
    }
}

/// Adds layers to a [`Network`] one at a time, checking each against the
/// shape the previous ones produce, so a network that cannot run is refused
/// when it is built, naming the layer.
pub struct Builder<T: Float> {
    net: Network<T>,
    /// Output shape so far, for a batch of one.
    shape: Vec<usize>,
    rng: Pcg64,
    seed: u64,
    /// How many layers of each kind so far, for numbering labels.
    counts: Vec<(String, usize)>,
    /// Layers added so far, fused ones included.
    pushed: u64,
    /// Whether a ReLU may be fused into the layer before it.
    fusing: bool,
    /// How the pooling layers compute.
    pool_method: PoolMethod,
    /// Parameters so far, and the most the network may hold.
    params: usize,
    max_params: usize,
}

/// The most parameters a [`Builder`] lets a network hold unless told
/// otherwise ([`Builder::max_params`]): 2^28, a gigabyte of `f32`
/// weights, a hundred times AlexNet-lite. Sizes read from a file (a
/// checkpoint's metadata, an image size in a data set's header) cannot
/// then ask for terabytes.
pub const MAX_PARAMS: usize = 1 << 28;

impl<T: Float> Builder<T> {
    /// The most parameters the network may hold (default [`MAX_PARAMS`]);
    /// a layer that would take it past this is refused, naming the layer.
    pub fn max_params(mut self, limit: usize) -> Self {
        self.max_params = limit;
        self
    }

    /// Checks that a layer of `kind` with weights of shape `weights` and
    /// `biases` biases fits in the limit before it is made, so that no size
    /// read from a file asks for more memory than the limit allows.
    fn check_room(&self, kind: &str, weights: &[usize], biases: usize) -> Result<(), Error> {
        let count = weights
            .iter()
            .try_fold(1usize, |p, &d| p.checked_mul(d))
            .and_then(|w| w.checked_add(biases));
        self.add_params(kind, count, &format!("weights of shape {weights:?}"))
            .map(|_| ())
    }

    /// The network's parameter count with `count` more, or the error
    /// naming the layer of `kind` about to be added.
    fn add_params(&self, kind: &str, count: Option<usize>, what: &str) -> Result<usize, Error> {
        match count.and_then(|c| c.checked_add(self.params)) {
            Some(total) if total <= self.max_params => Ok(total),
            _ => Err(Error::TooLarge {
                label: self.peek_label(kind),
                detail: format!(
                    "{what} would take {} past its limit of {} parameters (Builder::max_params)",
                    self.net.name, self.max_params
                ),
            }),
        }
    }

    /// The label the next layer of `kind` will get, for errors before it exists.
    fn peek_label(&self, kind: &str) -> String {
        let n = self
            .counts
            .iter()
            .find(|(k, _)| k == kind)
            .map_or(1, |(_, n)| n + 1);
        format!("{kind}{n}")
    }

    fn next_label(&mut self, kind: &str) -> String {
        let n = match self.counts.iter_mut().find(|(k, _)| k == kind) {
            Some((_, n)) => {
                *n += 1;
                *n
            }
            None => {
                self.counts.push((kind.to_string(), 1));
                1
            }
        };
        format!("{kind}{n}")
    }

    /// Appends any layer, labelled `kind` followed by its number among
    /// layers of that kind (`conv` gives `conv1`, `conv2`, ...).
    pub fn push(mut self, kind: &str, layer: Box<dyn LayerHooks<T>>) -> Result<Self, Error> {
        self.params = self.add_params(kind, Some(layer.param_count()), "its parameters")?;
        let label = self.next_label(kind);
        let out = layer.output_shape(&self.shape).map_err(|e| at(&label, e))?;
        let mut param_names = Vec::new();
        layer.visit_params(&mut |name, _, _| param_names.push(format!("{label}.{name}")));
        self.pushed += 1;
        self.net.slots.push(Slot {
            label,
            fused: Vec::new(),
            layer,
            param_names,
        });
        self.shape = out;
        Ok(self)
    }

    /// A convolution of `filters` filters over the current channels,
    /// computing by the network's [`Builder::conv_method`].
    pub fn conv(mut self, filters: usize, window: Window, init: Init) -> Result<Self, Error> {
        let c = self.shape[1];
        self.check_room("conv", &[filters, c, window.fh, window.fw], filters)?;
        let layer = Convolution::new(c, filters, window, init, &mut self.rng)
            .and_then(|l| l.with_method(self.net.conv_method))
            .map_err(|e| at(&self.peek_label("conv"), e))?;
        self.push("conv", Box::new(layer))
    }

    /// How every convolution of the network computes (the default is
    /// [`ConvMethod::Auto`], the engine's choice); set it before adding
    /// any, since the network (and a checkpoint of it) records one method
    /// for all. With [`ConvMethod::Chapter`], each runs the book's
    /// algorithm and keeps the activation after it a layer of its own, as
    /// the chapter's network does.
    pub fn conv_method(mut self, method: ConvMethod) -> Result<Self, Error> {
        if let Some(slot) = self.net.slots.iter().find(|s| s.label.starts_with("conv")) {
            return Err(Error::Config(format!(
                "{}: set the convolution method before adding convolutions ({} is already there)",
                self.net.name, slot.label
            )));
        }
        self.net.conv_method = method;
        Ok(self)
    }

    /// How the pooling layers added from now on compute (the default is
    /// [`PoolMethod::Direct`]). Both methods give the same bits, so the
    /// network does not record it.
    pub fn pool_method(mut self, method: PoolMethod) -> Self {
        self.pool_method = method;
        self
    }

    /// An affine layer to `outputs` from everything the previous layer outputs.
    pub fn affine(mut self, outputs: usize, init: Init) -> Result<Self, Error> {
        // Saturating: a count past usize is refused by the limit.
        let inputs = self.shape[1..].iter().fold(1usize, |a, &d| a.saturating_mul(d));
        self.check_room("fc", &[inputs, outputs], outputs)?;
        let layer =
            Affine::new(inputs, outputs, init, &mut self.rng).map_err(|e| at(&self.peek_label("fc"), e))?;
        self.push("fc", Box::new(layer))
    }

    /// ReLU. After a convolution it is fused into it (the same numbers,
    /// without an activation-sized buffer and a pass over it; see
    /// [`LayerHooks::fuse`]) unless [`Builder::fusing`] turned that off or
    /// the convolution computes by the chapter's method; its label
    /// (`relu1`) then names the convolution's slot as well.
    pub fn relu(self) -> Result<Self, Error> {
        self.activation("relu", Activation::Relu, || Box::new(Relu::new()))
    }

    /// An activation labelled `kind`: fused into the layer before it when
    /// that layer takes it over, else a layer of its own.
    fn activation(
        mut self,
        kind: &str,
        act: Activation,
        layer: impl FnOnce() -> Box<dyn LayerHooks<T>>,
    ) -> Result<Self, Error> {
        let fused = self.fusing && self.net.slots.last_mut().is_some_and(|s| s.layer.fuse(act));
        if !fused {
            return self.push(kind, layer());
        }
        let label = self.next_label(kind);
        self.pushed += 1;
        if let Some(last) = self.net.slots.last_mut() {
            last.fused.push(label);
        }
        Ok(self)
    }

    /// Whether the ReLUs and sigmoids added from now on may be fused into the layer
    /// before them (the default). The results are the same bits either way;
    /// unfused networks keep each activation as its own layer.
    pub fn fusing(mut self, on: bool) -> Self {
        self.fusing = on;
        self
    }

    /// Sigmoid; after a convolution it is fused into it, as [`Builder::relu`]
    /// is (see [`LayerHooks::fuse`]).
    pub fn sigmoid(self) -> Result<Self, Error> {
        self.activation("sigmoid", Activation::Sigmoid, || Box::new(Sigmoid::new()))
    }

    /// Max pooling over `window`.
    pub fn max_pool(self, window: Window) -> Result<Self, Error> {
        let layer = Pooling::max(window).with_method(self.pool_method);
        self.push("pool", Box::new(layer))
    }

    /// Average pooling over `window`.
    pub fn avg_pool(self, window: Window) -> Result<Self, Error> {
        let layer = Pooling::average(window).with_method(self.pool_method);
        self.push("pool", Box::new(layer))
    }

    /// AlexNet's local response normalisation.
    pub fn lrn(self) -> Result<Self, Error> {
        self.push("lrn", Box::new(Lrn::alexnet()))
    }

    /// Inverted dropout of `ratio`; its masks are seeded from the network's
    /// seed and the dropout layer's position.
    pub fn dropout(self, ratio: f64) -> Result<Self, Error> {
        let k = self.pushed + 1;
        let seed = self.seed ^ k.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let layer = Dropout::new(ratio, seed).map_err(|e| at(&self.peek_label("dropout"), e))?;
        self.push("dropout", Box::new(layer))
    }

    /// The finished network; refuses one without layers.
    pub fn build(mut self) -> Result<Network<T>, Error> {
        if self.net.slots.is_empty() {
            return Err(Error::NoLayers);
        }
        self.net.classes = self.shape[1..].iter().product();
        Ok(self.net)
    }
}
