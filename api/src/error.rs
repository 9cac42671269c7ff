//! Docker-shaped error responses: a status code and `{"message": "..."}`.

use std::error::Error as StdError;

use hyper::{Response, StatusCode};

use crate::Body;

/// An error answer: the status and docker's message (the CLI prints
/// `Error response from daemon: <message>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The message, the error chain joined by ": ".
    pub message: String,
}

impl ApiError {
    /// An error with this status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404: what the request names does not exist.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    /// 500: the server failed.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// The JSON response docker sends for this error.
    pub fn into_response(self) -> Response<Body> {
        crate::json_response(self.status, &serde_json::json!({ "message": self.message }))
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for ApiError {}

/// The HTTP status for an engine error's kind: bad input 400, missing 404, conflict 409,
/// anything else 500.
pub fn engine_status(err: &kiln_engine::Error) -> StatusCode {
    use kiln_engine::Error as E;
    if err.is_not_found() {
        return StatusCode::NOT_FOUND;
    }
    match err.kind() {
        E::Invalid(_) | E::Parse(_) => StatusCode::BAD_REQUEST,
        E::NotFound(_) => StatusCode::NOT_FOUND,
        E::Conflict(_) => StatusCode::CONFLICT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// An error and its causes, joined by ": " (each message says only its own part).
pub fn chain_message(err: &dyn StdError) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !text.is_empty() && !message.ends_with(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

impl From<kiln_engine::Error> for ApiError {
    fn from(err: kiln_engine::Error) -> ApiError {
        ApiError::new(engine_status(&err), chain_message(&err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_kinds_map_to_statuses() {
        let e = kiln_engine::Error::NotFound("No such image: x:1".into());
        let api = ApiError::from(e.context("creating the container"));
        assert_eq!(api.status, StatusCode::NOT_FOUND);
        assert_eq!(api.message, "creating the container: No such image: x:1");
        let conflict = ApiError::from(kiln_engine::Error::Conflict("name in use".into()));
        assert_eq!(conflict.status, StatusCode::CONFLICT);
        let bad = ApiError::from(kiln_engine::Error::invalid("bad spec"));
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        let internal = ApiError::from(kiln_engine::Error::Internal("boom".into()));
        assert_eq!(internal.status, StatusCode::INTERNAL_SERVER_ERROR);
    }
}
