//! `cargo xtask emulate-avx512`: runs the tests of the AVX-512 path on a
//! CPU without AVX-512, on Bochs' emulated Skylake-X.
//!
//! On a CPU without AVX-512 (this project's CI machine, an AMD Zen 3) the
//! tests report the AVX-512 path as skipped, so its tiles and loops would
//! never run before a user's Intel Xeon ran them. This command builds the
//! tests that exercise them as static binaries, packs them with busybox
//! into an initramfs, boots a Linux kernel from an ISO on Bochs'
//! `corei7_skylake_x` model (AVX-512 F, CD, BW, DQ and VL), and reads the
//! results from the emulated serial port. Emulation checks results, never
//! speed.
//!
//! Needs, on Debian: `bochs bochsbios vgabios busybox-static isolinux
//! syslinux-common xorriso`, and a kernel (`--kernel`).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use flate2::{Compression, write::GzEncoder};

#[derive(clap::Args)]
pub struct Args {
    /// An x86-64 Linux kernel image (bzImage) that boots from an initramfs
    /// with a serial console, such as `boot/vmlinuz-*` of Debian's
    /// linux-image-amd64 (`apt-get download`, then `dpkg-deb -x`). Default:
    /// the newest `/boot/vmlinuz-*`.
    #[arg(long)]
    kernel: Option<PathBuf>,
    /// Where the test build, the boot image and the logs go. Default:
    /// `target/emulate-avx512` in the workspace.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Minutes of emulation before giving up.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
}

/// The test binaries run in the guest, by package, its directory, test
/// target (`lib` for the unit tests) and the filter it runs with: those
/// that run each path, or the active one. The portable path's trial of
/// whole networks is left to the host, where it runs in seconds.
const TESTS: [(&str, &str, &str, &str); 4] = [
    ("convnet-kernels", "crates/kernels", "lib", ""),
    ("convnet-kernels", "crates/kernels", "paths", ""),
    ("convnet-layers", "crates/layers", "suite", ""),
    ("convnet-models", "crates/models", "paths", "avx512"),
];

/// Files the boot needs, with the Debian package that has each.
const FILES: [(&str, &str); 5] = [
    ("/bin/busybox", "busybox-static"),
    ("/usr/lib/ISOLINUX/isolinux.bin", "isolinux"),
    ("/usr/lib/syslinux/modules/bios/ldlinux.c32", "syslinux-common"),
    ("/usr/share/bochs/BIOS-bochs-latest", "bochsbios"),
    // A link into vgabios, which bochs does not always pull in.
    ("/usr/share/bochs/VGABIOS-lgpl-latest", "vgabios"),
];

/// The longest `--timeout`: a week.
const MAX_MINUTES: u64 = 7 * 24 * 60;

/// Bochs 2.7 gives the compacted XSAVE area the size of the standard one;
/// Linux then turns XSAVE, and AVX with it, off. Without XSAVES and XSAVEC
/// it uses the standard layout, whose size Bochs reports right.
const KERNEL_ARGS: &str = "console=ttyS0,115200 loglevel=4 clearcpuid=xsaves,xsavec panic=-1 mitigations=off";

/// What the guest runs: each test binary, named and filtered, on one
/// thread, between markers the host reads back. The tests' random seeds
/// come from `/dev/urandom`, which devtmpfs provides.
fn init_script(tests: &[(String, &str, PathBuf)]) -> String {
    let mut s = String::from(
        "#!/bin/busybox sh\n/bin/busybox mount -t proc proc /proc\n\
         /bin/busybox mount -t devtmpfs dev /dev\n\
         echo \"xtask: $(/bin/busybox grep -m1 '^flags' /proc/cpuinfo)\"\ncd /tmp\n",
    );
    for (name, filter, _) in tests {
        s += &format!(
            "echo 'xtask: run {name}'\n/t/{name} --test-threads 1 {filter} 2>&1\necho \"xtask: exit $? {name}\"\n"
        );
    }
    s + "echo 'xtask: done'\n/bin/busybox poweroff -f\n"
}

