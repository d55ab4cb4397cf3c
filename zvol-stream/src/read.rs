//! Full zvol send stream -> raw disk.
//!
//! Only what a plain `zfs send pool/vol@snap` (any OpenZFS or illumos
//! version) can contain is accepted: a single substream, full, of a zvol,
//! with uncompressed WRITE records of at most 128K. Everything else is
//! refused with its own error before anything is kept. Holes stay holes:
//! FREE records and all-zero WRITEs are not written to the disk file,
//! whose size is set at the end from the zvol's `size` property.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::Error;
use crate::format::{self, off};
use crate::parse::{maybe_gunzip, Begin, Next, Parser};
use crate::write::is_zero;

/// What was read.
#[derive(Debug, Clone, Serialize)]
pub struct ReadSummary {
    /// The BEGIN record.
    pub begin: Begin,
    /// Object 1's block size.
    pub volblocksize: u32,
    /// The zvol `size` property: the size of the raw disk.
    pub size: u64,
    /// Bytes of WRITE payload for the zvol data (object 1).
    pub data_bytes: u64,
    /// Records in the stream, BEGIN and END included.
    pub records: u64,
    /// Records whose checksum trailer was zero (not verifiable; old senders).
    pub unchecked_records: u64,
    /// Bytes of (decompressed) stream.
    pub stream_bytes: u64,
}

/// Where the disk goes.
trait Sink {
    fn data(&mut self, offset: u64, data: &[u8]) -> io::Result<()>;
    fn zero(&mut self, offset: u64, len: u64) -> io::Result<()>;
    fn finish(&mut self, size: u64) -> Result<(), Error>;
}

static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

/// A seekable file: holes by seeking past them and `set_len`.
struct FileSink<'a> {
    out: BufWriter<&'a mut File>,
    /// Where the BufWriter's next byte goes.
    pos: u64,
    /// End of the highest data written.
    hwm: u64,
}

impl FileSink<'_> {
    fn put(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        if offset != self.pos {
            self.out.seek(SeekFrom::Start(offset))?;
        }
        self.out.write_all(data)?;
        self.pos = offset + data.len() as u64;
        self.hwm = self.hwm.max(self.pos);
        Ok(())
    }
}

impl Sink for FileSink<'_> {
    fn data(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        if offset >= self.hwm && is_zero(data) {
            return Ok(()); // already a hole
        }
        self.put(offset, data)
    }

    fn zero(&mut self, offset: u64, len: u64) -> io::Result<()> {
        // Only a range over data already written needs zeros; the rest of
        // a fresh file is a hole. A genuine full stream never does this.
        let end = offset.saturating_add(len).min(self.hwm);
        let mut o = offset;
        while o < end {
            let n = (end - o).min(ZEROS.len() as u64) as usize;
            self.put(o, &ZEROS[..n])?;
            o += n as u64;
        }
        Ok(())
    }

    fn finish(&mut self, size: u64) -> Result<(), Error> {
        if self.hwm > size {
            return Err(Error::Invalid(format!(
                "zvol data reaches byte {}, past the volume size {size}",
                self.hwm
            )));
        }
        self.out
            .flush()
            .map_err(|e| Error::io("writing the raw disk", e))?;
        self.out
            .get_ref()
            .set_len(size)
            .map_err(|e| Error::io("setting the raw disk size", e))?;
        Ok(())
    }
}

/// A stream (pipe): data in order, holes written as zeros.
struct SeqSink<W: Write> {
    out: BufWriter<W>,
    pos: u64,
}

impl<W: Write> SeqSink<W> {
    fn fill_to(&mut self, offset: u64) -> io::Result<()> {
        while self.pos < offset {
            let n = (offset - self.pos).min(ZEROS.len() as u64) as usize;
            self.out.write_all(&ZEROS[..n])?;
            self.pos += n as u64;
        }
        Ok(())
    }
}

fn out_of_order(offset: u64, pos: u64) -> io::Error {
    io::Error::other(format!(
        "record for byte {offset} comes after byte {pos} was written: cannot write such a stream to a pipe"
    ))
}

impl<W: Write> Sink for SeqSink<W> {
    fn data(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        if offset < self.pos {
            return Err(out_of_order(offset, self.pos));
        }
        self.fill_to(offset)?;
        self.out.write_all(data)?;
        self.pos += data.len() as u64;
        Ok(())
    }

