//! Shared helpers: the oracle tools, disk images, stream surgery.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use zvol_stream::fletcher::Fletcher4;
use zvol_stream::format::{self, Header, RECORD_LEN, TRAILER_OFF};
use zvol_stream::WriteOptions;

/// The OpenZFS oracle directory; panics (the test fails) when missing.
pub fn oracle() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/oracle/openzfs");
    assert!(
        d.join("zstream").is_file() && d.join("zvol-golden").is_file(),
        "the OpenZFS oracle (zstream, zvol-golden) is missing at {}: these tests need \
         shared/oracle/openzfs beside the work tree (see its README.md)",
        d.display()
    );
    d
}

/// The zvol-stream binary.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_zvol-stream"));
    c.env_remove("ZVOL_STREAM_LOG");
    c
}

/// Run a command, returning its output (never panics on a non-zero exit).
pub fn run(mut c: Command) -> Output {
    c.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {c:?}: {e}"))
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `zstream dump` of a stream file: (success, stdout + stderr).
pub fn zstream_dump(stream: &Path, verbose: bool) -> (bool, String) {
    let mut c = Command::new(oracle().join("zstream"));
    c.arg("dump");
    if verbose {
        c.arg("-v");
    }
    c.arg(stream);
    let o = run(c);
    (o.status.success(), format!("{}{}", stdout(&o), stderr(&o)))
}

/// `zvol-golden recv STREAM OUT WORKDIR`: the real receive path; Ok(the
/// received disk) or Err(its stderr).
pub fn golden_recv(stream: &Path, work: &Path) -> Result<Vec<u8>, String> {
    let out = work.join(format!(
        "golden-recv-{}.img",
        stream.file_name().unwrap().to_string_lossy()
    ));
    let mut c = Command::new(oracle().join("zvol-golden"));
    c.arg("recv").arg(stream).arg(&out).arg(work);
    let o = run(c);
    if !o.status.success() {
        return Err(stderr(&o));
    }
    let data = std::fs::read(&out).unwrap();
    std::fs::remove_file(&out).unwrap();
    Ok(data)
}

/// `zvol-golden send IMAGE VBS OUT WORKDIR`: a genuine `zfs send` stream.
pub fn golden_send(image: &Path, vbs: u32, out: &Path, work: &Path, compression_off: bool) {
    let mut c = Command::new(oracle().join("zvol-golden"));
    c.arg("send")
        .arg(image)
        .arg(vbs.to_string())
        .arg(out)
        .arg(work);
    if compression_off {
        c.env("ZVOL_GOLDEN_COMPRESSION", "off");
    } else {
        c.env_remove("ZVOL_GOLDEN_COMPRESSION");
    }
    let o = run(c);
    assert!(
        o.status.success(),
        "zvol-golden send failed: {}",
        stderr(&o)
    );
}

/// Deterministic pseudo-random bytes (xorshift64).
pub fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut v = Vec::with_capacity(n + 8);
    while v.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(n);
    v
}

/// Disk images by kind.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// Mostly zero: a few random blocks and small runs of text.
    Sparse,
    /// All random.
    Random,
    /// Text (compressible, no zero blocks).
    Text,
    /// All zero.
    Zeros,
    /// Alternating data and hole runs of odd lengths, including a zero last block.
    Mixed,
}

