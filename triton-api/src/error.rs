//! Errors: the body every Triton API answers on failure ([`TritonError`],
//! restify's `{"code", "message"}` plus VMAPI/PAPI/IMGAPI's `errors` list),
//! and [`ApiError`], what a client call returns when it fails.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A Triton error body: `{"code": "...", "message": "...", "errors": [...]}`.
///
/// `errors` is present on validation failures (VMAPI `ValidationFailed`,
/// PAPI `InvalidArgument`, IMGAPI `InvalidParameter`/`ValidationFailed`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TritonError {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Anything else (e.g. restify's `body`/`restCode` on some services).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One entry of `errors`: `{field, code, message?}`. `code` is one of
/// `Invalid`, `MissingParameter`, `Missing`, `Duplicate`,
/// `InsufficientCapacity`, `ConflictingParameters` (which adds `fields`, kept
/// in `extra`), ...; `MissingParameter` usually has no message.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FieldError {
    #[serde(default)]
    pub field: String,
    #[serde(default)]
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl TritonError {
    /// `{"code": code, "message": message}`.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> TritonError {
        TritonError {
            code: code.into(),
            message: message.into(),
            ..Default::default()
        }
    }

    /// With a list of field errors.
    pub fn with_errors(
        code: impl Into<String>,
        message: impl Into<String>,
        errors: Vec<FieldError>,
    ) -> TritonError {
        TritonError {
            code: code.into(),
            message: message.into(),
            errors,
            extra: Map::new(),
        }
    }

    /// Read an error body: `Some` when it is a JSON object with a string
    /// `code` or `message`.
    pub fn from_body(body: &[u8]) -> Option<TritonError> {
        let v: Value = serde_json::from_slice(body).ok()?;
        let o = v.as_object()?;
        if !(o.get("code").is_some_and(Value::is_string)
            || o.get("message").is_some_and(Value::is_string))
        {
            return None;
        }
        serde_json::from_value(v).ok()
    }
}

impl FieldError {
    pub fn new(field: impl Into<String>, code: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            code: code.into(),
            ..Default::default()
        }
    }

    pub fn with_message(mut self, message: impl Into<String>) -> FieldError {
        self.message = Some(message.into());
        self
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.code)?;
        if let Some(m) = &self.message {
            write!(f, ": {m}")?;
        }
        Ok(())
    }
}

impl fmt::Display for TritonError {
    /// `Code: message (field: code: message; ...)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.code.is_empty(), self.message.is_empty()) {
            (false, false) => write!(f, "{}: {}", self.code, self.message)?,
            (false, true) => f.write_str(&self.code)?,
            _ => f.write_str(&self.message)?,
        }
        if !self.errors.is_empty() {
            let list: Vec<String> = self.errors.iter().map(ToString::to_string).collect();
            write!(f, " ({})", list.join("; "))?;
        }
        Ok(())
    }
}

impl std::error::Error for TritonError {}

/// What a failed answer carried.
#[derive(Debug, Clone, PartialEq)]
pub enum ErrorBody {
    /// A Triton error object.
    Triton(Box<TritonError>),
    /// Not JSON (or JSON without `code`/`message`): the text, cut to 1000
    /// characters.
    Text(String),
    /// No body.
    Empty,
}

impl ErrorBody {
    pub fn parse(body: &[u8]) -> ErrorBody {
        if body.iter().all(u8::is_ascii_whitespace) {
            return ErrorBody::Empty;
        }
        match TritonError::from_body(body) {
            Some(t) => ErrorBody::Triton(Box::new(t)),
            None => {
                let s = String::from_utf8_lossy(body);
                let s = s.trim();
                ErrorBody::Text(match s.char_indices().nth(1000) {
                    Some((i, _)) => format!("{}...", &s[..i]),
                    None => s.to_string(),
                })
            }
        }
    }
}

/// How a call failed.
#[derive(Debug, Clone, PartialEq)]
pub enum ErrorKind {
    /// The service answered with a non-2xx status.
    Status { status: u16, body: ErrorBody },
    /// Connect or request timeout (the configured limit).
    Timeout { after: Option<Duration> },
    /// Could not connect, TLS failed, the connection broke, ...
    Transport { message: String, connect: bool },
    /// A 2xx answer that is not what the API documents.
    Decode {
        status: u16,
        message: String,
        body: String,
    },
    /// A workflow job did not finish in time (`wait_job`).
    JobTimeout { job: String, after: Duration },
    /// Reading a local file or stream for an upload, or writing a download.
    Io(String),
    /// The caller's input cannot be sent (bad URL, size mismatch, ...).
    Invalid(String),
}

/// A failed call: which service, which request, and why.
///
/// Displays on one line, e.g.
/// `VMAPI: POST http://10.0.0.5/vms: 409 Conflict: ValidationFailed: Invalid VM parameters (alias: Duplicate: Already exists for this owner_uuid)`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// `VMAPI`, `PAPI`, `CNAPI`, `IMGAPI`, `mahi`, `vminfod`, `CloudAPI`.
    pub service: &'static str,
    pub method: String,
    pub url: String,
    pub kind: ErrorKind,
}

impl ApiError {
    pub fn new(service: &'static str, method: &str, url: &str, kind: ErrorKind) -> ApiError {
        ApiError {
            service,
            method: method.to_string(),
            url: url.to_string(),
            kind,
        }
    }

