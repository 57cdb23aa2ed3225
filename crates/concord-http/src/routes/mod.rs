//! Route handlers, one module per resource.

pub mod admin;
pub mod cluster;
pub mod kv;
pub mod namespaces;
pub mod ops;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// A binary field rendered as `X` when the bytes are UTF-8, otherwise as `X_base64`.
pub(crate) fn text_or_base64(bytes: &[u8]) -> (Option<String>, Option<String>) {
    match std::str::from_utf8(bytes) {
        Ok(text) => (Some(text.to_string()), None),
        Err(_) => (None, Some(STANDARD.encode(bytes))),
    }
}
