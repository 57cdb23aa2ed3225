//! The crate's error type.

use thiserror::Error;

/// Longest part of a refused value an error quotes, in bytes.
const SHOWN_MAX: usize = 80;

/// `value` as an error quotes it: whole if short, else its first [`SHOWN_MAX`] bytes (cut at a
/// character boundary) and its length. A peer may send megabytes where a name belongs, and the
/// error reaches logs and the peer's answer.
pub(crate) fn shown(value: &str) -> String {
    if value.len() <= SHOWN_MAX {
        return value.to_string();
    }
    let mut end = SHOWN_MAX;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &value[..end], value.len())
}

/// Input that does not satisfy Concord's rules. Always the caller's fault, never retried.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ValidationError {
    #[error("key must be 1 to {max} bytes, got {len}")]
    KeyLength { len: usize, max: usize },
    #[error("namespace name {name:?} must match [a-z0-9][a-z0-9_-]{{0,62}}")]
    NamespaceName { name: String },
    #[error("node id {id:?} must match [a-z0-9][a-z0-9_-]{{0,62}}")]
    NodeId { id: String },
    #[error("invalid quorum {value:?}: use one, quorum, all or a number from 1 to {max}")]
    Quorum { value: String, max: usize },
    #[error("replicas must be between 1 and {max}, got {value}")]
    Replicas { value: usize, max: usize },
    #[error("partition {partition} does not exist: the cluster has {partitions}")]
    Partition { partition: u16, partitions: u16 },
    #[error("{field} {addr:?} {why}")]
    Addr { field: &'static str, addr: String, why: String },
    #[error("{field}: {message}")]
    Field { field: &'static str, message: String },
}
