//! The crate's error type.

use thiserror::Error;

/// What can go wrong in a strong group's storage or with a command.
///
/// `ValueTooLarge` and `ContentType` are the client's doing (refused where a command is built
/// or decoded, nothing applied); `Corrupt` and `Snapshot` are bad bytes from the disk or a peer
/// (refused, nothing changed); `Storage` and `SyncerStopped` mean the node cannot write.
#[derive(Debug, Error)]
pub enum ConsensusError {
    #[error("a strong key's value is at most {max} bytes, got {len}")]
    ValueTooLarge { len: usize, max: usize },
    #[error("content type refused: {reason}")]
    ContentType { reason: &'static str },
    /// Stored bytes that do not decode or break a record's invariants.
    #[error("corrupt {what}: {reason}")]
    Corrupt { what: &'static str, reason: String },
    /// A snapshot that does not decode or is not consistent with its metadata.
    #[error("snapshot refused: {reason}")]
    Snapshot { reason: String },
    #[error(transparent)]
    Storage(#[from] concord_storage::StorageError),
    /// The syncer thread is gone: nothing can be made durable any more.
    #[error("the log syncer has stopped")]
    SyncerStopped,
    #[error("invalid Raft configuration: {0}")]
    Config(String),
}

impl ConsensusError {
    pub(crate) fn corrupt(what: &'static str, reason: impl std::fmt::Display) -> Self {
        ConsensusError::Corrupt { what, reason: reason.to_string() }
    }
}
