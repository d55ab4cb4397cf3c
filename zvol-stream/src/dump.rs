//! A summary of a stream: record counts, BEGIN fields, zvol geometry and
//! whether the END checksum holds. Any stream is summarized (filesystem,
//! compressed, incremental...); only damage (truncation, a bad record
//! checksum, an unknown record type) stops it.

use std::fmt::Write as _;
use std::io::{self, Read};

use serde::Serialize;

use crate::error::Error;
use crate::format::{self, off};
use crate::parse::{maybe_gunzip, Begin, Next, Parser};
use crate::read::zap_size;

/// Records and payload bytes of one record type.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TypeCount {
    /// `BEGIN`, `OBJECT`, `WRITE`, ...
    #[serde(rename = "type")]
    pub record_type: &'static str,
    pub records: u64,
    pub payload_bytes: u64,
}

/// What [`dump`] found.
#[derive(Debug, Clone, Serialize)]
pub struct DumpSummary {
    pub begin: Begin,
    /// `begin.objset_type` by name (`zvol`, `filesystem`, ...).
    pub objset_type_name: &'static str,
    /// Names of the feature flags set.
    pub feature_names: Vec<String>,
    /// Block size of object 1 (zvol streams).
    pub volblocksize: Option<u32>,
    /// The zvol `size` property (zvol streams).
    pub size: Option<u64>,
    /// Bytes of WRITE payload for the zvol data (object 1).
    pub data_bytes: u64,
    /// Per record type, in type order (types that occur).
    pub counts: Vec<TypeCount>,
    /// Records in all, BEGIN and END included.
    pub records: u64,
    /// Records whose trailer was zero (not verifiable).
    pub unchecked_records: u64,
    /// Bytes of (decompressed) stream.
    pub stream_bytes: u64,
    /// The END record's checksum, `a/b/c/d` in hex.
    pub end_checksum: String,
    /// The checksum of the data, as computed.
    pub computed_checksum: String,
    /// Whether the two agree.
    pub end_checksum_ok: bool,
}

/// Summarize a stream (plain or gzipped).
pub fn dump<R: Read>(input: R) -> Result<DumpSummary, Error> {
    let input = maybe_gunzip(input)?;
    let mut p = Parser::new(io::BufReader::with_capacity(1 << 20, input));
    let begin = p.begin()?;
    let mut counts = [(0u64, 0u64); format::DRR_NUMTYPES];
    counts[format::DRR_BEGIN as usize] = (1, begin.payloadlen as u64);
    let zvol = begin.objset_type == format::DMU_OST_ZVOL;
    let mut volblocksize = None;
    let mut size = None;
    let mut data_bytes = 0;
    let end = loop {
        let rec = match p.next_record()? {
            Next::End(end) => break end,
            Next::Record(r) => r,
        };
        let h = rec.header;
        let t = h.drr_type();
        let c = &mut counts[t as usize];
        c.0 += 1;
        c.1 += rec.payload.len() as u64;
        match t {
            format::DRR_OBJECT if zvol && h.u64_at(off::OBJECT_OBJECT) == format::ZVOL_OBJ => {
                volblocksize = Some(h.u32_at(off::OBJECT_BLKSZ));
            }
            format::DRR_WRITE if zvol => {
                let object = h.u64_at(off::WRITE_OBJECT);
                if object == format::ZVOL_OBJ {
                    data_bytes += h.u64_at(off::WRITE_LOGICAL_SIZE);
                } else if object == format::ZVOL_ZAP_OBJ
                    && h.u64_at(off::WRITE_OFFSET) == 0
                    && h.u8_at(off::WRITE_COMPRESSIONTYPE) == 0
                {
                    if let Ok(Some(s)) = zap_size(rec.payload) {
                        size = Some(s);
                    }
                }
            }
            _ => {}
        }
    };
    counts[format::DRR_END as usize].0 += 1;
    Ok(DumpSummary {
        objset_type_name: format::objset_type_name(begin.objset_type),
        feature_names: format::feature_names(begin.features),
        begin,
        volblocksize,
        size,
        data_bytes,
        counts: counts
            .iter()
            .enumerate()
            .filter(|(_, c)| c.0 > 0)
            .map(|(i, c)| TypeCount {
                record_type: format::RECORD_NAMES[i],
                records: c.0,
                payload_bytes: c.1,
            })
            .collect(),
        records: p.records(),
        unchecked_records: p.unchecked,
        stream_bytes: p.offset(),
        end_checksum: end.stream.to_hex(),
        computed_checksum: end.computed.to_hex(),
        end_checksum_ok: end.ok(),
    })
}

impl DumpSummary {
    /// The plain-text report.
    pub fn to_text(&self) -> String {
        let b = &self.begin;
        let mut s = String::new();
        let hdr = match b.hdrtype {
            format::DMU_SUBSTREAM => "substream",
            format::DMU_COMPOUNDSTREAM => "compound",
            _ => "unknown",
        };
        let features = if self.feature_names.is_empty() {
            "none".to_string()
        } else {
            self.feature_names.join(",")
        };
        let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
        let _ = writeln!(s, "name:            {}", b.name);
        let _ = writeln!(s, "guid:            {:#018x}", b.guid);
        let _ = writeln!(
            s,
            "fromguid:        {:#x}{}",
            b.fromguid,
            if b.fromguid == 0 {
                " (full)"
            } else {
                " (incremental)"
            }
        );
        let _ = writeln!(
            s,
            "type:            {} ({})",
            b.objset_type, self.objset_type_name
        );
        let _ = writeln!(s, "hdrtype:         {} ({hdr})", b.hdrtype);
        let _ = writeln!(s, "features:        {:#x} ({features})", b.features);
        let _ = writeln!(s, "flags:           {:#x}", b.flags);
        let _ = writeln!(s, "creation_time:   {}", b.creation_time);
        let _ = writeln!(
            s,
            "volblocksize:    {}",
            opt(self.volblocksize.map(u64::from))
        );
        let _ = writeln!(s, "size:            {}", opt(self.size));
        let _ = writeln!(s, "data bytes:      {}", self.data_bytes);
        let _ = writeln!(s, "records:         {}", self.records);
        for c in &self.counts {
            let _ = writeln!(
                s,
                "  {:<15} {:>8} ({} payload bytes)",
                c.record_type, c.records, c.payload_bytes
            );
        }
        if self.unchecked_records > 0 {
            let _ = writeln!(
                s,
                "unchecked:       {} records without a checksum",
                self.unchecked_records
            );
        }
        let _ = writeln!(s, "stream bytes:    {}", self.stream_bytes);
        if self.end_checksum_ok {
            let _ = writeln!(s, "END checksum:    OK ({})", self.end_checksum);
        } else {
            let _ = writeln!(
                s,
                "END checksum:    BAD (stream says {}, data gives {})",
                self.end_checksum, self.computed_checksum
            );
        }
        s
    }
}
