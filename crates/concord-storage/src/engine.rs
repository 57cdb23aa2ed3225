//! The byte-level storage seam. Production uses fjall; tests and simulation use memory.

use crate::StorageError;
use crate::engine_watch::EngineState;

/// A named keyspace. Each is its own ordered map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Space {
    /// User data: [`crate::ObjectKey`] → [`crate::StoredState`].
    Data,
    /// What a node records about itself ([`crate::keys::meta`]).
    Meta,
    /// The Raft log, vote and metadata state machine of `concord-meta` ([`crate::keys::raft`]).
    Raft,
    /// Hinted handoff: writes held for a replica that could not take them
    /// ([`crate::HintKey`] → [`crate::StoredState`]).
    Hints,
    /// The Raft logs of every strong-namespace group on the node, with each group's vote,
    /// committed and purged log ids (`concord-consensus`, [`crate::keys::group_log`]).
    GroupLog,
    /// The state machines of every strong-namespace group: each group's key records and
    /// applied state (`concord-consensus`, [`crate::keys::group_state`]).
    GroupState,
}

impl Space {
    pub const ALL: [Space; 6] =
        [Space::Data, Space::Meta, Space::Raft, Space::Hints, Space::GroupLog, Space::GroupState];

    pub fn name(self) -> &'static str {
        match self {
            Space::Data => "data",
            Space::Meta => "meta",
            Space::Raft => "raft",
            Space::Hints => "hints",
            Space::GroupLog => "group-log",
            Space::GroupState => "group-state",
        }
    }

    /// Position in [`Space::ALL`]; engines keep one map per space in that order.
    pub fn index(self) -> usize {
        match self {
            Space::Data => 0,
            Space::Meta => 1,
            Space::Raft => 2,
            Space::Hints => 3,
            Space::GroupLog => 4,
            Space::GroupState => 5,
        }
    }
}

/// How hard a commit works to survive failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// fsync before the commit returns: survives power loss.
    #[default]
    Sync,
    /// Hand the bytes to the OS: survives a process crash, not power loss.
    Buffered,
}

/// A set of writes applied atomically.
#[derive(Debug, Default)]
pub struct Batch {
    pub(crate) ops: Vec<(Space, Vec<u8>, Option<Vec<u8>>)>,
}

impl Batch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn put(&mut self, space: Space, key: Vec<u8>, value: Vec<u8>) {
        self.ops.push((space, key, Some(value)));
    }

    pub fn delete(&mut self, space: Space, key: Vec<u8>) {
        self.ops.push((space, key, None));
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// Key-value pairs returned by a scan, in key order.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Ordered byte maps with atomic, durable batches.
///
/// Methods are synchronous: engines serve reads from memory or page cache, and writes go
/// through the committer thread of [`crate::ObjectStore`].
pub trait Storage: Send + Sync + 'static {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError>;

    /// Entries with `start <= key < end`, in key order, at most `limit` of them.
    fn scan(
        &self,
        space: Space,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Entries, StorageError>;

    /// Applies the batch atomically. With [`Durability::Sync`] it is on disk when this returns.
    fn commit(&self, batch: Batch, durability: Durability) -> Result<(), StorageError>;

    /// Makes everything committed so far durable (used at shutdown).
    fn persist(&self) -> Result<(), StorageError>;

    /// A sample of what the engine does in the background (flushes, compactions, journal
    /// files), for [`crate::EngineWatch`]; `None` for engines with no background work.
    fn engine_state(&self) -> Option<EngineState> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Engines keep one map per space at `index()`: the index is the position in `ALL`, and
    /// every space has its own fjall keyspace name.
    #[test]
    fn every_space_has_its_position_and_a_distinct_name() {
        for (position, space) in Space::ALL.iter().enumerate() {
            assert_eq!(space.index(), position, "{space:?}");
        }
        let mut names: Vec<_> = Space::ALL.iter().map(|space| space.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Space::ALL.len());
    }
}
