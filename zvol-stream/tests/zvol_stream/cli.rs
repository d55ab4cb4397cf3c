//! The command line: exit codes, one-line errors, dump output, man page.

use std::io::Read;
use std::path::Path;
use std::process::Stdio;

use crate::common::*;

#[test]
fn usage_errors_exit_2_with_one_line() {
    for args in [
        vec!["write", "-b", "3K", "a", "b"],
        vec!["write", "-b", "256K", "a", "b"],
        vec!["write", "-n", "no-snapshot", "a", "b"],
        vec!["write", "--guid", "0", "a", "b"],
        vec!["write", "onlyone"],
        vec!["read"],
        vec!["frobnicate"],
        vec!["dump", "-x", "s"],
    ] {
        let mut c = bin();
        c.args(&args);
        let o = run(c);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("zvol-stream: "), "{args:?}: {err}");
    }
    let mut c = bin();
    c.args(["write", "-b", "3K", "a", "b"]);
    assert!(stderr(&run(c)).contains("want a power of two from 512 to 128K"));
}

#[test]
fn help_and_version_exit_0() {
    for args in [vec!["--help"], vec!["write", "--help"], vec!["--version"]] {
        let mut c = bin();
        c.args(&args);
        let o = run(c);
        assert!(o.status.success(), "{args:?}");
        assert!(!o.stdout.is_empty());
    }
}

#[test]
fn errors_exit_1_with_one_prefixed_line() {
    let work = tmp();
    let dir = work.path();
    let mut c = bin();
    c.arg("read")
        .arg(dir.join("missing.zfs"))
        .arg(dir.join("x.raw"));
    let o = run(c);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.starts_with("zvol-stream: opening "), "{err}");
    assert_eq!(err.lines().count(), 1);

    std::fs::write(dir.join("empty.raw"), b"").unwrap();
    let mut c = bin();
    c.arg("write")
        .arg(dir.join("empty.raw"))
        .arg(dir.join("e.zfs"));
    let o = run(c);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "zvol-stream: the raw disk is empty: a zvol cannot have size 0\n"
    );

    std::fs::write(dir.join("junk"), vec![b'x'; 1000]).unwrap();
    let mut c = bin();
    c.arg("dump").arg(dir.join("junk"));
    let o = run(c);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("zvol-stream: not a ZFS send stream: bad magic 0x7878787878787878")
    );
}

#[test]
fn closed_stdout_exits_quietly() {
    let work = tmp();
    let dir = work.path();
    std::fs::write(dir.join("big.raw"), image(Kind::Random, 8 << 20, 42)).unwrap();
    let mut child = bin()
        .arg("write")
        .arg(dir.join("big.raw"))
        .arg("-")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut first = [0u8; 100];
    out.read_exact(&mut first).unwrap();
    drop(out); // like `| head -c 100`
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let st = child.wait().unwrap();
    assert!(st.success(), "status {st:?}, stderr {err}");
    assert!(err.is_empty(), "stderr: {err}");
    assert!(!err.contains("panicked"));

    // dump into a closed pipe as well
    std::fs::write(
        dir.join("s.zfs"),
        make_stream(&image(Kind::Text, 65536, 1), 8192),
    )
    .unwrap();
    let mut child = bin()
        .args(["dump", "-j"])
        .arg(dir.join("s.zfs"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(o.stderr.is_empty(), "{}", stderr(&o));
}

#[test]
fn dump_text_and_json() {
    let work = tmp();
    let p = work.path().join("s.zfs");
    let mut disk = vec![0u8; 64 * 1024];
    disk[..100].fill(9);
    let o = {
        std::fs::write(work.path().join("d.raw"), &disk).unwrap();
        let mut c = bin();
        c.args([
            "write",
            "-b",
            "16K",
            "-n",
            "zones/abc@final",
            "--guid",
            "0xabcdef",
            "--creation-time",
            "1234",
        ])
        .arg(work.path().join("d.raw"))
        .arg(&p);
        run(c)
    };
    assert!(o.status.success(), "{}", stderr(&o));
    let mut c = bin();
    c.arg("dump").arg(&p);
    let o = run(c);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    for want in [
        "name:            zones/abc@final\n",
        "guid:            0x0000000000abcdef\n",
        "type:            3 (zvol)\n",
        "features:        0x0 (none)\n",
        "flags:           0xc\n",
        "creation_time:   1234\n",
        "volblocksize:    16384\n",
        "size:            65536\n",
        "data bytes:      16384\n",
        "  WRITE                  2 (16896 payload bytes)\n",
        "  FREE                   4 (0 payload bytes)\n",
        "END checksum:    OK (",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    let mut c = bin();
    c.args(["dump", "-j"]).arg(&p);
    let o = run(c);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["begin"]["name"], "zones/abc@final");
    assert_eq!(v["begin"]["guid"], 0xabcdef);
    assert_eq!(v["begin"]["objset_type"], 3);
    assert_eq!(v["objset_type_name"], "zvol");
    assert_eq!(v["volblocksize"], 16384);
    assert_eq!(v["size"], 65536);
    assert_eq!(v["end_checksum_ok"], true);
    assert_eq!(v["counts"][0]["type"], "BEGIN");

    // a bad END checksum: summary printed, exit 1
    let mut s = std::fs::read(&p).unwrap();
    let end = records(&s).last().unwrap().offset;
    s[end + 8] ^= 1;
    let mut ck = zvol_stream::fletcher::Fletcher4::new();
    ck.update(&s[..end + 280]);
    s[end + 280..end + 312].copy_from_slice(&ck.to_bytes());
    std::fs::write(&p, &s).unwrap();
    let mut c = bin();
    c.arg("dump").arg(&p);
    let o = run(c);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("END checksum:    BAD (stream says "));
    assert!(stderr(&o).starts_with("zvol-stream: bad END checksum"));
}

#[test]
fn dump_summarizes_streams_read_refuses() {
    // an incremental, compressed-flagged stream: dump tells, read refuses
    let s = make_stream(&image(Kind::Text, 32768, 3), 8192);
    let mut v = s.clone();
    let vi =
        1u64 | ((zvol_stream::format::FEATURE_COMPRESSED | zvol_stream::format::FEATURE_LZ4) << 2);
    v[16..24].copy_from_slice(&vi.to_le_bytes());
    v[48..56].copy_from_slice(&5u64.to_le_bytes());
    reseal(&mut v);
    let d = zvol_stream::dump(&v[..]).unwrap();
    assert_eq!(d.feature_names, ["lz4", "compressed"]);
    assert_eq!(d.begin.fromguid, 5);
    assert!(d
        .to_text()
        .contains("features:        0x420000 (lz4,compressed)"));
}

#[test]
fn man_page_passes_mandoc_lint() {
    let page = Path::new(env!("CARGO_MANIFEST_DIR")).join("man/zvol-stream.1");
    assert!(page.is_file(), "{} missing", page.display());
    let msgs = testkit::mandoc_lint(&page);
    assert!(msgs.is_empty(), "mandoc -T lint: {msgs:#?}");
    let o = std::process::Command::new("mandoc")
        .args(["-T", "lint", "-W", "warning"])
        .arg(&page)
        .output()
        .expect("mandoc must be installed");
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
}
