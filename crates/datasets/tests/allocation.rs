//! Hostile size claims must not turn into allocations: a counting allocator
//! records the largest single request while the readers parse such files.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Largest;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator, only recording sizes.
unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::SeqCst);
        // SAFETY: same layout, same contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::SeqCst);
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Largest = Largest;

fn largest_during(f: impl FnOnce()) -> usize {
    LARGEST.store(0, Ordering::SeqCst);
    f();
    LARGEST.load(Ordering::SeqCst)
}

#[test]
fn size_claims_in_headers_and_trailers_are_not_allocated() {
    // A gzip stream of 16 zero bytes whose trailer claims 4 GiB - 1.
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(&[0u8; 16]).unwrap();
    let mut bomb = e.finish().unwrap();
    let n = bomb.len();
    bomb[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
    let used = largest_during(|| assert!(datasets::maybe_gunzip(bomb, "bomb.gz").is_err()));
    assert!(used < 1 << 20, "reserved {used} bytes for a {n}-byte file");

    // An IDX header declaring 60000 x 65535 x 65535 images.
    let mut idx = 0x0803u32.to_be_bytes().to_vec();
    for d in [60000u32, 65535, 65535] {
        idx.extend(d.to_be_bytes());
    }
    let used = largest_during(|| assert!(datasets::parse_idx_owned(idx, "huge.idx").is_err()));
    assert!(used < 1 << 20, "allocated {used} bytes for a 16-byte header");
}
