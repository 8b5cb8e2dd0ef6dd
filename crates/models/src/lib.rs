//! Networks built from the `layers` crate: the chapter's SimpleConvNet, LeNet
//! and AlexNet-lite exactly as `MODELS.md` specifies them ([`Architecture`]),
//! a [`Network`] type with the chapter's `predict` / `loss` / `gradient` /
//! `accuracy` and a builder for other networks, and a seeded training loop
//! ([`train`]) that reports progress through a callback.
//!
//! This crate prints nothing and reads no data files: images and labels come
//! in as arrays (the `datasets` crate reads files), progress goes out as
//! [`Event`]s (the `xtask` binary draws the bar).
//!
//! ```
//! use layers::{Adam, Parameters};
//! use models::{Architecture, TrainConfig};
//! use ndarray::Array4;
//!
//! // Two tiny "classes": dark and bright images.
//! let x = Array4::from_shape_fn((40, 1, 28, 28), |(n, ..)| (n % 2) as f32);
//! let labels: Vec<usize> = (0..40).map(|n| n % 2).collect();
//! let mut net = Architecture::SimpleConvNet.build::<f32>([1, 28, 28], 2, 0)?;
//! let config = TrainConfig { epochs: 2, batch_size: 10, seed: 0, ..TrainConfig::default() };
//! let history = models::train(&mut net, &mut Adam::new(0.01), (&x.view(), &labels), (&x.view(), &labels), &config, &mut |_| std::ops::ControlFlow::Continue(()))?;
//! assert_eq!(history.epochs.len(), 2);
//! assert_eq!(history.epochs[1].test_accuracy, 1.0);
//! # Ok::<(), models::Error>(())
//! ```

#![deny(unsafe_code)]
#![deny(missing_docs)]

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

pub mod checkpoint;
mod error;
pub mod gradcheck;
mod network;
#[cfg(feature = "onnx")]
pub mod onnx;
mod source;
mod spec;
mod summary;
mod train;
mod zoo;

pub use error::Error;
pub use network::{Builder, MAX_PARAMS, Network};
pub use source::{ImageSource, Pixels};
pub use spec::NetworkSpec;
pub use summary::{LayerSummary, ReceptiveField, Summary};
pub use train::{EpochMetrics, Event, History, Resume, TrainConfig, epoch_order, train};
pub use zoo::{Architecture, BuildOptions};
