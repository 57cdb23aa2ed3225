//! Members that left or were removed, remembered by the data dir they had.
//!
//! A node that left keeps its data dir, and a node removed while it was down still has one. If
//! either started again on it, it would come back as a member whose data is stale and whose
//! place the ring no longer holds. So the metadata remembers each departure with the
//! incarnation of the departed data dir (drawn when the dir was created, see
//! [`super::Member::incarnation`]): a join from that data dir is refused with the way back in
//! (empty the data dir, join again), and a running node that finds itself here stops.

use concord_types::NodeId;
use serde::{Deserialize, Serialize};

use super::MetaState;

/// Most departures remembered; past it the oldest is forgotten. A forgotten data dir could
/// join again with stale data, which handoff and anti-entropy then merge like any replica's:
/// the refusal is a guard for operators, not what keeps data safe (the downtime guard is).
pub const DEPARTED_MAX: usize = 256;

/// How a member departed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DepartureKind {
    /// `leave`: its partitions moved to the others first.
    Left,
    /// `remove`: dropped at once; its replicas are rebuilt from the others.
    Removed,
}

/// A member that left or was removed, and the data dir it had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Departure {
    pub node: NodeId,
    /// The incarnation of the data dir that departed.
    pub incarnation: u64,
    pub how: DepartureKind,
}

impl Departure {
    /// Whether this answers "did `node`'s data dir of `incarnation` depart?". A member asked
    /// that question answers only with a departure of that node and data dir; any other answer
    /// is wrong or forged, and must not stop the node that asked.
    pub fn is_of(&self, node: &NodeId, incarnation: u64) -> bool {
        &self.node == node && self.incarnation == incarnation
    }

    /// `left the cluster` or `was removed from the cluster`.
    pub fn what_happened(&self) -> &'static str {
        match self.how {
            DepartureKind::Left => "left the cluster",
            DepartureKind::Removed => "was removed from the cluster",
        }
    }

    /// Why a join from the departed data dir is refused, and the way back in.
    pub fn refusal(&self) -> String {
        format!(
            "{} {}, and this is the data dir it had, which no longer belongs to a member. To run \
             {} again, empty its data dir and start it with --join: it joins as a new member and \
             is filled by handoff",
            self.node,
            self.what_happened(),
            self.node
        )
    }
}

impl MetaState {
    /// The departure of `node`'s data dir of this incarnation, if it left or was removed.
    pub fn departure(&self, node: &NodeId, incarnation: u64) -> Option<&Departure> {
        self.departed.iter().find(|d| &d.node == node && d.incarnation == incarnation)
    }

    /// Remembers that `node`, with the data dir of `incarnation`, departed; forgets the oldest
    /// departure past [`DEPARTED_MAX`].
    pub(super) fn record_departure(&mut self, node: &NodeId, incarnation: u64, how: DepartureKind) {
        self.departed.retain(|d| &d.node != node);
        self.departed.push(Departure { node: node.clone(), incarnation, how });
        if self.departed.len() > DEPARTED_MAX {
            self.departed.remove(0);
        }
    }
}
