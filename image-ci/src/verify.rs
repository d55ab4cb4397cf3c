//! Verification: an artifact ships only when every check passes.
//!
//! - the image file and the manifest exist; the manifest is JSON with no
//!   placeholder left;
//! - the file's sha1 and size match the manifest's `files[0]`;
//! - the manifest, as IMGAPI holds it once activated (`activated: true`),
//!   is valid per imgmanifest's `validateDcManifest`, and carries no field
//!   whose rules image-ci does not check;
//! - `name` is the target and `version` the build date (`YYYYMMDD`);
//! - `type` is `zvol`, `files` has exactly one file with `compression`
//!   `gzip`, and the file really is gzip;
//! - the manifest was written by this build (`published_at` not before the
//!   build started), so a stale artifact from an earlier build never ships;
//! - the file inflates to one whole zvol send stream (zvol-stream: every
//!   record checksum and the END checksum, nothing after END), whose volume
//!   fits the manifest's `image_size`.
//!
//! The image is read once: while it is copied out of the zone and hashed,
//! the same bytes are inflated, parsed as a stream and, when asked, written
//! to the sparse raw disk the boot test boots ([`verify_with`]).

use std::io::Read;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sha1::{Digest as _, Sha1};

use crate::artifact::{unfilled, Artifact};
use imgmanifest::validate_dc;

/// Fields a cloud-image manifest never carries; a manifest with any of them
/// was not written by this build and is refused.
pub const UNEXPECTED_FIELDS: &[&str] = &[
    "origin",
    "billing_tags",
    "traits",
    "generate_passwords",
    "inherited_directories",
    "channels",
];

/// One check and its result.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

fn check(name: &str, ok: bool, detail: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        ok,
        detail: detail.into(),
    }
}

/// What the artifact must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    pub target: String,
    pub version: String,
    /// The build's start; `published_at` must not be earlier.
    pub not_before: Option<DateTime<Utc>>,
}

/// A file's sha1 (hex) and size, streamed.
pub fn file_digest(path: &Path) -> std::io::Result<(String, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha1::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok((common::hex::encode(&h.finalize()), size))
}

/// The manifest rules, given the file's real sha1, size and first bytes.
pub fn check_manifest(
    m: &Value,
    expect: &Expect,
    sha1: &str,
    size: u64,
    head: &[u8],
) -> Vec<Check> {
    let mut out = Vec::new();
    let Some(obj) = m.as_object() else {
        out.push(check("manifest is a JSON object", false, "not an object"));
        return out;
    };
    let file = m["files"].as_array().and_then(|f| f.first());
    let want_sha1 = file.and_then(|f| f["sha1"].as_str()).unwrap_or_default();
    out.push(check(
        "sha1 matches the manifest",
        !want_sha1.is_empty() && want_sha1 == sha1,
        format!("file {sha1}, manifest {want_sha1:?}"),
    ));
    let want_size = file.and_then(|f| f["size"].as_u64());
    out.push(check(
        "size matches the manifest",
        want_size == Some(size),
        format!("file {size} bytes, manifest {want_size:?}"),
    ));
    let mut activated = obj.clone();
    activated.insert("activated".into(), Value::Bool(true));
    let errs = validate_dc(&activated);
    out.push(check(
        "manifest valid per validateDcManifest",
        errs.is_none(),
        match &errs {
            None => "valid (as activated)".to_string(),
            Some(e) => e
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        },
    ));
    let extra: Vec<&str> = UNEXPECTED_FIELDS
        .iter()
        .copied()
        .filter(|f| obj.contains_key(*f))
        .collect();
    out.push(check(
        "no fields outside the cloud-image manifest",
        extra.is_empty(),
        if extra.is_empty() {
            "none".to_string()
        } else {
            extra.join(", ")
        },
    ));
    out.push(check(
        "name is the target",
        m["name"] == expect.target.as_str(),
        format!("name {}, target {}", m["name"], expect.target),
    ));
    out.push(check(
        "version is the build date",
        m["version"] == expect.version.as_str(),
        format!("version {}, build date {}", m["version"], expect.version),
    ));
    out.push(check(
        "type is zvol",
        m["type"] == "zvol",
        format!("type {}", m["type"]),
    ));
    let nfiles = m["files"].as_array().map_or(0, Vec::len);
    let comp = file
        .map(|f| f["compression"].clone())
        .unwrap_or(Value::Null);
    out.push(check(
        "one file, compression gzip",
        nfiles == 1 && comp == "gzip",
        format!("{nfiles} file(s), compression {comp}"),
    ));
    out.push(check(
        "file is gzip data",
        head.starts_with(&[0x1f, 0x8b]),
        format!("magic {}", common::hex::encode(&head[..head.len().min(2)])),
    ));
    if let Some(nb) = expect.not_before {
        let nb_s = crate::artifact::published_at(nb);
        let p = m["published_at"].as_str().unwrap_or_default();
        let at = DateTime::parse_from_rfc3339(p)
            .ok()
            .map(|t| t.with_timezone(&Utc));
        let nb_trunc = DateTime::parse_from_rfc3339(&nb_s)
            .ok()
            .map(|t| t.with_timezone(&Utc));
        out.push(check(
            "built by this run",
            matches!((at, nb_trunc), (Some(a), Some(b)) if a >= b),
            format!("published_at {p:?}, build started {nb_s}"),
        ));
    }
    out
}

