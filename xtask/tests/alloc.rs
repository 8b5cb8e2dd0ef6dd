//! The fuzzer's memory bound is only as good as its counter: the counting
//! allocator sees what is live at once, and a hostile checkpoint that names
//! a huge network is refused before it is allocated.

use xtask::alloc::{Counting, counting, peak_during};

#[global_allocator]
static COUNTING: Counting = Counting;

/// The counters are the process's: one test at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn the_counter_sees_peaks_not_totals() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    assert!(counting());
    let (_, peak) = peak_during(|| {
        for _ in 0..10 {
            std::hint::black_box(vec![1u8; 1 << 20]);
        }
    });
    // Ten blocks of 1 MiB, one live at a time.
    assert!((1 << 20..2 << 20).contains(&peak), "{peak}");
    let (_, peak) = peak_during(|| {
        let blocks: Vec<Vec<u8>> = (0..10).map(|_| vec![1u8; 1 << 20]).collect();
        std::hint::black_box(blocks)
    });
    assert!(peak >= 10 << 20, "{peak}");
}

#[test]
fn huge_metadata_is_refused_in_little_memory() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let net = models::Architecture::SimpleConvNet
        .build::<f32>([1, 28, 28], 10, 0)
        .unwrap();
    models::checkpoint::save(&net, &path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    // The same file claiming 3e9 classes (12 GB of weights).
    let text = String::from_utf8_lossy(&bytes).into_owned();
    assert!(text.contains("\"classes\":\"10\""));
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + header_len]).unwrap();
    let hostile = header.replace("\"classes\":\"10\"", "\"classes\":\"3000000000\"");
    let mut file = (hostile.len() as u64).to_le_bytes().to_vec();
    file.extend(hostile.as_bytes());
    file.extend(&bytes[8 + header_len..]);
    let (loaded, peak) = peak_during(|| models::checkpoint::load_bytes::<f32>(file.clone(), &path));
    let e = loaded.err().expect("refused");
    assert!(e.to_string().contains("classes \"3000000000\""), "{e}");
    // The file twice and the parsed header, nothing of the network's size.
    assert!(
        peak < 4 * file.len() + (1 << 20),
        "{peak} bytes for a {} byte file",
        file.len()
    );
}
