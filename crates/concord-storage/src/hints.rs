//! Hints: writes held on behalf of a replica that could not take them (hinted handoff).
//!
//! A hint is the DVV set of one key, stored in the hints space under the node it is meant for
//! ([`HintKey`]: the target's name, then the object key). Hints for one target are one
//! contiguous range, so replay walks them in order. Storing a hint merges into any hint already
//! held for the same target and key, through the committer like every other write; deleting a
//! delivered hint succeeds only if nothing was merged into it since it was read.

use concord_types::{ConflictPolicy, DvvSet, NodeId};

use crate::keys::prefix_end;
use crate::stored_state::decode_stored;
use crate::{HintKey, ObjectStore, Space, StorageError, Update};

/// One stored hint.
#[derive(Debug, Clone)]
pub struct Hint {
    pub key: HintKey,
    pub state: DvvSet,
}

impl ObjectStore {
    /// Stores (merges) a hint durably.
    pub async fn store_hint(
        &self,
        key: &HintKey,
        state: DvvSet,
        policy: ConflictPolicy,
    ) -> Result<(), StorageError> {
        self.update_in(Space::Hints, key.encode(), Update::Merge { state, policy }).await?;
        Ok(())
    }

    /// Whether a hint is stored for this target and object.
    pub fn has_hint(&self, key: &HintKey) -> Result<bool, StorageError> {
        Ok(self.storage().get(Space::Hints, &key.encode())?.is_some())
    }

    /// Up to `limit` hints for `target`, in key order, after the hint `after`.
    pub fn hints_for(
        &self,
        target: &NodeId,
        after: Option<&HintKey>,
        limit: usize,
    ) -> Result<Vec<Hint>, StorageError> {
        let prefix = HintKey::target_prefix(target);
        let start = match after {
            Some(after) => [after.encode().as_slice(), &[0u8]].concat(),
            None => prefix.clone(),
        };
        let end = prefix_end(&prefix).expect("a length byte below 0xff");
        let page = self.storage().scan(Space::Hints, &start, &end, limit)?;
        page.into_iter()
            .map(|(raw, bytes)| {
                let key = HintKey::decode(&raw).ok_or_else(|| StorageError::Corrupt {
                    key: raw.clone(),
                    reason: "not a hint key".into(),
                })?;
                Ok(Hint { key, state: decode_stored(&raw, &bytes)? })
            })
            .collect()
    }

    /// Every target with hints, and how many each has. Scans the whole hints space.
    pub fn hint_counts(&self) -> Result<Vec<(NodeId, u64)>, StorageError> {
        let mut out: Vec<(NodeId, u64)> = Vec::new();
        let mut start = Vec::new();
        let end = vec![0xff];
        loop {
            let page = self.storage().scan(Space::Hints, &start, &end, 1024)?;
            for (raw, _) in &page {
                let key = HintKey::decode(raw).ok_or_else(|| StorageError::Corrupt {
                    key: raw.clone(),
                    reason: "not a hint key".into(),
                })?;
                match out.last_mut() {
                    Some((target, count)) if *target == key.target => *count += 1,
                    _ => out.push((key.target, 1)),
                }
            }
            match page.last() {
                Some((raw, _)) if page.len() == 1024 => start = [raw.as_slice(), &[0u8]].concat(),
                _ => return Ok(out),
            }
        }
    }

    /// Deletes a delivered hint unless something was merged into it since it was read.
    pub async fn delete_hint(&self, hint: &Hint) -> Result<bool, StorageError> {
        self.delete_if(Space::Hints, hint.key.encode(), hint.state.clone()).await
    }