/// What the image's stream turned out to be.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StreamFacts {
    /// The zvol's size (the raw disk's), bytes.
    pub volume_size: u64,
    pub volblocksize: u32,
    pub records: u64,
    /// Bytes of inflated stream.
    pub stream_bytes: u64,
    /// The snapshot name in BEGIN.
    pub toname: String,
}

/// The result of verifying one artifact.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Verification {
    pub checks: Vec<Check>,
    #[serde(skip)]
    pub manifest: Option<Value>,
    pub sha1: Option<String>,
    pub size: Option<u64>,
    /// The image as verified, copied out of the zone: what the boot test
    /// reads and what ships.
    #[serde(skip)]
    pub staged: Option<std::path::PathBuf>,
    /// The stream, when it parsed.
    pub stream: Option<StreamFacts>,
    /// The raw disk written from the stream (with [`verify_with`] and a
    /// disk path, when the stream checked out).
    #[serde(skip)]
    pub disk: Option<std::path::PathBuf>,
}

impl Verification {
    pub fn ok(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.ok)
    }

    /// The failed checks, one line.
    pub fn failures(&self) -> String {
        self.checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// The largest manifest read from a zone.
pub const MAX_MANIFEST_BYTES: u64 = 1 << 20;

/// Parse (plain or gzipped) stream bytes as one whole zvol send stream,
/// writing the raw disk to `disk` (else only checking). Nothing may follow
/// the END record.
pub fn check_stream(input: &mut dyn Read, disk: Option<&Path>) -> Result<StreamFacts, String> {
    let mut r = zvol_stream::parse::maybe_gunzip(input).map_err(|e| e.to_string())?;
    let summary = match disk {
        Some(p) => {
            let mut f = std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()))?;
            zvol_stream::read_stream(&mut r, &mut f)
        }
        None => zvol_stream::read_stream_to_writer(&mut r, std::io::sink()),
    }
    .map_err(|e| e.to_string())?;
    let mut one = [0u8; 1];
    match r.read(&mut one) {
        Ok(0) => {}
        Ok(_) => return Err("data follows the stream's END record".into()),
        Err(e) => return Err(format!("after the stream's END record: {e}")),
    }
    Ok(StreamFacts {
        volume_size: summary.size,
        volblocksize: summary.volblocksize,
        records: summary.records,
        stream_bytes: summary.stream_bytes,
        toname: summary.begin.name.clone(),
    })
}