/// The kernel image: the flag's, or the newest in /boot.
fn kernel(args: &Args) -> Result<PathBuf> {
    if let Some(k) = &args.kernel {
        ensure!(k.is_file(), "--kernel {}: no such file", k.display());
        return Ok(k.clone());
    }
    let newest = std::fs::read_dir("/boot")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("vmlinuz-"))
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok());
    match newest {
        Some(e) => Ok(e.path()),
        None => bail!(
            "--kernel: not given, and /boot has no vmlinuz-*; on Debian, `apt-get download linux-image-amd64` \
             (or a versioned linux-image-*-amd64), `dpkg-deb -x` it and pass its boot/vmlinuz-*"
        ),
    }
}

/// Checks the flags and that the tools are installed, before anything is built.
pub fn check(args: &Args) -> Result<PathBuf> {
    ensure!(
        (1..=MAX_MINUTES).contains(&args.timeout),
        "--timeout {}: between 1 and {MAX_MINUTES} minutes",
        args.timeout
    );
    if let Some(o) = &args.out {
        ensure!(
            !o.exists() || o.is_dir(),
            "--out {}: expected a directory, found a file",
            o.display()
        );
    }
    let kernel = kernel(args)?;
    // An x86 boot image carries the magic "HdrS" at 0x202 (the kernel's
    // boot protocol); anything else would boot nothing until the timeout.
    let mut head = [0u8; 0x206];
    let read_head =
        std::fs::File::open(&kernel).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head));
    if let Err(e) = read_head {
        bail!("--kernel {}: cannot read its boot header: {e}", kernel.display());
    }
    ensure!(
        &head[0x202..0x206] == b"HdrS",
        "--kernel {}: expected an x86 bzImage (\"HdrS\" at byte 0x202), found {:?}",
        kernel.display(),
        String::from_utf8_lossy(&head[0x202..0x206])
    );
    let mut missing: Vec<&str> = FILES
        .iter()
        .filter(|(f, _)| !Path::new(f).is_file())
        .map(|&(_, p)| p)
        .collect();
    for (tool, package) in [("bochs", "bochs"), ("xorriso", "xorriso")] {
        if Command::new(tool).arg("--help").output().is_err() {
            missing.push(package);
        }
    }
    missing.sort_unstable();
    missing.dedup();
    ensure!(
        missing.is_empty(),
        "emulate-avx512 needs the Debian packages {}: apt-get install {}",
        missing.join(", "),
        missing.join(" ")
    );
    Ok(kernel)
}

