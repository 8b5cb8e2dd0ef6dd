//! The commands that show what section 7.6 shows, run as a user runs them
//! on a network trained here for one epoch: `summary`, `features`,
//! `patches` and `predict`.

use crate::run::run;

use std::path::Path;

use models::{Network, checkpoint};
use ndarray::s;

/// The one-epoch SimpleConvNet's model.safetensors; `train` starts by
/// printing the network's summary.
fn trained() -> &'static Path {
    let run = crate::run::trained();
    assert!(
        run.stdout.contains("total parameters: 433,890"),
        "train starts with the summary: {}",
        run.stdout
    );
    &run.model
}

/// Width, height and 8-bit gray or RGB(A) pixels of a PNG, reduced to luma.
fn read_png(path: &Path) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let step = info.color_type.samples();
    let luma = buf[..info.buffer_size()].chunks(step).map(|p| p[0]).collect();
    (info.width, info.height, luma)
}

/// A figure is not blank: it has white and dark pixels, and many of each.
fn assert_drawn(path: &Path) {
    let (w, h, luma) = read_png(path);
    assert!(w >= 200 && h >= 100, "{}: {w}x{h}", path.display());
    let dark = luma.iter().filter(|&&v| v < 64).count();
    let light = luma.iter().filter(|&&v| v > 192).count();
    assert!(
        dark > 500 && light > luma.len() / 4,
        "{}: {dark} dark, {light} light",
        path.display()
    );
}

#[test]
fn summary_matches_the_checkpoint_and_the_spec() {
    let (ok, by_name, e) = run(&["summary", "--model", "simple-conv-net"]);
    assert!(ok, "{e}");
    let (ok, by_file, e) = run(&["summary", "--checkpoint", trained().to_str().unwrap()]);
    assert!(ok, "{e}");
    assert_eq!(by_name, by_file);
    for want in [
        "conv1+relu1",
        "30x24x24",
        "total parameters: 433,890",
        "forward FLOPs per image",
    ] {
        assert!(by_name.contains(want), "{want}: {by_name}");
    }
    let (ok, lenet, _) = run(&["summary", "--model", "lenet", "--input", "3,32,32"]);
    assert!(ok && lenet.contains("16x12x12"), "{lenet}");
    let (ok, _, e) = run(&["summary", "--model", "alexnet-lite", "--input", "3,32,32"]);
    assert!(!ok && e.contains("--input 3,32,32") && e.contains("pool3"), "{e}");
    let (ok, _, e) = run(&["summary", "--model", "lenet", "--input", "1,28"]);
    assert!(!ok && e.contains("--input \"1,28\": three sizes C,H,W"), "{e}");
}

