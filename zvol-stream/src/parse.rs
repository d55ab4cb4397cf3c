//! Reading records off a stream: framing, payload sizes and checksums.
//!
//! [`Parser`] knows nothing about zvols: it splits the input into records,
//! verifies every non-zero record trailer and the END checksum as the
//! receiver does (FORMAT.md section 4), and hands each record to the
//! caller. What a record means is up to `read` and `dump`.

use std::io::{self, Read};

use serde::Serialize;

use crate::error::Error;
use crate::fletcher::Fletcher4;
use crate::format::{self, off, Header, RECORD_LEN, TRAILER_OFF};

/// Largest payload a record may announce before the stream is refused
/// as invalid (a 16 MiB block, the OpenZFS maximum, plus slack).
pub const MAX_PAYLOAD: u64 = 32 << 20;

/// The BEGIN record's fields.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Begin {
    /// `drr_toname`, e.g. `zones/image@final`.
    pub name: String,
    /// `drr_toguid`: the snapshot's guid.
    pub guid: u64,
    /// `drr_fromguid` (0 for a full stream).
    pub fromguid: u64,
    /// `drr_type`: the objset type (3 = zvol).
    pub objset_type: u32,
    /// Header type: 1 = substream, 2 = compound stream.
    pub hdrtype: u64,
    /// Feature flags (versioninfo bits 2..57).
    pub features: u64,
    /// `drr_flags` (0xc for a plain `zfs send`).
    pub flags: u32,
    /// `drr_creation_time` (seconds since the epoch).
    pub creation_time: u64,
    /// `drr_payloadlen` (an nvlist; 0 for a plain send).
    pub payloadlen: u32,
}

impl Begin {
    fn from_header(h: &Header) -> Begin {
        let vi = h.u64_at(off::BEGIN_VERSIONINFO);
        let name_bytes = &h.0[off::BEGIN_TONAME..off::BEGIN_TONAME + off::TONAME_LEN];
        let end = name_bytes
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(name_bytes.len());
        Begin {
            name: String::from_utf8_lossy(&name_bytes[..end]).into_owned(),
            guid: h.u64_at(off::BEGIN_TOGUID),
            fromguid: h.u64_at(off::BEGIN_FROMGUID),
            objset_type: h.u32_at(off::BEGIN_TYPE),
            hdrtype: vi & 3,
            features: (vi >> 2) & ((1u64 << 56) - 1),
            flags: h.u32_at(off::BEGIN_FLAGS),
            creation_time: h.u64_at(off::BEGIN_CREATION_TIME),
            payloadlen: h.payloadlen(),
        }
    }
}

/// What the END record said and whether it holds.
#[derive(Debug, Clone)]
pub struct EndCheck {
    /// The stream checksum written in the END record.
    pub stream: Fletcher4,
    /// The checksum of the data before the END record.
    pub computed: Fletcher4,
    /// END's `drr_toguid`.
    pub toguid: u64,
}

impl EndCheck {
    pub fn ok(&self) -> bool {
        self.stream == self.computed
    }
}

/// One record: its header, where it starts, and its payload (in the
/// parser's buffer).
pub struct Record<'a> {
    pub header: &'a Header,
    pub payload: &'a [u8],
    /// Byte offset of the header in the (decompressed) stream.
    pub offset: u64,
    /// Index of the record (BEGIN is 0).
    pub index: u64,
    /// True when the trailer was all zero (not verified, as the kernel
    /// skips such records; old senders wrote no per-record checksums).
    pub unchecked: bool,
}

/// Splits a stream into records, verifying checksums.
pub struct Parser<R> {
    input: R,
    offset: u64,
    index: u64,
    cksum: Fletcher4,
    header: Header,
    payload: Vec<u8>,
    /// Records whose trailer was zero.
    pub unchecked: u64,
}