pub fn run(args: Args) -> Result<()> {
    let kernel = check(&args)?;
    // Absolute, for Bochs, which runs in it.
    let out = match &args.out {
        Some(o) => std::path::absolute(o).with_context(|| format!("--out {}", o.display()))?,
        None => crate::workspace_root().join("target/emulate-avx512"),
    };
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let tests = build_tests(&out.join("target"))?;

    let mut initramfs = Cpio::default();
    for dir in ["bin", "dev", "proc", "tmp", "t"] {
        initramfs.entry(dir, 0o040_755, &[])?;
    }
    // The console the kernel gives init, before any file system is mounted.
    initramfs.device("dev/console", 0o020_600, (5, 1));
    initramfs.entry("bin/busybox", 0o100_755, &read(Path::new(FILES[0].0))?)?;
    for (name, _, path) in &tests {
        initramfs.entry(&format!("t/{name}"), 0o100_755, &read(path)?)?;
    }
    initramfs.entry("init", 0o100_755, init_script(&tests).as_bytes())?;
    let iso_dir = out.join("iso");
    let isolinux = iso_dir.join("isolinux");
    std::fs::create_dir_all(&isolinux).with_context(|| format!("creating {}", isolinux.display()))?;
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(&initramfs.finish())?;
    write(&iso_dir.join("initrd.gz"), &gz.finish()?)?;
    write(&iso_dir.join("vmlinuz"), &read(&kernel)?)?;
    for f in [FILES[1].0, FILES[2].0] {
        let name = Path::new(f).file_name().unwrap_or_default();
        write(&isolinux.join(name), &read(Path::new(f))?)?;
    }
    let cfg = format!(
        "DEFAULT t\nPROMPT 0\nTIMEOUT 0\nLABEL t\n  KERNEL /vmlinuz\n  APPEND initrd=/initrd.gz {KERNEL_ARGS}\n"
    );
    write(&isolinux.join("isolinux.cfg"), cfg.as_bytes())?;
    let iso = out.join("boot.iso");
    let xorriso = Command::new("xorriso")
        .args(["-as", "mkisofs", "-quiet", "-o"])
        .arg(&iso)
        .args(["-b", "isolinux/isolinux.bin", "-c", "isolinux/boot.cat"])
        .args(["-no-emul-boot", "-boot-load-size", "4", "-boot-info-table"])
        .arg(&iso_dir)
        .output()
        .context("running xorriso")?;
    ensure!(
        xorriso.status.success(),
        "xorriso could not write {}: {}",
        iso.display(),
        String::from_utf8_lossy(&xorriso.stderr).trim()
    );

    let serial = out.join("serial.log");
    let _ = std::fs::remove_file(&serial);
    let bochsrc = format!(
        "megs: 2048\n\
         cpu: model=corei7_skylake_x, count=1, ips=200000000\n\
         romimage: file={}\n\
         vgaromimage: file={}\n\
         display_library: rfb, options=\"timeout=0\"\n\
         ata0-master: type=cdrom, path=boot.iso, status=inserted\n\
         boot: cdrom\n\
         com1: enabled=1, mode=file, dev=serial.log\n\
         clock: sync=none, time0=local\n\
         log: bochs.log\n\
         panic: action=fatal\n\
         error: action=report\n\
         info: action=ignore\n",
        FILES[3].0, FILES[4].0,
    );
    write(&out.join("bochsrc"), bochsrc.as_bytes())?;
    // Debian's Bochs has the debugger built in: continue at its prompt.
    // Its one display without a window is a VNC server (`rfb`), told not
    // to wait for a viewer.
    write(&out.join("debugger.rc"), b"c\n")?;
    println!(
        "booting {} on Bochs' Skylake-X; the guest's output goes to {}",
        kernel.display(),
        serial.display()
    );
    let console_path = out.join("bochs.out");
    let console = std::fs::File::create(&console_path)
        .with_context(|| format!("writing {}", console_path.display()))?;
    let mut bochs = Command::new("bochs")
        .current_dir(&out)
        .args(["-q", "-rc", "debugger.rc", "-f", "bochsrc"])
        .stdin(Stdio::null())
        .stdout(console.try_clone()?)
        .stderr(console)
        .spawn()
        .context("starting bochs")?;
    let started = Instant::now();
    let limit = Duration::from_secs(60 * args.timeout);
    let read_serial = || String::from_utf8_lossy(&std::fs::read(&serial).unwrap_or_default()).into_owned();
    let status = loop {
        if let Some(status) = bochs.try_wait()? {
            break status;
        }
        // Bochs takes the reboot after a kernel panic as a reset and boots
        // again, so a panic is caught here rather than by the timeout.
        let stuck = if started.elapsed() > limit {
            Some(format!("--timeout {}: the guest was still running", args.timeout))
        } else if started.elapsed().as_secs().is_multiple_of(10) && read_serial().contains("Kernel panic") {
            Some("the guest's kernel panicked".to_string())
        } else {
            None
        };
        if let Some(why) = stuck {
            let _ = bochs.kill();
            let _ = bochs.wait();
            bail!("{why}; its output is in {}", serial.display());
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    let log = read_serial();
    ensure!(
        log.contains("xtask: flags"),
        "Bochs stopped ({status}) before the guest's init ran; see {}, {} and {}",
        console_path.display(),
        out.join("bochs.log").display(),
        serial.display()
    );
    let summary = verdict(&log, tests.len())
        .with_context(|| format!("the guest's output is in {}", serial.display()))?;
    println!("{summary}");
    println!(
        "all {} test binaries passed on the AVX-512 path in {:.0} min",
        tests.len(),
        started.elapsed().as_secs_f64() / 60.0
    );
    Ok(())
}

/// Builds the test binaries, statically linked so that the initramfs
/// needs no C library; returns each one's name, filter and path.
fn build_tests(target_dir: &Path) -> Result<Vec<(String, &'static str, PathBuf)>> {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(crate::workspace_root())
        .args(["test", "--release", "--no-run", "--lib", "--tests"])
        .args([
            "--target",
            "x86_64-unknown-linux-gnu",
            "--message-format",
            "json-render-diagnostics",
        ])
        .env("CARGO_TARGET_DIR", target_dir)
        .env("RUSTFLAGS", "-C target-feature=+crt-static -C strip=debuginfo")
        .stderr(Stdio::inherit());
    for (package, _, _, _) in TESTS {
        cmd.args(["-p", package]);
    }
    let output = cmd.output().context("running cargo test --no-run")?;
    ensure!(output.status.success(), "building the tests failed");
    let mut found = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let (Some(exe), Some(manifest), Some(name)) = (
            msg["executable"].as_str(),
            msg["manifest_path"].as_str(),
            msg["target"]["name"].as_str(),
        ) else {
            continue;
        };
        let is_lib = msg["target"]["kind"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == "lib"));
        let wanted = TESTS.iter().find(|(_, dir, target, _)| {
            Path::new(manifest).ends_with(Path::new(dir).join("Cargo.toml"))
                && if *target == "lib" {
                    is_lib
                } else {
                    !is_lib && name == *target
                }
        });
        if let Some((_, dir, target, filter)) = wanted {
            let krate = dir.rsplit('/').next().unwrap_or(dir);
            found.push((format!("{krate}-{target}"), *filter, PathBuf::from(exe)));
        }
    }
    found.sort();
    ensure!(
        found.len() == TESTS.len(),
        "cargo built {} of the {} test binaries ({:?})",
        found.len(),
        TESTS.len(),
        found.iter().map(|(n, _, _)| n).collect::<Vec<_>>()
    );
    Ok(found)
}

