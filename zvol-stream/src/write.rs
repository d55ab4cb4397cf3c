//! Raw disk -> full send stream of a zvol snapshot, block by block.
//!
//! The records and their order are those of `zfs send pool/vol@snap` of a
//! zvol whose every block was written (FORMAT.md section 6):
//!
//! ```text
//! BEGIN   substream, features 0, objset type zvol, flags 0xc, fresh guid
//! OBJECT  1 (DMU_OT_ZVOL, blksz = volblocksize)
//! FREE    1 from volsize to the end of the object
//! WRITE   1 for each block with data / FREE 1 for each run of zero blocks
//! OBJECT  2 (DMU_OT_ZVOL_PROP, blksz 512)
//! FREE    2 from 512 to the end
//! WRITE   2 0..512: a microzap holding "size" = volsize
//! FREE    2 512..1536 (the ZAP dnode's two hole block pointers)
//! FREEOBJECTS 3..31
//! END     with the stream's fletcher-4
//! ```
//!
//! WRITE records carry no block checksum (`drr_checksumtype` OFF, zero
//! key), as a sender writes for blocks that have none; a receiver does not
//! use the key. All-zero blocks are holes, as on a zvol with compression
//! (the default): they are sent as FREE, never as data.
//!
//! When the size is not known up front (a pipe), the "FREE 1 from volsize"
//! record is written after the last data record of object 1 instead of
//! before the first: offsets still only grow, and the receiver frees the
//! same (empty) range.

use std::io::{self, BufWriter, Read, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::error::Error;
use crate::fletcher::Fletcher4;
use crate::format::{self, off, Header, RECORD_LEN, TRAILER_OFF};

/// The default snapshot name written into BEGIN (`drr_toname`). Triton's
/// `imgadm` receives into `zones/<uuid>` and keeps the `@final` snapshot.
pub const DEFAULT_NAME: &str = "zones/image@final";
/// The default volblocksize (what illumos, and so SmartOS, uses).
pub const DEFAULT_VOLBLOCKSIZE: u32 = 8192;

/// How to write a stream.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// The zvol's block size: a power of two from 512 to 128K.
    pub volblocksize: u32,
    /// `pool/vol@snap`, written into BEGIN.
    pub name: String,
    /// Zero-pad a disk whose size is not a multiple of `volblocksize`
    /// (else it is refused).
    pub pad: bool,
    /// The snapshot guid; None = random.
    pub guid: Option<u64>,
    /// The snapshot creation time (seconds since the epoch); None = now.
    pub creation_time: Option<u64>,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            volblocksize: DEFAULT_VOLBLOCKSIZE,
            name: DEFAULT_NAME.to_string(),
            pad: false,
            guid: None,
            creation_time: None,
        }
    }
}

/// What was written.
#[derive(Debug, Clone, Serialize)]
pub struct WriteSummary {
    pub name: String,
    pub guid: u64,
    pub volblocksize: u32,
    /// The zvol `size` property (the disk size, padded when `pad`).
    pub size: u64,
    /// Bytes read from the raw disk.
    pub raw_bytes: u64,
    /// Blocks sent as WRITE.
    pub data_blocks: u64,
    /// All-zero blocks sent as FREE.
    pub hole_blocks: u64,
    /// Records in the stream.
    pub records: u64,
    /// Bytes of stream written.
    pub stream_bytes: u64,
    /// The END checksum, `a/b/c/d` in hex.
    pub checksum: String,
}

/// Parse a volblocksize: bytes (`8192`) or with a K suffix (`8K`, `8k`);
/// a power of two from 512 to 128K.
pub fn parse_volblocksize(s: &str) -> Result<u32, Error> {
    let bad = || Error::BadVolblocksize(s.to_string());
    let t = s.trim();
    let (num, mult) = match t.strip_suffix(['K', 'k']) {
        Some(n) => (n, 1024u64),
        None => (t, 1u64),
    };
    let n: u64 = num.parse().map_err(|_| bad())?;
    let v = n.checked_mul(mult).ok_or_else(bad)?;
    check_volblocksize(v).map_err(|_| bad())
}

