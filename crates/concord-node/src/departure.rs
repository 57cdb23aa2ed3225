//! A node that left the cluster, or was removed from it, stops serving and exits; a start on
//! such a node's data dir fails at once, saying how to run the node again.
//!
//! The metadata remembers each departed data dir (`concord_meta::Departure`). A running node
//! learns of its own departure when it applies the entry that records it (the leader keeps a
//! departed member in the Raft group until it has those entries): [`wait`] resolves then, and
//! the node stops. At start, [`check_at_start`] looks in the node's own metadata first (it left,
//! or saw its removal), then asks the other members (it was removed while it was down, so its
//! own metadata still lists it).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use concord_meta::{Departure, Meta, MetaState};
use concord_types::NodeId;
use tokio::sync::watch;

use crate::{Error, Identity};

/// How long a restarting member waits for the others to say whether it was removed.
const ASK_TIMEOUT: Duration = Duration::from_secs(3);

/// This node's departure, with what an operator needs to run it again.
#[derive(Debug, Clone)]
pub struct Departed {
    pub departure: Departure,
    /// The data dir that no longer belongs to a member.
    pub data_dir: PathBuf,
    /// A member's peer address to join through, if one is known.
    pub join: Option<String>,
}

impl Departed {
    /// The departure of this node's data dir in `state`, if recorded. `seeds` are the
    /// configured `--join` addresses, suggested first.
    pub fn find(
        state: &MetaState,
        identity: &Identity,
        data_dir: PathBuf,
        seeds: &[String],
    ) -> Option<Departed> {
        let departure = state.departure(&identity.node_id, identity.incarnation)?.clone();
        Some(Departed {
            join: rejoin_address(state, &identity.node_id, seeds),
            departure,
            data_dir,
        })
    }
}

/// A peer address to join through: a configured seed, or else a member's.
fn rejoin_address(state: &MetaState, me: &NodeId, seeds: &[String]) -> Option<String> {
    let member =
        state.members.iter().find(|(id, _)| *id != me).map(|(_, m)| m.peer_addr.to_string());
    seeds.first().cloned().or(member)
}

impl fmt::Display for Departed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let node = &self.departure.node;
        let dir = self.data_dir.display();
        let join = self.join.as_deref().unwrap_or("<a member's peer address>");
        write!(
            f,
            "{node} {}; it no longer serves. Its data dir {dir} belongs to no member any more. \
             To run {node} again, empty the data dir and start it with --join, as a new member \
             filled by handoff: rm -rf {dir} && concord server --node-id {node} --data-dir {dir} \
             --join {join} (with its other flags as before)",
            self.departure.what_happened()
        )
    }
}

/// Refuses to start on the data dir of a node that departed: recorded in its own metadata, or
/// known to another member (removed while it was down). Members that do not answer are
/// skipped: the whole cluster may be restarting.
pub(crate) async fn check_at_start(
    meta: &Meta,
    identity: &Identity,
    data_dir: PathBuf,
    seeds: &[String],
) -> Result<(), Error> {
    let state = meta.state();
    if let Some(departed) = Departed::find(&state, identity, data_dir.clone(), seeds) {
        return Err(Error::Startup(departed.to_string()));
    }
    if !state.members.contains_key(&identity.node_id) || state.members.len() < 2 {
        return Ok(());
    }
    let asked =
        meta.departure_known_to_others(&identity.node_id, identity.incarnation, ASK_TIMEOUT);
    match asked.await {
        Some(departure) => {
            let join = rejoin_address(&state, &identity.node_id, seeds);
            Err(Error::Startup(Departed { departure, data_dir, join }.to_string()))
        }
        None => Ok(()),
    }
}

/// Resolves with this node's departure once its metadata records it, or with `None` when
/// `stop` turns true first.
pub(crate) async fn wait(
    mut states: watch::Receiver<std::sync::Arc<MetaState>>,
    identity: Identity,
    data_dir: PathBuf,
    seeds: Vec<String>,
    mut stop: watch::Receiver<bool>,
) -> Option<Departed> {
    loop {
        let state = states.borrow_and_update().clone();
        if let Some(departed) = Departed::find(&state, &identity, data_dir.clone(), &seeds) {
            return Some(departed);
        }
        tokio::select! {
            changed = states.changed() => if changed.is_err() { return None },
            _ = stop.changed() => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use concord_meta::DepartureKind;
    use concord_types::ClusterId;

    use super::*;

    /// The message says what happened and gives the command that runs the node again.
    #[test]
    fn the_message_says_how_to_rejoin() {
        let departed = Departed {
            departure: Departure {
                node: NodeId::new("n2").unwrap(),
                incarnation: 7,
                how: DepartureKind::Left,
            },
            data_dir: PathBuf::from("/var/lib/concord/n2"),
            join: Some("10.0.0.1:7701".into()),
        };
        assert_eq!(
            departed.to_string(),
            "n2 left the cluster; it no longer serves. Its data dir /var/lib/concord/n2 belongs \
             to no member any more. To run n2 again, empty the data dir and start it with \
             --join, as a new member filled by handoff: rm -rf /var/lib/concord/n2 && concord \
             server --node-id n2 --data-dir /var/lib/concord/n2 --join 10.0.0.1:7701 (with its \
             other flags as before)"
        );
    }

    /// Only the departure of this data dir (its incarnation) counts, and a configured seed is
    /// suggested before a member's address.
    #[test]
    fn only_this_data_dirs_departure_counts() {
        let identity = Identity {
            node_id: NodeId::new("n2").unwrap(),
            cluster_id: ClusterId(1),
            partitions: 8,
            incarnation: 7,
        };
        let mut state = MetaState::default();
        let departure = |incarnation| Departure {
            node: identity.node_id.clone(),
            incarnation,
            how: DepartureKind::Removed,
        };
        state.departed.push(departure(6));
        assert!(Departed::find(&state, &identity, "d".into(), &[]).is_none());
        state.departed.push(departure(7));
        let found = Departed::find(&state, &identity, "d".into(), &["seed:1".into()]).unwrap();
        assert_eq!(
            (found.departure.how, found.join.as_deref()),
            (DepartureKind::Removed, Some("seed:1"))
        );
    }
}
