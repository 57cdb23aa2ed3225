//! Metrics of the replica layer: hinted handoff, read repair, sloppy quorums, anti-entropy.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct TargetLabels {
    pub target: String,
}

/// Where the time of the writes this node coordinates goes: first its own durable copy (the
/// local group commit, so the disk's fsync), then waiting for the other replicas to make the
/// quorum. A slow disk shows in the first, slow or busy replicas in the second.
#[derive(Debug, Clone)]
pub(crate) struct WritePhases {
    pub(crate) local: Histogram,
    pub(crate) quorum: Histogram,
}

impl Default for WritePhases {
    fn default() -> Self {
        // 50 µs to about 26 s, as the node's other latency histograms.
        let histogram = || Histogram::new(exponential_buckets(0.000_05, 2.0, 20));
        Self { local: histogram(), quorum: histogram() }
    }
}

/// Registered once per node; cheap to clone (every metric is a shared handle).
#[derive(Debug, Clone, Default)]
pub struct ReplicaMetrics {
    pub(crate) write_phases: WritePhases,
    pub(crate) hints_stored: Counter,
    pub(crate) hints_refused: Counter,
    pub(crate) hints_replayed: Counter,
    pub(crate) hints_pending: Family<TargetLabels, Gauge>,
    pub(crate) read_repairs: Counter,
    pub(crate) sloppy_acks: Counter,
    pub(crate) fallback_writes: Counter,
    pub(crate) ae_exchanges: Counter,
    pub(crate) ae_keys_repaired: Counter,
    pub(crate) hints_expired: Counter,
    pub(crate) tombstones_purged: Counter,
}

impl ReplicaMetrics {
    /// Registers every metric under the sub-prefix `replica` of `registry`.
    pub fn new(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        let registry = registry.sub_registry_with_prefix("replica");
        registry.register(
            "write_local_seconds",
            "Writes coordinated here: time until this node's own copy was durable",
            metrics.write_phases.local.clone(),
        );
        registry.register(
            "write_quorum_seconds",
            "Writes coordinated here: time from the local copy until the quorum was made or missed",
            metrics.write_phases.quorum.clone(),
        );
        registry.register(
            "hints_stored",
            "Writes held as hints for a replica that could not take them",
            metrics.hints_stored.clone(),
        );
        registry.register(
            "hints_refused",
            "Hints not stored because their target reached hints.max_per_target",
            metrics.hints_refused.clone(),
        );
        registry.register(
            "hints_replayed",
            "Hints delivered to their target and deleted",
            metrics.hints_replayed.clone(),
        );
        registry.register(
            "hints_pending",
            "Hints this node holds, by the replica they are meant for",
            metrics.hints_pending.clone(),
        );
        registry.register(
            "read_repairs",
            "Replicas sent the merged object after a read found them behind",
            metrics.read_repairs.clone(),
        );
        registry.register(
            "sloppy_acks",
            "Write acknowledgements counted from a fallback holding a hint",
            metrics.sloppy_acks.clone(),
        );
        registry.register(
            "fallback_writes",
            "Writes taken by this node as a fallback because no replica of the key was reachable",
            metrics.fallback_writes.clone(),
        );
        registry.register(
            "ae_exchanges",
            "Anti-entropy exchanges started (one partition with one peer)",
            metrics.ae_exchanges.clone(),
        );
        registry.register(
            "ae_keys_repaired",
            "Objects anti-entropy merged into this replica or sent to a peer",
            metrics.ae_keys_repaired.clone(),
        );
        registry.register(
            "hints_expired",
            "Hints dropped undelivered because their newest write was older than the tombstone grace",
            metrics.hints_expired.clone(),
        );
        registry.register(
            "tombstones_purged",
            "Tombstones purged here after the grace, once every replica held them alike",
            metrics.tombstones_purged.clone(),
        );
        metrics
    }

    /// Anti-entropy exchanges started, objects repaired and tombstones purged so far.
    pub fn anti_entropy(&self) -> (u64, u64, u64) {
        (self.ae_exchanges.get(), self.ae_keys_repaired.get(), self.tombstones_purged.get())
    }
}
