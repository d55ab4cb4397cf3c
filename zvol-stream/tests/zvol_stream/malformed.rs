//! Broken and unsupported streams: each refused with its own message.
//! The cases are built by mutating a valid stream.

use zvol_stream::format::{self, off, RECORD_LEN};
use zvol_stream::Error;

use crate::common::*;

/// A valid stream with a few data blocks and holes (volblocksize 4K).
fn valid() -> (Vec<u8>, Vec<u8>) {
    let mut disk = vec![0u8; 256 * 1024];
    disk[..4096].copy_from_slice(&random_bytes(4096, 1));
    disk[40960..49152].copy_from_slice(&random_bytes(8192, 2));
    disk[200_000..200_100].fill(7);
    let s = make_stream(&disk, 4096);
    (disk, s)
}

fn refuse(stream: &[u8]) -> Error {
    let work = tmp();
    match read_back(stream, work.path()) {
        Ok(_) => panic!("a bad stream was accepted"),
        Err(e) => e,
    }
}

fn first(s: &[u8], t: u32) -> Rec {
    *records(s).iter().find(|r| r.drr_type == t).unwrap()
}

#[test]
fn truncated_at_several_offsets() {
    let (_, s) = valid();
    let recs = records(&s);
    let write = first(&s, format::DRR_WRITE);
    let end = recs.last().unwrap().offset;
    let cuts = [
        (100, "inside the BEGIN record"),
        (RECORD_LEN, "before the END record"),
        (RECORD_LEN + 5, "before the END record"),
        (
            write.offset + RECORD_LEN + 1000,
            "inside the payload of WRITE record #",
        ),
        (end, "before the END record"),
        (s.len() - 1, "before the END record"),
    ];
    for (cut, want) in cuts {
        let e = refuse(&s[..cut]);
        assert!(matches!(e, Error::Truncated { .. }), "cut at {cut}: {e}");
        let msg = e.to_string();
        assert!(
            msg.starts_with("truncated stream: input ends at byte "),
            "{msg}"
        );
        assert!(msg.contains(want), "cut at {cut}: {msg}");
    }
    assert!(matches!(refuse(&[]), Error::EmptyStream));
    assert_eq!(
        refuse(&[]).to_string(),
        "empty input: not a ZFS send stream"
    );
}

#[test]
fn truncated_gzip_is_truncated() {
    let (_, s) = valid();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &s).unwrap();
    let gz = gz.finish().unwrap();
    let e = refuse(&gz[..gz.len() / 2]);
    assert!(matches!(e, Error::Truncated { .. }), "{e}");
}