fn check_volblocksize(v: u64) -> Result<u32, Error> {
    if v.is_power_of_two() && (format::MIN_BLOCKSIZE..=format::OLD_MAX_BLOCKSIZE).contains(&v) {
        Ok(v as u32)
    } else {
        Err(Error::BadVolblocksize(v.to_string()))
    }
}

/// Check `pool/vol@snap` as `zfs receive` would take it: at most 255
/// bytes, one `@`, non-empty `/`-separated components of letters, digits
/// and `_-:.`, the pool name starting with a letter.
pub fn validate_name(name: &str) -> Result<(), Error> {
    let bad = |reason| Error::BadName {
        name: name.to_string(),
        reason,
    };
    if name.len() >= off::TONAME_LEN {
        return Err(bad("longer than 255 bytes"));
    }
    let (ds, snap) = name
        .split_once('@')
        .ok_or_else(|| bad("want pool/volume@snapshot"))?;
    let ok_chars = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b':' | b'.'))
    };
    if snap.is_empty() || snap.contains('@') || !ok_chars(snap) {
        return Err(bad("bad snapshot part after @"));
    }
    if ds
        .split('/')
        .any(|c| c.is_empty() || !ok_chars(c) || c == "." || c == "..")
    {
        return Err(bad("bad dataset part before @"));
    }
    if !ds.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(bad("the pool name must start with a letter"));
    }
    Ok(())
}

/// Write a stream of a raw disk of `raw_len` bytes read from `raw`.
///
/// Memory is constant (one block and the output buffer). `raw` must
/// yield exactly `raw_len` bytes.
pub fn write_stream<R: Read, W: Write>(
    raw: R,
    raw_len: u64,
    out: W,
    opts: &WriteOptions,
) -> Result<WriteSummary, Error> {
    write_impl(raw, Some(raw_len), out, opts)
}

/// Write a stream of a raw disk whose size is not known up front (e.g. a
/// pipe): the size is what `raw` yields until end of input. See the module
/// documentation for the one record placed differently.
pub fn write_stream_unsized<R: Read, W: Write>(
    raw: R,
    out: W,
    opts: &WriteOptions,
) -> Result<WriteSummary, Error> {
    write_impl(raw, None, out, opts)
}

/// Emits records, keeping the running checksum.
struct Emitter<W: Write> {
    out: BufWriter<W>,
    cksum: Fletcher4,
    bytes: u64,
    records: u64,
    guid: u64,
}

impl<W: Write> Emitter<W> {
    fn emit(&mut self, h: &mut Header, payload: &[u8]) -> Result<(), Error> {
        self.cksum.update(&h.0[..TRAILER_OFF]);
        if h.drr_type() != format::DRR_BEGIN {
            let c = self.cksum.to_bytes();
            h.0[TRAILER_OFF..].copy_from_slice(&c);
        }
        self.cksum.update(&h.0[TRAILER_OFF..]);
        self.cksum.update(payload);
        let w = |e| Error::io("writing the stream", e);
        self.out.write_all(&h.0).map_err(w)?;
        self.out.write_all(payload).map_err(w)?;
        self.bytes += (RECORD_LEN + payload.len()) as u64;
        self.records += 1;
        Ok(())
    }

    fn object(&mut self, object: u64, otype: u32, blksz: u32) -> Result<(), Error> {
        let mut h = Header::new(format::DRR_OBJECT);
        h.set_u64(off::OBJECT_OBJECT, object);
        h.set_u32(off::OBJECT_TYPE, otype);
        h.set_u32(off::OBJECT_BONUSTYPE, 0);
        h.set_u32(off::OBJECT_BLKSZ, blksz);
        h.set_u32(off::OBJECT_BONUSLEN, 0);
        h.set_u8(off::OBJECT_DN_SLOTS, 1);
        h.set_u64(off::OBJECT_TOGUID, self.guid);
        self.emit(&mut h, &[])
    }

    fn free(&mut self, object: u64, offset: u64, length: u64) -> Result<(), Error> {
        let mut h = Header::new(format::DRR_FREE);
        h.set_u64(off::FREE_OBJECT, object);
        h.set_u64(off::FREE_OFFSET, offset);
        h.set_u64(off::FREE_LENGTH, length);
        h.set_u64(off::FREE_TOGUID, self.guid);
        self.emit(&mut h, &[])
    }

