//! `imgadm`.

use crate::{Cmd, Host};

/// `imgadm get -P <pool> <uuid>`: an installed image's manifest.
pub fn get(pool: &str, uuid: &str) -> Cmd {
    Cmd::new("imgadm", &["get", "-P", pool, uuid])
}

/// `imgadm list -j`: every installed image.
pub fn list_json() -> Cmd {
    Cmd::new("imgadm", &["list", "-j"])
}

/// The image type (`manifest.type`) from `imgadm get` output.
pub fn parse_get_type(out: &str) -> Result<String, String> {
    let v: serde_json::Value =
        serde_json::from_str(out).map_err(|e| format!("imgadm output is not JSON: {e}"))?;
    v.pointer("/manifest/type")
        .and_then(|t| t.as_str())
        .map(str::to_string)
        .ok_or_else(|| "imgadm output has no manifest.type".to_string())
}

/// The type of an installed image, or what imgadm said.
pub fn image_type(h: &dyn Host, pool: &str, uuid: &str) -> Result<String, String> {
    let out = h.run(&get(pool, uuid)).map_err(|e| e.message())?;
    parse_get_type(&out.text())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_and_parse() {
        assert_eq!(get("zones", "u").to_string(), "imgadm get -P zones u");
        assert_eq!(list_json().to_string(), "imgadm list -j");
        assert_eq!(
            parse_get_type(r#"{"manifest":{"type":"zone-dataset"}}"#).unwrap(),
            "zone-dataset"
        );
        assert!(parse_get_type("{}").is_err());
    }
}