/// Read exactly `buf.len()` bytes; Ok(n < len) only at end of input.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl<R: Read> Parser<R> {
    pub fn new(input: R) -> Self {
        Parser {
            input,
            offset: 0,
            index: 0,
            cksum: Fletcher4::new(),
            header: Header::default(),
            payload: Vec::new(),
            unchecked: 0,
        }
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Records read so far.
    pub fn records(&self) -> u64 {
        self.index
    }

    fn fill(&mut self, len: usize, context: impl FnOnce() -> String) -> Result<(), Error> {
        self.payload.resize(len, 0);
        let n = match read_full(&mut self.input, &mut self.payload[..]) {
            Ok(n) => n,
            Err(e) => return Err(map_read_error(e, self.offset, context)),
        };
        if n < len {
            return Err(Error::Truncated {
                offset: self.offset + n as u64,
                context: context(),
            });
        }
        self.offset += len as u64;
        Ok(())
    }

    /// Read a header into `self.header`. Ok(false) at a clean end of input.
    fn read_header(&mut self, context: impl FnOnce() -> String) -> Result<bool, Error> {
        let n = match read_full(&mut self.input, &mut self.header.0) {
            Ok(n) => n,
            Err(e) => return Err(map_read_error(e, self.offset, context)),
        };
        if n == 0 {
            return Ok(false);
        }
        if n < RECORD_LEN {
            return Err(Error::Truncated {
                offset: self.offset + n as u64,
                context: context(),
            });
        }
        self.offset += RECORD_LEN as u64;
        Ok(true)
    }

    /// Read and check the BEGIN record (magic, checksum start, payload).
    pub fn begin(&mut self) -> Result<Begin, Error> {
        if !self.read_header(|| "inside the BEGIN record".into())? {
            return Err(Error::EmptyStream);
        }
        let h = &self.header;
        let magic = h.u64_at(off::BEGIN_MAGIC);
        if h.drr_type() != format::DRR_BEGIN || magic != format::MAGIC {
            if magic.swap_bytes() == format::MAGIC {
                return Err(Error::BigEndian);
            }
            return Err(Error::BadMagic { found: magic });
        }
        let begin = Begin::from_header(h);
        // BEGIN's whole 312 bytes start the checksum (no trailer check).
        self.cksum.update(&self.header.0);
        let plen = begin.payloadlen as u64;
        if plen > MAX_PAYLOAD {
            return Err(Error::Invalid(format!(
                "BEGIN payload of {plen} bytes is too large"
            )));
        }
        self.fill(plen as usize, || "inside the BEGIN payload".into())?;
        self.cksum.update(&self.payload);
        self.index = 1;
        Ok(begin)
    }

    /// The next record after BEGIN, or `Ok(None)` with the END check when
    /// the END record has been read. The caller stops after END.
    pub fn next_record(&mut self) -> Result<Next<'_>, Error> {
        let start = self.offset;
        let index = self.index;
        if !self.read_header(|| format!("before the END record (after {index} records)"))? {
            return Err(Error::Truncated {
                offset: start,
                context: format!("before the END record (after {index} records)"),
            });
        }
        let t = self.header.drr_type();
        let before = self.cksum;
        self.cksum.update(&self.header.0[..TRAILER_OFF]);
        let trailer = self.header.trailer();
        let unchecked = trailer.iter().all(|&b| b == 0);
        if unchecked {
            self.unchecked += 1;
        } else if trailer != self.cksum.to_bytes() {
            return Err(Error::RecordChecksum {
                record: format::record_name(t),
                index,
                offset: start,
            });
        }
        self.cksum.update(&self.header.0[TRAILER_OFF..]);
        self.index += 1;
        if t == format::DRR_END {
            let h = &self.header;
            return Ok(Next::End(EndCheck {
                stream: Fletcher4::from_bytes(&h.0[off::END_CHECKSUM..off::END_CHECKSUM + 32]),
                computed: before,
                toguid: h.u64_at(off::END_TOGUID),
            }));
        }
        let plen = payload_len(&self.header).ok_or_else(|| {
            Error::Invalid(format!(
                "unknown record type {t} in record #{index} at byte {start}"
            ))
        })?;
        if plen > MAX_PAYLOAD {
            return Err(Error::Invalid(format!(
                "{} record #{index} at byte {start} announces a payload of {plen} bytes",
                format::record_name(t)
            )));
        }
        let name = format::record_name(t);
        self.fill(plen as usize, || {
            format!("inside the payload of {name} record #{index}")
        })?;
        self.cksum.update(&self.payload);
        Ok(Next::Record(Record {
            header: &self.header,
            payload: &self.payload,
            offset: start,
            index,
            unchecked,
        }))
    }
}

/// What [`Parser::next_record`] found.
pub enum Next<'a> {
    Record(Record<'a>),
    End(EndCheck),
}