/// Reads the guest's serial output: AVX-512 seen, every binary run and
/// passed, no trial ignored (a skipped path is one). Returns each binary's
/// result line.
fn verdict(log: &str, binaries: usize) -> Result<String> {
    let log: String = strip_ansi(log);
    let flags = log
        .lines()
        .find(|l| l.starts_with("xtask: flags"))
        .unwrap_or_default();
    ensure!(
        flags.split_whitespace().any(|f| f == "avx512f"),
        "the guest's CPU showed no avx512f (its flags: {:?})",
        flags.trim_start_matches("xtask: ")
    );
    let mut summary = String::new();
    let mut exits = 0;
    let mut result = None;
    for line in log.lines() {
        if line.starts_with("test result:") {
            result = Some(line.to_string());
        } else if let Some(rest) = line.strip_prefix("xtask: exit ") {
            let (code, name) = rest.split_once(' ').unwrap_or((rest, ""));
            ensure!(code == "0", "{name} failed in the guest (exit code {code})");
            // Every trial of these binaries runs on AVX-512: none may be
            // ignored, and a filter that matches nothing is a failure.
            let result = result.take().unwrap_or_default();
            let count = |what: &str| {
                let before = result.split(&format!(" {what}")).next()?;
                before.rsplit(' ').next()?.parse::<usize>().ok()
            };
            ensure!(
                count("passed").is_some_and(|n| n > 0) && count("ignored") == Some(0),
                "{name}: expected tests run and none ignored, found {result:?}"
            );
            summary += &format!("{name}: {result}\n");
            exits += 1;
        }
    }
    ensure!(
        exits == binaries && log.contains("xtask: done"),
        "the guest stopped after {exits} of {binaries} test binaries"
    );
    Ok(summary.trim_end().to_string())
}

