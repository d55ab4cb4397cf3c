//! The CLI surface: usage errors, the man page (mandoc -T lint), README.

use std::path::Path;
use std::process::Command;

use crate::common::image_ci_bin;

#[test]
fn usage_errors_exit_2_with_one_line() {
    for args in [
        vec!["frob"],
        vec!["run", "-c", "x"],
        vec!["run", "-c", "x", "--imgapi", "http://x", "-z", "u", "--due"],
        vec![
            "run", "-c", "x", "--imgapi", "http://x", "-z", "u", "--local",
        ],
        vec!["build", "--local", "-c", "x"],
        vec!["boot-test"],
        vec!["serve"],
        vec!["run", "--config", "c.toml", "-z", "u"],
        vec!["run", "--config", "c.toml", "--keep-zone=sometimes"],
    ] {
        let o = Command::new(image_ci_bin()).args(&args).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("image-ci: "), "{err}");
    }
    // a bad interval is an error (1), not a usage error
    let o = Command::new(image_ci_bin())
        .args(["--state", "/nonexistent/s.db", "report", "--every", "soon"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("invalid interval"));
}

#[test]
fn targets_lists_the_checkout() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/oracle/cloud-images");
    let o = Command::new(image_ci_bin())
        .args(["-j", "targets", "-c"])
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 13);
    assert_eq!(names[12], "ubuntu-24.04");
    let o = Command::new(image_ci_bin())
        .args(["targets", "-c", "/nonexistent"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).starts_with("image-ci: /nonexistent/imgconfigs.json: ")
    );
}

#[test]
fn man_page_lints_clean() {
    let man = Path::new(env!("CARGO_MANIFEST_DIR")).join("man/image-ci.1");
    let bad = testkit::mandoc_lint(&man);
    assert!(bad.is_empty(), "mandoc -T lint:\n{}", bad.join("\n"));
    // every subcommand is documented
    let page = std::fs::read_to_string(&man).unwrap();
    for c in [
        "targets",
        "run",
        "build",
        "boot-test",
        "serve",
        "status",
        "check-config",
        "history",
        "report",
    ] {
        assert!(
            page.contains(&format!(".It Cm {c}")),
            "{c} missing from the man page"
        );
    }
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    assert!(readme.contains("cargo test -p image-ci"));
    // what runs where, and no stand-in disk claims left
    for text in [&page, &readme] {
        assert!(text.contains("qemu") && text.contains("bhyve"));
        assert!(!text.contains("disk-signature") && !text.contains("0x55AA"));
    }
    for opt in [
        "--boot-marker",
        "--boot-timeout",
        "--local",
        "--cache-dir",
        "--config",
        "--keep-zone",
        "--listen",
        "--url",
        "--state",
        "--tools-dir",
    ] {
        assert!(
            page.contains(&format!("Fl -{}", &opt[2..])),
            "{opt} missing from the man page"
        );
    }
}
