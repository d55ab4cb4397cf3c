//! CloudAPI's error bodies: `{"code": "...", "message": "..."}` with the
//! restify 4 status of each code (`shared/notes/triton.md` 1.6).

use serde_json::{json, Value};

/// An error as CloudAPI answers it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct CloudApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl CloudApiError {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> CloudApiError {
        CloudApiError {
            status,
            code: code.to_string(),
            message: message.into(),
        }
    }

    /// 409 `InvalidArgument`.
    pub fn invalid_argument(message: impl Into<String>) -> CloudApiError {
        CloudApiError::new(409, "InvalidArgument", message)
    }

    /// 409 `MissingParameter`.
    pub fn missing_parameter(message: impl Into<String>) -> CloudApiError {
        CloudApiError::new(409, "MissingParameter", message)
    }

    /// 401 `InvalidCredentials`.
    pub fn invalid_credentials(message: impl Into<String>) -> CloudApiError {
        CloudApiError::new(401, "InvalidCredentials", message)
    }

    /// 403 `NotAuthorized`.
    pub fn not_authorized(message: impl Into<String>) -> CloudApiError {
        CloudApiError::new(403, "NotAuthorized", message)
    }

    /// 404 `ResourceNotFound`.
    pub fn not_found(message: impl Into<String>) -> CloudApiError {
        CloudApiError::new(404, "ResourceNotFound", message)
    }

    /// 400 `InvalidHeader`.
    pub fn invalid_header(message: impl Into<String>) -> CloudApiError {
        CloudApiError::new(400, "InvalidHeader", message)
    }

    /// 500 `InternalError`.
    pub fn internal(message: impl Into<String>) -> CloudApiError {
        CloudApiError::new(500, "InternalError", message)
    }

    /// 501 `NotImplemented`: a part of CloudAPI this gate does not serve.
    pub fn not_implemented(what: &str) -> CloudApiError {
        CloudApiError::new(
            501,
            "NotImplemented",
            format!("{what} is not implemented by triton-gate"),
        )
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        json!({"code": self.code, "message": self.message})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_and_statuses() {
        let e = CloudApiError::invalid_argument("x is not a valid package");
        assert_eq!(e.status, 409);
        assert_eq!(
            e.body(),
            json!({"code": "InvalidArgument", "message": "x is not a valid package"})
        );
        assert_eq!(CloudApiError::not_found("n").status, 404);
        assert_eq!(CloudApiError::invalid_credentials("n").status, 401);
        assert_eq!(CloudApiError::not_authorized("n").status, 403);
        assert_eq!(
            CloudApiError::missing_parameter("n").code,
            "MissingParameter"
        );
        assert!(CloudApiError::not_implemented("DeleteMachine")
            .message
            .contains("not implemented"));
    }
}
