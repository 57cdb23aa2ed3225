//! Tests of the object store, by the job they check: updates on the latest state
//! (`updates.rs`), group commit and the turns of client and bulk batches (`group_commit.rs`),
//! trees following every change, drops included (`trees.rs`), and partition scans
//! (`scans.rs`). Shared helpers live here.

use std::sync::Arc;
use std::time::{Duration, Instant};

use concord_types::{ActorId, ConflictPolicy, Content, DvvSet, Key, NamespaceId, PartitionId};
use concord_types::{Timestamp, VersionVector};

use super::*;
use crate::{Batch, FjallStorage, HashTree, MemoryStorage};

mod group_commit;
mod scans;
mod trees;
mod updates;

/// A store over fresh memory storage, with the default options and no commit observer.
fn memory_store() -> ObjectStore {
    store_on(Arc::new(MemoryStorage::new()))
}

/// A store over `storage`, with the default options and no commit observer.
fn store_on(storage: Arc<dyn Storage>) -> ObjectStore {
    ObjectStore::start(storage, Default::default(), Arc::new(()))
}

/// A state holding one value, `data`, written by actor 9: as another replica sends it.
fn remote_state(data: &str) -> DvvSet {
    let mut state = DvvSet::new();
    let content =
        Content::Value { data: data.as_bytes().to_vec(), content_type: "text/plain".into() };
    let dot = concord_types::Dot { actor: ActorId(9), counter: 0 };
    state
        .write(&VersionVector::new(), dot, Timestamp(5), content, ConflictPolicy::Siblings)
        .unwrap();
    state
}

fn key(name: &str) -> ObjectKey {
    ObjectKey { namespace: NamespaceId(1), partition: PartitionId(0), key: Key::new(name).unwrap() }
}

fn write(context: &VersionVector, data: &str) -> Update {
    Update::Write {
        context: context.clone(),
        actor: ActorId(1),
        timestamp: Timestamp(1),
        content: Content::Value {
            data: data.as_bytes().to_vec(),
            content_type: "text/plain".into(),
        },
        policy: ConflictPolicy::Siblings,
    }
}

fn values(state: &DvvSet) -> Vec<String> {
    let mut out: Vec<String> = state
        .values()
        .map(|s| match &s.content {
            Content::Value { data, .. } => String::from_utf8(data.clone()).unwrap(),
            Content::Tombstone => unreachable!(),
        })
        .collect();
    out.sort();
    out
}

fn in_partition(p: u16, name: &str) -> ObjectKey {
    ObjectKey { namespace: NamespaceId(1), partition: PartitionId(p), key: Key::new(name).unwrap() }
}