    fn zero(&mut self, offset: u64, _len: u64) -> io::Result<()> {
        if offset < self.pos {
            return Err(out_of_order(offset, self.pos));
        }
        Ok(()) // zeros are written when the next data or the end comes
    }

    fn finish(&mut self, size: u64) -> Result<(), Error> {
        if self.pos > size {
            return Err(Error::Invalid(format!(
                "zvol data reaches byte {}, past the volume size {size}",
                self.pos
            )));
        }
        let w = |e| Error::io("writing the raw disk", e);
        self.fill_to(size).map_err(w)?;
        self.out.flush().map_err(w)
    }
}

/// Read a stream (plain or gzipped) into `out`, which is truncated first
/// and ends up as the sparse raw disk.
pub fn read_stream<R: Read>(input: R, out: &mut File) -> Result<ReadSummary, Error> {
    out.set_len(0)
        .and_then(|_| out.seek(SeekFrom::Start(0)).map(|_| ()))
        .map_err(|e| Error::io("preparing the raw disk", e))?;
    let mut sink = FileSink {
        out: BufWriter::with_capacity(1 << 20, out),
        pos: 0,
        hwm: 0,
    };
    read_impl(input, &mut sink)
}

/// Read a stream (plain or gzipped) and write the raw disk to `out` in
/// order, holes as zeros (for stdout; prefer [`read_stream`] on a file).
pub fn read_stream_to_writer<R: Read, W: Write>(input: R, out: W) -> Result<ReadSummary, Error> {
    let mut sink = SeqSink {
        out: BufWriter::with_capacity(1 << 20, out),
        pos: 0,
    };
    read_impl(input, &mut sink)
}

/// Check the BEGIN record of a stream to become a disk.
pub fn check_begin(b: &Begin) -> Result<(), Error> {
    if b.hdrtype == format::DMU_COMPOUNDSTREAM {
        return Err(Error::Compound);
    }
    if b.hdrtype != format::DMU_SUBSTREAM {
        return Err(Error::Invalid(format!(
            "unknown stream header type {}",
            b.hdrtype
        )));
    }
    if b.objset_type != format::DMU_OST_ZVOL {
        return Err(Error::NotZvol {
            objset_type: b.objset_type,
            name: format::objset_type_name(b.objset_type),
        });
    }
    if b.fromguid != 0 || b.flags & format::BEGIN_FLAG_CLONE != 0 {
        return Err(Error::Incremental {
            fromguid: b.fromguid,
        });
    }
    if let Some(feature) = unsupported_feature(b.features) {
        return Err(Error::Unsupported { feature });
    }
    Ok(())
}

/// The first feature flag (in order of likelihood) this reader cannot
/// take, described with the `zfs send` option that sets it.
pub fn unsupported_feature(features: u64) -> Option<String> {
    use format::*;
    let table: &[(u64, &str)] = &[
        (FEATURE_RAW, "raw (encrypted) send records (zfs send -w)"),
        (FEATURE_EMBED_DATA, "embedded data records (zfs send -e)"),
        (
            FEATURE_COMPRESSED | FEATURE_LZ4 | FEATURE_ZSTD,
            "compressed WRITE records (zfs send -c)",
        ),
        (
            FEATURE_LARGE_BLOCKS | FEATURE_SWITCH_TO_LARGE_BLOCKS,
            "large blocks over 128K (zfs send -L)",
        ),
        (
            FEATURE_DEDUP | FEATURE_DEDUPPROPS,
            "deduplicated records (zfs send -D)",
        ),
        (FEATURE_SA_SPILL, "spill blocks"),
        (FEATURE_REDACTED, "redacted data (zfs send --redact)"),
        (FEATURE_RESUMING, "a resumed send (zfs send -t)"),
        (FEATURE_LONGNAME, "long names"),
        (FEATURE_LARGE_MICROZAP, "large microzaps"),
    ];
    for &(bits, what) in table {
        if features & bits != 0 {
            return Some(what.to_string());
        }
    }
    // harmless for a zvol: large dnodes (never on a zvol's objects), holds
    let known = FEATURE_NAMES.iter().fold(0, |a, &(b, _)| a | b);
    let unknown = features & !known;
    if unknown != 0 {
        return Some(format!("unknown feature flags {unknown:#x}"));
    }
    None
}

