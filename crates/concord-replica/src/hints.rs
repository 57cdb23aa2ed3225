//! Hinted handoff (DESIGN.md §5): a write a replica could not take is held, durably, as a hint
//! naming that replica, first on a fallback node (which then counts toward a sloppy quorum) and
//! else on the coordinator. Hints are bounded per target, replayed at a limited rate once their
//! target is up again, and deleted when it acknowledged them.
//!
//! A hint carries the coordinator's merged state of the key; replay merges it into the target
//! like any other replica merge, so replaying twice or out of order is harmless. No dot is ever
//! minted for a hint. A hint whose newest write is older than the tombstone grace is dropped
//! undelivered (see [`crate::tombstones`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use concord_rpc::{Calls, MessageKind, Rpc};
use concord_storage::tombstones::older_than;
use concord_storage::{Hint, HintKey, ObjectKey, Update};
use concord_types::{ConflictPolicy, DvvSet, FailureLogs, Key, NamespaceId, NodeId};
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::Replica;
use crate::context::Shared;
use crate::metrics::TargetLabels;

/// `ReplicaHint`: hold `state` of a key for `target`, which could not take it.
#[derive(Debug, Serialize, Deserialize)]
pub struct HintRequest {
    pub target: NodeId,
    pub namespace: NamespaceId,
    pub key: Key,
    #[serde(deserialize_with = "crate::messages::valid::dvv_set")]
    pub state: DvvSet,
    pub policy: ConflictPolicy,
}

/// Answered with nothing once the hint is stored (durably).
impl Rpc for HintRequest {
    const KIND: MessageKind = MessageKind::ReplicaHint;
    type Reply = ();
}

/// Settings of hinted handoff.
#[derive(Debug, Clone)]
pub struct HintConfig {
    /// Most hints held for one target; more writes for it are not hinted (and, if they needed
    /// the hint for their quorum, fail).
    pub max_per_target: u64,
    /// Most hints replayed per second, all targets together.
    pub replay_rate: u64,
    /// How often targets with hints are checked.
    pub replay_interval: Duration,
}

impl Default for HintConfig {
    fn default() -> Self {
        Self {
            max_per_target: 1_000_000,
            replay_rate: 5_000,
            replay_interval: Duration::from_secs(1),
        }
    }
}

/// How many hints this node holds per target. Kept up to date as hints come and go, and
/// recounted from storage after every replay round (a merge into an existing hint is not a new
/// hint, and the two cannot always be told apart without a read).
#[derive(Debug, Default)]
pub struct HintLedger {
    counts: Mutex<BTreeMap<NodeId, u64>>,
}

impl HintLedger {
    pub fn pending(&self, target: &NodeId) -> u64 {
        self.counts.lock().expect("hint ledger lock").get(target).copied().unwrap_or(0)
    }

    pub fn targets(&self) -> Vec<NodeId> {
        let counts = self.counts.lock().expect("hint ledger lock");
        counts.iter().filter(|(_, n)| **n > 0).map(|(t, _)| t.clone()).collect()
    }

    fn add(&self, target: &NodeId, delta: i64) -> u64 {
        let mut counts = self.counts.lock().expect("hint ledger lock");
        let count = counts.entry(target.clone()).or_default();
        *count = count.saturating_add_signed(delta);
        *count
    }

    fn reset(&self, fresh: Vec<(NodeId, u64)>) -> BTreeMap<NodeId, u64> {
        let mut counts = self.counts.lock().expect("hint ledger lock");
        let old = std::mem::take(&mut *counts);
        counts.extend(fresh);
        // Targets that drained keep a zero, so their gauge goes to zero too.
        for target in old.into_keys() {
            counts.entry(target).or_insert(0);
        }
        counts.clone()
    }
}

