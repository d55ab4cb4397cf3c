//! Workflow jobs as VMAPI serves them (`GET /jobs/:uuid`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::lenient::Lenient;

/// A workflow job.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Job {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uuid: String,
    /// `provision-7.3.0`, `start-7.0.0`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// `queued`, `running`, `succeeded`, `failed`, `canceled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_results: Option<Vec<JobResult>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec_after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Lenient<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elapsed: Option<Lenient<f64>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One step of a job.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct JobResult {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Usually a string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// `""` when the step passed; a string or an object otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Job {
    /// `succeeded`, `failed` or `canceled`.
    pub fn is_finished(&self) -> bool {
        matches!(
            self.execution.as_deref(),
            Some("succeeded" | "failed" | "canceled")
        )
    }

    pub fn succeeded(&self) -> bool {
        self.execution.as_deref() == Some("succeeded")
    }

    /// The first step that failed, as `name: error`.
    pub fn failure(&self) -> Option<String> {
        self.chain_results.iter().flatten().find_map(|r| {
            let e = match &r.error {
                None | Some(Value::Null) => return None,
                Some(Value::String(s)) if s.is_empty() => return None,
                Some(Value::String(s)) => s.clone(),
                Some(Value::Object(o)) => o
                    .get("message")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| Value::Object(o.clone()).to_string()),
                Some(v) => v.to_string(),
            };
            Some(format!("{}: {e}", r.name.as_deref().unwrap_or("?")))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn failed_job() {
        let wire = json!({"uuid": "j", "name": "provision-7.3.0", "execution": "failed",
            "chain_results": [
                {"result": "All parameters OK!", "error": "", "name": "common.validate_params"},
                {"result": "", "error": "vmadm create failed: boom", "name": "cnapi.provision_vm"}],
            "timeout": 3810, "elapsed": 0});
        let j: Job = serde_json::from_value(wire.clone()).unwrap();
        assert!(j.is_finished() && !j.succeeded());
        assert_eq!(
            j.failure().as_deref(),
            Some("cnapi.provision_vm: vmadm create failed: boom")
        );
        assert_eq!(serde_json::to_value(&j).unwrap(), wire);
        let r: Job = serde_json::from_value(json!({"uuid": "j", "execution": "running",
            "chain_results": [{"name": "x", "error": {"name": "E", "message": "m"}}]}))
        .unwrap();
        assert!(!r.is_finished());
        assert_eq!(r.failure().as_deref(), Some("x: m"));
    }
}
