//! The three networks end to end against numerical differentiation (every
//! parameter tensor, sampled where large), and the chapter's f32 figure.

use layers::gradcheck::Settings;
use models::{Architecture, gradcheck};

#[test]
fn every_network_gradient_matches_numerical_differentiation() {
    for arch in Architecture::ALL {
        let settings = Settings {
            max_coords: 24,
            seed: 1,
            ..Settings::default()
        };
        let checks = gradcheck::check_architecture(arch, &settings).unwrap();
        for c in &checks {
            eprintln!(
                "{arch} {} {}/{} skipped {} max rel {:.2e}",
                c.tensor, c.checked, c.total, c.skipped, c.max_rel
            );
            assert!(c.passed, "{arch}: {c:?}");
            // Sampled tensors replace coordinates whose probes cross a kink;
            // tensors checked whole re-check them on fresh batches.
            assert_eq!(c.checked, c.total.min(24), "{arch}: {c:?}");
        }
    }
}

#[test]
fn the_chapters_f32_figure_is_small() {
    let figure = gradcheck::chapter_figure(0).unwrap();
    let names: Vec<&str> = figure.iter().map(|(b, _, _)| b.as_str()).collect();
    assert_eq!(names, ["W1", "b1", "W2", "b2", "W3", "b3"]);
    for (book, ours, diff) in figure {
        assert!(diff < 1e-3, "{book} ({ours}): {diff}");
    }
}