#[test]
fn flipped_byte_in_a_header_is_a_record_checksum_error() {
    let (_, s) = valid();
    let w = first(&s, format::DRR_WRITE);
    let mut bad = s.clone();
    bad[w.offset + off::WRITE_OFFSET] ^= 0x10;
    let e = refuse(&bad);
    assert!(
        matches!(
            e,
            Error::RecordChecksum {
                record: "WRITE",
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        format!(
            "bad checksum in WRITE record #3 at byte {} (stream damaged)",
            w.offset
        )
    );
    // the real receiver agrees (ECKSUM = 52)
    let work = tmp();
    let p = work.path().join("flip.zfs");
    std::fs::write(&p, &bad).unwrap();
    let r = golden_recv(&p, work.path());
    assert!(r.as_ref().is_err_and(|e| e.contains("error 52")), "{r:?}");
    assert!(!zstream_dump(&p, false).0);
}

#[test]
fn flipped_byte_in_a_payload_fails_the_next_record() {
    let (_, s) = valid();
    let recs = records(&s);
    let i = recs
        .iter()
        .position(|r| r.drr_type == format::DRR_WRITE)
        .unwrap();
    let mut bad = s.clone();
    bad[recs[i].offset + RECORD_LEN + 77] ^= 1;
    let e = refuse(&bad);
    match e {
        Error::RecordChecksum { index, offset, .. } => {
            assert_eq!(index as usize, i + 1);
            assert_eq!(offset as usize, recs[i + 1].offset);
        }
        other => panic!("{other}"),
    }
}

#[test]
fn bad_end_checksum() {
    let (_, s) = valid();
    let mut bad = s.clone();
    let end = records(&s).last().unwrap().offset;
    bad[end + off::END_CHECKSUM + 3] ^= 0x40;
    // keep END's own trailer consistent, so only the stream checksum is off
    let mut ck = zvol_stream::fletcher::Fletcher4::new();
    ck.update(&bad[..end + format::TRAILER_OFF]);
    bad[end + format::TRAILER_OFF..end + RECORD_LEN].copy_from_slice(&ck.to_bytes());
    let e = refuse(&bad);
    assert!(matches!(e, Error::EndChecksum { .. }), "{e}");
    assert!(
        e.to_string()
            .starts_with("bad END checksum: the stream says "),
        "{e}"
    );
    // the real receiver refuses it too
    let work = tmp();
    let p = work.path().join("end.zfs");
    std::fs::write(&p, &bad).unwrap();
    assert!(golden_recv(&p, work.path()).is_err());
}

#[test]
fn bad_magic_and_byte_swapped_magic() {
    let (_, s) = valid();
    let mut bad = s.clone();
    bad[off::BEGIN_MAGIC] ^= 0xff;
    let e = refuse(&bad);
    assert!(matches!(e, Error::BadMagic { .. }), "{e}");
    assert!(
        e.to_string()
            .starts_with("not a ZFS send stream: bad magic "),
        "{e}"
    );
    let e = refuse(b"this is just some text, not a stream at all......");
    assert!(
        matches!(e, Error::Truncated { .. } | Error::BadMagic { .. }),
        "{e}"
    );
    let mut text = b"plain text ".repeat(40);
    text.truncate(400);
    assert!(matches!(refuse(&text), Error::BadMagic { .. }));
    let mut swapped = s.clone();
    swapped[off::BEGIN_MAGIC..off::BEGIN_MAGIC + 8]
        .copy_from_slice(&format::MAGIC.swap_bytes().to_le_bytes());
    let e = refuse(&swapped);
    assert!(matches!(e, Error::BigEndian), "{e}");
}

#[test]
fn incremental_stream_is_refused() {
    let (_, s) = valid();
    let mut bad = s.clone();
    bad[off::BEGIN_FROMGUID..off::BEGIN_FROMGUID + 8].copy_from_slice(&0xfeed_u64.to_le_bytes());
    reseal(&mut bad);
    let e = refuse(&bad);
    assert!(matches!(e, Error::Incremental { fromguid: 0xfeed }), "{e}");
    assert_eq!(
        e.to_string(),
        "incremental stream (fromguid 0xfeed): only full streams can become a disk"
    );
}

fn with_features(s: &[u8], features: u64) -> Vec<u8> {
    let mut bad = s.to_vec();
    let vi = format::DMU_SUBSTREAM | (features << 2);
    bad[off::BEGIN_VERSIONINFO..off::BEGIN_VERSIONINFO + 8].copy_from_slice(&vi.to_le_bytes());
    reseal(&mut bad);
    bad
}

#[test]
fn feature_flags_are_refused_by_name() {
    let (_, s) = valid();
    let cases = [
        (
            format::FEATURE_COMPRESSED | format::FEATURE_LZ4,
            "compressed WRITE records (zfs send -c)",
        ),
        (
            format::FEATURE_EMBED_DATA | format::FEATURE_LZ4,
            "embedded data records (zfs send -e)",
        ),
        (
            format::FEATURE_RAW,
            "raw (encrypted) send records (zfs send -w)",
        ),
        (
            format::FEATURE_LARGE_BLOCKS,
            "large blocks over 128K (zfs send -L)",
        ),
        (format::FEATURE_DEDUP, "deduplicated records (zfs send -D)"),
        (format::FEATURE_SA_SPILL, "spill blocks"),
        (
            format::FEATURE_REDACTED,
            "redacted data (zfs send --redact)",
        ),
        (1 << 50, "unknown feature flags 0x4000000000000"),
    ];
    for (bits, want) in cases {
        let e = refuse(&with_features(&s, bits));
        assert!(matches!(e, Error::Unsupported { .. }), "{bits:#x}: {e}");
        assert_eq!(e.to_string(), format!("unsupported stream feature: {want}"));
    }
    // large dnodes are harmless for a zvol
    let work = tmp();
    read_back(&with_features(&s, format::FEATURE_LARGE_DNODE), work.path()).unwrap();
}

#[test]
fn compressed_write_and_embedded_records_are_refused() {
    let (_, s) = valid();
    // a WRITE whose compressiontype is set (payload: compressed_size bytes)
    let w = first(&s, format::DRR_WRITE);
    let mut bad = s.clone();
    bad[w.offset + off::WRITE_COMPRESSIONTYPE] = 15; // lz4
    let size = w.payload as u64;
    bad[w.offset + off::WRITE_COMPRESSED_SIZE..w.offset + off::WRITE_COMPRESSED_SIZE + 8]
        .copy_from_slice(&size.to_le_bytes());
    reseal(&mut bad);
    let e = refuse(&bad);
    assert_eq!(
        e.to_string(),
        "unsupported stream feature: compressed WRITE records (zfs send -c)"
    );

    // a WRITE turned into WRITE_EMBEDDED (no payload: psize 0)
    let f = first(&s, format::DRR_FREE);
    let mut bad = s.clone();
    bad[f.offset..f.offset + 4].copy_from_slice(&format::DRR_WRITE_EMBEDDED.to_le_bytes());
    reseal(&mut bad);
    let e = refuse(&bad);
    assert_eq!(
        e.to_string(),
        "unsupported stream feature: embedded data records (WRITE_EMBEDDED, zfs send -e)"
    );

    // WRITE_BYREF (dedup)
    let mut bad = s.clone();
    bad[f.offset..f.offset + 4].copy_from_slice(&format::DRR_WRITE_BYREF.to_le_bytes());
    reseal(&mut bad);
    assert!(refuse(&bad).to_string().contains("WRITE_BYREF"));
}

#[test]
fn not_a_zvol_and_compound_streams() {
    let (_, s) = valid();
    let mut fs = s.clone();
    fs[off::BEGIN_TYPE..off::BEGIN_TYPE + 4].copy_from_slice(&format::DMU_OST_ZFS.to_le_bytes());
    reseal(&mut fs);
    let e = refuse(&fs);
    assert!(matches!(e, Error::NotZvol { objset_type: 2, .. }), "{e}");
    assert_eq!(
        e.to_string(),
        "not a zvol stream: objset type 2 (filesystem)"
    );

    let mut compound = s.clone();
    compound[off::BEGIN_VERSIONINFO] = format::DMU_COMPOUNDSTREAM as u8;
    reseal(&mut compound);
    let e = refuse(&compound);
    assert!(matches!(e, Error::Compound), "{e}");
}

#[test]
fn stream_without_size_property_is_refused() {
    let (_, s) = valid();
    let zap = records(&s)
        .into_iter()
        .find(|r| {
            r.drr_type == format::DRR_WRITE
                && header_at(&s, r.offset).u64_at(off::WRITE_OBJECT) == format::ZVOL_ZAP_OBJ
        })
        .unwrap();
    let mut bad = s.clone();
    let name = zap.offset + RECORD_LEN + 64 + 14;
    bad[name..name + 4].copy_from_slice(b"sise");
    reseal(&mut bad);
    let e = refuse(&bad);
    assert!(matches!(e, Error::MissingSize), "{e}");
}

#[test]
fn zero_trailers_of_old_senders_are_accepted() {
    let (disk, s) = valid();
    let mut old = s.clone();
    let recs = records(&s);
    for r in &recs[1..recs.len() - 1] {
        old[r.offset + format::TRAILER_OFF..r.offset + RECORD_LEN].fill(0);
    }
    // END's stream checksum must still be right: recompute it over the
    // zeroed trailers, then END's own trailer
    let end = recs.last().unwrap().offset;
    let mut ck = zvol_stream::fletcher::Fletcher4::new();
    ck.update(&old[..end]);
    old[end + 8..end + 40].copy_from_slice(&ck.to_bytes());
    old[end + format::TRAILER_OFF..end + RECORD_LEN].fill(0);
    let work = tmp();
    assert!(read_back(&old, work.path()).unwrap() == disk);
    let d = zvol_stream::dump(&old[..]).unwrap();
    assert_eq!(d.unchecked_records, recs.len() as u64 - 1);
    assert!(d.end_checksum_ok);
    // and the real receiver agrees (it skips zero trailers too)
    let p = work.path().join("old.zfs");
    std::fs::write(&p, &old).unwrap();
    assert!(golden_recv(&p, work.path()).unwrap() == disk);
}

#[test]
fn refused_read_leaves_no_raw_behind() {
    let (_, s) = valid();
    let work = tmp();
    let dir = work.path();
    let mut bad = s.clone();
    let w = first(&s, format::DRR_WRITE);
    bad[w.offset + 9] ^= 1;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("checksum", bad),
        ("truncated", s[..s.len() - 100].to_vec()),
        ("incremental", {
            let mut v = s.clone();
            v[off::BEGIN_FROMGUID] = 1;
            reseal(&mut v);
            v
        }),
    ];
    for (label, stream) in cases {
        std::fs::write(dir.join("in.zfs"), &stream).unwrap();
        let o = run({
            let mut c = bin();
            c.arg("read")
                .arg(dir.join("in.zfs"))
                .arg(dir.join("out.raw"));
            c
        });
        assert_eq!(o.status.code(), Some(1), "{label}");
        let err = stderr(&o);
        assert!(
            err.starts_with("zvol-stream: ") && err.lines().count() == 1,
            "{label}: {err}"
        );
        assert!(!dir.join("out.raw").exists(), "{label}: RAW left behind");
        let left: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, ["in.zfs"], "{label}: files left behind");
    }
    // with -f an existing RAW survives a refused stream untouched
    std::fs::write(dir.join("out.raw"), b"keep me").unwrap();
    let o = run({
        let mut c = bin();
        c.args(["read", "-f"])
            .arg(dir.join("in.zfs"))
            .arg(dir.join("out.raw"));
        c
    });
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(std::fs::read(dir.join("out.raw")).unwrap(), b"keep me");
}
