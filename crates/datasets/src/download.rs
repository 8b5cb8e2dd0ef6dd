//! Fetching MNIST and Fashion-MNIST from their public mirrors into a cache
//! directory, each file checked against its SHA-256 before it is kept: a
//! damaged or tampered download is deleted, never cached.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::Error;

/// One file of a dataset: its name on the mirrors and its SHA-256.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteFile {
    /// File name, e.g. `train-images-idx3-ubyte.gz`.
    pub name: &'static str,
    /// SHA-256 of the file as served (hex).
    pub sha256: &'static str,
}

/// A dataset's files and the mirrors that serve them (tried in order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Remote {
    /// Directory name in the cache, e.g. `mnist`.
    pub name: &'static str,
    /// Base URLs, each ending in `/`.
    pub mirrors: &'static [&'static str],
    /// The four files.
    pub files: &'static [RemoteFile],
}

/// MNIST's four files (the canonical gzip files of LeCun, Cortes and Burges).
pub const MNIST: Remote = Remote {
    name: "mnist",
    mirrors: &[
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ],
    files: &[
        RemoteFile {
            name: "train-images-idx3-ubyte.gz",
            sha256: "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        },
        RemoteFile {
            name: "train-labels-idx1-ubyte.gz",
            sha256: "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        },
        RemoteFile {
            name: "t10k-images-idx3-ubyte.gz",
            sha256: "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        },
        RemoteFile {
            name: "t10k-labels-idx1-ubyte.gz",
            sha256: "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        },
    ],
};

/// Fashion-MNIST's four files (Zalando's release).
pub const FASHION_MNIST: Remote = Remote {
    name: "fashion-mnist",
    mirrors: &[
        "https://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ],
    files: &[
        RemoteFile {
            name: "train-images-idx3-ubyte.gz",
            sha256: "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        },
        RemoteFile {
            name: "train-labels-idx1-ubyte.gz",
            sha256: "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        },
        RemoteFile {
            name: "t10k-images-idx3-ubyte.gz",
            sha256: "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        },
        RemoteFile {
            name: "t10k-labels-idx1-ubyte.gz",
            sha256: "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        },
    ],
};

/// Progress of a download, for the caller to display.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress<'a> {
    /// A file is already in the cache with the right checksum.
    Cached {
        /// The file.
        file: &'a str,
    },
    /// Bytes of a file received so far (`total` if the server said).
    Bytes {
        /// The file.
        file: &'a str,
        /// Received so far.
        done: u64,
        /// Expected length, if known.
        total: Option<u64>,
    },
    /// A mirror failed; the next one will be tried.
    MirrorFailed {
        /// The URL tried.
        url: &'a str,
        /// Why it failed.
        reason: &'a str,
    },
}

/// How long a mirror may keep a download waiting before the next mirror
/// is tried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// To resolve the name and open the connection.
    pub connect: Duration,
    /// For the response to start, and for each read of the body after it:
    /// a stalled transfer fails after this long without data.
    pub read: Duration,
}

impl Default for Timeouts {
    /// 15 s to connect, 30 s without data.
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(15),
            read: Duration::from_secs(30),
        }
    }
}

/// The default cache: `$XDG_CACHE_HOME/convnet-rs`, else `~/.cache/convnet-rs`.
pub fn default_cache_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|c| c.join("convnet-rs"))
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        file: path.display().to_string(),
        error: source,
    }
}

fn sha256_of(path: &Path) -> Result<String, Error> {
    let mut file = std::fs::File::open(path).map_err(io_err(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            return Ok(hex(&hasher.finalize()));
        }
        hasher.update(&buf[..n]);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A file of its own beside `path` to download into: created here and
/// now (never an existing file, nor a link planted at its name), named
/// after the process and a counter so concurrent runs never share one.
fn temporary(path: &Path) -> Result<(PathBuf, std::fs::File), String> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    for _ in 0..100 {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = path.with_file_name(format!(".{name}.{}.{n}.part", std::process::id()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
        {
            Ok(file) => return Ok((tmp, file)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("{}: {e}", tmp.display())),
        }
    }
    Err(format!("no free temporary name beside {}", path.display()))
}

/// Streams `url` into the new file `out` (at `tmp`), hashing as it goes;
/// returns the SHA-256.
fn fetch(
    agent: &ureq::Agent,
    url: &str,
    (tmp, mut out): (&Path, std::fs::File),
    file: &str,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<String, String> {
    let mut response = agent.get(url).call().map_err(|e| e.to_string())?;
    let total = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let mut reader = response
        .body_mut()
        .with_config()
        .limit(crate::MAX_DECOMPRESSED)
        .reader();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut done = 0u64;
    loop {
        let n = reader.read(&mut buf).map_err(|e| format!("reading {url}: {e}"))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(|e| format!("{}: {e}", tmp.display()))?;
        done += n as u64;
        progress(Progress::Bytes { file, done, total });
    }
    out.sync_all().map_err(|e| format!("{}: {e}", tmp.display()))?;
    Ok(hex(&hasher.finalize()))
}

/// Makes sure `cache/<remote.name>/` holds the remote's four files, each
/// with its published SHA-256, downloading what is missing or wrong from
/// the first mirror that serves it correctly. Returns the directory, ready
/// for [`crate::load_idx_dir`]. A mirror that does not answer, or stalls,
/// within the default [`Timeouts`] is given up for the next.
///
/// Not run here, since it needs the network:
///
/// ```no_run
/// use datasets::download::{MNIST, Progress, default_cache_dir, fetch_remote};
/// let cache = default_cache_dir().expect("HOME or XDG_CACHE_HOME is set");
/// let dir = fetch_remote(&MNIST, &cache, &mut |p| {
///     if let Progress::MirrorFailed { url, reason } = p {
///         eprintln!("{url}: {reason}; trying the next mirror");
///     }
/// })?;
/// let mnist = datasets::load_idx_dir(&dir, "mnist", &datasets::MNIST_CLASSES)?;
/// assert_eq!((mnist.train.len(), mnist.test.len()), (60_000, 10_000));
/// # Ok::<(), datasets::Error>(())
/// ```
pub fn fetch_remote(
    remote: &Remote,
    cache: &Path,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<PathBuf, Error> {
    fetch_remote_with(remote, cache, Timeouts::default(), progress)
}

/// [`fetch_remote`] with the given timeouts.
pub fn fetch_remote_with(
    remote: &Remote,
    cache: &Path,
    timeouts: Timeouts,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<PathBuf, Error> {
    let config = ureq::Agent::config_builder()
        .timeout_resolve(Some(timeouts.connect))
        .timeout_connect(Some(timeouts.connect))
        .timeout_recv_response(Some(timeouts.read))
        .timeout_per_read(Some(timeouts.read))
        .build();
    let agent = ureq::Agent::new_with_config(config);
    let dir = cache.join(remote.name);
    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    for file in remote.files {
        let path = dir.join(file.name);
        if path.is_file() && sha256_of(&path)? == file.sha256 {
            progress(Progress::Cached { file: file.name });
            continue;
        }
        let mut failures = Vec::new();
        for mirror in remote.mirrors {
            let url = format!("{mirror}{}", file.name);
            let (tmp, out) = temporary(&path).map_err(|message| Error::Download {
                file: file.name.to_string(),
                message,
            })?;
            let outcome = fetch(&agent, &url, (&tmp, out), file.name, progress).and_then(|sum| {
                if sum == file.sha256 {
                    Ok(())
                } else {
                    Err(format!("SHA-256 mismatch: expected {}, found {sum}", file.sha256))
                }
            });
            match outcome {
                Ok(()) => {
                    std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
                    failures.clear();
                    break;
                }
                Err(reason) => {
                    // Never keep a download that did not verify.
                    let _ = std::fs::remove_file(&tmp);
                    progress(Progress::MirrorFailed {
                        url: &url,
                        reason: &reason,
                    });
                    failures.push(format!("{url}: {reason}"));
                }
            }
        }
        if !failures.is_empty() {
            return Err(Error::Download {
                file: file.name.to_string(),
                message: failures.join("; "),
            });
        }
    }
    Ok(dir)
}
