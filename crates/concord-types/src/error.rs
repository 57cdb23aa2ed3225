use thiserror::Error;

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
    #[error("{field}: {message}")]
    Field { field: &'static str, message: String },
}