/// The record types a plain zvol stream never has, as refusals.
fn unsupported_record(t: u32) -> Option<&'static str> {
    Some(match t {
        format::DRR_WRITE_BYREF => "deduplicated WRITE_BYREF records (zfs send -D)",
        format::DRR_SPILL => "spill blocks (SPILL records)",
        format::DRR_WRITE_EMBEDDED => "embedded data records (WRITE_EMBEDDED, zfs send -e)",
        format::DRR_OBJECT_RANGE => "raw (encrypted) send records (OBJECT_RANGE, zfs send -w)",
        format::DRR_REDACT => "redacted data (REDACT records)",
        format::DRR_BEGIN => "nested BEGIN records (compound stream)",
        _ => return None,
    })
}

/// The `size` entry of the zvol property microzap.
pub(crate) fn zap_size(block: &[u8]) -> Result<Option<u64>, Error> {
    if block.len() < 2 * format::MZAP_ENT_LEN {
        return Err(Error::Invalid(
            "zvol property ZAP block is too small".into(),
        ));
    }
    let bt = u64::from_le_bytes(block[0..8].try_into().unwrap());
    if bt != format::ZBT_MICRO {
        return Err(Error::Unsupported {
            feature: format!("zvol property ZAP that is not a microzap (block type {bt:#x})"),
        });
    }
    for chunk in block[format::MZAP_ENT_LEN..].chunks_exact(format::MZAP_ENT_LEN) {
        let name = &chunk[format::MZAP_NAME_OFF..format::MZAP_NAME_OFF + format::MZAP_NAME_LEN];
        let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        if &name[..end] == b"size" {
            return Ok(Some(u64::from_le_bytes(chunk[0..8].try_into().unwrap())));
        }
    }
    Ok(None)
}