pub fn image(kind: Kind, len: usize, seed: u64) -> Vec<u8> {
    match kind {
        Kind::Zeros => vec![0; len],
        Kind::Random => random_bytes(len, seed),
        Kind::Text => {
            let line = format!(
                "{seed}: The quick brown fox jumps over the lazy dog; zvol-stream test text.\n"
            );
            line.as_bytes().iter().copied().cycle().take(len).collect()
        }
        Kind::Sparse => {
            let mut v = vec![0u8; len];
            let r = random_bytes(len, seed);
            // a data island every ~37 KiB, 3 KiB long, at odd offsets
            let mut o = 1000usize;
            while o + 3072 < len {
                v[o..o + 3072].copy_from_slice(&r[o..o + 3072]);
                o += 37 * 1024 + 123;
            }
            v[0] = 0xeb; // a boot sector-ish first byte
            v
        }
        Kind::Mixed => {
            let mut v = vec![0u8; len];
            let r = random_bytes(len, seed);
            let mut o = 0usize;
            let mut k = 1usize;
            while o < len {
                let data = (k * 5000) % 70_000 + 1;
                let end = (o + data).min(len);
                v[o..end].copy_from_slice(&r[o..end]);
                o = end + (k * 7919) % 90_000;
                k += 1;
            }
            let tail = len.saturating_sub(140 * 1024);
            v[tail..].fill(0);
            v
        }
    }
}

/// Write a stream of `disk` with the library (fixed guid and time).
pub fn make_stream(disk: &[u8], vbs: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let opts = WriteOptions {
        volblocksize: vbs,
        guid: Some(0x1234_5678_9abc_def1),
        creation_time: Some(1_700_000_000),
        ..Default::default()
    };
    zvol_stream::write_stream(disk, disk.len() as u64, &mut out, &opts).unwrap();
    out
}

/// Read a stream into a fresh file with the library; the disk bytes.
pub fn read_back(stream: &[u8], dir: &Path) -> Result<Vec<u8>, zvol_stream::Error> {
    let p = dir.join("read-back.raw");
    let mut f = std::fs::File::create(&p).unwrap();
    zvol_stream::read_stream(stream, &mut f)?;
    drop(f);
    let d = std::fs::read(&p).unwrap();
    std::fs::remove_file(&p).unwrap();
    Ok(d)
}

/// One record of a stream: where its header starts and its payload length.
#[derive(Debug, Clone, Copy)]
pub struct Rec {
    pub offset: usize,
    pub drr_type: u32,
    pub payload: usize,
}

impl Rec {
    pub fn end(&self) -> usize {
        self.offset + RECORD_LEN + self.payload
    }
}

pub fn header_at(s: &[u8], at: usize) -> Header {
    let mut h = Header::default();
    h.0.copy_from_slice(&s[at..at + RECORD_LEN]);
    h
}

/// Split a (valid-framed) stream into records.
pub fn records(s: &[u8]) -> Vec<Rec> {
    let mut v = Vec::new();
    let mut at = 0;
    while at < s.len() {
        let h = header_at(s, at);
        let t = h.drr_type();
        let payload = if t == format::DRR_BEGIN {
            h.payloadlen() as usize
        } else {
            zvol_stream::parse::payload_len(&h).expect("known record type") as usize
        };
        v.push(Rec {
            offset: at,
            drr_type: t,
            payload,
        });
        at += RECORD_LEN + payload;
    }
    v
}

/// Recompute every record trailer and the END checksum after an edit, as
/// a sender would have written them.
pub fn reseal(s: &mut [u8]) {
    let mut ck = Fletcher4::new();
    for r in records(s) {
        let h = r.offset;
        if r.drr_type == format::DRR_END {
            let c = ck.to_bytes();
            s[h + 8..h + 40].copy_from_slice(&c);
        }
        ck.update(&s[h..h + TRAILER_OFF]);
        if r.drr_type != format::DRR_BEGIN {
            let c = ck.to_bytes();
            s[h + TRAILER_OFF..h + RECORD_LEN].copy_from_slice(&c);
        }
        ck.update(&s[h + TRAILER_OFF..h + RECORD_LEN]);
        ck.update(&s[h + RECORD_LEN..r.end()]);
    }
}

/// A temporary directory for a test.
pub fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("zvol-stream-test.")
        .tempdir()
        .unwrap()
}

/// Blocks the file at `p` has allocated on disk, in bytes (st_blocks * 512).
pub fn allocated(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).unwrap().blocks() * 512
}