    /// Deletes every hint (an operator's or a test's hook). Returns how many were deleted.
    pub fn drop_hints(&self) -> Result<usize, StorageError> {
        let mut dropped = 0;
        loop {
            let page = self.storage().scan(Space::Hints, &[], &[0xff], 1024)?;
            if page.is_empty() {
                return Ok(dropped);
            }
            let mut batch = crate::Batch::new();
            dropped += page.len();
            for (key, _) in page {
                batch.delete(Space::Hints, key);
            }
            self.storage().commit(batch, crate::Durability::Sync)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use concord_types::{ActorId, Content, Key, NamespaceId, PartitionId, Timestamp};

    use super::*;
    use crate::{MemoryStorage, ObjectKey, ObjectStoreOptions};

    fn key(target: &str, user_key: &str) -> HintKey {
        HintKey {
            target: NodeId::new(target).unwrap(),
            object: ObjectKey {
                namespace: NamespaceId(1),
                partition: PartitionId(3),
                key: Key::new(user_key.as_bytes().to_vec()).unwrap(),
            },
        }
    }

    fn state(actor: u64, value: &str) -> DvvSet {
        let mut state = DvvSet::new();
        let content =
            Content::Value { data: value.as_bytes().to_vec(), content_type: "text/plain".into() };
        state
            .write(
                &Default::default(),
                concord_types::Dot { actor: ActorId(actor), counter: 0 },
                Timestamp::from_wall_ms(1),
                content,
                ConflictPolicy::Siblings,
            )
            .unwrap();
        state
    }

    fn store() -> ObjectStore {
        ObjectStore::start(
            std::sync::Arc::new(MemoryStorage::new()),
            ObjectStoreOptions::default(),
            std::sync::Arc::new(()),
        )
    }

    #[tokio::test]
    async fn hints_merge_count_and_delete_only_when_unchanged() {
        let store = store();
        let policy = ConflictPolicy::Siblings;
        store.store_hint(&key("b", "k1"), state(1, "one"), policy).await.unwrap();
        store.store_hint(&key("b", "k2"), state(1, "two"), policy).await.unwrap();
        store.store_hint(&key("c", "k1"), state(1, "one"), policy).await.unwrap();
        let counts = store.hint_counts().unwrap();
        let names: Vec<(&str, u64)> = counts.iter().map(|(n, c)| (n.as_str(), *c)).collect();
        assert_eq!(names, vec![("b", 2), ("c", 1)]);

        let hints = store.hints_for(&NodeId::new("b").unwrap(), None, 10).unwrap();
        assert_eq!(hints.len(), 2);
        let first = hints[0].clone();
        // A concurrent write merges into the hint after it was read: the delete must not lose it.
        store.store_hint(&first.key, state(2, "newer"), policy).await.unwrap();
        assert!(!store.delete_hint(&first).await.unwrap());
        let fresh = store.hints_for(&first.key.target, None, 1).unwrap().remove(0);
        assert_eq!(fresh.state.siblings().len(), 2);
        assert!(store.delete_hint(&fresh).await.unwrap());
        assert!(!store.has_hint(&fresh.key).unwrap());

        let rest = store.hints_for(&first.key.target, Some(&first.key), 10).unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].key, key("b", "k2"));
        assert_eq!(store.drop_hints().unwrap(), 2);
        assert!(store.hint_counts().unwrap().is_empty());
        store.close().await.unwrap();
    }

    #[tokio::test]
    async fn a_client_write_beyond_the_sibling_limit_is_refused_and_changes_nothing() {
        let options = ObjectStoreOptions { siblings_max: 2, ..ObjectStoreOptions::default() };
        let store = ObjectStore::start(
            std::sync::Arc::new(MemoryStorage::new()),
            options,
            std::sync::Arc::new(()),
        );
        let object = key("x", "k").object;
        let blind = |actor: u64| Update::Write {
            context: Default::default(),
            actor: ActorId(actor),
            timestamp: Timestamp::from_wall_ms(1),
            content: Content::Value { data: b"v".to_vec(), content_type: "t".into() },
            policy: ConflictPolicy::Siblings,
        };
        store.update(&object, blind(1)).await.unwrap();
        let two = store.update(&object, blind(2)).await.unwrap();
        assert_eq!(two.siblings().len(), 2);
        let refused = store.update(&object, blind(3)).await.unwrap_err();
        assert!(matches!(refused, StorageError::TooManySiblings { count: 3, max: 2 }), "{refused}");
        assert_eq!(store.get(&object).unwrap(), Some(two.clone()));
        // A write with the read's context resolves the siblings and is accepted.
        let resolve = Update::Write {
            context: two.context().clone(),
            actor: ActorId(1),
            timestamp: Timestamp::from_wall_ms(2),
            content: Content::Value { data: b"r".to_vec(), content_type: "t".into() },
            policy: ConflictPolicy::Siblings,
        };
        assert_eq!(store.update(&object, resolve).await.unwrap().siblings().len(), 1);
        store.close().await.unwrap();
    }
}