fn read_impl<R: Read>(input: R, sink: &mut dyn Sink) -> Result<ReadSummary, Error> {
    let input = maybe_gunzip(input)?;
    let mut p = Parser::new(io::BufReader::with_capacity(1 << 20, input));
    let begin = p.begin()?;
    tracing::debug!(?begin, "BEGIN");
    check_begin(&begin)?;
    if begin.payloadlen != 0 {
        tracing::debug!(len = begin.payloadlen, "skipping the BEGIN payload");
    }
    let mut volblocksize: Option<u32> = None;
    let mut size: Option<u64> = None;
    let mut data_bytes = 0u64;
    let w = |e| Error::io("writing the raw disk", e);
    let end = loop {
        let rec = match p.next_record()? {
            Next::End(end) => break end,
            Next::Record(r) => r,
        };
        let h = rec.header;
        let t = h.drr_type();
        let at = || {
            format!(
                "{} record #{} at byte {}",
                format::record_name(t),
                rec.index,
                rec.offset
            )
        };
        if let Some(what) = unsupported_record(t) {
            return Err(Error::Unsupported {
                feature: what.to_string(),
            });
        }
        match t {
            format::DRR_OBJECT => {
                let object = h.u64_at(off::OBJECT_OBJECT);
                let otype = h.u32_at(off::OBJECT_TYPE);
                let blksz = h.u32_at(off::OBJECT_BLKSZ);
                if h.u32_at(off::OBJECT_RAW_BONUSLEN) != 0 {
                    return Err(Error::Unsupported {
                        feature: "raw (encrypted) send records (zfs send -w)".into(),
                    });
                }
                if object == format::ZVOL_OBJ {
                    if otype != format::DMU_OT_ZVOL {
                        return Err(Error::Invalid(format!(
                            "object 1 has type {otype}, not zvol data (23), in {}",
                            at()
                        )));
                    }
                    if !(blksz as u64).is_power_of_two()
                        || !(format::MIN_BLOCKSIZE..=format::OLD_MAX_BLOCKSIZE)
                            .contains(&(blksz as u64))
                    {
                        return Err(Error::Invalid(format!(
                            "volblocksize {blksz} is not a power of two from 512 to 128K, in {}",
                            at()
                        )));
                    }
                    volblocksize = Some(blksz);
                } else if object == format::ZVOL_ZAP_OBJ && otype != format::DMU_OT_ZVOL_PROP {
                    return Err(Error::Invalid(format!(
                        "object 2 has type {otype}, not zvol properties (24), in {}",
                        at()
                    )));
                } else if object > format::ZVOL_ZAP_OBJ {
                    tracing::warn!(object, otype, "ignoring an object a zvol does not have");
                }
            }
            format::DRR_WRITE => {
                let object = h.u64_at(off::WRITE_OBJECT);
                let offset = h.u64_at(off::WRITE_OFFSET);
                let lsize = h.u64_at(off::WRITE_LOGICAL_SIZE);
                if h.u8_at(off::WRITE_COMPRESSIONTYPE) != 0 {
                    return Err(Error::Unsupported {
                        feature: "compressed WRITE records (zfs send -c)".into(),
                    });
                }
                if !(format::MIN_BLOCKSIZE..=format::OLD_MAX_BLOCKSIZE).contains(&lsize) {
                    return Err(Error::Invalid(format!(
                        "WRITE of {lsize} bytes (want 512 to 128K) in {}",
                        at()
                    )));
                }
                if offset.checked_add(lsize).is_none() {
                    return Err(Error::Invalid(format!("offset overflow in {}", at())));
                }
                if object == format::ZVOL_OBJ {
                    if volblocksize.is_none() {
                        return Err(Error::Invalid(format!(
                            "zvol data before its OBJECT record, in {}",
                            at()
                        )));
                    }
                    sink.data(offset, rec.payload).map_err(w)?;
                    data_bytes += lsize;
                } else if object == format::ZVOL_ZAP_OBJ && offset == 0 {
                    if let Some(s) = zap_size(rec.payload)? {
                        size = Some(s);
                    }
                }
            }
            format::DRR_FREE => {
                let object = h.u64_at(off::FREE_OBJECT);
                let offset = h.u64_at(off::FREE_OFFSET);
                let length = h.u64_at(off::FREE_LENGTH);
                if length != format::OBJECT_END && offset.checked_add(length).is_none() {
                    return Err(Error::Invalid(format!("offset overflow in {}", at())));
                }
                if object == format::ZVOL_OBJ {
                    sink.zero(offset, length).map_err(w)?;
                }
            }
            format::DRR_FREEOBJECTS => {
                let first = h.u64_at(off::FREEOBJECTS_FIRSTOBJ);
                let num = h.u64_at(off::FREEOBJECTS_NUMOBJS);
                // old senders wrote an unclamped count up to 2^64 - first
                if first.checked_add(num).is_none() && first.wrapping_add(num) != 0 {
                    return Err(Error::Invalid(format!("object count overflow in {}", at())));
                }
            }
            _ => {}
        }
    };
    if !end.ok() {
        return Err(Error::EndChecksum {
            stream: end.stream.to_hex(),
            computed: end.computed.to_hex(),
        });
    }
    if end.toguid != begin.guid {
        return Err(Error::Invalid(format!(
            "END record's guid {:#x} is not the BEGIN guid {:#x}",
            end.toguid, begin.guid
        )));
    }
    let volblocksize = volblocksize
        .ok_or_else(|| Error::Invalid("no OBJECT record for the zvol data (object 1)".into()))?;
    let size = size.ok_or(Error::MissingSize)?;
    sink.finish(size)?;
    let summary = ReadSummary {
        begin,
        volblocksize,
        size,
        data_bytes,
        records: p.records(),
        unchecked_records: p.unchecked,
        stream_bytes: p.offset(),
    };
    tracing::debug!(?summary, "stream read");
    Ok(summary)
}

/// Open a stream file for reading: `-` is stdin. (Gzip is detected by
/// [`read_stream`] and [`crate::dump()`] themselves.)
pub fn open_input(path: &Path) -> Result<Box<dyn Read>, Error> {
    if path == Path::new("-") {
        return Ok(Box::new(io::stdin().lock()));
    }
    let f = File::open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    Ok(Box::new(f))
}

/// Open a stream file (or `-` for stdin) and un-gzip it when its first
/// bytes are the gzip magic: the plain send stream.
pub fn open_stream(path: &Path) -> Result<Box<dyn Read>, Error> {
    maybe_gunzip(open_input(path)?)
}

/// Read the stream at `stream` (`-` = stdin; plain or gzipped) into the
/// raw disk file `raw` (`-` = stdout, holes then written as zeros).
///
/// The disk is written to a temporary file beside `raw` and renamed over it
/// only when the whole stream checked out, so a refused stream leaves
/// nothing behind. An existing `raw` is an error unless `force`.
pub fn read_stream_path(stream: &Path, raw: &Path, force: bool) -> Result<ReadSummary, Error> {
    if raw == Path::new("-") {
        let input = open_input(stream)?;
        return read_stream_to_writer(input, io::stdout().lock());
    }
    if !force && raw.symlink_metadata().is_ok() {
        return Err(Error::Exists {
            path: raw.to_path_buf(),
        });
    }
    let input = open_input(stream)?;
    let mut tmp = temp_beside(raw)?;
    let summary = read_stream(input, tmp.as_file_mut())?;
    persist(tmp, raw, force)?;
    Ok(summary)
}

