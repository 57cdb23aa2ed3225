//! Key listings across the cluster: every partition is asked of one of its current replicas
//! (this node when it is one), and the per-partition pages are merged in key order.
//!
//! A partition's page looks at a bounded number of stored keys (tombstones included), so a
//! listing never walks an unbounded run of tombstones: a partition that ran out of its bound
//! says where it stopped, the merged page ends there, and its cursor resumes after it. The
//! scans run in the background lane, off the async workers.

use std::time::Duration;

use concord_rpc::{Calls, MessageKind, Rpc};
use concord_storage::Listing;
use concord_types::{Key, NamespaceId, PartitionId};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde::{Deserialize, Serialize};

use crate::coordinator::Coordinator;
use crate::{NamespaceRef, ReplicaError};

/// `ReplicaList`: live keys of one partition with `prefix`, after `after`, at most `limit`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ListRequest {
    pub namespace: NamespaceId,
    pub partition: PartitionId,
    pub prefix: Vec<u8>,
    pub after: Option<Vec<u8>>,
    pub limit: u32,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ListReply {
    pub keys: Vec<Key>,
    /// Set when the replica stopped at its bound of keys looked at: the last one. Every live
    /// key of the partition up to it is in `keys`.
    pub stopped_at: Option<Key>,
}

impl Rpc for ListRequest {
    const KIND: MessageKind = MessageKind::ReplicaList;
    type Reply = ListReply;
}

/// A page of keys: at most `limit`, and where the next page starts, if there may be one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPage {
    pub keys: Vec<Key>,
    /// Pass as `after` for the next page; `None` on the last page. Not always the last key
    /// returned: a page that stopped in a run of tombstones resumes after the last one looked at.
    pub next: Option<Key>,
}

/// Most partitions asked at once.
const FAN_OUT: usize = 16;

/// Most keys a partition page returns.
const PAGE_KEYS_MAX: usize = 10_000;

/// Fewest stored keys a partition page may look at. A page looks at `max(limit, this)`: never
/// more than [`PAGE_KEYS_MAX`], so one listing request looks at most at that many keys per
/// partition, whatever runs of tombstones lie in its way.
pub const EXAMINE_MIN: usize = 1024;

/// How many stored keys a partition page asked for `limit` live keys may look at.
pub fn examine_max(limit: usize) -> usize {
    limit.clamp(EXAMINE_MIN, PAGE_KEYS_MAX)
}

/// Merges the pages of every partition into one page of at most `limit` keys. Each partition
/// page holds up to `limit + 1` keys, or stopped early; the merged page holds only keys every
/// partition has fully listed up to, so no key is skipped by the next page.
pub fn merge_pages(pages: Vec<ListReply>, limit: usize) -> KeyPage {
    let mut keys = Vec::new();
    let mut bound: Option<Key> = None;
    for page in pages {
        keys.extend(page.keys);
        if let Some(at) = page.stopped_at {
            bound = Some(match bound {
                Some(bound) if bound <= at => bound,
                _ => at,
            });
        }
    }
    keys.sort();
    if let Some(bound) = &bound {
        keys.retain(|key| key <= bound);
    }
    if keys.len() > limit {
        // A partition that filled its `limit + 1` has at least one key past the page.
        keys.truncate(limit);
        let next = keys.last().cloned();
        return KeyPage { keys, next };
    }
    KeyPage { keys, next: bound }
}

impl Coordinator {
    /// Lists one partition here, in the background lane.
    pub(crate) async fn list_local(&self, request: ListRequest) -> Result<ListReply, ReplicaError> {
        if request.partition.0 >= self.shared.partitions.get() {
            return Err(ReplicaError::Storage(format!("no partition {}", request.partition)));
        }
        let objects = self.shared.objects.clone();
        let scan = move || {
            let limit = (request.limit as usize).clamp(1, PAGE_KEYS_MAX);
            let listing = Listing {
                prefix: &request.prefix,
                after: request.after.as_deref(),
                limit,
                examine_max: examine_max(limit),
            };
            objects.scan_live(request.namespace, request.partition, listing)
        };
        let page = self
            .shared
            .background
            .run(scan)
            .await
            .map_err(|e| ReplicaError::Storage(format!("listing: {e}")))??;
        Ok(ListReply { keys: page.keys, stopped_at: page.stopped_at })
    }

    /// Lists live keys in byte order, `limit` at most, after the key `after`.
    pub async fn list(
        &self,
        namespace: &NamespaceRef,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
        timeout: Duration,
    ) -> Result<KeyPage, ReplicaError> {
        let state = self.shared.meta.state();
        let n = state.effective_replicas(&namespace.config);
        // One more than asked, so that whether more follow is known.
        let wanted = limit + 1;
        let mut pages = Vec::new();
        let mut pending = FuturesUnordered::new();
        let mut partitions = self.shared.partitions.all();
        loop {
            while pending.len() < FAN_OUT {
                let Some(partition) = partitions.next() else { break };
                let request = ListRequest {
                    namespace: namespace.id,
                    partition,
                    prefix: prefix.to_vec(),
                    after: after.map(<[u8]>::to_vec),
                    limit: wanted as u32,
                };
                let owners = self.shared.live_first(&state.read_replicas(partition, n));
                pending.push(async move { self.list_partition(request, owners, timeout).await });
            }
            match pending.next().await {
                Some(Ok(page)) => pages.push(page),
                Some(Err(e)) => return Err(e),
                None => break,
            }
        }
        Ok(merge_pages(pages, limit))
    }

