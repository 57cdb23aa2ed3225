//! The replicated metadata state machine: members, rings, moves, namespaces, epoch.
//!
//! Pure: `MetaState::apply` takes a committed [`Command`] and returns its result. Every node
//! applies the same commands in the same order and so computes the same rings (DESIGN.md §6).
//! Raft, storage and the network live in the other modules.
//!
//! Members that left or were removed are remembered in [`departures`], so that their data dirs
//! cannot slip back in; namespace changes after creation (settings, deletion and the drop of
//! a deleted namespace's data everywhere) are in [`namespaces`].

use std::collections::{BTreeMap, BTreeSet};

use concord_ring::{PartitionCount, Ring};
use concord_types::{
    Addr, ClusterId, ContextKey, NamespaceConfig, NamespaceId, NamespaceName, NamespacePatch,
    NodeId, PartitionId,
};
use serde::{Deserialize, Serialize};

mod departures;
mod namespaces;

pub use departures::{DEPARTED_MAX, Departure, DepartureKind};
pub use namespaces::NamespaceDrop;

/// Where a member stands in the cluster's lifecycle. Liveness (up, suspect, down) is SWIM's
/// business and never stored here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberState {
    /// Added; partitions are moving to it.
    Joining,
    /// Owns its share of the current ring.
    Active,
    /// Its partitions are moving away; removed when they are gone.
    Leaving,
}

impl MemberState {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Joining => "joining",
            MemberState::Active => "up",
            MemberState::Leaving => "leaving",
        }
    }
}

/// A cluster member as recorded in the metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The Raft id derived from the node id and incarnation (see [`crate::raft_id`]).
    pub raft_id: u64,
    pub http_addr: Addr,
    pub peer_addr: Addr,
    pub state: MemberState,
    /// Drawn when the node's data dir was created: a node id that comes back with another
    /// incarnation has lost its data and must be removed before it joins again.
    pub incarnation: u64,
}

/// A namespace as registered cluster-wide.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceEntry {
    pub id: NamespaceId,
    pub config: NamespaceConfig,
}

/// One partition replica that must be streamed to `node` before the target ring can become
/// current.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Move {
    pub partition: PartitionId,
    pub node: NodeId,
}

/// A metadata change. Commands are validated against the state when applied, so a stale or
/// conflicting proposal is refused by its result rather than corrupting the state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// The first command of a new cluster.
    Bootstrap(Founding),
    /// A node asks to join, or a member announces new addresses.
    AddNode {
        node: NodeId,
        http_addr: Addr,
        peer_addr: Addr,
        incarnation: u64,
    },
    /// Move a member's partitions away, then remove it.
    Leave {
        node: NodeId,
    },
    /// Drop a (dead) member at once; its replicas are rebuilt from the others.
    Remove {
        node: NodeId,
    },
    /// `node` holds everything it needs of `partition` under the target ring.
    MoveDone {
        partition: PartitionId,
        node: NodeId,
        target_epoch: u64,
    },
    CreateNamespace {
        name: NamespaceName,
        config: NamespaceConfig,
    },
    // Appended after the first commands, so log entries written before decode as they were.
    /// Delete a namespace: its name is free at once, its data is dropped by every member.
    DeleteNamespace {
        name: NamespaceName,
    },
    /// Change the settings of a namespace that may change (`NamespacePatch`).
    UpdateNamespace {
        name: NamespaceName,
        patch: NamespacePatch,
    },
    /// `node` has dropped its copy of deleted namespace `id`.
    NamespaceDropped {
        id: NamespaceId,
        node: NodeId,
    },
}

/// A new cluster: the founding member and the namespaces its data dir already has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Founding {
    pub cluster_id: ClusterId,
    pub partitions: u16,
    pub node: NodeId,
    pub http_addr: Addr,
    pub peer_addr: Addr,
    pub incarnation: u64,
    pub namespaces: Vec<(NamespaceName, NamespaceEntry)>,
    /// The secret every node seals client contexts with (`concord_types::context`).
    pub context_key: ContextKey,
}

/// What applying a command did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResult {
    Ok,
    /// The command changed nothing (already applied, or a stale move report).
    Unchanged,
    NamespaceCreated(NamespaceId),
    NamespaceExists(NamespaceId),
    NamespaceConflict(NamespaceConfig),
    Refused(String),
    // Appended: results travel in forwarded answers.
    NamespaceNotFound,
    /// Deleted; its data is being dropped.
    NamespaceDeleted(NamespaceId),
    NamespaceUpdated(NamespaceId),
    /// The update changes this field, which is fixed at creation.
    NamespaceFieldFixed(String),
}

