//! Streams zvol-stream writes, checked by the real OpenZFS code.

use std::path::Path;
use std::process::Command;

use zvol_stream::format::{self, off, RECORD_LEN, TRAILER_OFF};
use zvol_stream::WriteOptions;

use crate::common::*;

/// Write `disk` as a stream file, check `zstream dump` and `zvol-golden recv`.
fn check_with_oracle(disk: &[u8], vbs: u32, work: &Path, label: &str) {
    let stream = make_stream(disk, vbs);
    let p = work.join(format!("{label}.zfs"));
    std::fs::write(&p, &stream).unwrap();
    let (ok, text) = zstream_dump(&p, false);
    assert!(ok, "{label}: zstream dump refused our stream:\n{text}");
    assert!(
        text.contains("Total DRR_END records = 1"),
        "{label}: {text}"
    );
    let back = golden_recv(&p, work).unwrap_or_else(|e| panic!("{label}: zvol-golden recv: {e}"));
    assert!(
        back == disk,
        "{label}: received disk differs from the input"
    );
}

#[test]
fn sparse_and_random_disks_pass_zstream_dump_and_real_receive() {
    let work = tmp();
    check_with_oracle(
        &image(Kind::Sparse, 1 << 20, 1),
        512,
        work.path(),
        "sparse-512",
    );
    check_with_oracle(
        &image(Kind::Random, 1 << 20, 2),
        4096,
        work.path(),
        "random-4k",
    );
    check_with_oracle(
        &image(Kind::Sparse, 4 << 20, 3),
        8192,
        work.path(),
        "sparse-8k",
    );
}

#[test]
fn text_zero_and_mixed_disks_pass_zstream_dump_and_real_receive() {
    let work = tmp();
    check_with_oracle(
        &image(Kind::Text, 1 << 20, 4),
        16384,
        work.path(),
        "text-16k",
    );
    check_with_oracle(
        &image(Kind::Zeros, 2 << 20, 5),
        8192,
        work.path(),
        "zeros-8k",
    );
    check_with_oracle(
        &image(Kind::Mixed, 4 << 20, 6),
        131072,
        work.path(),
        "mixed-128k",
    );
    check_with_oracle(
        &image(Kind::Mixed, 1 << 20, 7),
        4096,
        work.path(),
        "mixed-4k",
    );
}

/// The sample image written with the genuine stream's guid, time and name
/// gives the genuine stream's records, field for field, except what a
/// block-checksum-less sender legitimately leaves out (WRITE checksum type,
/// dedup key and props) and the ZAP salt (random in ZFS too).
#[test]
fn sample_image_gives_the_genuine_record_sequence() {
    let samples = oracle().join("samples");
    let genuine = std::fs::read(samples.join("zvol-1M-16k.zsend")).unwrap();
    let mut disk = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(
            std::fs::File::open(samples.join("zvol-1M-16k.img.gz")).unwrap(),
        ),
        &mut disk,
    )
    .unwrap();
    let gb = header_at(&genuine, 0);
    let opts = WriteOptions {
        volblocksize: 16384,
        name: "golden/vol@snap".into(),
        pad: false,
        guid: Some(gb.u64_at(off::BEGIN_TOGUID)),
        creation_time: Some(gb.u64_at(off::BEGIN_CREATION_TIME)),
    };
    let mut ours = Vec::new();
    zvol_stream::write_stream(&disk[..], disk.len() as u64, &mut ours, &opts).unwrap();
    assert_eq!(ours.len(), genuine.len(), "stream length");
    let (ro, rg) = (records(&ours), records(&genuine));
    assert_eq!(
        ro.iter().map(|r| r.drr_type).collect::<Vec<_>>(),
        rg.iter().map(|r| r.drr_type).collect::<Vec<_>>(),
        "record types in order"
    );
    for (a, b) in ro.iter().zip(&rg) {
        let (mut ha, mut hb) = (header_at(&ours, a.offset), header_at(&genuine, b.offset));
        if a.drr_type == format::DRR_WRITE {
            // checksumtype @48, flags @49, key @56..96 (incl. props @88)
            for h in [&mut ha, &mut hb] {
                h.0[48] = 0;
                h.0[56..96].fill(0);
            }
        }
        if a.drr_type != format::DRR_BEGIN {
            ha.0[TRAILER_OFF..].fill(0);
            hb.0[TRAILER_OFF..].fill(0);
        }
        if a.drr_type == format::DRR_END {
            ha.0[8..40].fill(0);
            hb.0[8..40].fill(0);
        }
        assert_eq!(
            ha.0.to_vec(),
            hb.0.to_vec(),
            "header of {} at byte {}",
            format::record_name(a.drr_type),
            a.offset
        );
        let (mut pa, mut pb) = (
            ours[a.offset + RECORD_LEN..a.end()].to_vec(),
            genuine[b.offset + RECORD_LEN..b.end()].to_vec(),
        );
        if a.drr_type == format::DRR_WRITE && ha.u64_at(off::WRITE_OBJECT) == format::ZVOL_ZAP_OBJ {
            pa[8..16].fill(0); // mz_salt
            pb[8..16].fill(0);
        }
        assert!(pa == pb, "payload of record at byte {}", a.offset);
    }
}

