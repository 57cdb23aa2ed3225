//! The transport's Prometheus metrics. They register into the node's registry, whose prefix is
//! `concord`, under the sub-prefix `rpc`: `concord_rpc_rejected_connections_total{reason}` and
//! so on. Every label takes values from a fixed list, so the number of series stays bounded.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::{FrameError, MessageKind, RpcError};

/// Why a connection was closed by this side: the `reason` label of
/// `concord_rpc_rejected_connections_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    BadMagic,
    BadVersion,
    UnknownKind,
    BadFrameType,
    TooLarge,
    BadChecksum,
    /// The peer closed the connection in the middle of a frame.
    Truncated,
    /// The first frame was not a decodable `Hello` request.
    BadHello,
    /// A frame that makes no sense on this side (a response sent to a server, a request sent
    /// to a dialer, a response nobody asked for in the handshake).
    UnexpectedFrame,
    ClusterMismatch,
    /// The address answered with another node id than the one dialed.
    WrongNode,
    /// The handshake did not complete within its deadline.
    HandshakeTimeout,
    /// A kind other than `Join`/`Hello` on a connection that is not joined to a cluster.
    NotJoined,
}

impl RejectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::BadMagic => "bad_magic",
            RejectReason::BadVersion => "bad_version",
            RejectReason::UnknownKind => "unknown_kind",
            RejectReason::BadFrameType => "bad_frame_type",
            RejectReason::TooLarge => "too_large",
            RejectReason::BadChecksum => "bad_checksum",
            RejectReason::Truncated => "truncated",
            RejectReason::BadHello => "bad_hello",
            RejectReason::UnexpectedFrame => "unexpected_frame",
            RejectReason::ClusterMismatch => "cluster_mismatch",
            RejectReason::WrongNode => "wrong_node",
            RejectReason::HandshakeTimeout => "handshake_timeout",
            RejectReason::NotJoined => "not_joined",
        }
    }
}

impl From<&FrameError> for RejectReason {
    fn from(error: &FrameError) -> Self {
        match error {
            FrameError::BadMagic(_) => RejectReason::BadMagic,
            FrameError::BadVersion(_) => RejectReason::BadVersion,
            FrameError::TooLarge { .. } => RejectReason::TooLarge,
            FrameError::BadChecksum { .. } => RejectReason::BadChecksum,
            FrameError::UnknownKind(_) => RejectReason::UnknownKind,
            FrameError::BadFrameType(_) => RejectReason::BadFrameType,
            FrameError::Truncated { .. } => RejectReason::Truncated,
        }
    }
}