fn map_read_error(e: io::Error, offset: u64, context: impl FnOnce() -> String) -> Error {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        // a gzip member cut short
        Error::Truncated {
            offset,
            context: format!("{} (gzip data ends early)", context()),
        }
    } else {
        Error::io("reading the stream", e)
    }
}

/// The payload length of a record after BEGIN (FORMAT.md section 1), or
/// None for an unknown record type.
pub fn payload_len(h: &Header) -> Option<u64> {
    Some(match h.drr_type() {
        format::DRR_OBJECT => {
            let raw = h.u32_at(off::OBJECT_RAW_BONUSLEN) as u64;
            if raw != 0 {
                raw
            } else {
                format::roundup8(h.u32_at(off::OBJECT_BONUSLEN) as u64)
            }
        }
        format::DRR_WRITE => {
            if h.u8_at(off::WRITE_COMPRESSIONTYPE) != 0 {
                h.u64_at(off::WRITE_COMPRESSED_SIZE)
            } else {
                h.u64_at(off::WRITE_LOGICAL_SIZE)
            }
        }
        format::DRR_SPILL => {
            let c = h.u64_at(40);
            if c != 0 {
                c
            } else {
                h.u64_at(off::SPILL_LENGTH)
            }
        }
        format::DRR_WRITE_EMBEDDED => format::roundup8(h.u32_at(off::EMBEDDED_PSIZE) as u64),
        format::DRR_FREEOBJECTS
        | format::DRR_FREE
        | format::DRR_END
        | format::DRR_WRITE_BYREF
        | format::DRR_OBJECT_RANGE
        | format::DRR_REDACT => 0,
        // BEGIN after BEGIN: a nested substream of a compound stream
        format::DRR_BEGIN => h.payloadlen() as u64,
        _ => return None,
    })
}

/// Peek at the first bytes of `input`: un-gzip it when it starts with the
/// gzip magic (1f 8b), else pass it through unchanged.
pub fn maybe_gunzip<'a, R: Read + 'a>(mut input: R) -> Result<Box<dyn Read + 'a>, Error> {
    let mut magic = [0u8; 2];
    let n = read_full(&mut input, &mut magic).map_err(|e| Error::io("reading the stream", e))?;
    let prefix = io::Cursor::new(magic[..n].to_vec());
    let whole = prefix.chain(input);
    if n == 2 && magic == [0x1f, 0x8b] {
        tracing::debug!("input is gzip-compressed");
        Ok(Box::new(flate2::read::MultiGzDecoder::new(
            io::BufReader::with_capacity(1 << 16, whole),
        )))
    } else {
        Ok(Box::new(whole))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_sizes_follow_the_format() {
        let mut h = Header::new(format::DRR_OBJECT);
        h.set_u32(off::OBJECT_BONUSLEN, 5);
        assert_eq!(payload_len(&h), Some(8));
        h.set_u32(off::OBJECT_RAW_BONUSLEN, 13);
        assert_eq!(payload_len(&h), Some(13));
        let mut w = Header::new(format::DRR_WRITE);
        w.set_u64(off::WRITE_LOGICAL_SIZE, 8192);
        assert_eq!(payload_len(&w), Some(8192));
        w.set_u8(off::WRITE_COMPRESSIONTYPE, 15);
        w.set_u64(off::WRITE_COMPRESSED_SIZE, 1024);
        assert_eq!(payload_len(&w), Some(1024));
        let mut e = Header::new(format::DRR_WRITE_EMBEDDED);
        e.set_u32(off::EMBEDDED_PSIZE, 50);
        assert_eq!(payload_len(&e), Some(56));
        assert_eq!(payload_len(&Header::new(format::DRR_FREE)), Some(0));
        assert_eq!(payload_len(&Header::new(42)), None);
    }

    #[test]
    fn plain_input_passes_through_and_gzip_is_detected() {
        let data = b"hello world".to_vec();
        let mut out = Vec::new();
        maybe_gunzip(&data[..])
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);

        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &data).unwrap();
        let gz = gz.finish().unwrap();
        let mut out = Vec::new();
        maybe_gunzip(&gz[..])
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);

        let mut out = Vec::new();
        maybe_gunzip(&b"x"[..])
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, b"x");
    }
}
