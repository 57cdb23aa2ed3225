use thiserror::Error;

/// Storage failures. None of them is the client's fault.
#[derive(Debug, Error)]
pub enum StorageError {
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
