//! The smartos-live local project `cargo xtask platform --smartos-live`
//! writes: its tree is golden, and its Makefile does what smartos-live's
//! build asks of a local project (`install` into the proto area, `manifest`
//! into DESTDIR/DESTNAME).

use std::path::Path;
use std::process::Command;

fn tree(dir: &Path) -> String {
    let mut lines = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                if rel.starts_with("man/") {
                    // copies of the manual pages: equal to the sources
                    // (their text is not part of the golden tree)
                    lines.push(format!("{rel} (copied)"));
                    continue;
                }
                use sha2::Digest as _;
                let sum = sha2::Sha256::digest(std::fs::read(&p).unwrap());
                lines.push(format!("{rel} {}", common::hex::encode(&sum)));
            }
        }
    }
    lines.sort();
    lines.join("\n") + "\n"
}

#[test]
fn smartos_live_project_tree_is_golden_and_installs() {
    let t = tempfile::tempdir().unwrap();
    // not a smartos-live checkout: refused, nothing written
    let e = xtask::platform::smartos_live(t.path())
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a smartos-live checkout"), "{e}");
    std::fs::create_dir_all(t.path().join("projects/local")).unwrap();
    let proj = xtask::platform::smartos_live(t.path()).unwrap();
    assert_eq!(proj, t.path().join("projects/local/builder-brand"));
    let got = tree(&proj);
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/smartos-live.tree");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &got).unwrap();
    }
    assert_eq!(got, std::fs::read_to_string(&golden).unwrap());
    let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for (copy, src) in [
        ("man/vmadm-ext.8", "vmadm-ext/man/vmadm-ext.8"),
        ("man/brand.1", "brand/man/brand.1"),
        ("man/zvol-stream.1", "zvol-stream/man/zvol-stream.1"),
    ] {
        assert_eq!(
            std::fs::read(proj.join(copy)).unwrap(),
            std::fs::read(ws.join(src)).unwrap(),
            "{copy}"
        );
    }

    // the Makefile, as smartos-live runs it
    let proto = t.path().join("proto");
    let o = Command::new("make")
        .current_dir(&proj)
        .arg(format!("DESTDIR={}", proto.display()))
        .args(["world", "install"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let staged = tempfile::tempdir().unwrap();
    brand::stage::stage(&brand::brands::builder(), staged.path()).unwrap();
    for f in ["config.xml", "platform.xml", "Builder.xml"] {
        let a = proto.join("usr/lib/brand/builder").join(f);
        let b = staged.path().join("usr/lib/brand/builder").join(f);
        assert_eq!(
            std::fs::read(&a).unwrap(),
            std::fs::read(&b).unwrap(),
            "{f}"
        );
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(a.metadata().unwrap().permissions().mode() & 0o777, 0o444);
    }
    let mp = t.path().join("mproto");
    std::fs::create_dir(&mp).unwrap();
    let o = Command::new("make")
        .current_dir(&proj)
        .arg(format!("DESTDIR={}", mp.display()))
        .args(["DESTNAME=builder-brand.sd.manifest", "manifest"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m = std::fs::read_to_string(mp.join("builder-brand.sd.manifest")).unwrap();
    assert!(m.contains("d usr/lib/brand/builder 0755 root bin"), "{m}");
    assert_eq!(m.lines().count(), 4, "{m}");
    // WITH_TOOLS=yes adds the tools' manifest lines
    let o = Command::new("make")
        .current_dir(&proj)
        .arg(format!("DESTDIR={}", mp.display()))
        .args(["DESTNAME=with-tools", "WITH_TOOLS=yes", "manifest"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let m = std::fs::read_to_string(mp.join("with-tools")).unwrap();
    assert!(m.contains("f usr/bin/vmadm-ext 0555 root bin"), "{m}");
    assert!(
        m.contains("f usr/share/man/man8/vmadm-ext.8 0444 root bin"),
        "{m}"
    );
}

#[test]
fn phase_1_release_plan_lists_crates_files_and_tags() {
    let p = xtask::release::plan(1).unwrap();
    let names: Vec<&str> = p.crates.iter().map(|c| c.name.as_str()).collect();
    // each crate after what it needs
    let pos = |n: &str| {
        names
            .iter()
            .position(|x| *x == n)
            .unwrap_or_else(|| panic!("{n} in {names:?}"))
    };
    assert!(pos("common") < pos("brand") && pos("brand") < pos("vmadm-ext"));
    assert!(pos("host") < pos("vmadm-ext"));
    assert!(
        !names.contains(&"sim") && !names.contains(&"testkit"),
        "{names:?}"
    );
    let tags: Vec<String> = p.crates.iter().map(|c| c.tag()).collect();
    assert!(tags.contains(&"vmadm-ext-v0.1.0".to_string()), "{tags:?}");
    let files: Vec<&str> = p.files.iter().map(|(f, _)| f.as_str()).collect();
    for f in [
        "bin/vmadm-ext",
        "man/man8/vmadm-ext.8",
        "man/man7/builder.7",
        "share/zsh/site-functions/_vmadm-ext",
        "SHA256SUMS",
    ] {
        assert!(files.contains(&f), "{f} not in {files:?}");
    }
    for c in &p.crates {
        assert!(
            xtask::release::changelog_has(&c.dir, &c.version).unwrap(),
            "{} has no changelog entry for {}",
            c.name,
            c.version
        );
    }
    assert!(xtask::release::plan(7).is_err());
}
