//! write -> read round trips, through the library and the command.

use std::io::Write;
use std::process::Stdio;

use zvol_stream::{Error, WriteOptions};

use crate::common::*;

#[test]
fn library_round_trips_many_disks_and_block_sizes() {
    let work = tmp();
    let kinds = [
        Kind::Sparse,
        Kind::Random,
        Kind::Text,
        Kind::Zeros,
        Kind::Mixed,
    ];
    for (i, kind) in kinds.iter().enumerate() {
        for vbs in [512u32, 4096, 8192, 65536, 131072] {
            let disk = image(*kind, 1 << 20, i as u64 + 100);
            let stream = make_stream(&disk, vbs);
            let back =
                read_back(&stream, work.path()).unwrap_or_else(|e| panic!("{kind:?} {vbs}: {e}"));
            assert!(back == disk, "{kind:?} volblocksize {vbs}: disk differs");
        }
    }
}

#[test]
fn holes_stay_holes_and_zero_blocks_are_not_sent() {
    let work = tmp();
    let mut disk = vec![0u8; 8 << 20];
    disk[4096..8192].fill(1);
    disk[(6 << 20)..(6 << 20) + 100].fill(2);
    let stream = make_stream(&disk, 4096);
    // two data blocks (+ the ZAP); everything else is FREE
    let writes = records(&stream)
        .iter()
        .filter(|r| r.drr_type == zvol_stream::format::DRR_WRITE)
        .count();
    assert_eq!(writes, 3);
    assert!(stream.len() < 20_000, "stream of {} bytes", stream.len());
    let raw = work.path().join("h.raw");
    let mut f = std::fs::File::create(&raw).unwrap();
    let s = zvol_stream::read_stream(&stream[..], &mut f).unwrap();
    drop(f);
    assert_eq!(s.size, 8 << 20);
    assert_eq!(s.data_bytes, 8192);
    assert!(std::fs::read(&raw).unwrap() == disk);
    let alloc = allocated(&raw);
    assert!(
        alloc <= 64 * 1024,
        "{alloc} bytes allocated for 8 KiB of data"
    );
}

#[test]
fn summary_counts_blocks() {
    let mut disk = vec![0u8; 10 * 512];
    disk[512] = 1;
    disk[4 * 512] = 1;
    let mut out = Vec::new();
    let opts = WriteOptions {
        volblocksize: 512,
        ..Default::default()
    };
    let s = zvol_stream::write_stream(&disk[..], disk.len() as u64, &mut out, &opts).unwrap();
    assert_eq!((s.data_blocks, s.hole_blocks, s.size), (2, 8, 5120));
    assert_eq!(s.name, "zones/image@final");
    assert_eq!(s.stream_bytes, out.len() as u64);
    // BEGIN OBJECT FREE(end) FREE W FREE W FREE OBJECT FREE W FREE FREEOBJECTS END
    assert_eq!(s.records, 14);
    assert_ne!(s.guid, 0);
}

#[test]
fn unsized_writer_gives_the_same_disk() {
    let work = tmp();
    let disk = image(Kind::Mixed, 3 << 20, 200);
    let mut out = Vec::new();
    let s =
        zvol_stream::write_stream_unsized(&disk[..], &mut out, &WriteOptions::default()).unwrap();
    assert_eq!(s.size, 3 << 20);
    assert!(read_back(&out, work.path()).unwrap() == disk);
}

#[test]
fn pad_zero_fills_the_last_block_and_is_required() {
    let work = tmp();
    let disk = image(Kind::Random, 100_000, 300);
    let mut out = Vec::new();
    let e = zvol_stream::write_stream(
        &disk[..],
        disk.len() as u64,
        &mut out,
        &WriteOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(
        e,
        Error::NotMultiple {
            size: 100_000,
            volblocksize: 8192
        }
    ));
    assert_eq!(
        e.to_string(),
        "raw disk size 100000 is not a multiple of the volblocksize 8192 (use --pad to zero-pad the last block)"
    );
    // the unsized writer finds out at the end, and refuses too
    let e = zvol_stream::write_stream_unsized(&disk[..], std::io::sink(), &WriteOptions::default())
        .unwrap_err();
    assert!(matches!(e, Error::NotMultiple { .. }), "{e}");

    let opts = WriteOptions {
        pad: true,
        ..Default::default()
    };
    for no_size in [false, true] {
        let mut out = Vec::new();
        let s = if no_size {
            zvol_stream::write_stream_unsized(&disk[..], &mut out, &opts)
        } else {
            zvol_stream::write_stream(&disk[..], disk.len() as u64, &mut out, &opts)
        }
        .unwrap();
        assert_eq!(s.size, 13 * 8192);
        let back = read_back(&out, work.path()).unwrap();
        assert_eq!(back.len(), 13 * 8192);
        assert!(back[..disk.len()] == disk[..]);
        assert!(back[disk.len()..].iter().all(|&b| b == 0));
    }
}

