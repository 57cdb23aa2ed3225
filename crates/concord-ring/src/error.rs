//! The crate's one error type.

use concord_types::NodeId;
use thiserror::Error;

/// Why a ring could not be built, changed, compared or read back.
///
/// Every variant is bad input from the caller (an operator's membership change, or bytes read
/// from the metadata log); none is retryable, and none is a bug in the claim algorithm, which
/// asserts its own invariants instead.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RingError {
    /// A ring needs at least one member to own the partitions.
    #[error("a ring needs at least one member")]
    NoMembers,
    /// A node was listed twice in one membership.
    #[error("node {0} is listed twice")]
    DuplicateMember(NodeId),
    /// Every current member would leave in one change, so no node could hand partitions over.
    #[error("every current member would leave at once; keep at least one")]
    NoSurvivingMember,
    /// More members than the claim algorithm is sized for.
    #[error("{count} members exceed the limit of {max}")]
    TooManyMembers { count: usize, max: usize },
    /// Two rings of different partition counts cannot be compared: Q is fixed per cluster.
    #[error("partition counts differ: {from} and {to}")]
    PartitionCountMismatch { from: u16, to: u16 },
    /// A stored ring failed validation when it was read back.
    #[error("malformed ring: {reason}")]
    Malformed { reason: &'static str },
}
