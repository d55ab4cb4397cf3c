//! The service URLs `sim triton serve` writes to `DIR/endpoints.json`
//! (`{"papi": url, "vmapi": ..., "cnapi": ..., "imgapi": ..., "mahi": ...}`).

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Base URLs of the Triton services (no trailing `/`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Endpoints {
    pub papi: String,
    pub vmapi: String,
    pub cnapi: String,
    pub imgapi: String,
    pub mahi: String,
    /// Other services the file names (e.g. `vminfod`, `cloudapi`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A bad endpoints file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("endpoints file {path}: {message}")]
pub struct EndpointsError {
    pub path: String,
    pub message: String,
}

impl Endpoints {
    /// Read an `endpoints.json`; each of the five services must be there.
    pub fn from_file(path: &Path) -> Result<Endpoints, EndpointsError> {
        let err = |message: String| EndpointsError {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        Endpoints::from_json(&text).map_err(err)
    }

    /// Parse the file's text.
    pub fn from_json(text: &str) -> Result<Endpoints, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let mut m = v
            .as_object()
            .cloned()
            .ok_or_else(|| "not a JSON object".to_string())?;
        let mut take = |k: &str| {
            m.remove(k)
                .and_then(|v| v.as_str().map(|s| s.trim_end_matches('/').to_string()))
                .filter(|s| !s.is_empty())
                .ok_or_else(|| format!("no \"{k}\" URL"))
        };
        Ok(Endpoints {
            papi: take("papi")?,
            vmapi: take("vmapi")?,
            cnapi: take("cnapi")?,
            imgapi: take("imgapi")?,
            mahi: take("mahi")?,
            extra: m,
        })
    }

    /// Another service's URL from `extra` (e.g. `vminfod`).
    pub fn other(&self, service: &str) -> Option<&str> {
        self.extra
            .get(service)
            .and_then(Value::as_str)
            .map(|s| s.trim_end_matches('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_sim_file() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("endpoints.json");
        std::fs::write(
            &p,
            r#"{"papi":"http://127.0.0.1:1/","vmapi":"http://v","cnapi":"http://c","imgapi":"http://i","mahi":"http://m","vminfod":"http://n/"}"#,
        )
        .unwrap();
        let e = Endpoints::from_file(&p).unwrap();
        assert_eq!(e.papi, "http://127.0.0.1:1");
        assert_eq!(e.mahi, "http://m");
        assert_eq!(e.other("vminfod"), Some("http://n"));
        std::fs::write(&p, r#"{"papi":"http://p"}"#).unwrap();
        assert_eq!(
            Endpoints::from_file(&p).unwrap_err().to_string(),
            format!("endpoints file {}: no \"vmapi\" URL", p.display())
        );
        assert!(Endpoints::from_file(&t.path().join("none"))
            .unwrap_err()
            .message
            .contains("No such file"));
        assert_eq!(Endpoints::from_json("[]").unwrap_err(), "not a JSON object");
    }
}
