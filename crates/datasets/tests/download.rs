//! Downloads against a local HTTP server on 127.0.0.1 serving fixture files:
//! verified files are cached and not fetched again, a corrupted download is
//! detected, deleted and never cached, and the next mirror is tried.
#![cfg(feature = "download")]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use datasets::download::{Progress, Remote, RemoteFile, Timeouts, fetch_remote, fetch_remote_with};
use sha2::{Digest, Sha256};

/// A one-thread HTTP/1.1 server answering GETs from a map of paths to bodies.
struct Server {
    base: String,
    files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    requests: Arc<AtomicUsize>,
}

impl Server {
    fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}/", listener.local_addr().unwrap());
        let files: Arc<Mutex<HashMap<String, Vec<u8>>>> = Arc::default();
        let requests = Arc::new(AtomicUsize::new(0));
        let (f, r) = (files.clone(), requests.clone());
        std::thread::spawn(move || {
            // Ends when the test process ends; serves one request per connection.
            for stream in listener.incoming().take(1000) {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let path = line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("/")
                    .trim_start_matches('/')
                    .to_string();
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                }
                r.fetch_add(1, Ordering::SeqCst);
                let body = f.lock().unwrap().get(&path).cloned();
                let head = match &body {
                    Some(b) => format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        b.len()
                    ),
                    None => {
                        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
                    }
                };
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(body.as_deref().unwrap_or(&[]));
            }
        });
        Server {
            base,
            files,
            requests,
        }
    }

    fn serve(&self, prefix: &str, name: &str, body: Vec<u8>) {
        self.files.lock().unwrap().insert(format!("{prefix}{name}"), body);
    }
}

fn gz_idx(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut raw = magic.to_be_bytes().to_vec();
    for d in dims {
        raw.extend(d.to_be_bytes());
    }
    raw.extend_from_slice(data);
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(&raw).unwrap();
    e.finish().unwrap()
}

fn fixtures() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("train-images-idx3-ubyte.gz", gz_idx(2051, &[3, 2, 2], &[1; 12])),
        ("train-labels-idx1-ubyte.gz", gz_idx(2049, &[3], &[0, 1, 2])),
        ("t10k-images-idx3-ubyte.gz", gz_idx(2051, &[1, 2, 2], &[9; 4])),
        ("t10k-labels-idx1-ubyte.gz", gz_idx(2049, &[1], &[7])),
    ]
}

fn remote(mirrors: Vec<String>) -> Remote {
    let files: Vec<RemoteFile> = fixtures()
        .into_iter()
        .map(|(name, bytes)| {
            let sum: String = Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            RemoteFile {
                name,
                sha256: Box::leak(sum.into_boxed_str()),
            }
        })
        .collect();
    let mirrors: Vec<&'static str> = mirrors
        .into_iter()
        .map(|m| &*Box::leak(m.into_boxed_str()))
        .collect();
    Remote {
        name: "fixture",
        mirrors: Box::leak(mirrors.into_boxed_slice()),
        files: Box::leak(files.into_boxed_slice()),
    }
}

#[test]
fn verified_files_are_cached_and_not_fetched_again() {
    let server = Server::start();
    for (name, bytes) in fixtures() {
        server.serve("a/", name, bytes);
    }
    let cache = tempfile::tempdir().unwrap();
    let remote = remote(vec![format!("{}a/", server.base)]);
    let mut seen = Vec::new();
    let dir = fetch_remote(&remote, cache.path(), &mut |p| seen.push(format!("{p:?}"))).unwrap();
    let d = datasets::load_idx_dir(&dir, "fixture", &datasets::MNIST_CLASSES).unwrap();
    assert_eq!((d.train.len(), d.test.labels()), (3, &[7][..]));
    assert_eq!(server.requests.load(Ordering::SeqCst), 4);
    assert!(seen.iter().any(|s| s.starts_with("Bytes")));

    let mut again = Vec::new();
    fetch_remote(&remote, cache.path(), &mut |p| {
        again.push(matches!(p, Progress::Cached { .. }))
    })
    .unwrap();
    assert_eq!(again, [true; 4]);
    assert_eq!(
        server.requests.load(Ordering::SeqCst),
        4,
        "cached files are not fetched again"
    );
}

