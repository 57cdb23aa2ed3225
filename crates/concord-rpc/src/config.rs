//! Limits and timeouts of the transport and the server, each with its default.

use std::time::Duration;

use crate::MAX_FRAME_DEFAULT;

/// Settings of the dialing side ([`crate::TcpTransport`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportConfig {
    /// Connections kept to each peer; requests are multiplexed over them. Default 2.
    pub pool_size: usize,
    /// Requests in flight on one connection; a call waits (within its deadline) for a slot.
    /// Default 256.
    pub max_in_flight_per_connection: usize,
    /// Bound on the TCP connect. Default 1 s.
    pub connect_timeout: Duration,
    /// Bound on the exchange of `Hello`s after connecting. Default 2 s.
    pub handshake_timeout: Duration,
    /// Largest payload sent or accepted, in bytes. Default [`MAX_FRAME_DEFAULT`] (16 MiB).
    pub max_frame_bytes: u32,
    /// One-way messages queued per peer before [`crate::Transport::send`] drops them. Default
    /// 1024.
    pub one_way_queue_len: usize,
    /// Wait after the first failed connect to a peer before the next try; doubles with each
    /// failure up to `backoff_max`. Calls made meanwhile fail at once with `Unreachable`.
    /// Default 50 ms.
    pub backoff_min: Duration,
    /// Default 2 s.
    pub backoff_max: Duration,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            pool_size: 2,
            max_in_flight_per_connection: 256,
            connect_timeout: Duration::from_secs(1),
            handshake_timeout: Duration::from_secs(2),
            max_frame_bytes: MAX_FRAME_DEFAULT,
            one_way_queue_len: 1024,
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
        }
    }
}

impl TransportConfig {
    /// Panics on a configuration no transport can run with (a zero pool or queue): the caller
    /// builds it from validated config, so this is a bug.
    pub(crate) fn assert_valid(&self) {
        assert!(self.pool_size > 0, "pool_size must be at least 1");
        assert!(self.max_in_flight_per_connection > 0, "max_in_flight_per_connection must be >= 1");
        assert!(self.one_way_queue_len > 0, "one_way_queue_len must be at least 1");
        assert!(self.backoff_min <= self.backoff_max, "backoff_min must not exceed backoff_max");
    }
}

/// Limits of the listening side ([`crate::RpcServer`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLimits {
    /// Connections served at once; further ones wait in the kernel's accept queue. Default 1024.
    pub max_connections: usize,
    /// Requests of one connection handled at once; the server stops reading that connection
    /// while all are busy. Default 256.
    pub max_in_flight_per_connection: usize,
    /// A connection that has not completed the handshake by then is closed. Default 5 s.
    pub handshake_timeout: Duration,
    /// Largest payload accepted or sent, in bytes. Default [`MAX_FRAME_DEFAULT`] (16 MiB).
    pub max_frame_bytes: u32,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_connections: 1024,
            max_in_flight_per_connection: 256,
            handshake_timeout: Duration::from_secs(5),
            max_frame_bytes: MAX_FRAME_DEFAULT,
        }
    }
}

impl ServerLimits {
    pub(crate) fn assert_valid(&self) {
        assert!(self.max_connections > 0, "max_connections must be at least 1");
        assert!(self.max_in_flight_per_connection > 0, "max_in_flight_per_connection must be >= 1");
    }
}
