//! Warm training steps allocate nothing: a counting allocator watches
//! `models::train` between consecutive step events (batch assembly, forward,
//! backward, Adam), for the three networks, on one thread and on two. Every
//! allocation counts, the GEMM's packing buffers included (they stay with
//! each thread between calls).

use std::alloc::{GlobalAlloc, Layout, System};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicUsize, Ordering};

use layers::Adam;
use models::{Architecture, Event, TrainConfig, train};
use ndarray::Array4;

struct Counting;

/// Allocations and reallocations so far, in every thread.
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator, only counting.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: same layout, same contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations during the first step (which sizes the buffers) and during
/// each step after the first two, for `arch` trained on 800 embedded images in batches of 100.
fn per_step(arch: Architecture, threads: usize) -> (usize, Vec<usize>) {
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
        let start = ALLOCATIONS.load(Ordering::SeqCst);
        train(
            &mut net,
            &mut Adam::new(0.001),
            (&x.view(), &y),
            (&tx.view(), &ty),
            &config,
            &mut |ev| {
                if let Event::Step { .. } = ev {
                    seen.push(ALLOCATIONS.load(Ordering::SeqCst));
                }
                ControlFlow::Continue(())
            },
        )
        .unwrap();
        // Steps 1 and 2 size the buffers; each later step is a difference.
        let warm = seen.windows(2).skip(1).map(|w| w[1] - w[0]).collect();
        (seen[0] - start, warm)
    })
}

#[test]
fn warm_training_steps_allocate_nothing() {
    for arch in Architecture::ALL {
        for threads in [1, 2] {
            let (first, steps) = per_step(arch, threads);
            // The counter does see the allocations made inside training.
            assert!(first > 0, "{arch}: the first step sizes its buffers");
            assert_eq!(steps.len(), 6, "{arch}");
            for (k, &n) in steps.iter().enumerate() {
                assert_eq!(
                    n,
                    0,
                    "{arch} on {threads} thread(s): step {} allocated {n} times",
                    k + 3
                );
            }
        }
    }
}