    fn write(&mut self, object: u64, otype: u32, offset: u64, data: &[u8]) -> Result<(), Error> {
        let mut h = Header::new(format::DRR_WRITE);
        h.set_u64(off::WRITE_OBJECT, object);
        h.set_u32(off::WRITE_TYPE, otype);
        h.set_u64(off::WRITE_OFFSET, offset);
        h.set_u64(off::WRITE_LOGICAL_SIZE, data.len() as u64);
        h.set_u64(off::WRITE_TOGUID, self.guid);
        h.set_u8(off::WRITE_CHECKSUMTYPE, format::ZIO_CHECKSUM_OFF);
        self.emit(&mut h, data)
    }
}

/// Read until `buf` is full or the input ends; returns the bytes read.
fn read_block<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<usize, Error> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("reading the raw disk", e)),
        }
    }
    Ok(n)
}

/// True when every byte is zero (word-wise, so it vectorizes).
pub(crate) fn is_zero(b: &[u8]) -> bool {
    let mut chunks = b.chunks_exact(64);
    let ok = chunks.all(|c| c.iter().fold(0u8, |acc, &x| acc | x) == 0);
    ok && chunks.remainder().iter().all(|&x| x == 0)
}

/// A 64-bit mixer (splitmix64's finalizer) for the ZAP salt.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The 512-byte microzap of the zvol properties: one entry, "size".
pub(crate) fn zap_block(size: u64, salt: u64) -> [u8; format::ZAP_BLKSZ as usize] {
    let mut b = [0u8; format::ZAP_BLKSZ as usize];
    b[0..8].copy_from_slice(&format::ZBT_MICRO.to_le_bytes());
    b[8..16].copy_from_slice(&(salt | 1).to_le_bytes());
    // mz_normflags @16 = 0; first chunk @64
    let c = format::MZAP_ENT_LEN;
    b[c..c + 8].copy_from_slice(&size.to_le_bytes());
    // mze_cd @72 = 0
    b[c + format::MZAP_NAME_OFF..c + format::MZAP_NAME_OFF + 4].copy_from_slice(b"size");
    b
}

