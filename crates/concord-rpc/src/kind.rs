//! The kinds of node-to-node message. The numbers are wire format: a number is never reused for
//! another meaning, and a new kind takes one of the spare numbers of its group.

use std::fmt;

/// Every message one node sends another. The crate that owns a message (meta, membership,
/// replica) defines its type and ties it to its kind ([`crate::Rpc`], [`crate::OneWay`]), so
/// one type travels as each kind.
///
/// Numbers are grouped by owner with spare numbers left in each group:
/// 1–9 transport and cluster entry, 10–19 Raft, 20–29 membership, 30–39 replica reads and writes,
/// 40–49 partition handoff, 50–59 anti-entropy and tombstone purge (50–54 used), 60–69 strong
/// groups (`concord-consensus`; 60–62 used). 0 and 70–255 are unassigned.
///
/// Retired numbers, never to be reused, since an older node may still send them with their old
/// meaning: 41 (`HandoffDone`, "the receiver holds the whole partition"; never sent or handled:
/// a receiver reports a finished move with the metadata command `MoveDone` instead). A retired
/// number decodes as an unknown kind, which closes the connection like any unknown kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum MessageKind {
    /// The handshake: the first frame of every connection, and a cheap ping afterwards.
    Hello = 1,
    /// A fresh node asks a member to add it to the cluster. The only kind (besides `Hello`) that
    /// may travel on a connection whose dialer has no cluster id yet.
    Join = 2,
    /// A metadata command forwarded to the Raft leader.
    MetaForward = 3,
    /// Raft AppendEntries (also heartbeats).
    RaftAppend = 10,
    /// Raft RequestVote.
    RaftVote = 11,
    /// Raft InstallSnapshot.
    RaftSnapshot = 12,
    /// SWIM gossip: probes, acks and piggybacked updates, sent one-way.
    Swim = 20,
    /// A clock probe carrying timestamps (offset and delay estimation).
    TimeProbe = 21,
    /// A coordinator reads a key from a replica.
    ReplicaRead = 30,
    /// A coordinator writes a key to a replica.
    ReplicaWrite = 31,
    /// Merge versions into a replica (read repair, hint replay, anti-entropy).
    ReplicaMerge = 32,
    /// List the live keys of one partition of a namespace (key listings).
    ReplicaList = 33,
    /// Hold a write as a hint for a replica that could not take it (hinted handoff).
    ReplicaHint = 34,
    /// Fetch a page of a partition being handed off.
    HandoffFetch = 40,
    /// The root hash and key count of one partition replica's anti-entropy tree.
    TreeRoot = 50,
    /// The leaf hashes of one partition replica's anti-entropy tree.
    TreeLeaves = 51,
    /// The stored objects of some segments of one partition replica (anti-entropy).
    SegmentObjects = 52,
    /// Merge a batch of objects of one partition (anti-entropy repair).
    MergeBatch = 53,
    /// Check, or purge, tombstones every replica of a partition holds alike.
    PurgeTombstones = 54,
    /// Raft AppendEntries (also heartbeats) of one strong group, named by its partition.
    GroupAppend = 60,
    /// Raft RequestVote of one strong group.
    GroupVote = 61,
    /// Raft InstallSnapshot (one chunk) of one strong group.
    GroupSnapshot = 62,
}

impl MessageKind {
    /// Wire numbers that once had a meaning and must never get another (see the type's doc).
    pub const RETIRED: [u8; 1] = [41];

    /// Every kind, in wire-number order.
    pub const ALL: [MessageKind; 22] = [
        MessageKind::Hello,
        MessageKind::Join,
        MessageKind::MetaForward,
        MessageKind::RaftAppend,
        MessageKind::RaftVote,
        MessageKind::RaftSnapshot,
        MessageKind::Swim,
        MessageKind::TimeProbe,
        MessageKind::ReplicaRead,
        MessageKind::ReplicaWrite,
        MessageKind::ReplicaMerge,
        MessageKind::ReplicaList,
        MessageKind::ReplicaHint,
        MessageKind::HandoffFetch,
        MessageKind::TreeRoot,
        MessageKind::TreeLeaves,
        MessageKind::SegmentObjects,
        MessageKind::MergeBatch,
        MessageKind::PurgeTombstones,
        MessageKind::GroupAppend,
        MessageKind::GroupVote,
        MessageKind::GroupSnapshot,
    ];

    /// The kind with wire number `byte`, or `None` if no kind has it.
    pub fn from_u8(byte: u8) -> Option<MessageKind> {
        MessageKind::ALL.into_iter().find(|kind| *kind as u8 == byte)
    }

    /// The wire number.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// A stable snake_case name, used as a metric label and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Hello => "hello",
            MessageKind::Join => "join",
            MessageKind::MetaForward => "meta_forward",
            MessageKind::RaftAppend => "raft_append",
            MessageKind::RaftVote => "raft_vote",
            MessageKind::RaftSnapshot => "raft_snapshot",
            MessageKind::Swim => "swim",
            MessageKind::TimeProbe => "time_probe",
            MessageKind::ReplicaRead => "replica_read",
            MessageKind::ReplicaWrite => "replica_write",
            MessageKind::ReplicaMerge => "replica_merge",
            MessageKind::ReplicaList => "replica_list",
            MessageKind::ReplicaHint => "replica_hint",
            MessageKind::HandoffFetch => "handoff_fetch",
            MessageKind::TreeRoot => "tree_root",
            MessageKind::TreeLeaves => "tree_leaves",
            MessageKind::SegmentObjects => "segment_objects",
            MessageKind::MergeBatch => "merge_batch",
            MessageKind::PurgeTombstones => "purge_tombstones",
            MessageKind::GroupAppend => "group_append",
            MessageKind::GroupVote => "group_vote",
            MessageKind::GroupSnapshot => "group_snapshot",
        }
    }

    /// Whether this kind may travel on a connection that is not joined to a cluster (one side
    /// has no cluster id yet).
    pub fn allowed_before_join(self) -> bool {
        matches!(self, MessageKind::Hello | MessageKind::Join)
    }
}

impl fmt::Display for MessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire numbers are part of the protocol: this test pins them so that a renumbering is a
    /// deliberate, visible change.
    #[test]
    fn wire_numbers_are_pinned() {
        let numbers: Vec<u8> = MessageKind::ALL.iter().map(|kind| kind.as_u8()).collect();
        assert_eq!(
            numbers,
            [1, 2, 3, 10, 11, 12, 20, 21, 30, 31, 32, 33, 34, 40, 50, 51, 52, 53, 54, 60, 61, 62]
        );
    }

    /// A retired number stays retired: no kind takes it, so it decodes as unknown.
    #[test]
    fn retired_numbers_are_not_reused() {
        for number in MessageKind::RETIRED {
            assert_eq!(MessageKind::from_u8(number), None, "{number} is retired");
        }
    }

    #[test]
    fn every_byte_decodes_to_its_kind_or_none() {
        for byte in 0..=u8::MAX {
            match MessageKind::from_u8(byte) {
                Some(kind) => assert_eq!(kind.as_u8(), byte),
                None => assert!(!MessageKind::ALL.iter().any(|kind| kind.as_u8() == byte)),
            }
        }
    }

    #[test]
    fn names_are_distinct() {
        let mut names: Vec<&str> = MessageKind::ALL.iter().map(|kind| kind.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), MessageKind::ALL.len());
    }
}
