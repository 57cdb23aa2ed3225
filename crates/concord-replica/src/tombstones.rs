//! Tombstone purge (DESIGN.md §4, the tombstone rule).
//!
//! A tombstone is purged only when both hold:
//! - it is past `anti_entropy.tombstone_grace`: its newest write is older than the grace, and
//! - every current replica of its partition holds exactly the same state (the same DVV set),
//!   so no replica still has a value the delete covered, and none has a newer write.
//!
//! The first replica of each partition's preference list sweeps it: it finds its expired
//! tombstones, asks every other replica which of them it holds alike (`check`), then tells them
//! to purge those and purges its own. Each replica purges only a state it holds unchanged and
//! that is expired by its own clock, through the committer's conditional delete, so a write that
//! lands meanwhile is never lost. A replica that misses the second step keeps its tombstone;
//! anti-entropy hands it back to the others, and the next sweep purges it again.
//!
//! Nothing is purged while the ring is in transition or any replica is unreachable: a replica
//! that cannot confirm may hold a value the tombstone must still cover. What the rule cannot see
//! is a node that is *down* and comes back after the grace, or a hint older than the grace:
//! the first refuses to start (concord-node) and the second is dropped undelivered
//! ([`crate::hints`]).

use std::sync::Arc;
use std::time::Duration;

use concord_rpc::{Calls, MessageKind, Rpc};
use concord_storage::tombstones::expired;
use concord_storage::{ObjectKey, Sweep};
use concord_types::{DvvSet, Key, NamespaceId, NodeId, PartitionId};
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::Replica;
use crate::context::Shared;

/// Most tombstones one `PurgeTombstones` request carries.
const PURGE_BATCH_MAX: usize = 10_000;

/// Settings of the tombstone purge.
#[derive(Debug, Clone)]
pub struct TombstoneConfig {
    /// How long a tombstone is kept at least.
    pub grace: Duration,
    /// Time between two sweeps over the partitions this node leads.
    pub interval: Duration,
    /// Pause between two pages of a sweep: foreground requests go first.
    pub pause: Duration,
    /// Most tombstones checked and purged together.
    pub page: usize,
    pub request_timeout: Duration,
}

impl Default for TombstoneConfig {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(10 * 24 * 3600),
            interval: Duration::from_secs(600),
            pause: Duration::from_millis(20),
            page: 256,
            request_timeout: Duration::from_secs(5),
        }
    }
}

/// `PurgeTombstones`: tombstones of one partition as the sweeping replica holds them. With
/// `check`, the answer says which of them the receiver holds alike; without, the receiver purges
/// those and says which it purged. The answer is one `bool` per tombstone.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PurgeRequest {
    pub namespace: NamespaceId,
    pub partition: PartitionId,
    pub check: bool,
    #[serde(deserialize_with = "crate::messages::valid::keyed_dvv_sets")]
    pub tombstones: Vec<(Key, DvvSet)>,
}

impl Rpc for PurgeRequest {
    const KIND: MessageKind = MessageKind::PurgeTombstones;
    type Reply = Vec<bool>;
}

/// The tombstone purge on this node: it sweeps the partitions it leads and serves the other
/// sweepers' checks and purges.
pub struct Tombstones {
    pub(crate) shared: Arc<Shared>,
    config: TombstoneConfig,
}

impl Tombstones {
    pub(crate) fn new(shared: Arc<Shared>, config: TombstoneConfig) -> Self {
        Self { shared, config }
    }

    /// Serves `PurgeTombstones`.
    pub(crate) async fn serve(&self, request: PurgeRequest) -> Result<Vec<bool>, String> {
        // The partition was checked where the request entered the layer.
        if request.tombstones.len() > PURGE_BATCH_MAX {
            return Err(format!("more than {PURGE_BATCH_MAX} tombstones in one request"));
        }
        let PurgeRequest { namespace, partition, check, tombstones } = request;
        let outcomes = tombstones.into_iter().map(|(key, state)| async move {
            if self.shared.partition_of(namespace, &key) != partition || !self.purgeable(&state) {
                return Ok(false);
            }
            let object = ObjectKey { namespace, partition, key };
            if check {
                return Ok(self.shared.objects.get(&object)?.as_ref() == Some(&state));
            }
            self.shared.objects.purge(&object, state, self.shared.actors.get(partition)).await
        });
        let mut held = Vec::new();
        for outcome in join_all(outcomes).await {
            held.push(outcome.map_err(|e: concord_storage::StorageError| e.to_string())?);
        }
        if !check {
            self.shared
                .metrics
                .tombstones_purged
                .inc_by(held.iter().filter(|p| **p).count() as u64);
        }
        Ok(held)
    }

