//! `sysinfo`.

use crate::Cmd;

/// `sysinfo`: the node's facts as JSON.
pub fn get() -> Cmd {
    Cmd::new("sysinfo", &[])
}

/// Parse `sysinfo` output: a JSON object.
pub fn parse(out: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    match serde_json::from_slice(out) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        Ok(_) => Err("sysinfo: expected a JSON object".into()),
        Err(e) => Err(format!("sysinfo: not JSON: {e}")),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parse() {
        assert_eq!(super::parse(br#"{"UUID":"x"}"#).unwrap()["UUID"], "x");
        assert!(super::parse(b"[]").is_err());
    }
}
