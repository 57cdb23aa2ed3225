use thiserror::Error;

/// Storage failures. Only `TooManySiblings` is the client's doing.
#[derive(Debug, Error)]
pub enum StorageError {
    /// A write would leave more concurrent versions of a key than the configured limit; it was
    /// not applied.
    #[error(
        "the write would leave {count} concurrent versions of the key, above the limit of {max}: \
         read the key and write with its context to resolve the siblings"
    )]
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

impl From<fjall::Error> for StorageError {
    fn from(e: fjall::Error) -> Self {
        StorageError::Engine(e.to_string())
    }
}