/// The text without terminal colour sequences.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// An initramfs: a cpio archive in the `newc` format the kernel unpacks.
#[derive(Default)]
struct Cpio {
    bytes: Vec<u8>,
    inode: u32,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, body: &[u8]) -> Result<()> {
        let size = u32::try_from(body.len())
            .map_err(|_| anyhow::anyhow!("{name}: over the 4 GiB a cpio file can hold"))?;
        self.header(name, mode, size, (0, 0));
        self.bytes.extend_from_slice(body);
        self.pad();
        Ok(())
    }

    fn device(&mut self, name: &str, mode: u32, (major, minor): (u32, u32)) {
        self.header(name, mode, 0, (major, minor));
    }

    fn header(&mut self, name: &str, mode: u32, size: u32, (major, minor): (u32, u32)) {
        self.inode += 1;
        let nlink = if mode & 0o170_000 == 0o040_000 { 2 } else { 1 };
        // inode, mode, uid, gid, nlink, mtime, size, dev major and minor,
        // rdev major and minor, name size with its NUL, checksum.
        let fields = [
            self.inode,
            mode,
            0,
            0,
            nlink,
            0,
            size,
            0,
            0,
            major,
            minor,
            name.len() as u32 + 1,
            0,
        ];
        self.bytes.extend_from_slice(b"070701");
        for f in fields {
            self.bytes.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes.push(0);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.bytes.len().is_multiple_of(4) {
            self.bytes.push(0);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        self.header("TRAILER!!!", 0, 0, (0, 0));
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The archive as GNU cpio lists it: an independent reader of the
    /// format. Without cpio the test says it skipped, and fails under CI,
    /// whose script installs it.
    #[test]
    fn cpio_lists_the_archive() {
        let mut a = Cpio::default();
        a.entry("t", 0o040_755, &[]).unwrap();
        a.device("console", 0o020_600, (5, 1));
        a.entry("t/one", 0o100_755, b"abc").unwrap();
        a.entry("t/two-longer-name", 0o100_644, &[7; 1001]).unwrap();
        let archive = a.finish();
        let listed = Command::new("cpio")
            .args(["-itv", "--quiet"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                child.stdin.take().unwrap().write_all(&archive)?;
                child.wait_with_output()
            });
        let listed = match listed {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && std::env::var_os("CI").is_none() => {
                eprintln!("skipped: GNU cpio is not installed");
                return;
            }
            r => r.expect("GNU cpio lists the archive"),
        };
        assert!(listed.status.success());
        let lines: Vec<Vec<String>> = String::from_utf8_lossy(&listed.stdout)
            .lines()
            .map(|l| l.split_whitespace().map(String::from).collect())
            .collect();
        // Mode first and name last; a device shows its numbers as "5, 1".
        let entry = |name: &str| {
            lines
                .iter()
                .find(|l| l.last().map(String::as_str) == Some(name))
                .cloned()
        };
        assert_eq!(entry("t").unwrap()[0], "drwxr-xr-x", "{lines:?}");
        let console = entry("console").unwrap();
        assert_eq!(console[0], "crw-------");
        assert!(console.join(" ").contains(" 5, 1 "), "{console:?}");
        let one = entry("t/one").unwrap();
        assert_eq!((one[0].as_str(), one[4].as_str()), ("-rwxr-xr-x", "3"), "{one:?}");
        let two = entry("t/two-longer-name").unwrap();
        assert_eq!(
            (two[0].as_str(), two[4].as_str()),
            ("-rw-r--r--", "1001"),
            "{two:?}"
        );
        assert_eq!(lines.len(), 4, "{lines:?}");
    }

    #[test]
    fn the_verdict_needs_avx512_every_binary_and_no_skip() {
        let ok = "xtask: flags\t: fpu avx2 avx512f\nxtask: run a\n\u{1b}[32mtest result: ok. 3 passed; 0 failed; 0 ignored\u{1b}[0m\n\
                  xtask: exit 0 a\nxtask: done\n";
        assert_eq!(
            verdict(ok, 1).unwrap(),
            "a: test result: ok. 3 passed; 0 failed; 0 ignored"
        );
        for (log, says) in [
            (ok.replace(" avx512f", ""), "no avx512f"),
            (
                ok.replace("exit 0", "exit 101"),
                "a failed in the guest (exit code 101)",
            ),
            (ok.replace("xtask: done\n", ""), "after 1 of 1"),
            (ok.replace("3 passed", "0 passed"), "expected tests run"),
            // A path the CPU lacks shows as ignored trials.
            (ok.replace("0 ignored", "6 ignored"), "none ignored"),
        ] {
            let e = verdict(&log, 1).unwrap_err().to_string();
            assert!(e.contains(says), "{e}");
        }
        assert!(verdict(ok, 2).unwrap_err().to_string().contains("after 1 of 2"));
    }
}