/// The stream checks, given what [`check_stream`] said and the manifest.
pub fn stream_checks(stream: &Result<StreamFacts, String>, m: Option<&Value>) -> Vec<Check> {
    let mut out = vec![check(
        "file is a whole zvol send stream",
        stream.is_ok(),
        match stream {
            Ok(s) => format!(
                "{} records, {} bytes inflated, checksums ok, {}, volblocksize {}",
                s.records, s.stream_bytes, s.toname, s.volblocksize
            ),
            Err(e) => e.clone(),
        },
    )];
    if let (Ok(s), Some(m)) = (stream, m) {
        let mib = m["image_size"].as_u64();
        out.push(check(
            "volume fits image_size",
            matches!(mib, Some(mib) if mib > 0 && s.volume_size <= mib * 1024 * 1024),
            format!(
                "volume {} bytes, image_size {} MiB",
                s.volume_size, m["image_size"]
            ),
        ));
    }
    out
}

/// Verify the artifact a zone wrote. `anchor` is a directory the global
/// zone owns (the zone root) that holds the artifact; every file is opened
/// below it without following links ([`crate::zonefile`]). The image is
/// copied to `stage` while it is hashed and its stream checked, and every
/// later stage uses that copy.
pub fn verify(anchor: &Path, a: &Artifact, expect: &Expect, stage: &Path) -> Verification {
    verify_with(anchor, a, expect, stage, None)
}