#[test]
fn padded_and_piped_streams_pass_the_oracle() {
    let work = tmp();
    let dir = work.path();
    // --pad: 1 MiB + 1000 bytes, volblocksize 8K
    let mut disk = image(Kind::Random, (1 << 20) + 1000, 8);
    std::fs::write(dir.join("odd.raw"), &disk).unwrap();
    let mut c = bin();
    c.args(["write", "--pad", "-b", "8K"])
        .arg(dir.join("odd.raw"))
        .arg(dir.join("odd.zfs"));
    let o = run(c);
    assert!(o.status.success(), "{}", stderr(&o));
    let (ok, text) = zstream_dump(&dir.join("odd.zfs"), false);
    assert!(ok, "{text}");
    let back = golden_recv(&dir.join("odd.zfs"), dir).unwrap();
    disk.resize((1 << 20) + 8192, 0);
    assert!(back == disk, "padded disk");

    // stdin from a pipe (size unknown up front)
    let disk = image(Kind::Sparse, 1 << 20, 9);
    let mut child = bin()
        .args(["write", "-b", "4K", "-", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let d2 = disk.clone();
    let feeder = std::thread::spawn(move || {
        for chunk in d2.chunks(1000) {
            std::io::Write::write_all(&mut stdin, chunk).unwrap();
        }
    });
    let o = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::write(dir.join("piped.zfs"), &o.stdout).unwrap();
    let (ok, text) = zstream_dump(&dir.join("piped.zfs"), false);
    assert!(ok, "{text}");
    assert!(
        golden_recv(&dir.join("piped.zfs"), dir).unwrap() == disk,
        "piped disk"
    );
}

#[test]
fn zstream_raw_applies_our_stream() {
    let work = tmp();
    let dir = work.path();
    let disk = image(Kind::Mixed, 2 << 20, 10);
    std::fs::write(dir.join("m.zfs"), make_stream(&disk, 8192)).unwrap();
    let mut c = Command::new(oracle().join("zstream"));
    c.arg("raw").arg(dir.join("raw.img")).arg(dir.join("m.zfs"));
    let o = run(c);
    assert!(o.status.success(), "zstream raw: {}", stderr(&o));
    assert!(std::fs::read(dir.join("raw.img")).unwrap() == disk);
}

#[test]
fn zstream_verbose_dump_shows_the_zvol_layout() {
    let work = tmp();
    let p = work.path().join("l.zfs");
    let mut disk = vec![0u8; 64 * 1024];
    disk[8192..16384].fill(0x5a);
    std::fs::write(&p, make_stream(&disk, 8192)).unwrap();
    let (ok, text) = zstream_dump(&p, true);
    assert!(ok, "{text}");
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| {
            ["OBJECT", "FREE", "WRITE", "END"]
                .iter()
                .any(|k| l.starts_with(k))
        })
        .map(|l| l.split(" checksum").next().unwrap())
        .collect();
    let want = [
        "OBJECT object = 1 type = 23 bonustype = 0 blksz = 8192 bonuslen = 0 dn_slots = 1 raw_bonuslen = 0 flags = 0 maxblkid = 0 indblkshift = 0 nlevels = 0 nblkptr = 0",
        "FREE object = 1 offset = 65536 length = -1",
        "FREE object = 1 offset = 0 length = 8192",
        "WRITE object = 1 type = 23",
        "FREE object = 1 offset = 16384 length = 49152",
        "OBJECT object = 2 type = 24 bonustype = 0 blksz = 512 bonuslen = 0 dn_slots = 1 raw_bonuslen = 0 flags = 0 maxblkid = 0 indblkshift = 0 nlevels = 0 nblkptr = 0",
        "FREE object = 2 offset = 512 length = -1",
        "WRITE object = 2 type = 24",
        "FREE object = 2 offset = 512 length = 1024",
        "FREEOBJECTS firstobj = 3 numobjs = 29",
        "END",
    ];
    assert_eq!(lines, want, "{text}");
}
