//! The crate's one error type.
//!
//! Everything else this crate meets at run time (garbage packets, unknown senders, peers that
//! do not answer) is an expected condition handled where it happens, not an error.

/// Errors returned by `concord-membership`. All of them are fatal to the call that returned
/// them: there is nothing to retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A configuration value is outside what SWIM can work with.
    #[error("invalid membership config: {field} {reason}")]
    InvalidConfig { field: &'static str, reason: &'static str },
    /// The four timestamps of a time probe do not describe a round trip: the reply came back
    /// before the request left, or the peer answered before it received the request.
    #[error("invalid time sample t0={t0} t1={t1} t2={t2} t3={t3}: timestamps out of order")]
    InvalidTimeSample { t0: u64, t1: u64, t2: u64, t3: u64 },
}
