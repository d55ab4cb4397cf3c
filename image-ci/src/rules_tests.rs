//! The manifest rules (crate imgmanifest) on the manifests this build
//! writes.

#[cfg(test)]
mod tests {
    use imgmanifest::*;
    use serde_json::json;
    use serde_json::{Map, Value};

    fn ubuntu() -> Map<String, Value> {
        let t = include_str!("../../../shared/oracle/cloud-images/manifest.in");
        let f = crate::artifact::Fill {
            uuid: "3f0a8c2e-6d7b-4f61-9a2e-5b1c0d9e7a41".into(),
            name: "ubuntu-24.04".into(),
            version: "20261125".into(),
            published_at: "2026-11-25T12:00:00Z".into(),
            os: "linux".into(),
            description: "Ubuntu".into(),
            homepage: "https://example.com/linux".into(),
            sha1: "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12".into(),
            size: 1234,
        };
        serde_json::from_str(&crate::artifact::fill(t, &f)).unwrap()
    }

    fn fields(m: &Map<String, Value>) -> Vec<(String, String)> {
        validate_dc(m)
            .unwrap_or_default()
            .into_iter()
            .map(|e| (e.field, e.code))
            .collect()
    }

    #[test]
    fn filled_template_needs_only_activated() {
        let mut m = ubuntu();
        assert_eq!(
            fields(&m),
            [("activated".to_string(), "MissingParameter".to_string())]
        );
        m.insert("activated".into(), json!(true));
        assert_eq!(validate_dc(&m), None);
    }

    #[test]
    fn rules_reject_what_imgmanifest_rejects() {
        let mut base = ubuntu();
        base.insert("activated".into(), json!(true));
        let case = |k: &str, v: Value| {
            let mut m = base.clone();
            m.insert(k.into(), v);
            fields(&m)
        };
        let inv = |f: &str| vec![(f.to_string(), "Invalid".to_string())];
        assert_eq!(case("os", json!("ubuntu")), inv("os"));
        // drivers and image_size may only be set on zvols, as upstream says
        let t = case("type", json!("zfs"));
        assert_eq!(t[0], ("type".to_string(), "Invalid".to_string()));
        assert!(t.contains(&("image_size".to_string(), "Invalid".to_string())));
        assert_eq!(case("uuid", json!("not-a-uuid")), inv("uuid"));
        assert_eq!(case("name", json!("bad*name")), inv("name"));
        assert_eq!(case("version", json!("2026 11 25")), inv("version"));
        assert_eq!(
            case("published_at", json!("2026-11-25 12:00")),
            inv("published_at")
        );
        assert_eq!(case("homepage", json!("ftp://x")), inv("homepage"));
        assert_eq!(case("image_size", json!("big")), inv("image_size"));
        assert_eq!(case("state", json!("shipped")), inv("state"));
        assert_eq!(case("public", json!("yes")), inv("public"));
        assert_eq!(
            case(
                "files",
                json!([{"sha1": "x", "size": 1, "compression": "zip"}])
            ),
            inv("files")
        );
        assert_eq!(
            case(
                "files",
                json!([{"sha1": "x", "size": 0, "compression": "gzip"}])
            ),
            inv("files")
        );
        assert_eq!(
            case("users", json!([{"name": "root", "x": 1}])),
            inv("users")
        );
        assert_eq!(case("tags", json!([])), inv("tags"));
        assert_eq!(case("bogus", json!(1)), inv("bogus"));
        assert_eq!(case("requirements", json!({"frobs": 1})), inv("frobs"));
        assert_eq!(
            case("requirements", json!({"networks": [{"name": "net0"}]})),
            inv("requirements.networks")
        );
        let mut m = base.clone();
        m.remove("nic_driver");
        assert_eq!(
            fields(&m),
            [("nic_driver".into(), "MissingParameter".into())]
        );
        let mut m = base.clone();
        m.insert("type".into(), json!("zone-dataset"));
        let f = fields(&m);
        assert!(f.contains(&("nic_driver".into(), "Invalid".into())));
        assert!(f.contains(&("image_size".into(), "Invalid".into())));
    }

    #[test]
    fn platform_versions() {
        assert!(valid_platform_version(&json!("20130308T102805Z")));
        assert!(!valid_platform_version(&json!("20110308T102805Z")));
        assert!(!valid_platform_version(&json!("20131308T102805Z")));
        assert!(!valid_platform_version(&json!("2013030810280Z")));
    }
}
