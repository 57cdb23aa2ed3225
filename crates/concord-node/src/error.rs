use concord_meta::MetaError;
use concord_replica::ReplicaError;
use concord_storage::StorageError;
use concord_types::ValidationError;
use thiserror::Error;

/// Everything a node operation can fail with. Front ends map these to their protocol's errors in
/// one place (for HTTP: `concord_http::error`).
#[derive(Debug, Error)]
pub enum Error {
    /// The request is malformed or breaks a rule; nothing was changed.
    #[error("{0}")]
    InvalidArgument(String),
    #[error("namespace {0:?} does not exist")]
    NamespaceNotFound(String),
    /// The namespace exists with another configuration.
    #[error("namespace {name:?} already exists with a different configuration")]
    NamespaceConflict { name: String },
    /// A change of a namespace setting that is fixed at creation.
    #[error(
        "namespace {name:?}: {field} is fixed at creation (it decides how and where the data is \
         stored); the settings that can change are read_quorum, write_quorum and strict. For \
         another {field}, create a new namespace"
    )]
    NamespaceFieldFixed { name: String, field: String },
    /// Fewer replicas can answer than the request needs. Retry later or lower the quorum. For a
    /// write the outcome is unknown: replicas that did answer may hold the value, and a retry
    /// with the same context is safe (it replaces the same versions).
    #[error(
        "{answered} of {required} required replicas answered{}",
        if *write {
            "; the write's outcome is unknown (some replicas may hold it): retrying with the same \
             context is safe"
        } else {
            ""
        }
    )]
    QuorumNotReached {
        required: usize,
        answered: usize,
        failures: Vec<(String, String)>,
        write: bool,
    },
    /// A write would leave more siblings on a key than `limits.siblings_max`; nothing changed.
    #[error("{}", concord_storage::too_many_siblings(*count, *max))]
    TooManySiblings { count: usize, max: usize },
    /// The operation's deadline passed; a write's outcome is unknown.
    #[error(
        "operation did not finish within {timeout_ms} ms; a write's outcome is unknown: \
         retrying with the same context is safe"
    )]
    Timeout { timeout_ms: u64 },
    /// A cluster-wide change cannot be made now (no metadata leader, majority of voters down).
    #[error("{0}")]
    Unavailable(String),
    /// The operation is switched off on this node (fault injection without the flag).
    #[error("{0}")]
    Forbidden(String),
    #[error("node {0:?} is not a member of the cluster")]
    NodeNotFound(String),
    /// A removal of a node that is not down: removal is for dead nodes.
    #[error(
        "{node} is {state}: removal is for dead nodes, and would throw its replicas away while \
         it still serves. To decommission a live node, run `concord cluster leave {node}` (its \
         partitions move to the others first, then it stops); to remove it anyway, `concord \
         cluster remove {node} --force`"
    )]
    NodeUp { node: String, state: &'static str },
    /// The node cannot start (bad config, data dir of another node or in use).
    #[error("{0}")]
    Startup(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl Error {
    /// Marks a quorum failure as a write's, whose outcome is unknown.
    pub fn for_write(self) -> Self {
        match self {
            Error::QuorumNotReached { required, answered, failures, .. } => {
                Error::QuorumNotReached { required, answered, failures, write: true }
            }
            other => other,
        }
    }
}

impl From<MetaError> for Error {
    fn from(e: MetaError) -> Self {
        match e {
            MetaError::Refused(why) => Error::InvalidArgument(why),
            MetaError::Unavailable(why) => Error::Unavailable(why),
            MetaError::Fatal(why) => Error::Unavailable(why),
        }
    }
}

impl From<ReplicaError> for Error {
    fn from(e: ReplicaError) -> Self {
        match e {
            ReplicaError::Quorum { required, answered, failures } => {
                Error::QuorumNotReached { required, answered, failures, write: false }
            }
            ReplicaError::Timeout { timeout_ms } => Error::Timeout { timeout_ms },
            ReplicaError::TooManySiblings { count, max } => Error::TooManySiblings { count, max },
            ReplicaError::NamespaceNotFound(ns) => Error::NamespaceNotFound(ns),
            ReplicaError::Storage(why) => Error::Unavailable(format!("storage: {why}")),
        }
    }
}

impl From<ValidationError> for Error {
    fn from(e: ValidationError) -> Self {
        Error::InvalidArgument(e.to_string())
    }
}
