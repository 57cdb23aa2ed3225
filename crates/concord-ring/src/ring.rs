//! [`Ring`]: every partition's ordered preference list, and how it changes with membership.

use concord_types::namespace::REPLICAS_MAX;
use concord_types::{NodeId, PartitionId};
use serde::{Deserialize, Serialize};

use crate::claim::{self, Lists};
use crate::{PartitionCount, RingError};

/// Most members a ring accepts. Concord clusters are a handful to a few dozen nodes; at this
/// limit one membership step still takes well under a second at Q = 4096 (about 50 ms in a
/// release build), though [`Ring::new`] takes one step per member.
pub const MEMBERS_MAX: usize = 256;

/// Which members hold each partition, in order of preference.
///
/// Every one of the Q partitions has a preference list of [`width`](Ring::width) =
/// `min(REPLICAS_MAX, members)` distinct members. A namespace of `n` replicas stores the
/// partition on the first `min(n, width)` of them ([`replicas`](Ring::replicas)); position 0 is
/// the primary. Because every namespace reads the same lists, one ring serves every replica
/// count, and the claim algorithm balances every prefix of the lists, not just the primaries
/// (see the crate documentation for what is guaranteed).
///
/// A ring is a value: [`Ring::new`] claims from scratch, [`Ring::rebalance`] returns the next
/// ring for a new membership, and both are deterministic, so the metadata log can store the
/// ring and every node reads the same one. It is `Serialize` because it is stored there;
/// reading it back validates its shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "RingRecord", try_from = "RingRecord")]
pub struct Ring {
    partitions: PartitionCount,
    /// Sorted and distinct; a member's index here is how the claim algorithm names it.
    members: Vec<NodeId>,
    /// `min(REPLICAS_MAX, members.len())`.
    width: usize,
    /// Partition `p`'s list is `lists[p * width..(p + 1) * width]`: one allocation, and slices
    /// for callers.
    lists: Vec<NodeId>,
}

impl Ring {
    /// Claims `partitions` for `members` from scratch: the ring that starts with the first member
    /// in sorted order and has the others join one at a time, in sorted order.
    pub fn new(partitions: PartitionCount, members: &[NodeId]) -> Result<Ring, RingError> {
        let members = sorted_membership(members)?;
        let (first, rest) = members.split_first().expect("a membership is never empty");
        let single = Lists::from_rows(1, (0..partitions.get()).map(|_| vec![0]));
        let mut ring = Ring::from_lists(partitions, vec![first.clone()], &single);
        for node in rest {
            ring = ring.joined(node);
        }
        Ok(ring)
    }

    /// The next ring for a new membership, moving as little data as it can.
    ///
    /// Nodes that leave are taken out first, then nodes that join are added, each in sorted
    /// order; every single step is minimal (see the crate documentation). At least one current
    /// member must stay, to hand the partitions over: replace a whole cluster in two changes.
    pub fn rebalance(&self, members: &[NodeId]) -> Result<Ring, RingError> {
        let target = sorted_membership(members)?;
        let leaving: Vec<&NodeId> =
            self.members.iter().filter(|node| target.binary_search(node).is_err()).collect();
        if leaving.len() == self.members.len() {
            return Err(RingError::NoSurvivingMember);
        }
        let mut ring = self.clone();
        for node in leaving {
            ring = ring.left(node);
        }
        for node in target.iter().filter(|node| self.members.binary_search(node).is_err()) {
            ring = ring.joined(node);
        }
        Ok(ring)
    }

    pub fn partitions(&self) -> PartitionCount {
        self.partitions
    }

    /// The members, sorted.
    pub fn members(&self) -> &[NodeId] {
        &self.members
    }

    /// The length of every preference list: `min(REPLICAS_MAX, members)`.
    pub fn width(&self) -> usize {
        self.width
    }

    /// The whole preference list of `partition`, primary first.
    ///
    /// # Panics
    ///
    /// If `partition` is not below the ring's partition count: partition ids come from
    /// [`PartitionCount::partition_of`] of the same cluster, so another one is a bug.
    pub fn preference_list(&self, partition: PartitionId) -> &[NodeId] {
        let p = usize::from(partition.0);
        assert!(p < usize::from(self.partitions.get()), "partition {partition} out of range");
        &self.lists[p * self.width..(p + 1) * self.width]
    }

    /// The replicas of `partition` for a namespace of `n` replicas: the first `min(n, width)`
    /// nodes of its preference list.
    pub fn replicas(&self, partition: PartitionId, n: usize) -> &[NodeId] {
        &self.preference_list(partition)[..n.min(self.width)]
    }

    /// Where `node` stands in the preference list of `partition`, if it is in it.
    pub fn position(&self, partition: PartitionId, node: &NodeId) -> Option<usize> {
        self.preference_list(partition).iter().position(|x| x == node)
    }

    /// The members outside the preference list of `partition`: where a sloppy quorum goes when
    /// the whole list is unreachable.
    ///
    /// The order is the sorted members rotated by the partition id, so different partitions
    /// fall back to different nodes. A namespace with fewer replicas than the width should try
    /// the rest of its preference list (`preference_list(p)[n..]`) before these.
    pub fn fallbacks(&self, partition: PartitionId) -> Vec<&NodeId> {
        let list = self.preference_list(partition);
        let start = usize::from(partition.0) % self.members.len();
        let (before, after) = self.members.split_at(start);
        after.iter().chain(before).filter(|node| !list.contains(node)).collect()
    }