fn write_impl<R: Read, W: Write>(
    mut raw: R,
    raw_len: Option<u64>,
    out: W,
    opts: &WriteOptions,
) -> Result<WriteSummary, Error> {
    let vbs = check_volblocksize(opts.volblocksize as u64)?;
    let bs = vbs as u64;
    validate_name(&opts.name)?;
    let guid = match opts.guid {
        Some(0) => return Err(Error::ZeroGuid),
        Some(g) => g,
        None => loop {
            let g = getrandom::u64()
                .map_err(|e| Error::io("getting a random guid", io::Error::other(e)))?;
            if g != 0 {
                break g;
            }
        },
    };
    let creation_time = opts.creation_time.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    });
    let padded_len = match raw_len {
        Some(0) => return Err(Error::EmptyDisk),
        Some(n) if n % bs != 0 && !opts.pad => {
            return Err(Error::NotMultiple {
                size: n,
                volblocksize: vbs,
            })
        }
        Some(n) => Some(n.div_ceil(bs) * bs),
        None => None,
    };
    tracing::debug!(
        name = %opts.name,
        guid = format!("{guid:#x}"),
        volblocksize = vbs,
        raw_len = ?raw_len,
        "writing a zvol send stream"
    );

    let mut e = Emitter {
        out: BufWriter::with_capacity(1 << 20, out),
        cksum: Fletcher4::new(),
        bytes: 0,
        records: 0,
        guid,
    };

    // BEGIN
    let mut h = Header::new(format::DRR_BEGIN);
    h.set_u64(off::BEGIN_MAGIC, format::MAGIC);
    h.set_u64(off::BEGIN_VERSIONINFO, format::DMU_SUBSTREAM); // features 0
    h.set_u64(off::BEGIN_CREATION_TIME, creation_time);
    h.set_u32(off::BEGIN_TYPE, format::DMU_OST_ZVOL);
    h.set_u32(
        off::BEGIN_FLAGS,
        format::BEGIN_FLAG_FREERECORDS | format::BEGIN_FLAG_SPILL_BLOCK,
    );
    h.set_u64(off::BEGIN_TOGUID, guid);
    h.set_u64(off::BEGIN_FROMGUID, 0);
    h.0[off::BEGIN_TONAME..off::BEGIN_TONAME + opts.name.len()]
        .copy_from_slice(opts.name.as_bytes());
    e.emit(&mut h, &[])?;

    // object 1: the data
    e.object(format::ZVOL_OBJ, format::DMU_OT_ZVOL, vbs)?;
    if let Some(size) = padded_len {
        e.free(format::ZVOL_OBJ, size, format::OBJECT_END)?;
    }
    let mut buf = vec![0u8; vbs as usize];
    let mut offset = 0u64; // of the next block
    let mut raw_bytes = 0u64;
    let mut hole: Option<u64> = None; // start of a pending run of zero blocks
    let (mut data_blocks, mut hole_blocks) = (0u64, 0u64);
    loop {
        // how much to read: a block, or what is left of a known size
        let want = match raw_len {
            Some(len) if raw_bytes >= len => {
                // the size given must be all there is
                let mut probe = [0u8; 1];
                if read_block(&mut raw, &mut probe)? != 0 {
                    return Err(Error::SizeMismatch {
                        expected: len,
                        actual: len + 1,
                    });
                }
                break;
            }
            Some(len) => (len - raw_bytes).min(bs) as usize,
            None => buf.len(),
        };
        let n = read_block(&mut raw, &mut buf[..want])?;
        if let Some(len) = raw_len {
            if n < want {
                return Err(Error::SizeMismatch {
                    expected: len,
                    actual: raw_bytes + n as u64,
                });
            }
        }
        if n == 0 {
            break;
        }
        raw_bytes += n as u64;
        if n < buf.len() {
            if !opts.pad {
                return Err(Error::NotMultiple {
                    size: raw_bytes,
                    volblocksize: vbs,
                });
            }
            buf[n..].fill(0);
        }
        if is_zero(&buf) {
            hole.get_or_insert(offset);
            hole_blocks += 1;
        } else {
            if let Some(start) = hole.take() {
                e.free(format::ZVOL_OBJ, start, offset - start)?;
            }
            e.write(format::ZVOL_OBJ, format::DMU_OT_ZVOL, offset, &buf)?;
            data_blocks += 1;
        }
        offset += bs;
        if n < buf.len() && raw_len.is_none() {
            break;
        }
    }
    if raw_bytes == 0 {
        return Err(Error::EmptyDisk);
    }
    let size = offset;
    if let Some(start) = hole.take() {
        e.free(format::ZVOL_OBJ, start, size - start)?;
    }
    if padded_len.is_none() {
        e.free(format::ZVOL_OBJ, size, format::OBJECT_END)?;
    }

    // object 2: the property ZAP
    e.object(
        format::ZVOL_ZAP_OBJ,
        format::DMU_OT_ZVOL_PROP,
        format::ZAP_BLKSZ,
    )?;
    let zb = format::ZAP_BLKSZ as u64;
    e.free(format::ZVOL_ZAP_OBJ, zb, format::OBJECT_END)?;
    let zap = zap_block(size, mix64(guid));
    e.write(format::ZVOL_ZAP_OBJ, format::DMU_OT_ZVOL_PROP, 0, &zap)?;
    e.free(format::ZVOL_ZAP_OBJ, zb, 2 * zb)?;

    // the rest of the one dnode block is free
    let mut h = Header::new(format::DRR_FREEOBJECTS);
    h.set_u64(off::FREEOBJECTS_FIRSTOBJ, format::ZVOL_ZAP_OBJ + 1);
    h.set_u64(
        off::FREEOBJECTS_NUMOBJS,
        format::DNODES_PER_BLOCK - format::ZVOL_ZAP_OBJ - 1,
    );
    h.set_u64(off::FREEOBJECTS_TOGUID, guid);
    e.emit(&mut h, &[])?;

    // END: the checksum so far, then the usual trailer
    let checksum = e.cksum;
    let mut h = Header::new(format::DRR_END);
    h.0[off::END_CHECKSUM..off::END_CHECKSUM + 32].copy_from_slice(&checksum.to_bytes());
    h.set_u64(off::END_TOGUID, guid);
    e.emit(&mut h, &[])?;
    e.out
        .flush()
        .map_err(|err| Error::io("writing the stream", err))?;

    let summary = WriteSummary {
        name: opts.name.clone(),
        guid,
        volblocksize: vbs,
        size,
        raw_bytes,
        data_blocks,
        hole_blocks,
        records: e.records,
        stream_bytes: e.bytes,
        checksum: checksum.to_hex(),
    };
    tracing::debug!(?summary, "stream written");
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volblocksize_parsing() {
        assert_eq!(parse_volblocksize("8K").unwrap(), 8192);
        assert_eq!(parse_volblocksize("16k").unwrap(), 16384);
        assert_eq!(parse_volblocksize("512").unwrap(), 512);
        assert_eq!(parse_volblocksize("128K").unwrap(), 131072);
        for bad in [
            "256",
            "256K",
            "12K",
            "0",
            "",
            "K",
            "8M",
            "-8K",
            "99999999999999999999K",
        ] {
            let e = parse_volblocksize(bad).unwrap_err();
            assert!(matches!(e, Error::BadVolblocksize(_)), "{bad}: {e}");
        }
    }

    #[test]
    fn names() {
        for good in [
            "zones/image@final",
            "golden/vol@snap",
            "a@b",
            "p/a-b_c.d:e/f@x.1",
        ] {
            validate_name(good).unwrap();
        }
        let long = format!("p/{}@s", "v".repeat(260));
        for bad in [
            "zones/image",
            "zones//x@s",
            "/x@s",
            "x/@s",
            "x@",
            "x@a@b",
            "1pool/v@s",
            "p/v w@s",
            &long,
        ] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn zero_detection() {
        assert!(is_zero(&[0u8; 4096]));
        assert!(is_zero(&[]));
        let mut b = vec![0u8; 4096 + 3];
        b[4096 + 2] = 1;
        assert!(!is_zero(&b));
        b[4096 + 2] = 0;
        b[100] = 0x80;
        assert!(!is_zero(&b));
    }

    #[test]
    fn zap_block_layout() {
        let z = zap_block(1 << 20, 0x1a144);
        assert_eq!(
            u64::from_le_bytes(z[0..8].try_into().unwrap()),
            format::ZBT_MICRO
        );
        assert_eq!(u64::from_le_bytes(z[8..16].try_into().unwrap()), 0x1a145);
        assert_eq!(u64::from_le_bytes(z[64..72].try_into().unwrap()), 1 << 20);
        assert_eq!(&z[78..83], b"size\0");
    }

    #[test]
    fn refusals_before_any_output() {
        let mut out = Vec::new();
        let opts = WriteOptions::default();
        let e = write_stream(&[1u8; 1000][..], 1000, &mut out, &opts).unwrap_err();
        assert!(
            matches!(
                e,
                Error::NotMultiple {
                    size: 1000,
                    volblocksize: 8192
                }
            ),
            "{e}"
        );
        let e = write_stream(&[][..], 0, &mut out, &opts).unwrap_err();
        assert!(matches!(e, Error::EmptyDisk), "{e}");
        assert!(out.is_empty());
        let e = write_stream_unsized(&[][..], &mut out, &opts).unwrap_err();
        assert!(matches!(e, Error::EmptyDisk), "{e}");
    }

    #[test]
    fn size_mismatch_is_an_error() {
        let opts = WriteOptions {
            volblocksize: 512,
            ..Default::default()
        };
        let e = write_stream(&[1u8; 1024][..], 512, io::sink(), &opts).unwrap_err();
        assert!(matches!(e, Error::SizeMismatch { .. }), "{e}");
        let e = write_stream(&[1u8; 512][..], 1024, io::sink(), &opts).unwrap_err();
        assert!(
            matches!(
                e,
                Error::SizeMismatch {
                    expected: 1024,
                    actual: 512
                }
            ),
            "{e}"
        );
    }
}