    /// Whether `state` is a tombstone past the grace by this node's clock.
    fn purgeable(&self, state: &DvvSet) -> bool {
        let grace = self.config.grace.as_millis() as u64;
        expired(state, self.shared.clock.now_ms(), grace)
    }

    /// Sweeps one partition this node leads: purges every expired tombstone all `replicas`
    /// hold alike. Returns how many it purged here.
    async fn sweep(
        &self,
        namespace: NamespaceId,
        partition: PartitionId,
        replicas: &[NodeId],
        stop: &watch::Receiver<bool>,
    ) -> Result<usize, String> {
        let config = &self.config;
        let others: Vec<&NodeId> = replicas.iter().filter(|n| **n != self.shared.me).collect();
        let mut after: Option<Key> = None;
        let mut purged = 0;
        loop {
            let sweep = Sweep {
                now_ms: self.shared.clock.now_ms(),
                grace_ms: config.grace.as_millis() as u64,
                limit: config.page,
                scan_max: 4096,
            };
            // A scan of up to 4096 stored objects: in the background lane, off the async worker.
            let (objects, from) = (self.shared.objects.clone(), after.clone());
            let scan =
                move || objects.expired_tombstones(namespace, partition, from.as_ref(), sweep);
            let scanned = self.shared.background.run(scan).await;
            let page =
                scanned.map_err(|e| format!("tombstone scan: {e}"))?.map_err(|e| e.to_string())?;
            let mut candidates = page.tombstones;
            for peer in &others {
                if candidates.is_empty() {
                    break;
                }
                let request =
                    PurgeRequest { namespace, partition, check: true, tombstones: candidates };
                let held = self.ask_purge(peer, &request).await?;
                candidates = request
                    .tombstones
                    .into_iter()
                    .zip(held)
                    .filter(|(_, h)| *h)
                    .map(|(t, _)| t)
                    .collect();
            }
            if !candidates.is_empty() {
                let request =
                    PurgeRequest { namespace, partition, check: false, tombstones: candidates };
                for peer in &others {
                    // A replica that purges none or some keeps those tombstones; anti-entropy
                    // spreads them back and the next sweep purges them again.
                    if let Err(e) = self.ask_purge(peer, &request).await {
                        tracing::debug!(%peer, %partition, error = %e, "purge request failed");
                    }
                }
                // This replica purges by the same rules it asks of the others.
                let here = self.serve(request).await?;
                purged += here.iter().filter(|p| **p).count();
            }
            match page.next {
                Some(next) if !*stop.borrow() => after = Some(next),
                _ => break,
            }
            tokio::time::sleep(config.pause).await;
        }
        Ok(purged)
    }

    async fn ask_purge(&self, peer: &NodeId, request: &PurgeRequest) -> Result<Vec<bool>, String> {
        let timeout = self.config.request_timeout;
        let call = self.shared.transport.call_rpc(peer, request, timeout);
        let held = call.await.map_err(|e| format!("{peer}: {e}"))?;
        if held.len() != request.tombstones.len() {
            return Err(format!(
                "{peer} answered for {} of {}",
                held.len(),
                request.tombstones.len()
            ));
        }
        Ok(held)
    }

    /// The partitions this node sweeps now: those whose preference list it heads, while the
    /// ring is not in transition and every replica is up.
    fn sweep_plan(&self) -> Vec<(NamespaceId, PartitionId, Vec<NodeId>)> {
        if self.shared.meta.state().in_transition() {
            return Vec::new();
        }
        self.shared
            .placed_here()
            .into_iter()
            .filter(|(_, _, _, replicas)| {
                replicas.first() == Some(&self.shared.me)
                    && !replicas.iter().any(|n| self.shared.liveness.is_down(n))
            })
            .map(|(namespace, _, partition, replicas)| (namespace, partition, replicas))
            .collect()
    }
}

/// Sweeps for expired tombstones every `interval` until `stop` turns true.
pub async fn run(replica: Arc<Replica>, mut stop: watch::Receiver<bool>) {
    let tombstones = &replica.tombstones;
    let interval = tombstones.config.interval;
    while !crate::stopped_after(interval, &mut stop).await {
        let mut purged = 0;
        for (namespace, partition, replicas) in tombstones.sweep_plan() {
            if *stop.borrow() {
                return;
            }
            match tombstones.sweep(namespace, partition, &replicas, &stop).await {
                Ok(n) => purged += n,
                Err(e) => tracing::debug!(%partition, error = %e, "tombstone sweep stopped"),
            }
        }
        if purged > 0 {
            tracing::info!(purged, "purged tombstones past their grace");
        }
    }
}