#[test]
fn a_corrupted_download_is_detected_and_never_cached() {
    let server = Server::start();
    for (name, mut bytes) in fixtures() {
        server.serve("good/", name, bytes.clone());
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        server.serve("bad/", name, bytes);
    }
    // Only a corrupting mirror: an error naming the mismatch, nothing kept.
    let cache = tempfile::tempdir().unwrap();
    let bad_only = remote(vec![format!("{}bad/", server.base)]);
    let e = fetch_remote(&bad_only, cache.path(), &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("downloading train-images-idx3-ubyte.gz failed:") && e.contains("SHA-256 mismatch"),
        "{e}"
    );
    let left: Vec<_> = std::fs::read_dir(cache.path().join("fixture")).unwrap().collect();
    assert!(
        left.is_empty(),
        "nothing is cached, no partial file is left: {left:?}"
    );

    // A corrupting mirror, then a good one: the good one's files are kept.
    let both = remote(vec![
        format!("{}bad/", server.base),
        format!("{}good/", server.base),
    ]);
    let mut failed = 0;
    let dir = fetch_remote(&both, cache.path(), &mut |p| {
        failed += matches!(p, Progress::MirrorFailed { .. }) as usize
    })
    .unwrap();
    assert_eq!(failed, 4);
    assert!(datasets::load_idx_dir(&dir, "fixture", &datasets::MNIST_CLASSES).is_ok());

    // A cached file tampered with afterwards is fetched again.
    std::fs::write(dir.join("t10k-labels-idx1-ubyte.gz"), b"tampered").unwrap();
    let before = server.requests.load(Ordering::SeqCst);
    fetch_remote(&both, cache.path(), &mut |_| {}).unwrap();
    assert_eq!(
        server.requests.load(Ordering::SeqCst),
        before + 2,
        "bad mirror, then good mirror, for that file only"
    );
}

#[test]
fn a_missing_file_on_every_mirror_is_an_error() {
    let server = Server::start();
    let cache = tempfile::tempdir().unwrap();
    let e = fetch_remote(
        &remote(vec![format!("{}none/", server.base)]),
        cache.path(),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("404"), "{e}");
}

/// A mirror that accepts connections and then never answers: a download
/// gives it up after the read timeout and takes the file from the next.
#[test]
fn a_stalled_mirror_is_given_up_for_the_next() {
    let stall = TcpListener::bind("127.0.0.1:0").unwrap();
    let stall_base = format!("http://{}/", stall.local_addr().unwrap());
    std::thread::spawn(move || {
        // Keep every connection open, silent, until the test process ends.
        let held: Vec<_> = stall.incoming().take(100).collect();
        std::thread::sleep(std::time::Duration::from_secs(3600));
        drop(held);
    });
    let server = Server::start();
    for (name, bytes) in fixtures() {
        server.serve("good/", name, bytes);
    }
    let cache = tempfile::tempdir().unwrap();
    let timeouts = Timeouts {
        connect: std::time::Duration::from_secs(2),
        read: std::time::Duration::from_millis(300),
    };
    let both = remote(vec![stall_base, format!("{}good/", server.base)]);
    let started = std::time::Instant::now();
    let mut failed = Vec::new();
    let dir = fetch_remote_with(&both, cache.path(), timeouts, &mut |p| {
        if let Progress::MirrorFailed { reason, .. } = p {
            failed.push(reason.to_string());
        }
    })
    .unwrap();
    assert_eq!(failed.len(), 4, "{failed:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert!(datasets::load_idx_dir(&dir, "fixture", &datasets::MNIST_CLASSES).is_ok());
}

/// Downloads go to a temporary file created for them: a link planted
/// where a fixed temporary name used to be is neither followed nor
/// touched, and no temporary file is left behind.
#[cfg(unix)]
#[test]
fn a_planted_link_is_not_followed() {
    let server = Server::start();
    for (name, bytes) in fixtures() {
        server.serve("good/", name, bytes);
    }
    let cache = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    let dir = cache.path().join("fixture");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, _) in fixtures() {
        std::os::unix::fs::symlink(&victim, dir.join(format!(".{name}.part"))).unwrap();
    }
    fetch_remote(
        &remote(vec![format!("{}good/", server.base)]),
        cache.path(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    let parts: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".part") && !fixtures().iter().any(|(f, _)| *n == format!(".{f}.part")))
        .collect();
    assert!(parts.is_empty(), "temporary files left: {parts:?}");
}