/// [`verify`], also writing the stream's raw disk to `disk` (sparse) in the
/// same pass; it is removed again unless every check passed.
pub fn verify_with(
    anchor: &Path,
    a: &Artifact,
    expect: &Expect,
    stage: &Path,
    disk: Option<&Path>,
) -> Verification {
    use crate::zonefile;
    let mut v = Verification {
        checks: vec![],
        manifest: None,
        sha1: None,
        size: None,
        staged: None,
        stream: None,
        disk: None,
    };
    let discard = |v: &mut Verification| {
        let _ = std::fs::remove_file(stage);
        if let Some(d) = disk {
            let _ = std::fs::remove_file(d);
        }
        v.staged = None;
        v.disk = None;
    };
    let text = zonefile::read_text(anchor, &a.manifest, MAX_MANIFEST_BYTES);
    let staged = zonefile::stage_inspect(anchor, &a.image, stage, |r| check_stream(r, disk));
    v.checks.push(check(
        "image file exists",
        staged.is_ok(),
        match &staged {
            Ok(_) => a.image.display().to_string(),
            Err(e) => e.to_string(),
        },
    ));
    v.checks.push(check(
        "manifest file exists",
        text.is_ok(),
        match &text {
            Ok(_) => a.manifest.display().to_string(),
            Err(e) => e.to_string(),
        },
    ));
    let (Ok(text), Ok((staged, stream))) = (text, staged) else {
        discard(&mut v);
        return v;
    };
    v.stream = stream.as_ref().ok().cloned();
    let left = unfilled(&text);
    v.checks.push(check(
        "manifest fully filled",
        left.is_empty(),
        if left.is_empty() {
            "no @PLACEHOLDER@ left".into()
        } else {
            left.join(" ")
        },
    ));
    let m: Value = match serde_json::from_str(&text) {
        Ok(m) => m,
        Err(e) => {
            v.checks
                .push(check("manifest is JSON", false, e.to_string()));
            v.checks.extend(stream_checks(&stream, None));
            discard(&mut v);
            return v;
        }
    };
    v.checks.extend(check_manifest(
        &m,
        expect,
        &staged.sha1,
        staged.size,
        &staged.head[..staged.head.len().min(2)],
    ));
    v.checks.extend(stream_checks(&stream, Some(&m)));
    v.manifest = Some(m);
    v.sha1 = Some(staged.sha1);
    v.size = Some(staged.size);
    v.staged = Some(staged.path);
    v.disk = disk.map(Path::to_path_buf);
    if !v.ok() {
        discard(&mut v);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::{fill, Fill};

    fn good(sha1: &str, size: u64) -> Value {
        let f = Fill {
            uuid: "3f0a8c2e-6d7b-4f61-9a2e-5b1c0d9e7a41".into(),
            name: "debian-12".into(),
            version: "20261125".into(),
            published_at: "2026-11-25T12:00:05Z".into(),
            os: "linux".into(),
            description: "Debian 12".into(),
            homepage: "https://example.com/".into(),
            sha1: sha1.into(),
            size,
        };
        serde_json::from_str(&fill(
            include_str!("../../../shared/oracle/cloud-images/manifest.in"),
            &f,
        ))
        .unwrap()
    }

    fn expect() -> Expect {
        Expect {
            target: "debian-12".into(),
            version: "20261125".into(),
            not_before: Some(
                DateTime::parse_from_rfc3339("2026-11-25T12:00:05.700Z")
                    .unwrap()
                    .with_timezone(&Utc),
            ),
        }
    }

    fn failed(c: &[Check]) -> Vec<&str> {
        c.iter()
            .filter(|c| !c.ok)
            .map(|c| c.name.as_str())
            .collect()
    }

    const GZ: &[u8] = &[0x1f, 0x8b];

    #[test]
    fn a_good_manifest_passes_every_check() {
        let c = check_manifest(&good("ab", 10), &expect(), "ab", 10, GZ);
        assert!(failed(&c).is_empty(), "{c:#?}");
        assert_eq!(c.len(), 10);
    }

    #[test]
    fn each_rule_can_fail() {
        let e = expect();
        assert_eq!(
            failed(&check_manifest(&good("ab", 10), &e, "cd", 10, GZ)),
            ["sha1 matches the manifest"]
        );
        assert_eq!(
            failed(&check_manifest(&good("ab", 10), &e, "ab", 11, GZ)),
            ["size matches the manifest"]
        );
        assert_eq!(
            failed(&check_manifest(&good("ab", 10), &e, "ab", 10, b"PK")),
            ["file is gzip data"]
        );
        let mut m = good("ab", 10);
        m["name"] = "debian-13".into();
        assert_eq!(
            failed(&check_manifest(&m, &e, "ab", 10, GZ)),
            ["name is the target"]
        );
        let mut m = good("ab", 10);
        m["version"] = "20261124".into();
        assert_eq!(
            failed(&check_manifest(&m, &e, "ab", 10, GZ)),
            ["version is the build date"]
        );
        let mut m = good("ab", 10);
        m["published_at"] = "2026-11-25T12:00:04Z".into();
        assert_eq!(
            failed(&check_manifest(&m, &e, "ab", 10, GZ)),
            ["built by this run"]
        );
        let mut m = good("ab", 10);
        m["type"] = "zone-dataset".into();
        let c = check_manifest(&m, &e, "ab", 10, GZ);
        let f = failed(&c);
        assert!(
            f.contains(&"type is zvol") && f.contains(&"manifest valid per validateDcManifest")
        );
        let mut m = good("ab", 10);
        m["files"][0]["compression"] = "xz".into();
        assert_eq!(
            failed(&check_manifest(&m, &e, "ab", 10, GZ)),
            ["one file, compression gzip"]
        );
        let mut m = good("ab", 10);
        m["os"] = "ubuntu".into();
        assert_eq!(
            failed(&check_manifest(&m, &e, "ab", 10, GZ)),
            ["manifest valid per validateDcManifest"]
        );
        let mut m = good("ab", 10);
        m["origin"] = "3f0a8c2e-6d7b-4f61-9a2e-5b1c0d9e7a41".into();
        assert_eq!(
            failed(&check_manifest(&m, &e, "ab", 10, GZ)),
            ["no fields outside the cloud-image manifest"]
        );
    }

    #[test]
    fn verify_on_disk() {
        use crate::standin::{write_image, DiskKind};
        let d = tempfile::tempdir().unwrap();
        let a = Artifact::at(d.path(), "debian-12", "20261125");
        let st = d.path().join("stage.gz");
        let disk = d.path().join("disk.raw");
        let verify =
            |a: &Artifact, e: &Expect| super::verify_with(d.path(), a, e, &st, Some(&disk));
        let v = verify(&a, &expect());
        assert!(!v.ok());
        assert_eq!(
            failed(&v.checks),
            ["image file exists", "manifest file exists"]
        );
        std::fs::create_dir_all(a.image.parent().unwrap()).unwrap();
        write_image(DiskKind::Marker, "debian-12", &a.image).unwrap();
        let data = std::fs::read(&a.image).unwrap();
        let (sha1, size) = file_digest(&a.image).unwrap();
        std::fs::write(&a.manifest, good(&sha1, size).to_string()).unwrap();
        let v = verify(&a, &expect());
        assert!(v.ok(), "{}", v.failures());
        assert_eq!(std::fs::read(v.staged.as_ref().unwrap()).unwrap(), data);
        // the same pass wrote the raw disk
        assert_eq!(v.disk.as_deref(), Some(disk.as_path()));
        assert_eq!(
            std::fs::read(&disk).unwrap(),
            crate::standin::disk(DiskKind::Marker, "debian-12").unwrap()
        );
        let s = v.stream.as_ref().unwrap();
        assert_eq!((s.volume_size, s.volblocksize), (1 << 20, 8192));
        assert!(v
            .checks
            .iter()
            .any(|c| c.name == "volume fits image_size" && c.ok));
        // one flipped byte inside the gzip data: sha1, and the stream. Some
        // flips leave an equivalent deflate stream (a code length of an
        // unused symbol): take the first one from the middle on that does
        // change what the file inflates to.
        let inflate = |b: &[u8]| -> Option<Vec<u8>> {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(b), &mut out)
                .ok()
                .map(|_| out)
        };
        let original = inflate(&data).unwrap();
        let bad = (data.len() / 2..data.len() - 8)
            .map(|i| {
                let mut b = data.clone();
                b[i] ^= 0x40;
                b
            })
            .find(|b| inflate(b).as_ref() != Some(&original))
            .expect("a byte whose flip changes the inflated stream");
        std::fs::write(&a.image, &bad).unwrap();
        let v = verify(&a, &expect());
        assert_eq!(
            failed(&v.checks),
            [
                "sha1 matches the manifest",
                "file is a whole zvol send stream"
            ]
        );
        assert!(v.staged.is_none() && v.disk.is_none() && !st.exists() && !disk.exists());
        // a gzip of something that is not a stream, with a matching manifest
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &[0u8; 4096]).unwrap();
        std::fs::write(&a.image, gz.finish().unwrap()).unwrap();
        let (sha1b, sizeb) = file_digest(&a.image).unwrap();
        std::fs::write(&a.manifest, good(&sha1b, sizeb).to_string()).unwrap();
        let v = verify(&a, &expect());
        assert_eq!(failed(&v.checks), ["file is a whole zvol send stream"]);
        // bytes after the gzip member: sha1 and size would catch it, and so does the stream check
        let mut trailing = data.clone();
        trailing.push(b'x');
        std::fs::write(&a.image, &trailing).unwrap();
        let v = super::verify(d.path(), &a, &expect(), &st);
        assert!(
            failed(&v.checks).contains(&"file is a whole zvol send stream"),
            "{:?}",
            v.checks
        );
        // a stream larger than image_size
        std::fs::write(&a.image, &data).unwrap();
        let mut m = good(&sha1, size);
        m["image_size"] = 0.into();
        let c = stream_checks(&Ok(s.clone()), Some(&m));
        assert!(!c[1].ok);
        std::fs::write(&a.manifest, "{\"name\": \"@NAME@\"").unwrap();
        let v = verify(&a, &expect());
        assert_eq!(
            failed(&v.checks),
            ["manifest fully filled", "manifest is JSON"]
        );
        // a symlink to a host file with a matching manifest is never read
        let host = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(host.path(), &data).unwrap();
        std::fs::remove_file(&a.image).unwrap();
        std::os::unix::fs::symlink(host.path(), &a.image).unwrap();
        std::fs::write(&a.manifest, good(&sha1, size).to_string()).unwrap();
        let v = verify(&a, &expect());
        assert!(!v.ok());
        assert_eq!(failed(&v.checks), ["image file exists"]);
        assert!(v.failures().contains("symbolic link"), "{}", v.failures());
        assert!(v.staged.is_none() && !st.exists() && !disk.exists());
    }
}