/// The metadata every node holds a full copy of.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaState {
    pub cluster_id: Option<ClusterId>,
    /// Seals the contexts clients get, so that none they make up is accepted. Drawn by the
    /// founding node; `None` before bootstrap.
    pub context_key: Option<ContextKey>,
    /// Counts the changes an operator makes or sees settle: bumped by a join (or a member's
    /// new addresses), a leave, a removal, a ring transition that completes, and a namespace
    /// created, changed or deleted. The partition moves (and namespace data drops) reported along a transition do not count, so a fresh
    /// three-node cluster is at epoch 5 (bootstrap, two joins, two transitions), not at one
    /// more per partition moved.
    pub epoch: u64,
    pub members: BTreeMap<NodeId, Member>,
    /// Who owns what now. `None` before bootstrap.
    pub ring: Option<Ring>,
    /// Where ownership is heading while moves are pending.
    pub target: Option<Ring>,
    /// The epoch at which `target` was set; move reports for an older target are stale.
    pub target_epoch: u64,
    pub moves: BTreeSet<Move>,
    /// Moves of this transition already finished, with the preference-list position the
    /// receiving node was filled for. Kept so a re-planned target does not repeat them.
    pub completed: BTreeMap<(PartitionId, NodeId), usize>,
    pub namespaces: BTreeMap<NamespaceName, NamespaceEntry>,
    pub next_namespace_id: u32,
    /// Members that left or were removed, oldest first, at most [`DEPARTED_MAX`]: the data dir
    /// each had (its incarnation) may not join again, and a node that finds itself here stops.
    pub departed: Vec<Departure>,
    /// Deleted namespaces whose data some members still hold, by id.
    pub dropping: BTreeMap<NamespaceId, NamespaceDrop>,
}

impl MetaState {
    /// Applies one committed command.
    pub fn apply(&mut self, command: &Command) -> CommandResult {
        let result = match command {
            Command::Bootstrap(founding) => self.bootstrap(founding),
            Command::AddNode { node, http_addr, peer_addr, incarnation } => {
                self.add_node(node, http_addr, peer_addr, *incarnation)
            }
            Command::Leave { node } => self.leave(node),
            Command::Remove { node } => self.remove(node),
            Command::MoveDone { partition, node, target_epoch } => {
                self.move_done(*partition, node, *target_epoch)
            }
            Command::CreateNamespace { name, config } => self.create_namespace(name, config),
            Command::DeleteNamespace { name } => self.delete_namespace(name),
            Command::UpdateNamespace { name, patch } => self.update_namespace(name, patch),
            Command::NamespaceDropped { id, node } => self.namespace_dropped(*id, node),
        };
        if self.counts_as_change(command, &result) {
            self.epoch += 1;
        }
        result
    }

    /// Whether applying `command` with `result` bumps the epoch: a change an operator makes or
    /// sees settle. A move report counts only when it completes the transition.
    fn counts_as_change(&self, command: &Command, result: &CommandResult) -> bool {
        match (command, result) {
            (Command::MoveDone { .. }, CommandResult::Ok) => !self.in_transition(),
            (Command::NamespaceDropped { .. }, _) => false,
            (
                _,
                CommandResult::Ok
                | CommandResult::NamespaceCreated(_)
                | CommandResult::NamespaceDeleted(_)
                | CommandResult::NamespaceUpdated(_),
            ) => true,
            _ => false,
        }
    }

    /// Whether a ring transition is in progress.
    pub fn in_transition(&self) -> bool {
        self.target.is_some()
    }

    pub fn member(&self, node: &NodeId) -> Option<&Member> {
        self.members.get(node)
    }

    /// The namespace with this dense id.
    pub fn namespace_by_id(&self, id: NamespaceId) -> Option<(&NamespaceName, &NamespaceEntry)> {
        self.namespaces.iter().find(|(_, entry)| entry.id == id)
    }

    /// The replica count `n` of a namespace placed on the current cluster.
    pub fn effective_replicas(&self, config: &NamespaceConfig) -> usize {
        config.effective_replicas(self.members.len().max(1))
    }

