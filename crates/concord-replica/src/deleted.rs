//! Dropping the data of deleted namespaces, in the background, on every node that held it.
//!
//! A namespace deleted through the metadata (`concord_meta::NamespaceDrop`) lists the members
//! that must drop their copy. This node drops its copy once it has known of the deletion for
//! the drop delay (so requests that resolved the namespace before it was deleted are over),
//! partition by partition through the committer (`ObjectStore::drop_partition_step`: bounded
//! steps ordered with every write, the anti-entropy trees following), pausing after every step
//! so client work goes first, then reports `NamespaceDropped`. Everything is found
//! by namespace id: a namespace created again under the same name has another id and is never
//! touched.
//!
//! Data that arrives late for a deleted namespace (a merge, a hint, an anti-entropy batch or a
//! handoff chunk sent by a node whose metadata lagged) is refused rather than stored again:
//! [`Replica::refuse_deleted`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use concord_meta::{Command, CommandResult, MetaState};
use concord_types::{NamespaceId, NodeId};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::Replica;
use crate::context::Shared;

/// Settings of the drop of deleted namespaces' data.
#[derive(Debug, Clone)]
pub struct DeletedConfig {
    /// How long after this node learned of a deletion its data is dropped.
    pub delay: Duration,
    /// Pause after each step of at most `concord_storage::DROP_STEP_MAX` objects dropped.
    pub pause: Duration,
}

impl Shared {
    /// `Err` for data of a namespace that was deleted: it is not stored again.
    pub(crate) fn refuse_deleted(&self, namespace: NamespaceId) -> Result<(), String> {
        if self.meta.state().namespace_deleted(namespace) {
            return Err(format!("namespace id {} was deleted", namespace.0));
        }
        Ok(())
    }

    /// Drops this node's copy of deleted namespace `id`, every partition; returns the objects
    /// dropped.
    async fn drop_namespace(&self, id: NamespaceId, pause: Duration) -> Result<usize, String> {
        let mut dropped = 0;
        for partition in self.partitions.all() {
            loop {
                let step = self.objects.drop_partition_step(id, partition).await;
                let step = step.map_err(|e| e.to_string())?;
                dropped += step.dropped;
                if step.dropped > 0 {
                    tokio::time::sleep(pause).await;
                }
                if !step.more {
                    break;
                }
            }
        }
        Ok(dropped)
    }
}

/// The deleted namespaces `me` must drop now: those it has known of for `delay`. `seen` holds
/// when each was first seen; it is updated, and forgets the ones no longer pending.
fn due(
    state: &MetaState,
    me: &NodeId,
    seen: &mut HashMap<NamespaceId, Instant>,
    now: Instant,
    delay: Duration,
) -> Vec<NamespaceId> {
    let pending: Vec<NamespaceId> = state.drops_for(me).map(|drop| drop.id).collect();
    seen.retain(|id, _| pending.contains(id));
    pending
        .into_iter()
        .filter(|id| now.duration_since(*seen.entry(*id).or_insert(now)) >= delay)
        .collect()
}

/// Drops deleted namespaces' data as they become due, until `stop` turns true.
pub async fn run(replica: Arc<Replica>, config: DeletedConfig, mut stop: watch::Receiver<bool>) {
    let replica = replica.shared.clone();
    let mut states = replica.meta.subscribe();
    let mut seen = HashMap::new();
    loop {
        let state = states.borrow_and_update().clone();
        for id in due(&state, &replica.me, &mut seen, Instant::now(), config.delay) {
            if *stop.borrow() {
                return;
            }
            let name = state.dropping.get(&id).map(|d| d.name.to_string()).unwrap_or_default();
            match drop_and_report(&replica, id, &config).await {
                Ok(keys) => {
                    tracing::info!(namespace = %name, id = id.0, keys, "dropped the data of a deleted namespace")
                }
                Err(e) => {
                    tracing::warn!(namespace = %name, id = id.0, error = %e, "dropping a deleted namespace's data failed; retrying")
                }
            }
        }
        tokio::select! {
            _ = states.changed() => {}
            _ = stop.changed() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Drops this node's copy of `id` and tells the metadata it is gone.
async fn drop_and_report(
    replica: &Shared,
    id: NamespaceId,
    config: &DeletedConfig,
) -> Result<usize, String> {
    let keys = replica.drop_namespace(id, config.pause).await?;
    let report = Command::NamespaceDropped { id, node: replica.me.clone() };
    match replica.meta.propose(report).await.map_err(|e| e.to_string())? {
        CommandResult::Refused(why) => Err(why),
        _ => Ok(keys),
    }
}

#[cfg(test)]
mod tests {
    use concord_meta::NamespaceDrop;
    use concord_types::NamespaceName;

    use super::*;
    use crate::node_ids as ids;

    fn dropping(state: &mut MetaState, id: u32, nodes: &[&str]) {
        let drop = NamespaceDrop {
            id: NamespaceId(id),
            name: NamespaceName::new(format!("ns{id}")).unwrap(),
            nodes: ids(nodes).into_iter().collect(),
        };
        state.dropping.insert(NamespaceId(id), drop);
    }

    /// A deletion is due for this node once it has known of it for the delay; only the
    /// deletions naming this node count, and finished ones are forgotten.
    #[test]
    fn a_drop_is_due_after_the_delay_from_when_it_was_seen() {
        let me = &ids(&["n1"])[0];
        let delay = Duration::from_secs(30);
        let mut state = MetaState::default();
        dropping(&mut state, 2, &["n1", "n2"]);
        dropping(&mut state, 3, &["n2"]);
        let mut seen = HashMap::new();
        let t0 = Instant::now();
        assert!(due(&state, me, &mut seen, t0, delay).is_empty());
        assert!(due(&state, me, &mut seen, t0 + delay / 2, delay).is_empty());
        dropping(&mut state, 4, &["n1"]);
        assert_eq!(due(&state, me, &mut seen, t0 + delay, delay), [NamespaceId(2)]);
        let later = t0 + delay * 2;
        assert_eq!(due(&state, me, &mut seen, later, delay), [NamespaceId(2), NamespaceId(4)]);
        state.dropping.remove(&NamespaceId(2));
        due(&state, me, &mut seen, later, delay);
        assert_eq!(seen.keys().collect::<Vec<_>>(), [&NamespaceId(4)]);
    }
}
