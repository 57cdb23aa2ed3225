//! Tombstones past their grace (DESIGN.md §4, the tombstone rule).
//!
//! A delete leaves a tombstone: a DVV set whose siblings are all tombstones. It must outlive
//! every copy of the values it deleted, or a replica that missed the delete would bring them
//! back. A tombstone becomes *expired* once its newest sibling is older than the grace; the
//! replica layer purges an expired tombstone only when every replica of its partition holds the
//! same state, through [`ObjectStore::purge`].

use concord_types::{DvvSet, Key, NamespaceId, PartitionId};

use crate::{ObjectKey, ObjectStore, StorageError};

/// Whether `state` is a tombstone whose newest write is at least `grace_ms` older than
/// `now_ms` (wall-clock milliseconds).
pub fn expired(state: &DvvSet, now_ms: u64, grace_ms: u64) -> bool {
    state.is_deleted() && older_than(state, now_ms, grace_ms)
}

/// Whether the newest write in `state` is at least `grace_ms` older than `now_ms`. A hint this
/// old is never delivered: its tombstone may be purged already (see the replica layer).
pub fn older_than(state: &DvvSet, now_ms: u64, grace_ms: u64) -> bool {
    let newest = state.siblings().iter().map(|s| s.timestamp.wall_ms()).max().unwrap_or(0);
    newest.saturating_add(grace_ms) <= now_ms
}

/// What [`ObjectStore::expired_tombstones`] looks for, and how far.
#[derive(Debug, Clone, Copy)]
pub struct Sweep {
    /// Wall-clock milliseconds now.
    pub now_ms: u64,
    pub grace_ms: u64,
    /// Most tombstones returned.
    pub limit: usize,
    /// Most objects looked at.
    pub scan_max: usize,
}

/// A page of expired tombstones (see [`ObjectStore::expired_tombstones`]).
#[derive(Debug, Default)]
pub struct Expired {
    pub tombstones: Vec<(Key, DvvSet)>,
    /// Where the next page starts, if the partition has more objects.
    pub next: Option<Key>,
}

impl ObjectStore {
    /// Expired tombstones of one partition after `after`, in key order, as `sweep` bounds them.
    pub fn expired_tombstones(
        &self,
        namespace: NamespaceId,
        partition: PartitionId,
        after: Option<&Key>,
        sweep: Sweep,
    ) -> Result<Expired, StorageError> {
        let Sweep { now_ms, grace_ms, limit, scan_max } = sweep;
        let chunk = self.scan_objects(namespace, partition, after, scan_max, usize::MAX)?;
        let mut page = Expired::default();
        let mut last = None;
        for (key, stored) in chunk.objects {
            let state = stored.decode().map_err(|e| StorageError::Corrupt {
                key: ObjectKey { namespace, partition, key: key.clone() }.encode(),
                reason: e.to_string(),
            })?;
            if expired(&state, now_ms, grace_ms) {
                page.tombstones.push((key.clone(), state));
            }
            last = Some(key);
            if page.tombstones.len() >= limit {
                page.next = last;
                return Ok(page);
            }
        }
        page.next = if chunk.more { last } else { None };
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use concord_types::{ActorId, ConflictPolicy, Content, Timestamp, VersionVector};

    use super::*;

    fn tombstone_at(ms: u64) -> DvvSet {
        let mut state = DvvSet::new();
        let at = Timestamp::from_wall_ms(ms);
        let value = Content::Value { data: b"v".to_vec(), content_type: String::new() };
        state
            .write(
                &VersionVector::new(),
                concord_types::Dot { actor: ActorId(1), counter: 0 },
                at,
                value,
                ConflictPolicy::Siblings,
            )
            .unwrap();
        let context = state.context().clone();
        state
            .write(
                &context,
                concord_types::Dot { actor: ActorId(1), counter: 0 },
                at,
                Content::Tombstone,
                ConflictPolicy::Siblings,
            )
            .unwrap();
        state
    }

    #[test]
    fn a_tombstone_expires_once_its_grace_has_passed() {
        let state = tombstone_at(10_000);
        assert!(!expired(&state, 10_999, 1_000));
        assert!(expired(&state, 11_000, 1_000));
    }

    #[test]
    fn a_value_or_a_value_beside_a_tombstone_never_expires() {
        let mut state = tombstone_at(10_000);
        let value = Content::Value { data: b"w".to_vec(), content_type: String::new() };
        // A concurrent write (empty context) leaves a value sibling beside the tombstone.
        state
            .write(
                &VersionVector::new(),
                concord_types::Dot { actor: ActorId(2), counter: 0 },
                Timestamp::from_wall_ms(1),
                value,
                ConflictPolicy::Siblings,
            )
            .unwrap();
        assert!(!expired(&state, u64::MAX / 2, 0));
    }
}