    /// The nodes that hold `partition` for a namespace of `n` replicas under the current ring:
    /// they serve reads and coordinate writes. Members only.
    pub fn read_replicas(&self, partition: PartitionId, n: usize) -> Vec<NodeId> {
        let Some(ring) = &self.ring else { return Vec::new() };
        ring.replicas(partition, n)
            .iter()
            .filter(|node| self.members.contains_key(*node))
            .cloned()
            .collect()
    }

    /// The nodes that will hold `partition` once the ring transition in progress settles;
    /// empty when no transition is in progress. Members only.
    pub fn target_replicas(&self, partition: PartitionId, n: usize) -> Vec<NodeId> {
        let Some(target) = &self.target else { return Vec::new() };
        target
            .replicas(partition, n)
            .iter()
            .filter(|node| self.members.contains_key(*node))
            .cloned()
            .collect()
    }

    /// The nodes a write must reach: the current replicas and, during a transition, the target
    /// replicas too, so that no write slips past a partition that is being streamed.
    pub fn write_replicas(&self, partition: PartitionId, n: usize) -> Vec<NodeId> {
        let mut nodes = self.read_replicas(partition, n);
        for node in self.target_replicas(partition, n) {
            if !nodes.contains(&node) {
                nodes.push(node);
            }
        }
        nodes
    }