    /// How many partitions `node` is primary of.
    pub fn primary_count(&self, node: &NodeId) -> usize {
        self.replica_count(node, 1)
    }

    /// How many partitions `node` is a replica of, for a namespace of `n` replicas.
    pub fn replica_count(&self, node: &NodeId, n: usize) -> usize {
        self.partitions.all().filter(|&p| self.replicas(p, n).contains(node)).count()
    }

    /// The partitions `node` is a replica of, for a namespace of `n` replicas, in order.
    pub fn partitions_of(&self, node: &NodeId, n: usize) -> Vec<PartitionId> {
        self.partitions.all().filter(|&p| self.replicas(p, n).contains(node)).collect()
    }

    /// This ring after `node` (not a member) joins.
    fn joined(&self, node: &NodeId) -> Ring {
        let mut names = self.members.clone();
        let joiner = names.binary_search(node).expect_err("a joining node is not a member yet");
        names.insert(joiner, node.clone());
        let new = claim::join(&names, &self.lists_in(&names), joiner);
        Ring::from_lists(self.partitions, names, &new)
    }

    /// This ring after `node` (a member, not the last) leaves.
    fn left(&self, node: &NodeId) -> Ring {
        let leaver = self.members.binary_search(node).expect("a leaving node is a member");
        let new = claim::leave(&self.members, &self.lists_in(&self.members), leaver);
        let mut names = self.members.clone();
        names.remove(leaver);
        let flat = new.flat.iter().map(|&x| if x > leaver { x - 1 } else { x }).collect();
        Ring::from_lists(self.partitions, names, &Lists { width: new.width, flat })
    }

    /// The lists as indices into `names`, a sorted superset of the members.
    fn lists_in(&self, names: &[NodeId]) -> Lists {
        let flat = self.lists.iter().map(|node| names.binary_search(node).expect("a member"));
        Lists { width: self.width, flat: flat.collect() }
    }

    /// Names the lists the claim algorithm produced, and checks what it promises.
    fn from_lists(partitions: PartitionCount, members: Vec<NodeId>, lists: &Lists) -> Ring {
        let lists = lists.flat.iter().map(|&x| members[x].clone()).collect();
        let ring = Ring { partitions, width: claim::width_for(members.len()), members, lists };
        if let Err(reason) = ring.validate() {
            panic!("the claim algorithm built a malformed ring: {reason}");
        }
        let q = usize::from(partitions.get());
        let (low, high) = claim::fair_share(q, 1, ring.members.len());
        for node in &ring.members {
            let primaries = ring.primary_count(node);
            assert!((low..=high).contains(&primaries), "{node} is primary of {primaries}");
        }
        ring
    }

    /// The shape every ring has, whatever algorithm built it.
    fn validate(&self) -> Result<(), &'static str> {
        if self.members.is_empty() {
            return Err("no members");
        }
        if self.members.len() > MEMBERS_MAX {
            return Err("too many members");
        }
        if self.members.windows(2).any(|pair| pair[0] >= pair[1]) {
            return Err("members are not sorted and distinct");
        }
        if self.width != self.members.len().min(REPLICAS_MAX) {
            return Err("lists have the wrong width");
        }
        if self.lists.len() != usize::from(self.partitions.get()) * self.width {
            return Err("not one list per partition");
        }
        for list in self.lists.chunks(self.width) {
            if list.iter().any(|node| self.members.binary_search(node).is_err()) {
                return Err("a list names a node that is not a member");
            }
            if list.iter().enumerate().any(|(i, node)| list[..i].contains(node)) {
                return Err("a list names a node twice");
            }
        }
        Ok(())
    }
}

/// Sorts a membership and checks it is usable.
fn sorted_membership(members: &[NodeId]) -> Result<Vec<NodeId>, RingError> {
    if members.is_empty() {
        return Err(RingError::NoMembers);
    }
    if members.len() > MEMBERS_MAX {
        return Err(RingError::TooManyMembers { count: members.len(), max: MEMBERS_MAX });
    }
    let mut sorted = members.to_vec();
    sorted.sort();
    if let Some(pair) = sorted.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(RingError::DuplicateMember(pair[0].clone()));
    }
    Ok(sorted)
}

/// The stored form of a ring: self-describing, and validated when it is read back.
#[derive(Serialize, Deserialize)]
struct RingRecord {
    partitions: u16,
    members: Vec<NodeId>,
    preference_lists: Vec<Vec<NodeId>>,
}

impl From<Ring> for RingRecord {
    fn from(ring: Ring) -> Self {
        let preference_lists = ring.lists.chunks(ring.width).map(<[NodeId]>::to_vec).collect();
        RingRecord { partitions: ring.partitions.get(), members: ring.members, preference_lists }
    }
}

impl TryFrom<RingRecord> for Ring {
    type Error = RingError;

    fn try_from(record: RingRecord) -> Result<Self, Self::Error> {
        let malformed = |reason| RingError::Malformed { reason };
        let partitions = PartitionCount::new(record.partitions)
            .ok_or(malformed("the partition count is not a power of two up to 4096"))?;
        let width = record.members.len().min(REPLICAS_MAX);
        if record.preference_lists.iter().any(|list| list.len() != width) {
            return Err(malformed("lists have the wrong width"));
        }
        let lists = record.preference_lists.into_iter().flatten().collect();
        let ring = Ring { partitions, members: record.members, width, lists };
        ring.validate().map_err(malformed)?;
        Ok(ring)
    }
}

#[cfg(test)]
mod tests;
