//! The crate's error type.

use crate::FrameError;

/// Why a call or a one-way send failed.
///
/// [`RpcError::is_transient`] separates "retry, or go elsewhere" (the peer is slow, down or
/// cut off) from errors that will repeat (a refused handshake, a message that does not decode).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    /// The deadline passed before the response arrived.
    #[error("timed out")]
    Timeout,
    /// No connection could be made: the peer is unknown, refused the TCP connection, did not
    /// connect in time, or recently failed to and is in backoff.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The remote handler ran and returned this error.
    #[error("remote error: {0}")]
    Remote(String),
    /// The handshake was refused (another cluster, another protocol version, not the node we
    /// meant to reach), or the connection cannot carry this kind (not joined yet).
    #[error("rejected: {0}")]
    Rejected(String),
    /// The connection closed while the request was in flight.
    #[error("connection closed")]
    Closed,
    /// The bounded queue of one-way messages to this peer is full; the message was dropped.
    #[error("send queue full")]
    Overloaded,
    /// The payload exceeds the maximum frame size and was not sent.
    #[error("payload of {len} bytes exceeds the maximum frame size of {max}")]
    TooLarge { len: usize, max: u32 },
    /// A payload did not decode as the expected type.
    #[error("cannot decode payload: {0}")]
    Decode(String),
    /// The peer broke the frame protocol.
    #[error("bad frame: {0}")]
    Frame(#[from] FrameError),
}

impl RpcError {
    /// True for failures worth retrying later or on another replica: the peer may be slow, down
    /// or cut off. False for errors that will repeat on the same input.
    pub fn is_transient(&self) -> bool {
        match self {
            RpcError::Timeout | RpcError::Unreachable(_) | RpcError::Closed => true,
            RpcError::Overloaded => true,
            RpcError::Remote(_) | RpcError::Rejected(_) | RpcError::TooLarge { .. } => false,
            RpcError::Decode(_) | RpcError::Frame(_) => false,
        }
    }
}
