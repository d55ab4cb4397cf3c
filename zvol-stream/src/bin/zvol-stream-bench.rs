//! Benchmark (not a test): a half-sparse disk (default 2 GiB) through
//! `cat` (to /dev/null and to a file), `gzip -1`, `zvol-stream write` and `zvol-stream read`, in one run.
//!
//!     cargo build --release -p zvol-stream
//!     target/release/zvol-stream-bench [--size MIB] [--dir DIR] [--keep]
//!
//! Rates are of the disk's logical size (MB = 10^6 bytes). The peak RSS of
//! each zvol-stream run is its VmHWM, polled from `/proc/<pid>/status` while
//! it runs (VmHWM only grows, so the last value read is the peak so far).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

const MIB: u64 = 1 << 20;

/// The disk: 1 MiB extents, alternately data and hole; data extents are
/// alternately pseudo-random (incompressible) and text.
fn make_disk(path: &Path, size: u64) -> anyhow::Result<()> {
    let mut f = std::fs::File::create(path)?;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let text: Vec<u8> =
        b"The quick brown fox jumps over the lazy dog. zvol-stream bench text line.\n"
            .iter()
            .copied()
            .cycle()
            .take(MIB as usize)
            .collect();
    let mut buf = vec![0u8; MIB as usize];
    let extents = size / MIB;
    for i in 0..extents {
        match i % 4 {
            0 => {
                for w in buf.chunks_exact_mut(8) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    w.copy_from_slice(&x.to_le_bytes());
                }
                f.write_all(&buf)?;
            }
            2 => f.write_all(&text)?,
            _ => {
                use std::io::Seek;
                f.seek(std::io::SeekFrom::Current(MIB as i64))?;
            }
        }
    }
    f.set_len(size)?;
    f.sync_all()?;
    Ok(())
}

struct Run {
    secs: f64,
    peak_rss_kib: Option<u64>,
}

fn vm_hwm(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Run a command with stdout to `stdout` (a file path, or /dev/null),
/// timing it and polling its peak RSS.
fn timed(mut cmd: Command, stdout: &Path) -> anyhow::Result<Run> {
    let out = std::fs::File::create(stdout)?;
    let t = Instant::now();
    let mut child = cmd
        .stdout(out)
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("running {cmd:?}"))?;
    let pid = child.id();
    let mut peak = None;
    let status = loop {
        if let Some(h) = vm_hwm(pid) {
            peak = Some(peak.map_or(h, |p: u64| p.max(h)));
        }
        if let Some(st) = child.try_wait()? {
            break st;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let secs = t.elapsed().as_secs_f64();
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(Run {
        secs,
        peak_rss_kib: peak,
    })
}

fn main() -> anyhow::Result<()> {
    let mut size_mib = 2048u64;
    let mut dir: Option<PathBuf> = None;
    let mut keep = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--size" => size_mib = args.next().context("--size needs MiB")?.parse()?,
            "--dir" => dir = Some(args.next().context("--dir needs a directory")?.into()),
            "--keep" => keep = true,
            "-h" | "--help" => {
                println!("usage: zvol-stream-bench [--size MIB] [--dir DIR] [--keep]\nTimes cat, gzip -1, zvol-stream write and read on a half-sparse disk (default 2048 MiB).");
                return Ok(());
            }
            other => bail!("unknown argument {other} (see --help)"),
        }
    }
    let exe = std::env::current_exe()?;
    let cli = exe.with_file_name("zvol-stream");
    if !cli.is_file() {
        bail!(
            "{} missing: cargo build --release -p zvol-stream",
            cli.display()
        );
    }
    let base = dir.unwrap_or_else(std::env::temp_dir);
    let work = tempfile::Builder::new()
        .prefix("zvol-stream-bench.")
        .tempdir_in(&base)?;
    let d = work.path();
    let size = size_mib * MIB;
    let raw = d.join("disk.raw");
    let t = Instant::now();
    make_disk(&raw, size)?;
    println!(
        "disk: {} MiB, half holes, half data (random and text), made in {:.1} s at {}",
        size_mib,
        t.elapsed().as_secs_f64(),
        raw.display()
    );
    let null = Path::new("/dev/null");

    // warm the page cache, then measure
    let mut c = Command::new("cat");
    c.arg(&raw);
    timed(c, null)?;
    let mut c = Command::new("cat");
    c.arg(&raw);
    let cat = timed(c, null)?;

    // the same bytes written to a file: what writing costs here
    let copy = d.join("copy.raw");
    let mut c = Command::new("cat");
    c.arg(&raw);
    let cat_file = timed(c, &copy)?;
    std::fs::remove_file(&copy)?;

    let mut c = Command::new("gzip");
    c.args(["-1", "-c"]).arg(&raw);
    let gzip = timed(c, null)?;

    let stream = d.join("disk.zfs");
    let mut c = Command::new(&cli);
    c.args(["write", "-b", "8K"]).arg(&raw).arg(&stream);
    let write = timed(c, null)?;
    let stream_len = std::fs::metadata(&stream)?.len();

    let back = d.join("back.raw");
    let mut c = Command::new(&cli);
    c.arg("read").arg(&stream).arg(&back);
    let read = timed(c, null)?;

    // the disk must come back exactly
    let st = Command::new("cmp").arg(&raw).arg(&back).status()?;
    if !st.success() {
        bail!("read-back disk differs from the original");
    }
    #[cfg(unix)]
    let alloc = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&back)?.blocks() * 512
    };
    #[cfg(not(unix))]
    let alloc = std::fs::metadata(&back)?.len();

    let mbs = |r: &Run| size as f64 / 1e6 / r.secs;
    println!(
        "{:<22} {:>8} {:>10} {:>10} {:>12}",
        "step", "seconds", "MB/s", "vs cat", "peak RSS"
    );
    for (name, r) in [
        ("cat > /dev/null", &cat),
        ("cat > file", &cat_file),
        ("gzip -1 > /dev/null", &gzip),
        ("zvol-stream write", &write),
        ("zvol-stream read", &read),
    ] {
        println!(
            "{:<22} {:>8.2} {:>10.0} {:>9.2}x {:>12}",
            name,
            r.secs,
            mbs(r),
            r.secs / cat.secs,
            r.peak_rss_kib
                .map_or("-".to_string(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
        );
    }
    println!(
        "stream: {} bytes ({:.1}% of the disk); read-back disk identical (cmp), {} MiB allocated",
        stream_len,
        100.0 * stream_len as f64 / size as f64,
        alloc / MIB
    );
    if keep {
        let kept = work.keep();
        println!("kept {}", kept.display());
    }
    Ok(())
}