#[test]
fn features_draws_the_input_and_every_chosen_layer() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = trained().to_str().unwrap();
    let out = dir.path().join("f.png");
    let (ok, stdout, e) = run(&[
        "features",
        "--checkpoint",
        ckpt,
        "--image",
        "3",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{e}");
    assert!(stdout.contains("responses of conv1 to test image 3"), "{stdout}");
    assert_drawn(&out);
    let one = read_png(&out);
    let (ok, _, e) = run(&[
        "features",
        "--checkpoint",
        ckpt,
        "--layer",
        "all",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{e}");
    // conv1 and pool1 drawn: a taller figure than conv1 alone.
    assert!(read_png(&out).1 > one.1);

    // Asked in any order, drawn in the network's.
    let (ok, stdout, e) = run(&[
        "features",
        "--checkpoint",
        ckpt,
        "--layer",
        "pool1",
        "--layer",
        "relu1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        ok && stdout.contains("responses of conv1, pool1 to"),
        "{stdout}{e}"
    );
    let (ok, _, e) = run(&[
        "features",
        "--checkpoint",
        ckpt,
        "--layer",
        "all",
        "--layer",
        "bogus",
    ]);
    assert!(!ok && e.contains("--layer bogus"), "{e}");
    let (ok, _, e) = run(&["features", "--checkpoint", ckpt, "--layer", "conv7"]);
    assert!(
        !ok && e.contains("--layer conv7") && e.contains("choose from conv1, relu1, pool1"),
        "{e}"
    );
    let (ok, _, e) = run(&["features", "--checkpoint", ckpt, "--layer", "fc1"]);
    assert!(!ok && e.contains("--layer fc1"), "{e}");
    let (ok, _, e) = run(&["features", "--checkpoint", ckpt, "--image", "2000"]);
    assert!(
        !ok && e.contains("--image 2000: the test set has 2000 images (0 to 1999)"),
        "{e}"
    );
    let (ok, _, e) = run(&["features", "--checkpoint", "/nonexistent/model.safetensors"]);
    assert!(!ok && e.contains("/nonexistent/model.safetensors"), "{e}");
}

#[test]
fn patches_draws_a_figure_per_layer() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = trained().to_str().unwrap();
    let out = dir.path().join("p");
    let (ok, stdout, e) = run(&[
        "patches",
        "--checkpoint",
        ckpt,
        "--layer",
        "all",
        "--channels",
        "3",
        "--images",
        "500",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{e}");
    assert!(stdout.contains("conv1+relu1: receptive field 5x5"), "{stdout}");
    assert!(stdout.contains("pool1: receptive field 6x6"), "{stdout}");
    assert!(stdout.contains("searched 500 test images"), "{stdout}");
    assert_drawn(&out.join("patches-conv1.png"));
    assert_drawn(&out.join("patches-pool1.png"));
    let (ok, _, e) = run(&["patches", "--checkpoint", ckpt, "--channels", "0"]);
    assert!(!ok && e.contains("--channels 0: between 1 and 256"), "{e}");
}

/// Test image `i` of the embedded subset as 8-bit gray, MNIST's polarity.
fn test_image(i: usize) -> (Vec<u8>, usize) {
    let data = datasets::embedded().unwrap();
    let px = data
        .test
        .pixels()
        .slice(s![i, 0, .., ..])
        .iter()
        .copied()
        .collect();
    (px, data.test.labels()[i] as usize)
}

/// The classes `predict --json` gives, in order.
fn predicted(stdout: &str) -> Vec<usize> {
    stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["top"][0]["index"].as_u64().unwrap() as usize
        })
        .collect()
}

#[test]
fn predict_agrees_with_the_network_on_test_images_written_as_png() {
    let dir = tempfile::tempdir().unwrap();
    let n = 60;
    let mut files = Vec::new();
    for i in 0..n {
        let (px, _) = test_image(i);
        let path = dir.path().join(format!("t{i}.png"));
        image::GrayImage::from_raw(28, 28, px)
            .unwrap()
            .save(&path)
            .unwrap();
        files.push(path.to_str().unwrap().to_string());
    }
    // What `eval` computes: the network's class for each test image.
    let mut net: Network<f32> = checkpoint::load(trained()).unwrap();
    let x = datasets::embedded().unwrap().test.images::<f32>();
    let want = net.classify(x.slice(s![..n, .., .., ..]).into_dyn()).unwrap();

    let ckpt = trained().to_str().unwrap();
    let mut args = vec!["predict", "--checkpoint", ckpt, "--json", "--prepare", "resize"];
    args.extend(files.iter().map(String::as_str));
    let (ok, stdout, e) = run(&args);
    assert!(ok, "{e}");
    assert_eq!(predicted(&stdout), want, "the images as they are");
    let first: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(first["file"], files[0].as_str());
    assert_eq!(first["top"].as_array().unwrap().len(), 3);
    let p: f64 = first["top"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["probability"].as_f64().unwrap())
        .sum();
    assert!(p > 0.0 && p <= 1.0 + 1e-9, "{p}");

    // MNIST's digits are already prepared by MNIST's rule: preparing them
    // again changes little.
    args.truncate(4);
    args.extend(files.iter().map(String::as_str));
    let (ok, stdout, e) = run(&args);
    assert!(ok, "{e}");
    let same = predicted(&stdout)
        .iter()
        .zip(&want)
        .filter(|(a, b)| a == b)
        .count();
    assert!(same >= n * 9 / 10, "{same} of {n} agree after the MNIST rule");
}

#[test]
fn predict_recognises_digits_drawn_larger_inverted_and_off_centre() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = trained().to_str().unwrap();
    let mut net: Network<f32> = checkpoint::load(trained()).unwrap();
    let x = datasets::embedded().unwrap().test.images::<f32>();
    let mut files = Vec::new();
    let mut labels = Vec::new();
    for i in 0..40 {
        let (px, label) = test_image(i);
        // Only digits the network gets right as MNIST gave them.
        if net
            .classify(x.slice(s![i..i + 1, .., .., ..]).into_dyn())
            .unwrap()[0]
            != label
        {
            continue;
        }
        // Drawn five times larger, dark ink on white paper, in the
        // top-left part of a 300x200 page.
        let mut page = image::RgbImage::from_pixel(300, 200, image::Rgb([250, 248, 240]));
        for (k, &v) in px.iter().enumerate() {
            let (y, xx) = (k / 28, k % 28);
            let ink = 250 - (u32::from(v) * 230 / 255) as u8;
            for dy in 0..5 {
                for dx in 0..5 {
                    page.put_pixel(
                        10 + 5 * xx as u32 + dx,
                        15 + 5 * y as u32 + dy,
                        image::Rgb([ink, ink, ink]),
                    );
                }
            }
        }
        let path = dir.path().join(format!("drawn{i}.jpg"));
        page.save(&path).unwrap();
        files.push(path.to_str().unwrap().to_string());
        labels.push(label);
    }
    let saved = dir.path().join("seen");
    let mut args = vec![
        "predict",
        "--checkpoint",
        ckpt,
        "--json",
        "--save-input",
        saved.to_str().unwrap(),
    ];
    args.extend(files.iter().map(String::as_str));
    let (ok, stdout, e) = run(&args);
    assert!(ok, "{e}");
    let got = predicted(&stdout);
    let right = got.iter().zip(&labels).filter(|(a, b)| a == b).count();
    assert!(
        right * 10 >= labels.len() * 9,
        "{right} of {} drawn digits recognised",
        labels.len()
    );
    assert_drawn(&saved.join("drawn0.jpg.seen.png"));
    // The input as the network saw it, read back as it is: the same verdict.
    let raw = saved.join("drawn0.jpg.input.png");
    assert_eq!(read_png(&raw).0, 28);
    let (ok, again, e) = run(&[
        "predict",
        "--checkpoint",
        ckpt,
        "--json",
        "--prepare",
        "resize",
        raw.to_str().unwrap(),
    ]);
    assert!(ok, "{e}");
    assert_eq!(predicted(&again)[0], got[0]);
    let (ok, text, e) = run(&["predict", "--checkpoint", ckpt, &files[0]]);
    assert!(ok && text.contains("inverted"), "{text}{e}");
}

#[test]
fn predict_names_each_file_it_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = trained().to_str().unwrap();
    let empty = dir.path().join("empty.png");
    std::fs::write(&empty, b"").unwrap();
    let text = dir.path().join("notes.png");
    std::fs::write(&text, b"not an image at all").unwrap();
    let gif = dir.path().join("anim.gif");
    std::fs::write(&gif, b"GIF89a\x01\x00\x01\x00\x00\x00\x00;").unwrap();
    let good = dir.path().join("good.png");
    image::GrayImage::from_raw(28, 28, test_image(0).0)
        .unwrap()
        .save(&good)
        .unwrap();
    let missing = dir.path().join("missing.png");
    let all = [&empty, &text, &gif, &good, &missing];
    let mut args = vec!["predict", "--checkpoint", ckpt];
    args.extend(all.iter().map(|p| p.to_str().unwrap()));
    let (ok, stdout, e) = run(&args);
    assert!(!ok, "{stdout}");
    for bad in [&empty, &text, &gif, &missing] {
        assert_eq!(
            e.matches(bad.to_str().unwrap()).count(),
            1,
            "{}: {e}",
            bad.display()
        );
    }
    assert!(e.contains("4 of 5 images could not be judged"), "{e}");
    // The good one is still judged.
    assert!(stdout.contains("good.png: "), "{stdout}");
    let (ok, _, e) = run(&[
        "predict",
        "--checkpoint",
        ckpt,
        "--top",
        "11",
        good.to_str().unwrap(),
    ]);
    assert!(
        !ok && e.contains("--top 11: between 1 and the network's 10 classes"),
        "{e}"
    );
}

#[test]
fn the_readme_shows_lenets_summary_as_printed() {
    let (ok, table, e) = run(&["summary", "--model", "lenet"]);
    assert!(ok, "{e}");
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    assert!(
        readme.contains(&format!("```text\n{table}```")),
        "README's table differs from:\n{table}"
    );
}