    /// The HTTP status, when the service answered.
    pub fn status(&self) -> Option<u16> {
        match &self.kind {
            ErrorKind::Status { status, .. } | ErrorKind::Decode { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The Triton error body, when there was one.
    pub fn triton(&self) -> Option<&TritonError> {
        match &self.kind {
            ErrorKind::Status {
                body: ErrorBody::Triton(t),
                ..
            } => Some(t.as_ref()),
            _ => None,
        }
    }

    /// The Triton error `code` (`ResourceNotFound`, `ValidationFailed`, ...).
    pub fn code(&self) -> Option<&str> {
        self.triton().map(|t| t.code.as_str())
    }

    /// The Triton error `message`, or the raw text of a non-JSON answer.
    pub fn message(&self) -> Option<&str> {
        match &self.kind {
            ErrorKind::Status {
                body: ErrorBody::Triton(t),
                ..
            } => Some(t.message.as_str()),
            ErrorKind::Status {
                body: ErrorBody::Text(t),
                ..
            } => Some(t.as_str()),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    pub fn is_timeout(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Timeout { .. } | ErrorKind::JobTimeout { .. }
        )
    }

    pub fn is_connect(&self) -> bool {
        matches!(self.kind, ErrorKind::Transport { connect: true, .. })
    }
}

fn reason(status: u16) -> &'static str {
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("")
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Status { status, body } => {
                write!(f, "{status}")?;
                let r = reason(*status);
                if !r.is_empty() {
                    write!(f, " {r}")?;
                }
                match body {
                    ErrorBody::Triton(t) => write!(f, ": {t}"),
                    ErrorBody::Text(t) => write!(f, ": {t}"),
                    ErrorBody::Empty => Ok(()),
                }
            }
            ErrorKind::Timeout { after: Some(d) } => write!(f, "timed out after {d:?}"),
            ErrorKind::Timeout { after: None } => f.write_str("timed out"),
            ErrorKind::Transport { message, .. } => f.write_str(message),
            ErrorKind::Decode {
                status,
                message,
                body,
            } => write!(f, "{status}: unexpected answer: {message}: {body}"),
            ErrorKind::JobTimeout { job, after } => {
                write!(f, "job {job} not finished after {after:?}")
            }
            ErrorKind::Io(m) => f.write_str(m),
            ErrorKind::Invalid(m) => f.write_str(m),
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} {}: {}",
            self.service, self.method, self.url, self.kind
        )
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn small_enough_to_return() {
        assert!(
            std::mem::size_of::<ApiError>() <= 128,
            "{}",
            std::mem::size_of::<ApiError>()
        );
    }

    #[test]
    fn parses_vmapi_validation_bodies() {
        let body = json!({"code": "ValidationFailed", "message": "Invalid VM parameters", "errors": [
            {"field": "brand", "code": "Invalid", "message": "Must be one of: bhyve, joyent, joyent-minimal, kvm, lx"},
            {"field": "networks", "code": "MissingParameter"},
            {"field": "alias", "code": "ConflictingParameters", "fields": ["alias", "hostname"]}
        ]});
        let t = TritonError::from_body(body.to_string().as_bytes()).unwrap();
        assert_eq!(t.code, "ValidationFailed");
        assert_eq!(t.errors.len(), 3);
        assert_eq!(t.errors[1].message, None);
        assert_eq!(t.errors[2].extra["fields"], json!(["alias", "hostname"]));
        // nothing lost
        assert_eq!(serde_json::to_value(&t).unwrap(), body);
        assert_eq!(
            t.to_string(),
            "ValidationFailed: Invalid VM parameters (brand: Invalid: Must be one of: bhyve, joyent, joyent-minimal, kvm, lx; networks: MissingParameter; alias: ConflictingParameters)"
        );
    }

    #[test]
    fn error_bodies() {
        assert_eq!(ErrorBody::parse(b"  "), ErrorBody::Empty);
        assert_eq!(
            ErrorBody::parse(b"<html>oops</html>"),
            ErrorBody::Text("<html>oops</html>".into())
        );
        // JSON without code/message is text too
        assert_eq!(
            ErrorBody::parse(b"{\"error\": 1}"),
            ErrorBody::Text("{\"error\": 1}".into())
        );
        assert_eq!(ErrorBody::parse(b"[1]"), ErrorBody::Text("[1]".into()));
        let long = "x".repeat(2000);
        match ErrorBody::parse(long.as_bytes()) {
            ErrorBody::Text(t) => assert_eq!(t.len(), 1003),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn one_line_display() {
        let e = ApiError::new(
            "VMAPI",
            "POST",
            "http://10.0.0.5/vms",
            ErrorKind::Status {
                status: 409,
                body: ErrorBody::Triton(Box::new(TritonError::new(
                    "DuplicateAlias",
                    "alias web01 is taken",
                ))),
            },
        );
        assert_eq!(
            e.to_string(),
            "VMAPI: POST http://10.0.0.5/vms: 409 Conflict: DuplicateAlias: alias web01 is taken"
        );
        assert_eq!(e.status(), Some(409));
        assert_eq!(e.code(), Some("DuplicateAlias"));
        assert_eq!(e.message(), Some("alias web01 is taken"));
        assert!(!e.is_not_found());
        let e = ApiError::new(
            "PAPI",
            "GET",
            "http://p/packages/x",
            ErrorKind::Status {
                status: 502,
                body: ErrorBody::Text("Bad gateway".into()),
            },
        );
        assert_eq!(
            e.to_string(),
            "PAPI: GET http://p/packages/x: 502 Bad Gateway: Bad gateway"
        );
        assert_eq!(e.code(), None);
        assert_eq!(e.message(), Some("Bad gateway"));
        let e = ApiError::new(
            "mahi",
            "GET",
            "http://m/accounts",
            ErrorKind::Timeout {
                after: Some(Duration::from_millis(200)),
            },
        );
        assert_eq!(
            e.to_string(),
            "mahi: GET http://m/accounts: timed out after 200ms"
        );
        assert!(e.is_timeout());
        assert!(!e.to_string().contains('\n'));
    }
}
