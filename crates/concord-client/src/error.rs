//! The client's one error type, and the decoding of the server's JSON error body.
//!
//! Errors fall in three kinds: the server answered with an error ([`Error::Api`]), the request
//! never got an answer ([`Error::Transport`]), or the answer could not be understood
//! ([`Error::Decode`]). [`Error::InvalidArgument`] is raised before anything is sent.

use serde::Deserialize;

/// Everything a [`crate::Client`] call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an error status and (usually) a JSON error body.
    #[error("{message} ({code}, HTTP {status}){}", failures_suffix(details))]
    Api {
        /// The HTTP status, e.g. 503.
        status: u16,
        /// The machine-readable code, e.g. `unavailable` (see `docs/api.md`).
        code: String,
        /// The human-readable message.
        message: String,
        /// Extra structured information, `null` when the server sent none.
        details: serde_json::Value,
    },
    /// No answer: connection refused or reset, DNS failure, client-side timeout. The cause is
    /// the error's `source()` (print the chain, e.g. anyhow's `{:#}`, to see it).
    #[error("transport error")]
    Transport(#[source] reqwest::Error),
    /// The server answered, but not in the shape the API contract promises.
    #[error("cannot decode the server's response: {0}")]
    Decode(String),
    /// The call was refused before anything was sent (e.g. an empty key).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The HTTP status of an [`Error::Api`], `None` for other kinds.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The error code of an [`Error::Api`] (`not_found`, `unavailable`, ...), `None` otherwise.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether the same request may succeed if retried later or against another node: quorum
    /// not reached, deadlines, and transport failures. Everything else is a caller's mistake or
    /// a server bug, and retrying it would give the same answer.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Api { status, .. } => matches!(status, 408 | 503 | 504),
            Error::Transport(_) => true,
            Error::Decode(_) | Error::InvalidArgument(_) => false,
        }
    }
}

/// `"; n2: <cause>; n3: <cause>"` for the `failures` of a quorum error's details (replica to
/// cause), empty when there are none: the cause of a 503 belongs in its one-line message.
fn failures_suffix(details: &serde_json::Value) -> String {
    let Some(failures) = details.get("failures").and_then(serde_json::Value::as_object) else {
        return String::new();
    };
    failures
        .iter()
        .map(|(node, cause)| {
            let cause = cause.as_str().map_or_else(|| cause.to_string(), str::to_owned);
            format!("; {node}: {cause}")
        })
        .collect()
}

/// `{"error": {"code": "...", "message": "...", "details": {...}}}`.
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
    #[serde(default)]
    details: serde_json::Value,
}

/// Longest piece of a non-JSON error body kept in the message: enough to recognise a proxy's
/// error page, short enough for one terminal line.
const RAW_BODY_CHARS_MAX: usize = 200;

/// Builds the [`Error::Api`] for a response with status `status` and body `body`.
///
/// A body that is not the contract's JSON error (a proxy's HTML page, an empty body) still
/// yields an `Api` error: its code is `http_<status>` and its message the start of the body.
pub(crate) fn api_error(status: u16, body: &[u8]) -> Error {
    if let Ok(ErrorBody { error }) = serde_json::from_slice::<ErrorBody>(body) {
        return Error::Api {
            status,
            code: error.code,
            message: error.message,
            details: error.details,
        };
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let message = if text.is_empty() {
        http::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("unexpected status")
            .to_owned()
    } else {
        text.chars().take(RAW_BODY_CHARS_MAX).collect()
    };
    Error::Api { status, code: format!("http_{status}"), message, details: serde_json::Value::Null }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The contract's error body becomes an `Api` error field by field.
    #[test]
    fn json_error_body_is_parsed() {
        let body = br#"{"error": {"code": "unavailable", "message": "quorum not reached",
            "details": {"required": 2, "answered": 1, "failures": []}}}"#;
        let err = api_error(503, body);
        let Error::Api { status, code, message, details } = &err else { panic!("{err:?}") };
        assert_eq!(*status, 503);
        assert_eq!(code, "unavailable");
        assert_eq!(message, "quorum not reached");
        assert_eq!(details["required"], 2);
        assert_eq!(err.to_string(), "quorum not reached (unavailable, HTTP 503)");
        assert!(err.is_retryable());
    }

    /// A quorum error's message names each replica that failed and why.
    #[test]
    fn replica_failures_are_part_of_the_message() {
        let body =
            br#"{"error": {"code": "unavailable", "message": "1 of 2 required replicas answered",
            "details": {"required": 2, "answered": 1, "failures": {"n3": "timed out"}}}}"#;
        assert_eq!(
            api_error(503, body).to_string(),
            "1 of 2 required replicas answered (unavailable, HTTP 503); n3: timed out"
        );
    }

    /// `details` is optional.
    #[test]
    fn error_without_details_has_null_details() {
        let err = api_error(400, br#"{"error": {"code": "invalid_argument", "message": "bad"}}"#);
        assert!(matches!(err, Error::Api { details: serde_json::Value::Null, .. }));
        assert!(!err.is_retryable());
        assert_eq!(err.code(), Some("invalid_argument"));
    }

    /// A body that is not the contract's JSON keeps the status and shows the text.
    #[test]
    fn non_json_error_body_keeps_status_and_text() {
        let err = api_error(502, b"<html>Bad Gateway</html>\n");
        assert_eq!(err.to_string(), "<html>Bad Gateway</html> (http_502, HTTP 502)");
        let err = api_error(500, b"");
        assert_eq!(err.to_string(), "Internal Server Error (http_500, HTTP 500)");
    }
}