    async fn list_partition(
        &self,
        request: ListRequest,
        owners: Vec<concord_types::NodeId>,
        timeout: Duration,
    ) -> Result<ListReply, ReplicaError> {
        if owners.is_empty() || owners.contains(&self.shared.me) {
            return self.list_local(request).await;
        }
        let mut failures = Vec::new();
        for owner in owners {
            match self.shared.transport.call_rpc(&owner, &request, timeout).await {
                Ok(reply) => return Ok(reply),
                Err(e) => failures.push((owner.to_string(), e.to_string())),
            }
        }
        Err(ReplicaError::Quorum { required: 1, answered: 0, failures })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use concord_storage::{Durability, MemoryStorage, ObjectStore};
    use concord_types::{ActorId, ConflictPolicy, Content, DvvSet, Timestamp, VersionVector};

    use super::*;

    fn key(name: &str) -> Key {
        Key::new(name).unwrap()
    }

    fn reply(keys: &[&str], stopped_at: Option<&str>) -> ListReply {
        ListReply { keys: keys.iter().map(|k| key(k)).collect(), stopped_at: stopped_at.map(key) }
    }

    #[test]
    fn a_partition_that_stopped_ends_the_page_where_it_stopped() {
        // Nobody stopped, nobody filled the page: the last page.
        let page = merge_pages(vec![reply(&["b"], None), reply(&["a"], None)], 3);
        assert_eq!(page, KeyPage { keys: vec![key("a"), key("b")], next: None });
        // A partition filled its limit + 1: the page is full and resumes after its last key.
        let page = merge_pages(vec![reply(&["a", "c", "e"], None), reply(&["b"], None)], 2);
        assert_eq!(page, KeyPage { keys: vec![key("a"), key("b")], next: Some(key("b")) });
        // A partition stopped at "c" in its tombstones: keys past "c" of other partitions wait
        // for the next page, which resumes after "c" even though "c" is no key of this one.
        let stopped = vec![reply(&["a"], Some("c")), reply(&["b", "d"], None)];
        assert_eq!(
            merge_pages(stopped, 5),
            KeyPage { keys: vec![key("a"), key("b")], next: Some(key("c")) }
        );
        // Two stopped: the earlier stop bounds the page; a page may be empty and still go on.
        let stopped = vec![reply(&[], Some("m")), reply(&[], Some("f")), reply(&["g"], None)];
        assert_eq!(merge_pages(stopped, 5), KeyPage { keys: vec![], next: Some(key("f")) });
    }

    /// Four partitions of 1,500 stored keys each, nearly all tombstones: every page looks at no
    /// more than `examine_max` keys per partition, pages that stopped in the tombstones carry
    /// a cursor, and paging finds every live key once, in order.
    #[tokio::test]
    async fn paging_over_many_tombstones_finds_every_live_key() {
        let store =
            ObjectStore::start(Arc::new(MemoryStorage::new()), Default::default(), Arc::new(()));
        let (ns, policy) = (NamespaceId(1), ConflictPolicy::Siblings);
        let state = |content| {
            let mut state = DvvSet::new();
            state
                .write(
                    &VersionVector::new(),
                    concord_types::Dot { actor: ActorId(1), counter: 0 },
                    Timestamp(1),
                    content,
                    policy,
                )
                .unwrap();
            state
        };
        let value = state(Content::Value { data: b"v".to_vec(), content_type: String::new() });
        let tombstone = state(Content::Tombstone);
        let mut live = Vec::new();
        for p in 0..4u16 {
            let mut objects = Vec::new();
            for i in (0..6000).filter(|i| i % 4 == usize::from(p)) {
                let name = format!("k{i:05}");
                let is_live = i % 2500 == 0 || i == 5999;
                if is_live {
                    live.push(key(&name));
                }
                objects.push((key(&name), if is_live { value.clone() } else { tombstone.clone() }));
            }
            store.merge_all(ns, PartitionId(p), objects, policy, Durability::Sync).await.unwrap();
        }
        live.sort();

        let limit = 5;
        let (mut found, mut after, mut stopped_pages) = (Vec::new(), None::<Key>, 0);
        for _ in 0..100 {
            let mut pages = Vec::new();
            for p in 0..4 {
                let examine = examine_max(limit + 1);
                let after = after.as_ref().map(Key::as_bytes);
                let listing =
                    Listing { prefix: b"", after, limit: limit + 1, examine_max: examine };
                let page = store.scan_live(ns, PartitionId(p), listing);
                let page = page.unwrap();
                pages.push(ListReply { keys: page.keys, stopped_at: page.stopped_at });
            }
            let page = merge_pages(pages, limit);
            assert!(page.keys.len() <= limit);
            if page.keys.len() < limit && page.next.is_some() {
                stopped_pages += 1;
            }
            found.extend(page.keys);
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!(found, live, "every live key once, in order");
        assert!(stopped_pages > 0, "no page stopped in the tombstones");
    }
}