/// A temporary file in the directory of `path`, named after it.
pub(crate) fn temp_beside(path: &Path) -> Result<tempfile::NamedTempFile, Error> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(|e| Error::io(format!("creating a temporary file in {}", dir.display()), e))
}

/// Rename the finished temporary file to `path`.
pub(crate) fn persist(tmp: tempfile::NamedTempFile, path: &Path, force: bool) -> Result<(), Error> {
    let r = if force {
        tmp.persist(path).map(|_| ())
    } else {
        tmp.persist_noclobber(path).map(|_| ())
    };
    r.map_err(|e| {
        if e.error.kind() == io::ErrorKind::AlreadyExists {
            Error::Exists {
                path: path.to_path_buf(),
            }
        } else {
            Error::io(
                format!("renaming the result to {}", path.display()),
                e.error,
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_refusals_name_the_feature() {
        use format::*;
        assert_eq!(unsupported_feature(0), None);
        assert_eq!(unsupported_feature(FEATURE_LARGE_DNODE), None);
        let f = |bits| unsupported_feature(bits).unwrap();
        assert!(f(FEATURE_COMPRESSED | FEATURE_LZ4).contains("compressed WRITE"));
        assert!(f(FEATURE_EMBED_DATA | FEATURE_LZ4).contains("embedded data"));
        assert!(f(FEATURE_RAW | FEATURE_COMPRESSED).contains("raw (encrypted)"));
        assert!(f(FEATURE_LARGE_BLOCKS).contains("large blocks"));
        assert!(f(FEATURE_DEDUP).contains("dedup"));
        assert!(f(FEATURE_SA_SPILL).contains("spill"));
        assert!(f(FEATURE_REDACTED).contains("redacted"));
        assert!(f(FEATURE_RESUMING).contains("resumed"));
        assert!(f(1 << 40).contains("unknown feature flags 0x10000000000"));
    }

    #[test]
    fn zap_size_parsing() {
        let z = crate::write::zap_block(12345 * 512, 7);
        assert_eq!(zap_size(&z).unwrap(), Some(12345 * 512));
        let mut other = z;
        other[78..82].copy_from_slice(b"sizf");
        assert_eq!(zap_size(&other).unwrap(), None);
        let mut fat = z;
        fat[0] = 0;
        assert!(matches!(zap_size(&fat), Err(Error::Unsupported { .. })));
    }

    #[test]
    fn file_sink_keeps_holes_and_zeroes_rewrites() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = File::create(dir.path().join("d")).unwrap();
        {
            let mut s = FileSink {
                out: BufWriter::new(&mut f),
                pos: 0,
                hwm: 0,
            };
            s.data(4096, &[7u8; 512]).unwrap();
            s.data(8192, &[0u8; 512]).unwrap(); // a hole: not written
            assert_eq!(s.hwm, 4608);
            s.zero(4096, 256).unwrap(); // over data: zeros written
            s.finish(16384).unwrap();
        }
        let d = std::fs::read(dir.path().join("d")).unwrap();
        assert_eq!(d.len(), 16384);
        assert!(d[..4096 + 256].iter().all(|&b| b == 0));
        assert!(d[4096 + 256..4608].iter().all(|&b| b == 7));
        assert!(d[4608..].iter().all(|&b| b == 0));
    }

    #[test]
    fn seq_sink_fills_holes_with_zeros_and_refuses_going_back() {
        let mut v = Vec::new();
        {
            let mut s = SeqSink {
                out: BufWriter::new(&mut v),
                pos: 0,
            };
            s.zero(0, 1024).unwrap();
            s.data(1024, &[1u8; 512]).unwrap();
            assert!(s.data(0, &[1u8; 512]).is_err());
            s.finish(4096).unwrap();
        }
        assert_eq!(v.len(), 4096);
        assert!(v[..1024].iter().all(|&b| b == 0));
        assert!(v[1024..1536].iter().all(|&b| b == 1));
    }
}
