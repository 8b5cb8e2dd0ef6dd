//! A network of your own: built with `Network::builder`, trained for a few
//! epochs on the embedded MNIST subset (8,000 training and 2,000 test
//! digits, no download), then saved and loaded back.
//!
//! Run with `cargo run --release -p convnet-models --example own_network`.

use std::ops::ControlFlow;

use layers::{Adam, Init, Window};
use models::{Event, Network, Pixels, TrainConfig, checkpoint};

/// Two small convolutions instead of the chapter's one, each with 3x3
/// filters and padding 1, then max pooling: 28 -> 14 -> 7.
fn two_conv(input: [usize; 3], classes: usize, seed: u64) -> Result<Network<f32>, models::Error> {
    let pool = Window::square(2).with_stride(2);
    Network::builder("two-conv", input, seed)
        .conv(8, Window::square(3).with_pad(1), Init::He)?
        .relu()?
        .max_pool(pool)?
        .conv(16, Window::square(3).with_pad(1), Init::He)?
        .relu()?
        .max_pool(pool)?
        .affine(64, Init::He)?
        .relu()?
        .affine(classes, Init::He)?
        .build()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data = datasets::embedded()?;
    let mut net = two_conv(data.input_shape(), data.classes.len(), 0)?;
    println!("{}", net.summary());

    let (train_x, train_y) = (Pixels(data.train.pixels().view()), data.train.labels_usize());
    let (test_x, test_y) = (Pixels(data.test.pixels().view()), data.test.labels_usize());
    let config = TrainConfig {
        epochs: 3,
        batch_size: 100,
        seed: 0,
        ..TrainConfig::default()
    };
    let history = models::train(
        &mut net,
        &mut Adam::new(0.001),
        (&train_x, &train_y),
        (&test_x, &test_y),
        &config,
        &mut |e| {
            if let Event::Epoch(m) = e {
                println!(
                    "epoch {}: loss {:.4}, test accuracy {:.2}%",
                    m.epoch,
                    m.loss,
                    100.0 * m.test_accuracy
                );
            }
            ControlFlow::Continue(())
        },
    )?;
    let last = history.epochs.last().ok_or("no epoch trained")?;

    let dir = std::env::temp_dir().join(format!("own-network-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("model.safetensors");
    checkpoint::save(&net, &path)?;
    // A checkpoint's metadata can rebuild only the three built-in
    // architectures: a network of one's own is loaded into its twin.
    let mut twin = two_conv(data.input_shape(), data.classes.len(), 1)?;
    checkpoint::load_into(&mut twin, &path)?;
    let again = twin.accuracy(&test_x, &test_y, 500)?;
    println!(
        "saved to {} and loaded into a twin: test accuracy {:.2}%",
        path.display(),
        100.0 * again
    );
    assert_eq!(again, last.test_accuracy);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
