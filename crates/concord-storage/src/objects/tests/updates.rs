//! Updates apply on the latest stored state, survive a reopen, and mint dots in one sequence per
//! actor.

use super::*;

/// Many blind writes racing on one key must all survive as siblings: each read-modify-write
/// starts from the state the previous one left.
async fn concurrent_blind_writes_all_survive(storage: Arc<dyn Storage>) {
    let options = ObjectStoreOptions { siblings_max: 256, ..Default::default() };
    let store = Arc::new(ObjectStore::start(storage, options, Arc::new(())));
    let mut tasks = Vec::new();
    for i in 0..200 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.update(&key("k"), write(&VersionVector::new(), &format!("v{i:03}"))).await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let state = store.get(&key("k")).unwrap().unwrap();
    let expected: Vec<String> = (0..200).map(|i| format!("v{i:03}")).collect();
    assert_eq!(values(&state), expected);
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_blind_writes_all_survive_in_memory() {
    concurrent_blind_writes_all_survive(Arc::new(MemoryStorage::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_blind_writes_all_survive_on_fjall() {
    let dir = tempfile::tempdir().unwrap();
    concurrent_blind_writes_all_survive(Arc::new(
        FjallStorage::open(dir.path(), &Default::default()).unwrap(),
    ))
    .await;
}

#[tokio::test]
async fn write_with_context_replaces_what_was_read() {
    let store = memory_store();
    store.update(&key("k"), write(&VersionVector::new(), "a")).await.unwrap();
    store.update(&key("k"), write(&VersionVector::new(), "b")).await.unwrap();
    let read = store.get(&key("k")).unwrap().unwrap();
    assert_eq!(values(&read), ["a", "b"]);
    let after = store.update(&key("k"), write(read.context(), "c")).await.unwrap();
    assert_eq!(values(&after), ["c"]);
}

#[tokio::test]
async fn durable_writes_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let storage = Arc::new(FjallStorage::open(dir.path(), &Default::default()).unwrap());
        let store = store_on(storage);
        for i in 0..50 {
            store.update(&key(&format!("k{i}")), write(&VersionVector::new(), "v")).await.unwrap();
        }
        store.close().await.unwrap();
    }
    let storage = Arc::new(FjallStorage::open(dir.path(), &Default::default()).unwrap());
    let store = store_on(storage);
    for i in 0..50 {
        let state = store.get(&key(&format!("k{i}"))).unwrap().expect("written before reopen");
        assert_eq!(values(&state), ["v"]);
    }
}

/// A delete without a context removes every version stored when it is applied, even ones
/// written after the client last read.
#[tokio::test]
async fn delete_without_context_removes_everything_stored() {
    let store = memory_store();
    store.update(&key("k"), write(&VersionVector::new(), "a")).await.unwrap();
    store.update(&key("k"), write(&VersionVector::new(), "b")).await.unwrap();
    let delete = Update::DeleteStored {
        actor: ActorId(1),
        timestamp: Timestamp(3),
        policy: ConflictPolicy::Siblings,
    };
    let after = store.update(&key("k"), delete).await.unwrap();
    assert!(after.is_deleted());
    assert_eq!(after.siblings().len(), 1, "only the tombstone is left");
}

/// A bulk merge lands every object durably with one answer, merging with what is stored.
#[tokio::test]
async fn bulk_merges_land_and_merge_with_stored_state() {
    let storage = Arc::new(MemoryStorage::new());
    let store = store_on(storage.clone());
    let here = key("both");
    let local = store.update(&here, write(&VersionVector::new(), "local")).await.unwrap();
    let remote = remote_state("remote");
    let objects = vec![
        (here.key.clone(), remote.clone()),
        (Key::new("only-remote").unwrap(), remote.clone()),
    ];
    store
        .merge_all(
            NamespaceId(1),
            PartitionId(0),
            objects,
            ConflictPolicy::Siblings,
            Durability::Sync,
        )
        .await
        .unwrap();
    assert_eq!(values(&store.get(&here).unwrap().unwrap()), ["local", "remote"]);
    assert_eq!(values(&store.get(&key("only-remote")).unwrap().unwrap()), ["remote"]);
    assert!(local.values().count() == 1);
    store.close().await.unwrap();
}

/// A purged tombstone is gone, from the data and from the tree; the replica's next write of the
/// key mints past every dot the tombstone covered, so a stale copy of the deleted value that
/// turns up later stays deleted instead of colliding with the new write.
#[tokio::test]
async fn purged_tombstones_leave_a_floor_for_the_next_dot() {
    let store = memory_store();
    let k = key("k");
    let old = store.update(&k, write(&VersionVector::new(), "old")).await.unwrap();
    let delete = Update::DeleteStored {
        actor: ActorId(1),
        timestamp: Timestamp(2),
        policy: ConflictPolicy::Siblings,
    };
    let tombstone = store.update(&k, delete).await.unwrap();
    assert!(tombstone.is_deleted());

    // A purge against a state that has since changed does nothing.
    assert!(!store.purge(&k, old.clone(), ActorId(1)).await.unwrap());
    assert!(store.get(&k).unwrap().is_some());
    assert!(store.purge(&k, tombstone.clone(), ActorId(1)).await.unwrap());
    assert_eq!(store.get(&k).unwrap(), None);
    let tree = store.trees().get(k.namespace, k.partition);
    assert_eq!((tree.keys(), tree.root()), (0, HashTree::new().root()), "the tree forgets it");

    let new = store.update(&k, write(&VersionVector::new(), "new")).await.unwrap();
    let dot = new.siblings()[0].dot;
    assert!(dot.counter > tombstone.context().get(ActorId(1)), "minted past the tombstone");
    // The deleted value, replayed late from somewhere, is covered by the new write's history.
    let merged = store
        .update(&k, Update::Merge { state: old, policy: ConflictPolicy::Siblings })
        .await
        .unwrap();
    assert_eq!(values(&merged), vec!["new".to_string()]);
    // Another actor never purged anything here: it mints from 1 as before.
    let other = Update::Write {
        context: VersionVector::new(),
        actor: ActorId(9),
        timestamp: Timestamp(3),
        content: Content::Tombstone,
        policy: ConflictPolicy::Siblings,
    };
    let state = store.update(&key("fresh"), other).await.unwrap();
    assert_eq!(state.siblings()[0].dot.counter, 1);
}

/// An actor's counter is one sequence over every key it writes, so a key whose vector forgot
/// the actor (pruned, or purged with a tombstone) still gets a dot the actor never minted.
#[tokio::test]
async fn an_actor_mints_one_sequence_over_all_keys() {
    let store = memory_store();
    let mut counters = Vec::new();
    for name in ["a", "b", "a", "c", "b"] {
        let state = store.update(&key(name), write(&VersionVector::new(), name)).await.unwrap();
        counters.push(state.siblings().iter().map(|s| s.dot.counter).max().unwrap());
    }
    assert_eq!(counters, vec![1, 2, 3, 4, 5]);
}

/// `siblings_max` bounds what one write may leave, not what a merge may (issue 19 review):
/// two replicas that each took `siblings_max` concurrent blind writes while apart hold all of
/// them once their states merge (anti-entropy, read repair, handoff, a hint), because a merge
/// never drops a write. Such a key then refuses every write that would add a sibling, and a
/// write with the context of a read resolves it back to one value.
#[tokio::test]
async fn a_merge_may_exceed_siblings_max_until_a_write_with_context_resolves_it() {
    let options = ObjectStoreOptions { siblings_max: 2, ..Default::default() };
    let store = ObjectStore::start(Arc::new(MemoryStorage::new()), options, Arc::new(()));
    let here = key("k");
    store.update(&here, write(&VersionVector::new(), "a1")).await.unwrap();
    store.update(&here, write(&VersionVector::new(), "a2")).await.unwrap();
    // The other replica's two blind writes, by its actor 9: dots 9:1 and 9:2.
    let mut other = remote_state("b1");
    let content = Content::Value { data: b"b2".to_vec(), content_type: "text/plain".into() };
    let last = concord_types::Dot { actor: ActorId(9), counter: 1 };
    let blind = VersionVector::new();
    other.write(&blind, last, Timestamp(6), content, ConflictPolicy::Siblings).unwrap();

    let merge = Update::Merge { state: other, policy: ConflictPolicy::Siblings };
    let merged = store.update(&here, merge).await.unwrap();
    assert_eq!(values(&merged), ["a1", "a2", "b1", "b2"], "the merge keeps every write");

    let refused = store.update(&here, write(&blind, "a3")).await.unwrap_err();
    assert!(matches!(refused, StorageError::TooManySiblings { count: 5, max: 2 }), "{refused}");
    let read = store.get(&here).unwrap().unwrap();
    assert_eq!(values(&read), ["a1", "a2", "b1", "b2"], "the refused write changed nothing");

    let resolved = store.update(&here, write(read.context(), "c")).await.unwrap();
    assert_eq!(values(&resolved), ["c"]);
}