#[test]
fn cli_pad_and_its_refusal() {
    let work = tmp();
    let dir = work.path();
    std::fs::write(dir.join("odd.raw"), image(Kind::Text, 5000, 1)).unwrap();
    let o = run({
        let mut c = bin();
        c.arg("write")
            .arg(dir.join("odd.raw"))
            .arg(dir.join("o.zfs"));
        c
    });
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "zvol-stream: raw disk size 5000 is not a multiple of the volblocksize 8192 (use --pad to zero-pad the last block)\n"
    );
    assert!(
        !dir.join("o.zfs").exists(),
        "a refused write left its output"
    );
    assert_eq!(
        std::fs::read_dir(dir).unwrap().count(),
        1,
        "temporary files left"
    );
    let o = run({
        let mut c = bin();
        c.args(["write", "--pad", "-b", "512"])
            .arg(dir.join("odd.raw"))
            .arg(dir.join("o.zfs"));
        c
    });
    assert!(o.status.success(), "{}", stderr(&o));
    let d = zvol_stream::dump_path(&dir.join("o.zfs")).unwrap();
    assert_eq!(d.size, Some(5120));
    assert_eq!(d.volblocksize, Some(512));
}

#[test]
fn cli_stdin_and_stdout() {
    let work = tmp();
    let dir = work.path();
    let disk = image(Kind::Sparse, 1 << 20, 400);
    // write: - to -, disk on a pipe
    let mut child = bin()
        .args(["write", "-b", "16K", "-n", "tank/vm-disk0@image", "-", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let d2 = disk.clone();
    let feeder = std::thread::spawn(move || stdin.write_all(&d2).unwrap());
    let o = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let stream = o.stdout;
    // read: - to -
    let mut child = bin()
        .args(["read", "-", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let s2 = stream.clone();
    let feeder = std::thread::spawn(move || stdin.write_all(&s2).unwrap());
    let o = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(o.stdout == disk, "disk through stdin/stdout differs");
    // write with stdin redirected from a file (size known), read from stdin to a file
    std::fs::write(dir.join("d.raw"), &disk).unwrap();
    let o = bin()
        .args(["write", "-b", "16K", "-"])
        .arg(dir.join("s.zfs"))
        .stdin(std::fs::File::open(dir.join("d.raw")).unwrap())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let o = bin()
        .args(["read", "-"])
        .arg(dir.join("back.raw"))
        .stdin(std::fs::File::open(dir.join("s.zfs")).unwrap())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::read(dir.join("back.raw")).unwrap() == disk);
    let d = zvol_stream::dump(&stream[..]).unwrap();
    assert_eq!(d.begin.name, "tank/vm-disk0@image");
}

#[test]
fn cli_gzipped_input_by_magic() {
    let work = tmp();
    let dir = work.path();
    let disk = image(Kind::Mixed, 2 << 20, 500);
    std::fs::write(dir.join("d.raw"), &disk).unwrap();
    let o = run({
        let mut c = bin();
        c.arg("write").arg(dir.join("d.raw")).arg(dir.join("i.zfs"));
        c
    });
    assert!(o.status.success(), "{}", stderr(&o));
    // gzip(1) itself, as the image pipeline does
    let st = std::process::Command::new("gzip")
        .args(["-1", "-k"])
        .arg(dir.join("i.zfs"))
        .status()
        .expect("gzip must be installed");
    assert!(st.success());
    std::fs::rename(dir.join("i.zfs.gz"), dir.join("i.gz.stream")).unwrap();
    let o = run({
        let mut c = bin();
        c.arg("read")
            .arg(dir.join("i.gz.stream"))
            .arg(dir.join("back.raw"));
        c
    });
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::read(dir.join("back.raw")).unwrap() == disk);
    let o = run({
        let mut c = bin();
        c.args(["dump", "-j"]).arg(dir.join("i.gz.stream"));
        c
    });
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["size"], 2 << 20);
    assert_eq!(v["end_checksum_ok"], true);
}

#[test]
fn existing_outputs_need_force() {
    let work = tmp();
    let dir = work.path();
    std::fs::write(dir.join("d.raw"), image(Kind::Text, 8192, 1)).unwrap();
    std::fs::write(dir.join("s.zfs"), b"old").unwrap();
    let w = |force: bool| {
        let mut c = bin();
        c.arg("write");
        if force {
            c.arg("-f");
        }
        c.arg(dir.join("d.raw")).arg(dir.join("s.zfs"));
        run(c)
    };
    let o = w(false);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("zvol-stream: ")
            && stderr(&o).contains("exists (use -f to overwrite)")
    );
    assert_eq!(std::fs::read(dir.join("s.zfs")).unwrap(), b"old");
    assert!(w(true).status.success());
    std::fs::write(dir.join("r.raw"), b"old").unwrap();
    let r = |force: bool| {
        let mut c = bin();
        c.arg("read");
        if force {
            c.arg("-f");
        }
        c.arg(dir.join("s.zfs")).arg(dir.join("r.raw"));
        run(c)
    };
    let o = r(false);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("r.raw exists (use -f to overwrite)"));
    assert_eq!(std::fs::read(dir.join("r.raw")).unwrap(), b"old");
    let o = r(true);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read(dir.join("r.raw")).unwrap().len(), 8192);
}

#[test]
fn read_into_a_dirty_file_truncates_it_first() {
    let work = tmp();
    let disk = image(Kind::Sparse, 1 << 20, 600);
    let stream = make_stream(&disk, 8192);
    let p = work.path().join("dirty.raw");
    std::fs::write(&p, vec![0xffu8; 3 << 20]).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&p)
        .unwrap();
    zvol_stream::read_stream(&stream[..], &mut f).unwrap();
    drop(f);
    assert!(std::fs::read(&p).unwrap() == disk);
}
