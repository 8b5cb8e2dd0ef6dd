//! Warm training steps allocate nothing: a counting allocator watches
//! `models::train` between consecutive step events (batch assembly, forward,
//! backward, Adam), for the three networks, on one thread and on two.
//!
//! One allocation is outside our control and counted apart: `matrixmultiply`
//! allocates a packing buffer inside every GEMM call (aligned to 32 or 64
//! bytes for its SIMD kernels; nothing of ours asks for such alignment). The
//! test asserts that every other allocation is gone once buffers are warm.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicUsize, Ordering};

use layers::Adam;
use models::{Architecture, Event, TrainConfig, train};
use ndarray::Array4;

struct Counting;

/// Allocations other than GEMM packing buffers, and those buffers.
static OURS: AtomicUsize = AtomicUsize::new(0);
static PACKING: AtomicUsize = AtomicUsize::new(0);

fn count(layout: Layout) {
    let counter = if layout.align() >= 32 { &PACKING } else { &OURS };
    counter.fetch_add(1, Ordering::SeqCst);
}

// SAFETY: forwards to the system allocator, only counting.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout);
        // SAFETY: same layout, same contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(layout);
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// (our allocations, packing buffers) during each step after the first
/// two, for `arch` trained on 800 embedded images in batches of 100.
fn per_step(arch: Architecture, threads: usize) -> Vec<(usize, usize)> {
    let e = datasets::embedded().unwrap();
    let (train_set, test_set) = (e.train.head(800), e.test.head(100));
    let (x, y): (Array4<f32>, Vec<usize>) = (train_set.images(), train_set.labels_usize());
    let (tx, ty): (Array4<f32>, Vec<usize>) = (test_set.images(), test_set.labels_usize());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        let mut net = arch.build::<f32>([1, 28, 28], 10, 1).unwrap();
        let config = TrainConfig {
            epochs: 1,
            batch_size: 100,
            train_eval_samples: 100,
            ..TrainConfig::default()
        };
        let mut seen = Vec::with_capacity(16); // reserved: the callback must not allocate
        train(
            &mut net,
            &mut Adam::new(0.001),
            (&x.view(), &y),
            (&tx.view(), &ty),
            &config,
            &mut |ev| {
                if let Event::Step { .. } = ev {
                    seen.push((OURS.load(Ordering::SeqCst), PACKING.load(Ordering::SeqCst)));
                }
                ControlFlow::Continue(())
            },
        )
        .unwrap();
        // Steps 1 and 2 size the buffers; each later step is a difference.
        seen.windows(2)
            .skip(1)
            .map(|w| (w[1].0 - w[0].0, w[1].1 - w[0].1))
            .collect()
    })
}

#[test]
fn warm_training_steps_allocate_nothing_but_gemm_packing() {
    for arch in Architecture::ALL {
        for threads in [1, 2] {
            let steps = per_step(arch, threads);
            assert_eq!(steps.len(), 6, "{arch}");
            for (k, &(ours, packing)) in steps.iter().enumerate() {
                assert_eq!(
                    ours,
                    0,
                    "{arch} on {threads} thread(s): step {} allocated {ours} times",
                    k + 3
                );
                // Not a goal, a fact of matrixmultiply: about one per GEMM call.
                assert!(packing > 0, "{arch}: the packing count should see the GEMM calls");
            }
        }
    }
}
