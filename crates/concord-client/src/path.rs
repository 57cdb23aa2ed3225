//! Paths and query strings of the HTTP API, built from raw bytes.
//!
//! Every byte outside the RFC 3986 unreserved set (`A-Z a-z 0-9 - . _ ~`) is written as `%XX`,
//! `/` included, so a key is always exactly one path segment whatever bytes it holds.
//!
//! One limit comes from URL parsing itself (WHATWG, which `reqwest` follows): a segment that is
//! `.` or `..` (or `%2e`, `%2e%2e`) is a dot segment and is removed from the path before the
//! request is sent. Keys and namespace names equal to `.` or `..` therefore cannot be addressed
//! and are refused here with [`Error::InvalidArgument`] rather than silently hitting another
//! route.

use std::fmt::Write as _;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_encode};

use crate::error::{Error, Result};

/// The bytes that are escaped: all but the unreserved set.
const ESCAPED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// `bytes` percent-encoded for a path segment or a query value.
pub fn encode_component(bytes: &[u8]) -> String {
    percent_encode(bytes, ESCAPED).to_string()
}

/// Checks that `bytes` can be one path segment: not empty and not a dot segment.
fn check_segment(what: &str, bytes: &[u8]) -> Result<()> {
    if bytes.is_empty() {
        return Err(Error::InvalidArgument(format!("{what} must not be empty")));
    }
    if bytes == b"." || bytes == b".." {
        return Err(Error::InvalidArgument(format!(
            "{what} {:?} cannot be addressed in a URL path (it is a dot segment)",
            String::from_utf8_lossy(bytes)
        )));
    }
    Ok(())
}

/// `/v1/kv/{ns}/{key}`.
pub(crate) fn key_path(ns: &str, key: &[u8]) -> Result<String> {
    check_segment("namespace name", ns.as_bytes())?;
    check_segment("key", key)?;
    Ok(format!("/v1/kv/{}/{}", encode_component(ns.as_bytes()), encode_component(key)))
}

/// `/v1/kv/{ns}`: the key listing of a namespace.
pub(crate) fn list_path(ns: &str) -> Result<String> {
    check_segment("namespace name", ns.as_bytes())?;
    Ok(format!("/v1/kv/{}", encode_component(ns.as_bytes())))
}

/// `/v1/namespaces/{ns}`.
pub(crate) fn namespace_path(ns: &str) -> Result<String> {
    check_segment("namespace name", ns.as_bytes())?;
    Ok(format!("/v1/namespaces/{}", encode_component(ns.as_bytes())))
}

/// `/v1/cluster/nodes/{id}/{action}`: a membership change of one node.
pub(crate) fn node_action_path(node: &str, action: &str) -> Result<String> {
    check_segment("node id", node.as_bytes())?;
    Ok(format!("/v1/cluster/nodes/{}/{action}", encode_component(node.as_bytes())))
}

/// A query string under construction: `?a=1&b=2`, or nothing when no parameter is set.
#[derive(Debug, Default)]
pub(crate) struct Query {
    text: String,
}

impl Query {
    /// Appends `name=value`, with `value` percent-encoded.
    pub(crate) fn push(&mut self, name: &str, value: &[u8]) {
        let separator = if self.text.is_empty() { '?' } else { '&' };
        // Writing to a String cannot fail.
        let _ = write!(self.text, "{separator}{name}={}", encode_component(value));
    }

    /// Appends `name=value` when `value` is set.
    pub(crate) fn push_opt(&mut self, name: &str, value: Option<impl ToString>) {
        if let Some(value) = value {
            self.push(name, value.to_string().as_bytes());
        }
    }

    /// The query string, starting with `?` unless empty.
    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unreserved bytes stay, everything else (slash, space, percent, non-ASCII) is escaped.
    #[test]
    fn keys_escape_everything_but_unreserved() {
        assert_eq!(encode_component(b"AZaz09-._~"), "AZaz09-._~");
        assert_eq!(encode_component(b"a/b c%"), "a%2Fb%20c%25");
        assert_eq!(encode_component(&[0x00, 0xff, b'?', b'#', b'+']), "%00%FF%3F%23%2B");
        assert_eq!(encode_component("é".as_bytes()), "%C3%A9");
    }

    /// A key with slashes is one segment under its namespace.
    #[test]
    fn key_path_keeps_the_key_in_one_segment() {
        assert_eq!(key_path("carts", b"user/42").unwrap(), "/v1/kv/carts/user%2F42");
        assert_eq!(key_path("bench", b"key000000007").unwrap(), "/v1/kv/bench/key000000007");
        assert_eq!(list_path("carts").unwrap(), "/v1/kv/carts");
        assert_eq!(namespace_path("carts").unwrap(), "/v1/namespaces/carts");
        assert_eq!(node_action_path("n2", "leave").unwrap(), "/v1/cluster/nodes/n2/leave");
    }

    /// Segments a URL cannot carry are refused before sending.
    #[test]
    fn empty_and_dot_segments_are_refused() {
        for key in [&b""[..], b".", b".."] {
            let err = key_path("ns", key).unwrap_err();
            assert!(matches!(err, Error::InvalidArgument(_)), "{key:?}: {err}");
        }
        assert!(key_path("", b"k").is_err());
        assert!(namespace_path("..").is_err());
        // Longer runs of dots are ordinary segments.
        assert_eq!(key_path("ns", b"...").unwrap(), "/v1/kv/ns/...");
    }

    /// Query values are escaped like path segments, and parameters are joined with `&`.
    #[test]
    fn query_string_escapes_values() {
        let mut query = Query::default();
        assert_eq!(query.as_str(), "");
        query.push("prefix", b"a/b&c=d");
        query.push_opt("limit", Some(10));
        query.push_opt("after", None::<&str>);
        assert_eq!(query.as_str(), "?prefix=a%2Fb%26c%3Dd&limit=10");
    }
}