    /// The pending moves whose receiving node is `node`.
    pub fn moves_to<'a>(&'a self, node: &'a NodeId) -> impl Iterator<Item = &'a Move> + 'a {
        self.moves.iter().filter(move |m| &m.node == node)
    }

    fn bootstrap(&mut self, founding: &Founding) -> CommandResult {
        let Founding {
            cluster_id,
            partitions,
            node,
            http_addr,
            peer_addr,
            incarnation,
            namespaces,
            context_key,
        } = founding;
        let (cluster_id, partitions) = (*cluster_id, *partitions);
        if self.cluster_id.is_some() {
            return CommandResult::Unchanged;
        }
        let Some(count) = PartitionCount::new(partitions) else {
            return CommandResult::Refused(format!("invalid partition count {partitions}"));
        };
        let ring = match Ring::new(count, std::slice::from_ref(node)) {
            Ok(ring) => ring,
            Err(e) => return CommandResult::Refused(e.to_string()),
        };
        self.cluster_id = Some(cluster_id);
        self.context_key = Some(context_key.clone());
        self.members.insert(
            node.clone(),
            Member {
                raft_id: crate::raft_id(node, *incarnation),
                http_addr: http_addr.clone(),
                peer_addr: peer_addr.clone(),
                state: MemberState::Active,
                incarnation: *incarnation,
            },
        );
        self.ring = Some(ring);
        for (name, entry) in namespaces {
            self.next_namespace_id = self.next_namespace_id.max(entry.id.0 + 1);
            self.namespaces.insert(name.clone(), entry.clone());
        }
        CommandResult::Ok
    }

    fn add_node(
        &mut self,
        node: &NodeId,
        http_addr: &Addr,
        peer_addr: &Addr,
        incarnation: u64,
    ) -> CommandResult {
        if self.ring.is_none() {
            return CommandResult::Refused("the cluster is not bootstrapped".into());
        }
        if let Some(departure) = self.departure(node, incarnation) {
            return CommandResult::Refused(departure.refusal());
        }
        if let Some(member) = self.members.get_mut(node) {
            if member.incarnation != incarnation {
                return CommandResult::Refused(format!(
                    "{node} is a member whose data lives in another data dir (this one is new or \
                     was wiped); a node that lost its data cannot take its old place. Run \
                     `concord cluster remove {node}`, then start it again with an empty data \
                     dir and --join: it is rebuilt by handoff and anti-entropy"
                ));
            }
            if member.http_addr == *http_addr && member.peer_addr == *peer_addr {
                return CommandResult::Unchanged;
            }
            member.http_addr = http_addr.clone();
            member.peer_addr = peer_addr.clone();
            return CommandResult::Ok;
        }
        let raft_id = crate::raft_id(node, incarnation);
        if let Some((other, _)) = self.members.iter().find(|(_, m)| m.raft_id == raft_id) {
            return CommandResult::Refused(format!(
                "node id {node} collides with member {other}; choose another --node-id"
            ));
        }
        self.members.insert(
            node.clone(),
            Member {
                raft_id,
                http_addr: http_addr.clone(),
                peer_addr: peer_addr.clone(),
                state: MemberState::Joining,
                incarnation,
            },
        );
        // A fresh data dir under a departed member's name is a new member.
        self.departed.retain(|departure| &departure.node != node);
        self.replan()
    }

    fn leave(&mut self, node: &NodeId) -> CommandResult {
        let Some(member) = self.members.get(node) else {
            return CommandResult::Refused(format!("{node} is not a member"));
        };
        if member.state == MemberState::Leaving {
            return CommandResult::Unchanged;
        }
        if self.owners().count() <= 1 {
            return CommandResult::Refused(format!(
                "{node} is the last member that owns data; it cannot leave"
            ));
        }
        self.members.get_mut(node).expect("checked above").state = MemberState::Leaving;
        self.replan()
    }

    fn remove(&mut self, node: &NodeId) -> CommandResult {
        if !self.members.contains_key(node) {
            return CommandResult::Unchanged;
        }
        if self.members.len() <= 1 {
            return CommandResult::Refused(format!("{node} is the last member"));
        }
        if let Some(member) = self.members.remove(node) {
            self.record_departure(node, member.incarnation, DepartureKind::Removed);
            self.forget_drops_of(node);
        }
        self.moves.retain(|m| &m.node != node);
        self.completed.retain(|(_, n), _| n != node);
        self.replan()
    }

    fn move_done(
        &mut self,
        partition: PartitionId,
        node: &NodeId,
        target_epoch: u64,
    ) -> CommandResult {
        if target_epoch != self.target_epoch {
            return CommandResult::Unchanged;
        }
        let done = Move { partition, node: node.clone() };
        if !self.moves.remove(&done) {
            return CommandResult::Unchanged;
        }
        let position =
            self.target.as_ref().and_then(|t| t.position(partition, node)).unwrap_or(usize::MAX);
        self.completed.insert((partition, node.clone()), position);
        if self.moves.is_empty() {
            self.finish_transition();
        }
        CommandResult::Ok
    }

    /// Members that will own data once the transition completes (not leaving).
    fn owners(&self) -> impl Iterator<Item = &NodeId> {
        self.members.iter().filter(|(_, m)| m.state != MemberState::Leaving).map(|(id, _)| id)
    }

    /// Computes a new target ring for the current owners and the moves that reach it.
    fn replan(&mut self) -> CommandResult {
        let owners: Vec<NodeId> = self.owners().cloned().collect();
        let Some(current) = &self.ring else {
            return CommandResult::Refused("the cluster is not bootstrapped".into());
        };
        let base = self.target.as_ref().unwrap_or(current);
        let target = match base.rebalance(&owners) {
            Ok(target) => target,
            Err(e) => return CommandResult::Refused(e.to_string()),
        };
        let mut moves = BTreeSet::new();
        for partition in target.partitions().all() {
            for (position, node) in target.preference_list(partition).iter().enumerate() {
                let held = [
                    current.position(partition, node),
                    self.completed.get(&(partition, node.clone())).copied(),
                ]
                .into_iter()
                .flatten()
                .min();
                // A replica at position p holds every namespace with more than p replicas,
                // so one at or before `position` already holds all this position needs.
                if held.is_none_or(|held| held > position) {
                    moves.insert(Move { partition, node: node.clone() });
                }
            }
        }
        self.target = Some(target);
        self.target_epoch = self.epoch + 1;
        self.moves = moves;
        if self.moves.is_empty() {
            self.finish_transition();
        }
        CommandResult::Ok
    }

    /// Every move is done: the target becomes the current ring.
    fn finish_transition(&mut self) {
        if let Some(target) = self.target.take() {
            self.ring = Some(target);
        }
        self.completed.clear();
        let left: Vec<(NodeId, u64)> = self
            .members
            .iter()
            .filter(|(_, m)| m.state == MemberState::Leaving)
            .map(|(id, m)| (id.clone(), m.incarnation))
            .collect();
        for (node, incarnation) in left {
            self.members.remove(&node);
            self.record_departure(&node, incarnation, DepartureKind::Left);
            self.forget_drops_of(&node);
        }
        for member in self.members.values_mut() {
            member.state = MemberState::Active;
        }
    }
}

#[cfg(test)]
mod tests;
