use thiserror::Error;

/// Storage failures. Only `TooManySiblings` is the client's doing.
#[derive(Debug, Error)]
pub enum StorageError {
    /// A write would leave more concurrent versions of a key than the configured limit; it was
    /// not applied.
    #[error("{}", crate::too_many_siblings(*count, *max))]
    TooManySiblings { count: usize, max: usize },
    /// The engine failed to read or write; the node may be unable to continue.
    #[error("storage engine: {0}")]
    Engine(String),
    /// Stored bytes do not decode: corruption or a format this build does not know.
    #[error("corrupt record under key {key:?}: {reason}")]
    Corrupt { key: Vec<u8>, reason: String },
    /// The store is shutting down and takes no more writes.
    #[error("storage is closed")]
    Closed,
}

/// What a client is told when a write would exceed the sibling limit: one wording for every
/// layer that carries the refusal.
pub fn too_many_siblings(count: usize, max: usize) -> String {
    format!(
        "the write would leave {count} concurrent versions of the key, above the limit of {max}: \
         read the key and write with its context to resolve the siblings"
    )
}

impl From<fjall::Error> for StorageError {
    fn from(e: fjall::Error) -> Self {
        StorageError::Engine(e.to_string())
    }
}
