use std::fmt;
use std::str::FromStr;

use layers::{ConvMethod, Init, PoolMethod};
use tensor4d::{Float, Window};

use crate::{Error, Network};

/// How [`Architecture::build_with`] builds a network, beyond its shape.
///
/// ```
/// use layers::{ConvMethod, Init, PoolMethod};
/// use models::{Architecture, BuildOptions};
/// // The chapter's network computing by the chapter's algorithm.
/// let options = BuildOptions { conv_method: ConvMethod::Chapter, ..BuildOptions::default() };
/// let net = Architecture::SimpleConvNet.build_with::<f32>([1, 28, 28], 10, 0, options)?;
/// assert_eq!(net.layers().count(), 6); // conv, ReLU, pool, affine, ReLU, affine
/// # Ok::<(), models::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BuildOptions {
    /// Every layer's weights drawn by this instead of `MODELS.md`'s
    /// choice for the network, when given.
    pub init: Option<Init>,
    /// How the convolutions compute ([`crate::Builder::conv_method`]).
    pub conv_method: ConvMethod,
    /// How the pooling layers compute ([`crate::Builder::pool_method`]).
    pub pool_method: PoolMethod,
    /// The most parameters the network may hold ([`crate::Builder::max_params`];
    /// [`crate::MAX_PARAMS`] when `None`).
    pub max_params: Option<usize>,
}

/// The three networks of `MODELS.md`.
///
/// ```
/// use layers::Parameters;
/// use models::Architecture;
/// let net = Architecture::SimpleConvNet.build::<f32>([1, 28, 28], 10, 0)?;
/// assert_eq!(net.param_count(), 433_890);
/// // LeNet's sizes divide for 3x32x32 too; AlexNet-lite's 3x3/s2 pooling does not.
/// assert!(Architecture::LeNet.build::<f32>([3, 32, 32], 10, 0).is_ok());
/// assert!(Architecture::AlexNetLite.build::<f32>([3, 32, 32], 10, 0).is_err());
/// # Ok::<(), models::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Architecture {
    /// The chapter's network (section 7.5): conv, ReLU, max pool, two affine.
    SimpleConvNet,
    /// LeNet-5 as published: sigmoid and average-pool subsampling (7.7.1).
    LeNet,
    /// AlexNet's design at 28x28: ReLU, LRN, overlapping max pool, dropout (7.7.2).
    AlexNetLite,
}

impl Architecture {
    /// All three, in the order above.
    pub const ALL: [Architecture; 3] = [
        Architecture::SimpleConvNet,
        Architecture::LeNet,
        Architecture::AlexNetLite,
    ];

    /// The name used on the command line and in checkpoints.
    pub fn name(&self) -> &'static str {
        match self {
            Architecture::SimpleConvNet => "simple-conv-net",
            Architecture::LeNet => "lenet",
            Architecture::AlexNetLite => "alexnet-lite",
        }
    }

    /// The network as a TOML description ([`crate::NetworkSpec`]) for
    /// 1x28x28 inputs and 10 classes: `crates/models/networks/*.toml`,
    /// which builds the same network as [`Architecture::build`], bit for bit.
    pub fn spec_text(&self) -> &'static str {
        match self {
            Architecture::SimpleConvNet => include_str!("../networks/simple-conv-net.toml"),
            Architecture::LeNet => include_str!("../networks/lenet.toml"),
            Architecture::AlexNetLite => include_str!("../networks/alexnet-lite.toml"),
        }
    }

    /// The network for inputs `[C, H, W]` and `classes` outputs, weights
    /// drawn from `seed` with the initialisation `MODELS.md` gives.
    pub fn build<T: Float>(&self, input: [usize; 3], classes: usize, seed: u64) -> Result<Network<T>, Error> {
        self.build_with(input, classes, seed, BuildOptions::default())
    }

    /// [`Architecture::build`] with the initialisation and convolution
    /// method of `options`.
    ///
    /// ```
    /// use layers::{Init, Parameters};
    /// use models::{Architecture, BuildOptions};
    /// let pytorch = BuildOptions { init: Some(Init::PyTorch), ..BuildOptions::default() };
    /// let net = Architecture::SimpleConvNet.build_with::<f32>([1, 28, 28], 10, 0, pytorch)?;
    /// let mut biases = 0.0;
    /// net.visit_params(&mut |name, value, _| if name.ends_with("bias") { biases += value.sum().abs() });
    /// assert!(biases > 0.0, "PyTorch's default draws biases too");
    /// # Ok::<(), models::Error>(())
    /// ```
    pub fn build_with<T: Float>(
        &self,
        input: [usize; 3],
        classes: usize,
        seed: u64,
        options: BuildOptions,
    ) -> Result<Network<T>, Error> {
        let b = Network::builder(self.name(), input, seed)
            .max_params(options.max_params.unwrap_or(crate::MAX_PARAMS))
            .conv_method(options.conv_method)?
            .pool_method(options.pool_method);
        let init = options.init;
        let pool2 = Window::square(2).with_stride(2);
        match self {
            Architecture::SimpleConvNet => {
                let init = init.unwrap_or(Init::Normal { std: 0.01 });
                b.conv(30, Window::square(5), init)?
                    .relu()?
                    .max_pool(pool2)?
                    .affine(100, init)?
                    .relu()?
                    .affine(classes, init)?
                    .build()
            }
            Architecture::LeNet => {
                let init = init.unwrap_or(Init::Xavier);
                b.conv(6, Window::square(5).with_pad(2), init)?
                    .sigmoid()?
                    .avg_pool(pool2)?
                    .conv(16, Window::square(5), init)?
                    .sigmoid()?
                    .avg_pool(pool2)?
                    .affine(120, init)?
                    .sigmoid()?
                    .affine(84, init)?
                    .sigmoid()?
                    .affine(classes, init)?
                    .build()
            }
            Architecture::AlexNetLite => {
                let init = init.unwrap_or(Init::He);
                b.conv(32, Window::square(5).with_pad(2), init)?
                    .relu()?
                    .lrn()?
                    .max_pool(pool2)?
                    .conv(64, Window::square(5).with_pad(2), init)?
                    .relu()?
                    .lrn()?
                    .max_pool(pool2)?
                    .conv(96, Window::square(3).with_pad(1), init)?
                    .relu()?
                    .conv(96, Window::square(3).with_pad(1), init)?
                    .relu()?
                    .conv(64, Window::square(3).with_pad(1), init)?
                    .relu()?
                    .max_pool(Window::square(3).with_stride(2))?
                    .affine(256, init)?
                    .relu()?
                    .dropout(0.5)?
                    .affine(256, init)?
                    .relu()?
                    .dropout(0.5)?
                    .affine(classes, init)?
                    .build()
            }
        }
    }
}

impl fmt::Display for Architecture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Architecture {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Architecture::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| Error::UnknownModel(s.to_string()))
    }
}
