//! What a build leaves behind, named as triton-cloud-images names it, and
//! the manifest filled from `manifest.in` exactly as `build_all.sh` fills
//! it (plain text substitution of every `@KEY@`, no JSON escaping: a value
//! that breaks the JSON breaks it for the build too, and verification
//! catches it).

use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};

/// A target name without its dots (`ubuntu-24.04` -> `ubuntu-2404`), as
/// packer source names and output folders use it.
pub fn slug(target: &str) -> String {
    target.replace('.', "")
}

/// The packer build a target runs: `bhyve.<slug>-x86_64`.
pub fn packer_source(target: &str) -> String {
    format!("bhyve.{}-x86_64", slug(target))
}

/// `output-<slug>-x86_64`, relative to the checkout.
pub fn output_dir(target: &str) -> String {
    format!("output-{}-x86_64", slug(target))
}

/// `YYYYMMDD`: the version of an image built on `date` (UTC).
pub fn version_for(date: NaiveDate) -> String {
    date.format("%Y%m%d").to_string()
}

/// `<target>-<version>.x86_64.zfs.gz`.
pub fn image_file(target: &str, version: &str) -> String {
    format!("{target}-{version}.x86_64.zfs.gz")
}

/// `<target>-<version>.json`.
pub fn manifest_file(target: &str, version: &str) -> String {
    format!("{target}-{version}.json")
}

/// `published_at` as the build writes it: UTC, seconds, `Z`.
pub fn published_at(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Where one target's artifacts are, relative to a checkout directory.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Artifact {
    pub target: String,
    pub version: String,
    pub image: PathBuf,
    pub manifest: PathBuf,
}

impl Artifact {
    pub fn at(checkout: &Path, target: &str, version: &str) -> Artifact {
        let d = checkout.join(output_dir(target));
        Artifact {
            target: target.into(),
            version: version.into(),
            image: d.join(image_file(target, version)),
            manifest: d.join(manifest_file(target, version)),
        }
    }
}

/// The values `build_all.sh` substitutes into `manifest.in`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fill {
    pub uuid: String,
    pub name: String,
    pub version: String,
    pub published_at: String,
    pub os: String,
    pub description: String,
    pub homepage: String,
    pub sha1: String,
    pub size: u64,
}

/// The placeholders of `manifest.in`.
pub const PLACEHOLDERS: &[&str] = &[
    "@UUID@",
    "@NAME@",
    "@VERSION@",
    "@PUBLISHED_AT@",
    "@OS@",
    "@DESCRIPTION@",
    "@HOMEPAGE@",
    "@SHA1@",
    "@SIZE@",
];

/// Fill `template` (the text of `manifest.in`).
pub fn fill(template: &str, f: &Fill) -> String {
    let size = f.size.to_string();
    let pairs: [(&str, &str); 9] = [
        ("@UUID@", &f.uuid),
        ("@NAME@", &f.name),
        ("@VERSION@", &f.version),
        ("@PUBLISHED_AT@", &f.published_at),
        ("@OS@", &f.os),
        ("@DESCRIPTION@", &f.description),
        ("@HOMEPAGE@", &f.homepage),
        ("@SHA1@", &f.sha1),
        ("@SIZE@", &size),
    ];
    // One pass, so a value containing "@NAME@" is not substituted again.
    let mut out = String::with_capacity(template.len() + 512);
    let mut rest = template;
    'outer: while let Some(i) = rest.find('@') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        for (k, v) in pairs {
            if let Some(after) = tail.strip_prefix(k) {
                out.push_str(v);
                rest = after;
                continue 'outer;
            }
        }
        out.push('@');
        rest = &tail[1..];
    }
    out.push_str(rest);
    out
}

/// Placeholders still in a text (a template the build would leave unfilled).
pub fn unfilled(text: &str) -> Vec<&'static str> {
    PLACEHOLDERS
        .iter()
        .copied()
        .filter(|p| text.contains(p))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = include_str!("../../../shared/oracle/cloud-images/manifest.in");

    fn fill_ubuntu() -> Fill {
        Fill {
            uuid: "3f0a8c2e-6d7b-4f61-9a2e-5b1c0d9e7a41".into(),
            name: "ubuntu-24.04".into(),
            version: "20261125".into(),
            published_at: "2026-11-25T12:00:00Z".into(),
            os: "linux".into(),
            description: "Ubuntu 24.04 LTS (Noble Numbat). Built to run on bhyve or KVM virtual machines.".into(),
            homepage: "https://docs.tritondatacenter.com/public-cloud/instances/virtual-machines/images/linux".into(),
            sha1: "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12".into(),
            size: 734003200,
        }
    }

    #[test]
    fn names() {
        assert_eq!(slug("ubuntu-24.04"), "ubuntu-2404");
        assert_eq!(packer_source("ubuntu-24.04"), "bhyve.ubuntu-2404-x86_64");
        assert_eq!(output_dir("debian-12"), "output-debian-12-x86_64");
        let d = NaiveDate::from_ymd_opt(2026, 1, 5).unwrap();
        assert_eq!(version_for(d), "20260105");
        assert_eq!(
            image_file("ubuntu-24.04", "20260105"),
            "ubuntu-24.04-20260105.x86_64.zfs.gz"
        );
        assert_eq!(
            manifest_file("ubuntu-24.04", "20260105"),
            "ubuntu-24.04-20260105.json"
        );
        let a = Artifact::at(Path::new("/c"), "ubuntu-24.04", "20260105");
        assert_eq!(
            a.image,
            Path::new("/c/output-ubuntu-2404-x86_64/ubuntu-24.04-20260105.x86_64.zfs.gz")
        );
    }

    #[test]
    fn fills_every_placeholder_of_the_real_template() {
        let text = fill(TEMPLATE, &fill_ubuntu());
        assert!(unfilled(&text).is_empty(), "{text}");
        assert!(!unfilled(TEMPLATE).is_empty());
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["name"], "ubuntu-24.04");
        assert_eq!(v["version"], "20261125");
        assert_eq!(v["files"][0]["size"], 734003200u64);
        assert_eq!(
            v["files"][0]["sha1"],
            "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12"
        );
        assert_eq!(v["type"], "zvol");
        assert_eq!(v["image_size"], 10240);
        assert!(v["description"]
            .as_str()
            .unwrap()
            .starts_with("Ubuntu 24.04"));
    }

    #[test]
    fn fill_is_plain_substitution_like_sed() {
        let mut f = fill_ubuntu();
        f.description = "say \"hi\" @NAME@".into();
        let t = fill(
            r#"{"d": "@DESCRIPTION@", "n": "@NAME@@", "x": "@OTHER@"}"#,
            &f,
        );
        // not re-substituted, not escaped: the JSON is broken as sed would break it
        assert_eq!(
            t,
            r#"{"d": "say "hi" @NAME@", "n": "ubuntu-24.04@", "x": "@OTHER@"}"#
        );
        assert!(serde_json::from_str::<serde_json::Value>(&t).is_err());
    }

    #[test]
    fn published_at_format() {
        let t = DateTime::parse_from_rfc3339("2026-11-25T12:34:56.789+00:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(published_at(t), "2026-11-25T12:34:56Z");
    }
}
