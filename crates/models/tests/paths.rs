//! Whole networks on each instruction-set path of the `kernels` crate:
//! AVX-512 gives the same bits as AVX2 (both fuse multiply-adds and sum
//! in the same order), and the portable path, which does not fuse, the
//! same numbers to rounding. One trial per path; a path this CPU lacks is
//! reported as ignored, with the reason, never as passed.
//!
//! `Isa::select` is process-wide, so these trials run one at a time in a
//! test binary of their own.

mod common;

use kernels::Isa;
use layers::ConvMethod;
use libtest_mimic::{Arguments, Failed, Trial};
use models::Architecture;

/// The weights and gradients after three Adam steps of `arch` on a fixed
/// batch, on `isa`.
fn trained(arch: Architecture, method: ConvMethod, isa: Isa) -> Vec<f32> {
    Isa::select(Some(isa)).unwrap();
    let params = common::trained_params(arch, method, 3);
    Isa::select(None).unwrap();
    params
}

/// Every network and convolution method on `isa` against the same on AVX2:
/// bit for bit, or for the portable path within 1e-3 of the largest value.
fn against_avx2(isa: Isa) -> Result<(), Failed> {
    for arch in Architecture::ALL {
        for method in [ConvMethod::Auto, ConvMethod::Columns] {
            let want = trained(arch, method, Isa::Avx2);
            let got = trained(arch, method, isa);
            if isa == Isa::Portable {
                let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
                let worst = got
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                if worst > 1e-3 * scale {
                    return Err(format!(
                        "{arch} {method}: portable differs from avx2 by {worst} (scale {scale})"
                    )
                    .into());
                }
            } else if got.iter().zip(&want).any(|(a, b)| a.to_bits() != b.to_bits()) {
                return Err(format!("{arch} {method}: {isa} and avx2 differ in bits").into());
            }
        }
    }
    Ok(())
}

fn main() {
    let mut args = Arguments::from_args();
    // One trial at a time: each selects the process's path.
    args.test_threads = Some(1);
    let trials = [Isa::Avx512, Isa::Portable]
        .into_iter()
        .map(|isa| {
            let missing = [isa, Isa::Avx2].into_iter().find(|i| !i.is_available());
            let trial = Trial::test(format!("{isa}_trains_as_avx2_does"), move || against_avx2(isa));
            match missing {
                Some(m) => trial
                    .with_ignored_flag(true)
                    .with_kind(format!("skipped: this CPU lacks the {m} instructions")),
                None => trial,
            }
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