/// Hinted handoff on this node: the hints it holds, their bound, and their replay.
pub struct Hints {
    pub(crate) shared: Arc<Shared>,
    /// How many hints are held per target, for the bound and the gauge.
    ledger: HintLedger,
    config: HintConfig,
    /// The tombstone grace: a hint older than it is dropped undelivered.
    grace: Duration,
}

impl Hints {
    pub(crate) fn new(shared: Arc<Shared>, config: HintConfig, grace: Duration) -> Self {
        Self { shared, ledger: HintLedger::default(), config, grace }
    }

    /// Hints this node holds for `target`.
    pub fn pending(&self, target: &NodeId) -> u64 {
        self.ledger.pending(target)
    }

    /// Recounts the hints held, per target, from storage.
    pub fn recount(&self) -> Result<(), String> {
        let fresh = self.shared.objects.hint_counts().map_err(|e| e.to_string())?;
        for (target, count) in self.ledger.reset(fresh) {
            self.set_pending_gauge(&target, count);
        }
        Ok(())
    }

    fn set_pending_gauge(&self, target: &NodeId, count: u64) {
        let labels = TargetLabels { target: target.to_string() };
        self.shared.metrics.hints_pending.get_or_create(&labels).set(count as i64);
    }

    /// Stores a hint here, durably, unless its target has reached the bound.
    pub(crate) async fn hold(
        &self,
        target: &NodeId,
        object: ObjectKey,
        state: DvvSet,
        policy: ConflictPolicy,
    ) -> Result<(), String> {
        let key = HintKey { target: target.clone(), object };
        let exists = self.shared.objects.has_hint(&key).map_err(|e| e.to_string())?;
        if !exists && self.ledger.pending(target) >= self.config.max_per_target {
            self.shared.metrics.hints_refused.inc();
            return Err(format!(
                "hint limit of {} reached for {target}",
                self.config.max_per_target
            ));
        }
        self.shared.objects.store_hint(&key, state, policy).await.map_err(|e| e.to_string())?;
        self.shared.metrics.hints_stored.inc();
        if !exists {
            let count = self.ledger.add(target, 1);
            self.set_pending_gauge(target, count);
        }
        Ok(())
    }

    /// Serves `ReplicaHint`.
    pub(crate) async fn serve(&self, request: HintRequest) -> Result<(), String> {
        if request.target == self.shared.me {
            return Err("a hint for the node that holds it".into());
        }
        self.shared.refuse_deleted(request.namespace)?;
        let partition = self.shared.partition_of(request.namespace, &request.key);
        let object = ObjectKey { namespace: request.namespace, partition, key: request.key };
        self.hold(&request.target, object, request.state, request.policy).await
    }

