//! Genuine OpenZFS streams (`zvol-golden send`, the sample) read back.

use std::io::Read;
use std::path::Path;

use crate::common::*;

fn sample_disk() -> Vec<u8> {
    let mut disk = Vec::new();
    flate2::read::GzDecoder::new(
        std::fs::File::open(oracle().join("samples/zvol-1M-16k.img.gz")).unwrap(),
    )
    .read_to_end(&mut disk)
    .unwrap();
    disk
}

#[test]
fn the_sample_stream_reads_back_to_the_sample_image_sparsely() {
    let work = tmp();
    let raw = work.path().join("sample.raw");
    let s = zvol_stream::read_stream_path(&oracle().join("samples/zvol-1M-16k.zsend"), &raw, false)
        .unwrap();
    assert_eq!(s.size, 1 << 20);
    assert_eq!(s.volblocksize, 16384);
    assert_eq!(s.begin.name, "golden/vol@snap");
    assert_eq!(s.records, 17);
    assert!(std::fs::read(&raw).unwrap() == sample_disk());
    // 5 blocks of 16K hold data; the rest must be holes
    let alloc = allocated(&raw);
    assert!(
        alloc <= 6 * 16384,
        "{alloc} bytes allocated: holes were written"
    );
}

/// Genuine streams of one disk at several volblocksizes read back exactly.
fn genuine_round_trips(compression_off: bool) {
    let work = tmp();
    let dir = work.path();
    let disk = image(Kind::Mixed, 1 << 20, 21);
    let img = dir.join("disk.img");
    std::fs::write(&img, &disk).unwrap();
    for vbs in [512u32, 4096, 8192, 16384, 131072] {
        let zs = dir.join(format!("g-{vbs}.zsend"));
        golden_send(&img, vbs, &zs, dir, compression_off);
        let raw = dir.join(format!("g-{vbs}.raw"));
        let s = zvol_stream::read_stream_path(&zs, &raw, false)
            .unwrap_or_else(|e| panic!("volblocksize {vbs}: {e}"));
        assert_eq!(s.volblocksize, vbs);
        assert!(
            std::fs::read(&raw).unwrap() == disk,
            "volblocksize {vbs} compression_off={compression_off}: disk differs"
        );
    }
}

#[test]
fn genuine_streams_with_compression_read_back_exactly() {
    genuine_round_trips(false);
}

#[test]
fn genuine_all_write_streams_read_back_exactly() {
    genuine_round_trips(true);
}

#[test]
fn gzipped_genuine_stream_reads_back() {
    let work = tmp();
    let dir = work.path();
    let genuine = std::fs::read(oracle().join("samples/zvol-1M-16k.zsend")).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &genuine).unwrap();
    // named without .gz: detection is by magic
    std::fs::write(dir.join("image.zfs"), gz.finish().unwrap()).unwrap();
    let o = run({
        let mut c = bin();
        c.arg("read")
            .arg(dir.join("image.zfs"))
            .arg(dir.join("d.raw"));
        c
    });
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::read(dir.join("d.raw")).unwrap() == sample_disk());
}

/// Our dump agrees with `zstream dump` on the counts and END checksum.
#[test]
fn dump_agrees_with_zstream_dump() {
    let p = oracle().join("samples/zvol-1M-16k.zsend");
    let ours = zvol_stream::dump_path(&p).unwrap();
    let (ok, theirs) = zstream_dump(&p, false);
    assert!(ok);
    for c in &ours.counts {
        let want = format!(
            "Total DRR_{} records = {} ({} bytes)",
            c.record_type, c.records, c.payload_bytes
        );
        assert!(theirs.contains(&want), "missing {want:?} in\n{theirs}");
    }
    assert!(theirs.contains(&format!("Total records = {}", ours.records)));
    assert!(theirs.contains(&format!("Total stream length = {} ", ours.stream_bytes)));
    assert!(ours.end_checksum_ok);
    let (_, verbose) = zstream_dump(&p, true);
    assert!(
        verbose.contains(&format!("END checksum = {}", ours.end_checksum)),
        "{verbose}"
    );
    assert_eq!(ours.size, Some(1 << 20));
    assert_eq!(ours.volblocksize, Some(16384));
    assert_eq!(ours.begin.guid, 0x18c9_6387_8107_0731);
}

/// A genuine stream of a disk whose data is at the very end and start.
#[test]
fn genuine_stream_with_edge_blocks_reads_back() {
    let work = tmp();
    let dir: &Path = work.path();
    let mut disk = vec![0u8; 1 << 20];
    disk[..512].copy_from_slice(&random_bytes(512, 30));
    let n = disk.len();
    disk[n - 700..].copy_from_slice(&random_bytes(700, 31));
    std::fs::write(dir.join("e.img"), &disk).unwrap();
    golden_send(&dir.join("e.img"), 8192, &dir.join("e.zsend"), dir, false);
    let stream = std::fs::read(dir.join("e.zsend")).unwrap();
    assert!(read_back(&stream, dir).unwrap() == disk);
}