/// Why a frame was not sent or not handled: the `reason` label of `concord_rpc_dropped_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The bounded one-way queue to the peer was full.
    QueueFull,
    /// A fault rule (`drop_to`) kept the frame from being sent.
    FaultTo,
    /// A fault rule (`drop_from`) discarded the frame on arrival.
    FaultFrom,
    /// A one-way message found no connection to its peer.
    Unreachable,
    /// A one-way message of a kind the connection may not carry before joining.
    NotJoined,
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::FaultTo => "fault_drop_to",
            DropReason::FaultFrom => "fault_drop_from",
            DropReason::Unreachable => "unreachable",
            DropReason::NotJoined => "not_joined",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabels {
    kind: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SideLabels {
    side: &'static str,
}

fn latency_histogram() -> Histogram {
    // 50 µs to about 26 s, as the node's other latency histograms.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 20))
}

/// Handles to the transport's metrics; cheap to clone, shared by server and transport.
#[derive(Clone)]
pub struct RpcMetrics {
    rejected: Family<ReasonLabels, Counter>,
    dropped: Family<ReasonLabels, Counter>,
    requests: Family<OutcomeLabels, Counter>,
    served: Family<OutcomeLabels, Counter>,
    request_seconds: Family<KindLabels, Histogram, fn() -> Histogram>,
    accepted: Counter,
    open: Family<SideLabels, Gauge>,
}

impl RpcMetrics {
    /// Registers every metric under the sub-prefix `rpc` of `registry`.
    pub fn new(registry: &mut Registry) -> Self {
        let metrics = Self::unregistered();
        let registry = registry.sub_registry_with_prefix("rpc");
        registry.register(
            "rejected_connections",
            "Connections closed because the peer broke the protocol or was refused",
            metrics.rejected.clone(),
        );
        registry.register(
            "dropped",
            "Frames not sent or not handled: full queue, fault rule, no connection",
            metrics.dropped.clone(),
        );
        registry.register("requests", "Calls made, by kind and outcome", metrics.requests.clone());
        registry.register(
            "served",
            "Requests and one-way messages received, by kind and outcome",
            metrics.served.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Latency of calls made, from the call to its outcome",
            metrics.request_seconds.clone(),
        );
        registry.register(
            "accepted_connections",
            "Connections accepted by the peer listener",
            metrics.accepted.clone(),
        );
        registry.register(
            "open_connections",
            "Connections open now, inbound (accepted) and outbound (dialed)",
            metrics.open.clone(),
        );
        metrics
    }

    /// Metrics that are recorded but exported nowhere, for tests and tools.
    pub fn unregistered() -> Self {
        RpcMetrics {
            rejected: Family::default(),
            dropped: Family::default(),
            requests: Family::default(),
            served: Family::default(),
            request_seconds: Family::new_with_constructor(latency_histogram),
            accepted: Counter::default(),
            open: Family::default(),
        }
    }

    pub fn rejected_total(&self, reason: RejectReason) -> u64 {
        self.rejected.get_or_create(&ReasonLabels { reason: reason.as_str() }).get()
    }

    pub fn dropped_total(&self, reason: DropReason) -> u64 {
        self.dropped.get_or_create(&ReasonLabels { reason: reason.as_str() }).get()
    }

    /// Calls of `kind` that ended with `outcome` (see [`call_outcome`]).
    pub fn requests_total(&self, kind: MessageKind, outcome: &'static str) -> u64 {
        self.requests.get_or_create(&OutcomeLabels { kind: kind.as_str(), outcome }).get()
    }

    /// Requests or one-way messages of `kind` received that ended with `outcome`: `ok`,
    /// `error` (the handler failed), `one_way`, `dropped` (a fault rule).
    pub fn served_total(&self, kind: MessageKind, outcome: &'static str) -> u64 {
        self.served.get_or_create(&OutcomeLabels { kind: kind.as_str(), outcome }).get()
    }

    pub fn accepted_connections_total(&self) -> u64 {
        self.accepted.get()
    }

    pub(crate) fn reject(&self, reason: RejectReason) {
        self.rejected.get_or_create(&ReasonLabels { reason: reason.as_str() }).inc();
    }

    pub(crate) fn drop_frame(&self, reason: DropReason) {
        self.dropped.get_or_create(&ReasonLabels { reason: reason.as_str() }).inc();
    }

    pub(crate) fn record_call(
        &self,
        kind: MessageKind,
        result: &Result<bytes::Bytes, RpcError>,
        elapsed: Duration,
    ) {
        let labels = OutcomeLabels { kind: kind.as_str(), outcome: call_outcome(result) };
        self.requests.get_or_create(&labels).inc();
        self.request_seconds
            .get_or_create(&KindLabels { kind: kind.as_str() })
            .observe(elapsed.as_secs_f64());
    }

    pub(crate) fn record_served(&self, kind: MessageKind, outcome: &'static str) {
        self.served.get_or_create(&OutcomeLabels { kind: kind.as_str(), outcome }).inc();
    }

    pub(crate) fn accepted(&self) {
        self.accepted.inc();
    }

    /// Counts a connection as open until the returned guard drops.
    pub(crate) fn open_connection(&self, side: &'static str) -> OpenConnection {
        let gauge = self.open.get_or_create(&SideLabels { side }).clone();
        gauge.inc();
        OpenConnection { gauge }
    }
}

/// Decrements the open-connections gauge when the connection's task ends.
pub(crate) struct OpenConnection {
    gauge: Gauge,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// The `outcome` label of a call's result.
pub fn call_outcome(result: &Result<bytes::Bytes, RpcError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(RpcError::Timeout) => "timeout",
        Err(RpcError::Unreachable(_)) => "unreachable",
        Err(RpcError::Remote(_)) => "remote_error",
        Err(RpcError::Rejected(_)) => "rejected",
        Err(RpcError::Closed) => "closed",
        Err(RpcError::Overloaded) => "overloaded",
        Err(RpcError::TooLarge { .. }) => "too_large",
        Err(RpcError::Decode(_)) => "decode_error",
        Err(RpcError::Frame(_)) => "bad_frame",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_appear_under_the_concord_rpc_prefix() {
        let mut registry = Registry::with_prefix("concord");
        let metrics = RpcMetrics::new(&mut registry);
        metrics.reject(RejectReason::BadChecksum);
        metrics.drop_frame(DropReason::QueueFull);
        metrics.record_call(
            MessageKind::RaftVote,
            &Err(RpcError::Timeout),
            Duration::from_millis(3),
        );
        metrics.accepted();
        let open = metrics.open_connection("inbound");
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            "concord_rpc_rejected_connections_total{reason=\"bad_checksum\"} 1",
            "concord_rpc_dropped_total{reason=\"queue_full\"} 1",
            "concord_rpc_requests_total{kind=\"raft_vote\",outcome=\"timeout\"} 1",
            "concord_rpc_request_duration_seconds_count{kind=\"raft_vote\"} 1",
            "concord_rpc_accepted_connections_total 1",
            "concord_rpc_open_connections{side=\"inbound\"} 1",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        drop(open);
        assert_eq!(metrics.rejected_total(RejectReason::BadChecksum), 1);
        assert_eq!(metrics.requests_total(MessageKind::RaftVote, "timeout"), 1);
    }
}