    /// Delivers one hint: to its target if it still holds the partition, else to the
    /// partition's replicas now. `Err` if any of them did not take it.
    async fn deliver(&self, hint: &Hint, timeout: Duration) -> Result<(), String> {
        let state = self.shared.meta.state();
        let Some((_, namespace)) = state.namespace_by_id(hint.key.object.namespace) else {
            // No such namespace any more: nothing to deliver to.
            return Ok(());
        };
        let policy = namespace.config.conflicts;
        let object = &hint.key.object;
        let n = state.effective_replicas(&namespace.config);
        let replicas = state.write_replicas(object.partition, n);
        let recipients = if replicas.contains(&hint.key.target) {
            vec![hint.key.target.clone()]
        } else {
            // The target left, was removed, or no longer holds the partition: the write goes to
            // whoever holds it now.
            replicas
        };
        for node in recipients {
            if node == self.shared.me {
                let update = Update::Merge { state: hint.state.clone(), policy };
                self.shared.objects.update(object, update).await.map_err(|e| e.to_string())?;
                continue;
            }
            let merge = crate::messages::MergeRequest {
                namespace: object.namespace,
                key: object.key.clone(),
                state: hint.state.clone(),
                policy,
            };
            self.shared
                .transport
                .call_rpc(&node, &merge, timeout)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Deletes hints of `target` (each only if unchanged since read), together so the deletes
    /// share the committer's group commits, and keeps the ledger current. Returns how many went.
    async fn delete_hints(&self, target: &NodeId, hints: &[&Hint]) -> u64 {
        let mut deleted = 0;
        for outcome in join_all(hints.iter().map(|h| self.shared.objects.delete_hint(h))).await {
            if let Ok(true) = outcome {
                deleted += 1;
                let count = self.ledger.add(target, -1);
                self.set_pending_gauge(target, count);
            }
        }
        deleted
    }

    /// One replay round over every target that is up: pages of hints delivered concurrently,
    /// deleted once acknowledged, paced to `replay_rate`. A target that fails is left for the
    /// next round; `failures` decides what of that is logged (a change, not every round).
    async fn replay_round(&self, failures: &mut FailureLogs<NodeId>) -> usize {
        const PAGE: usize = 64;
        let mut replayed = 0;
        for target in self.ledger.targets() {
            if self.shared.liveness.is_down(&target) {
                continue;
            }
            let mut after: Option<HintKey> = None;
            loop {
                let started = Instant::now();
                let page = match self.shared.objects.hints_for(&target, after.as_ref(), PAGE) {
                    Ok(page) if page.is_empty() => break,
                    Ok(page) => page,
                    Err(e) => {
                        tracing::warn!(error = %e, %target, "reading hints failed");
                        break;
                    }
                };
                after = page.last().map(|h| h.key.clone());
                let (now, grace) = (self.shared.clock.now_ms(), self.grace.as_millis() as u64);
                let (expired, page): (Vec<Hint>, Vec<Hint>) =
                    page.into_iter().partition(|hint| older_than(&hint.state, now, grace));
                let delivered =
                    join_all(page.iter().map(|hint| self.deliver(hint, Duration::from_secs(5))))
                        .await;
                let mut failed = None;
                let mut acknowledged = Vec::new();
                for (hint, outcome) in page.iter().zip(delivered) {
                    match outcome {
                        Ok(()) => acknowledged.push(hint),
                        Err(e) => failed = Some(e),
                    }
                }
                let delivered = self.delete_hints(&target, &acknowledged).await;
                replayed += delivered as usize;
                self.shared.metrics.hints_replayed.inc_by(delivered);
                if !expired.is_empty() {
                    // Never delivered: a tombstone that covered them may have been purged since,
                    // and delivering them would bring deleted values back. Their target was
                    // unreachable for longer than the grace and must be rebuilt anyway (the
                    // tombstone rule).
                    let expired: Vec<&Hint> = expired.iter().collect();
                    let dropped = self.delete_hints(&target, &expired).await;
                    self.shared.metrics.hints_expired.inc_by(dropped);
                    tracing::warn!(%target, dropped, "dropped hints older than the tombstone grace");
                }
                let stopped = failed.is_some();
                crate::peer_log::log_outcome(failures, "hint replay to", &target, failed);
                if stopped {
                    break;
                }
                // Pace: a page of PAGE hints takes at least PAGE / rate seconds.
                let rate = self.config.replay_rate.max(1) as f64;
                let budget = Duration::from_secs_f64(PAGE as f64 / rate);
                tokio::time::sleep_until(started + budget).await;
            }
        }
        replayed
    }
}

/// Replays hints until `stop` turns true.
pub async fn run_replay(replica: Arc<Replica>, mut stop: watch::Receiver<bool>) {
    let hints = &replica.hints;
    if let Err(e) = hints.recount() {
        tracing::error!(error = %e, "counting stored hints failed");
    }
    let interval = hints.config.replay_interval;
    let mut failures = crate::peer_log::failure_logs();
    while !crate::stopped_after(interval, &mut stop).await {
        let replayed = hints.replay_round(&mut failures).await;
        if replayed > 0 {
            tracing::info!(replayed, "hints delivered");
            if let Err(e) = hints.recount() {
                tracing::warn!(error = %e, "recounting hints failed");
            }
        }
    }
}
