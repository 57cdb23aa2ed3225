//! Tests of the committer: merges happen on the latest state, groups share one commit, and
//! durable writes survive a reopen.

use std::sync::Mutex as StdMutex;
use std::sync::mpsc as std_mpsc;

use concord_types::ConflictPolicy;

use super::*;
use crate::engine::Entries;
use crate::{FjallStorage, HashTree, MemoryStorage};

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

/// Records the size of every committed batch.
#[derive(Default)]
struct BatchSizes(StdMutex<Vec<usize>>);

impl CommitObserver for BatchSizes {
    fn on_commit(&self, updates: usize, _elapsed: Duration) {
        self.0.lock().unwrap().push(updates);
    }
}

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
    let store =
        ObjectStore::start(Arc::new(MemoryStorage::new()), Default::default(), Arc::new(()));
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
        let store = ObjectStore::start(storage, Default::default(), Arc::new(()));
        for i in 0..50 {
            store.update(&key(&format!("k{i}")), write(&VersionVector::new(), "v")).await.unwrap();
        }
        store.close().await.unwrap();
    }
    let storage = Arc::new(FjallStorage::open(dir.path(), &Default::default()).unwrap());
    let store = ObjectStore::start(storage, Default::default(), Arc::new(()));
    for i in 0..50 {
        let state = store.get(&key(&format!("k{i}"))).unwrap().expect("written before reopen");
        assert_eq!(values(&state), ["v"]);
    }
}

/// A storage whose first `holds` commits each block until the test releases them, so the test
/// can queue writes behind a commit in progress without relying on timing.
struct GatedStorage {
    inner: MemoryStorage,
    holds: StdMutex<usize>,
    entered: StdMutex<std_mpsc::Sender<()>>,
    release: StdMutex<std_mpsc::Receiver<()>>,
    /// The durability each commit asked for, in order.
    durabilities: StdMutex<Vec<Durability>>,
}

impl Storage for GatedStorage {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.get(space, key)
    }
    fn scan(
        &self,
        space: Space,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Entries, StorageError> {
        self.inner.scan(space, start, end, limit)
    }
    fn commit(&self, batch: Batch, durability: Durability) -> Result<(), StorageError> {
        let held = {
            let mut holds = self.holds.lock().unwrap();
            match holds.checked_sub(1) {
                Some(left) => {
                    *holds = left;
                    true
                }
                None => false,
            }
        };
        if held {
            self.entered.lock().unwrap().send(()).unwrap();
            self.release.lock().unwrap().recv().unwrap();
        }
        self.durabilities.lock().unwrap().push(durability);
        self.inner.commit(batch, durability)
    }
    fn persist(&self) -> Result<(), StorageError> {
        Ok(())
    }
}

/// A store over [`GatedStorage`] whose first commit, one write of key "first", is in progress
/// and held until `release` is sent; `entered` hears of each later held commit.
struct HeldCommit {
    store: Arc<ObjectStore>,
    storage: Arc<GatedStorage>,
    sizes: Arc<BatchSizes>,
    first: tokio::task::JoinHandle<Result<(), StorageError>>,
    release: std_mpsc::Sender<()>,
    entered: Arc<StdMutex<std_mpsc::Receiver<()>>>,
}

async fn store_with_a_held_commit(options: ObjectStoreOptions) -> HeldCommit {
    store_with_held_commits(options, 1).await
}

/// Like [`store_with_a_held_commit`], holding the first `holds` commits.
async fn store_with_held_commits(options: ObjectStoreOptions, holds: usize) -> HeldCommit {
    let (entered_tx, entered_rx) = std_mpsc::channel();
    let (release, release_rx) = std_mpsc::channel();
    let storage = Arc::new(GatedStorage {
        inner: MemoryStorage::new(),
        holds: StdMutex::new(holds),
        entered: StdMutex::new(entered_tx),
        release: StdMutex::new(release_rx),
        durabilities: StdMutex::new(Vec::new()),
    });
    let sizes = Arc::new(BatchSizes::default());
    let store = Arc::new(ObjectStore::start(storage.clone(), options, sizes.clone()));
    let first = {
        let store = store.clone();
        tokio::spawn(async move {
            store.update(&key("first"), write(&Default::default(), "x")).await.map(|_| ())
        })
    };
    let entered = Arc::new(StdMutex::new(entered_rx));
    wait_entered(&entered).await;
    HeldCommit { store, storage, sizes, first, release, entered }
}

/// Waits until the committer is inside its next held commit.
async fn wait_entered(entered: &Arc<StdMutex<std_mpsc::Receiver<()>>>) {
    let entered = entered.clone();
    tokio::task::spawn_blocking(move || entered.lock().unwrap().recv().unwrap()).await.unwrap();
}

/// Waits until more than `queued` messages wait in the committer's inbox.
async fn wait_until_queued_past(store: &ObjectStore, queued: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.queue.max_capacity() - store.queue.capacity() <= queued {
        assert!(Instant::now() < deadline, "never queued past {queued}");
        tokio::task::yield_now().await;
    }
}

/// Writes that arrive while a commit is in progress are all committed together in the next
/// batch: one sync for all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_queued_behind_a_commit_share_the_next_one() {
    let HeldCommit { store, sizes, first, release, .. } =
        store_with_a_held_commit(Default::default()).await;

    let mut queued = Vec::new();
    for i in 0..99 {
        let store = store.clone();
        queued.push(tokio::spawn(async move {
            store.update(&key(&format!("k{i}")), write(&Default::default(), "y")).await
        }));
    }
    wait_until_queued_past(&store, 98).await;
    release.send(()).unwrap();

    first.await.unwrap().unwrap();
    for task in queued {
        task.await.unwrap().unwrap();
    }
    assert_eq!(*sizes.0.lock().unwrap(), vec![1, 99]);
}

/// Client writes and bulk merges go in separate batches: the client writes queued among bulk
/// merges go first, together, then the bulk merges, at most `bulk_max` items a batch; every item
/// is committed in the end. A client batch is synced; a bulk batch only if one of its merges
/// asked for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_writes_and_bulk_merges_take_separate_batches() {
    let options = ObjectStoreOptions { bulk_max: 4, ..Default::default() };
    let HeldCommit { store, storage, sizes, first, release, .. } =
        store_with_a_held_commit(options).await;
    let mut tasks = vec![first];

    // Queued in this order: bulk, write, bulk, write, bulk, write, write, write.
    let mut remote = DvvSet::new();
    remote
        .write(
            &VersionVector::new(),
            concord_types::Dot { actor: ActorId(9), counter: 0 },
            Timestamp(5),
            Content::Value { data: b"remote".to_vec(), content_type: "text/plain".into() },
            ConflictPolicy::Siblings,
        )
        .unwrap();
    const PLAN: [&str; 8] = ["bulk", "write", "bulk", "write", "bulk", "write", "write", "write"];
    for (i, step) in PLAN.iter().enumerate() {
        let queued_before = store.queue.max_capacity() - store.queue.capacity();
        let (task_store, remote) = (store.clone(), remote.clone());
        tasks.push(tokio::spawn(async move {
            let store = task_store;
            match *step {
                "bulk" => {
                    let objects = (0..4)
                        .map(|j| (Key::new(format!("b{i}-{j}")).unwrap(), remote.clone()))
                        .collect();
                    let (ns, p, policy) =
                        (NamespaceId(1), PartitionId(0), ConflictPolicy::Siblings);
                    // The second bulk merge asks for a sync, the others do not.
                    let durability = if i == 2 { Durability::Sync } else { Durability::Buffered };
                    store.merge_all(ns, p, objects, policy, durability).await
                }
                _ => store
                    .update(&key(&format!("w{i}")), write(&Default::default(), "y"))
                    .await
                    .map(|_| ()),
            }
        }));
        wait_until_queued_past(&store, queued_before).await;
    }
    release.send(()).unwrap();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    // The first write alone; then the five writes queued behind it; then the three bulk
    // merges, one batch each, of which only the second asked for a sync.
    assert_eq!(*sizes.0.lock().unwrap(), vec![1, 5, 4, 4, 4]);
    use Durability::{Buffered, Sync};
    assert_eq!(*storage.durabilities.lock().unwrap(), vec![Sync, Sync, Buffered, Sync, Buffered]);
    for (i, step) in PLAN.iter().enumerate() {
        if *step == "bulk" {
            for j in 0..4 {
                let held = store.get(&key(&format!("b{i}-{j}"))).unwrap().unwrap();
                assert_eq!(values(&held), ["remote"]);
            }
        } else {
            assert_eq!(values(&store.get(&key(&format!("w{i}"))).unwrap().unwrap()), ["y"]);
        }
    }
    store.close().await.unwrap();
}

/// Bulk merges are not starved by client writes that keep arriving: while writes queue behind
/// every commit, client and bulk batches still take turns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_merges_take_turns_with_a_steady_stream_of_writes() {
    let options = ObjectStoreOptions { bulk_max: 4, ..Default::default() };
    let HeldCommit { store, sizes, first, release, entered, .. } =
        store_with_held_commits(options, 6).await;
    let mut tasks = vec![first];
    let queue = |tasks: &mut Vec<_>, name: String, bulk: bool| {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            if bulk {
                let state = store.get(&key("first")).unwrap().unwrap_or_default();
                let objects =
                    (0..4).map(|j| (Key::new(format!("{name}-{j}")).unwrap(), state.clone()));
                let (ns, p) = (NamespaceId(1), PartitionId(0));
                let policy = ConflictPolicy::Siblings;
                store.merge_all(ns, p, objects.collect(), policy, Durability::Buffered).await
            } else {
                store.update(&key(&name), write(&Default::default(), "y")).await.map(|_| ())
            }
        }));
    };
    for (name, bulk) in [("bulk-a", true), ("bulk-b", true), ("w0", false)] {
        let queued_before = store.queue.max_capacity() - store.queue.capacity();
        queue(&mut tasks, name.to_string(), bulk);
        wait_until_queued_past(&store, queued_before).await;
    }
    // Five more held commits; one more write queues behind each of the first four.
    for i in 1..=5 {
        release.send(()).unwrap();
        wait_entered(&entered).await;
        if i < 5 {
            let queued_before = store.queue.max_capacity() - store.queue.capacity();
            queue(&mut tasks, format!("w{i}"), false);
            wait_until_queued_past(&store, queued_before).await;
        }
    }
    release.send(()).unwrap();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    // first; w0; bulk-a; w1 and w2; bulk-b; w3 and w4.
    assert_eq!(*sizes.0.lock().unwrap(), vec![1, 1, 4, 2, 4, 2]);
    for name in ["bulk-a-0", "bulk-b-3", "w0", "w4"] {
        assert!(store.get(&key(name)).unwrap().is_some(), "{name} missing");
    }
    store.close().await.unwrap();
}

fn listing<'a>(
    prefix: &'a [u8],
    after: Option<&'a [u8]>,
    limit: usize,
    examine_max: usize,
) -> Listing<'a> {
    Listing { prefix, after, limit, examine_max }
}

#[tokio::test]
async fn scan_live_skips_deleted_keys_and_pages_by_after() {
    let store =
        ObjectStore::start(Arc::new(MemoryStorage::new()), Default::default(), Arc::new(()));
    for name in ["a1", "a2", "a3", "b1"] {
        store.update(&key(name), write(&Default::default(), "v")).await.unwrap();
    }
    let read = store.get(&key("a2")).unwrap().unwrap();
    let delete = Update::Write {
        context: read.context().clone(),
        actor: ActorId(1),
        timestamp: Timestamp(2),
        content: Content::Tombstone,
        policy: ConflictPolicy::Siblings,
    };
    store.update(&key("a2"), delete).await.unwrap();

    let names = |items: Vec<Key>| -> Vec<String> {
        items.into_iter().map(|k| String::from_utf8(k.into_bytes()).unwrap()).collect()
    };
    let all =
        store.scan_live(NamespaceId(1), PartitionId(0), listing(b"a", None, 10, 100)).unwrap();
    assert_eq!(all.stopped_at, None);
    assert_eq!(names(all.keys), ["a1", "a3"]);
    let page =
        store.scan_live(NamespaceId(1), PartitionId(0), listing(b"", Some(b"a1"), 2, 100)).unwrap();
    assert_eq!(names(page.keys), ["a3", "b1"]);
    let other_ns =
        store.scan_live(NamespaceId(2), PartitionId(0), listing(b"", None, 10, 100)).unwrap();
    assert_eq!(other_ns, LiveKeys::default());
}

/// A listing page looks at a bounded number of stored keys: over a run of tombstones it stops
/// with the last key it looked at, and paging on from there finds every live key once.
#[tokio::test]
async fn scan_live_stops_after_a_bounded_number_of_tombstones() {
    let store =
        ObjectStore::start(Arc::new(MemoryStorage::new()), Default::default(), Arc::new(()));
    let tombstone = Update::DeleteStored {
        actor: ActorId(1),
        timestamp: Timestamp(2),
        policy: ConflictPolicy::Siblings,
    };
    let live = ["k0000", "k0150", "k0151", "k0299"];
    for i in 0..300 {
        let name = format!("k{i:04}");
        let update = match live.contains(&name.as_str()) {
            true => write(&VersionVector::new(), "v"),
            false => tombstone.clone(),
        };
        store.update(&key(&name), update).await.unwrap();
    }
    let scan = |after: Option<&[u8]>, limit| {
        store.scan_live(NamespaceId(1), PartitionId(0), listing(b"", after, limit, 100)).unwrap()
    };
    let first = scan(None, 10);
    assert_eq!(first.keys, [Key::new("k0000").unwrap()]);
    assert_eq!(first.stopped_at, Some(Key::new("k0099").unwrap()), "looked at 100 keys");

    let (mut found, mut after, mut pages) = (Vec::new(), None::<Key>, 0);
    loop {
        let page = scan(after.as_ref().map(Key::as_bytes), 10);
        pages += 1;
        found.extend(page.keys.iter().map(|k| String::from_utf8(k.as_bytes().to_vec()).unwrap()));
        match page.stopped_at.or(page.keys.last().cloned().filter(|_| page.keys.len() == 10)) {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(found, live);
    // 300 keys looked at 100 at a time; the third page's bound ran out on the last key, so a
    // fourth, empty one confirms the end.
    assert_eq!(pages, 4);
    // A full page needs no cursor: it ends with its last key.
    let full = scan(None, 1);
    assert_eq!((full.keys.len(), full.stopped_at), (1, None));
}

/// A delete without a context removes every version stored when it is applied, even ones
/// written after the client last read.
#[tokio::test]
async fn delete_without_context_removes_everything_stored() {
    let store =
        ObjectStore::start(Arc::new(MemoryStorage::new()), Default::default(), Arc::new(()));
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

/// Handoff reads a partition in bounded chunks, tombstones included, and a dropped partition
/// leaves its neighbours alone.
#[tokio::test]
async fn partition_chunks_and_drop() {
    let store =
        ObjectStore::start(Arc::new(MemoryStorage::new()), Default::default(), Arc::new(()));
    let in_partition = |p: u16, name: String| ObjectKey {
        namespace: NamespaceId(1),
        partition: PartitionId(p),
        key: Key::new(name).unwrap(),
    };
    for i in 0..25 {
        store
            .update(&in_partition(3, format!("k{i:02}")), write(&VersionVector::new(), "v"))
            .await
            .unwrap();
    }
    store
        .update(&in_partition(4, "other".into()), write(&VersionVector::new(), "v"))
        .await
        .unwrap();
    let tomb = Update::DeleteStored {
        actor: ActorId(1),
        timestamp: Timestamp(2),
        policy: ConflictPolicy::Siblings,
    };
    store.update(&in_partition(3, "k00".into()), tomb).await.unwrap();

    let mut seen = Vec::new();
    let mut after: Option<Key> = None;
    loop {
        let chunk = store
            .scan_objects(NamespaceId(1), PartitionId(3), after.as_ref(), 10, usize::MAX)
            .unwrap();
        assert!(chunk.objects.len() <= 10);
        seen.extend(chunk.objects.iter().map(|(k, _)| k.clone()));
        after = chunk.objects.last().map(|(k, _)| k.clone());
        if !chunk.more {
            break;
        }
    }
    let expected: Vec<Key> = (0..25).map(|i| Key::new(format!("k{i:02}")).unwrap()).collect();
    assert_eq!(seen, expected, "every key once, in order, the tombstone included");

    let small = store.scan_objects(NamespaceId(1), PartitionId(3), None, 100, 1).unwrap();
    assert_eq!(small.objects.len(), 1, "the byte bound stops the chunk");
    assert!(small.more);

    assert!(store.holds(NamespaceId(1), PartitionId(3)).unwrap());
    assert_eq!(store.drop_partition(NamespaceId(1), PartitionId(3)).await.unwrap(), 25);
    assert!(!store.holds(NamespaceId(1), PartitionId(3)).unwrap());
    assert!(store.holds(NamespaceId(1), PartitionId(4)).unwrap());
}

/// A bulk merge lands every object durably with one answer, merging with what is stored.
#[tokio::test]
async fn bulk_merges_land_and_merge_with_stored_state() {
    let storage = Arc::new(MemoryStorage::new());
    let store = ObjectStore::start(storage.clone(), Default::default(), Arc::new(()));
    let here = key("both");
    let local = store.update(&here, write(&VersionVector::new(), "local")).await.unwrap();
    let remote = {
        let mut state = DvvSet::new();
        state
            .write(
                &VersionVector::new(),
                concord_types::Dot { actor: ActorId(9), counter: 0 },
                Timestamp(5),
                Content::Value { data: b"remote".to_vec(), content_type: "text/plain".into() },
                ConflictPolicy::Siblings,
            )
            .unwrap();
        state
    };
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

/// The trees the committer keeps current equal trees rebuilt from the stored data, through
/// writes, merges, bulk merges, deletes and a dropped partition, and after a reopen.
#[tokio::test]
async fn incremental_trees_match_trees_rebuilt_from_data() {
    let dir = tempfile::tempdir().unwrap();
    let open = || -> Arc<dyn Storage> {
        Arc::new(FjallStorage::open(dir.path(), &crate::FjallOptions::default()).unwrap())
    };
    let storage = open();
    let store = ObjectStore::start(storage.clone(), Default::default(), Arc::new(()));
    let in_partition = |p: u16, name: &str| ObjectKey {
        namespace: NamespaceId(1),
        partition: PartitionId(p),
        key: Key::new(name).unwrap(),
    };
    let check = |store: &ObjectStore, storage: &Arc<dyn Storage>, p: u16| {
        let kept = store.trees().get(NamespaceId(1), PartitionId(p));
        let built = crate::tree::build(&**storage, NamespaceId(1), PartitionId(p)).unwrap();
        assert_eq!(kept, built, "partition {p}");
        kept
    };
    for i in 0..200 {
        let state = store
            .update(&in_partition(i % 3, &format!("k{i}")), write(&VersionVector::new(), "a"))
            .await
            .unwrap();
        if i % 5 == 0 {
            // Overwrite with the context: a changed digest, the same key count.
            store
                .update(&in_partition(i % 3, &format!("k{i}")), write(state.context(), "b"))
                .await
                .unwrap();
        }
    }
    let other = store.get(&in_partition(0, "k0")).unwrap().unwrap();
    store
        .merge_all(
            NamespaceId(1),
            PartitionId(1),
            vec![(Key::new("bulk").unwrap(), other)],
            ConflictPolicy::Siblings,
            Durability::Sync,
        )
        .await
        .unwrap();
    let delete = Update::DeleteStored {
        actor: ActorId(2),
        timestamp: Timestamp(2),
        policy: ConflictPolicy::Siblings,
    };
    store.update(&in_partition(2, "k2"), delete).await.unwrap();
    for p in 0..3 {
        check(&store, &storage, p);
    }
    assert_eq!(check(&store, &storage, 1).keys(), 67 + 1);
    store.drop_partition(NamespaceId(1), PartitionId(2)).await.unwrap();
    assert_eq!(check(&store, &storage, 2).keys(), 0);
    let before = check(&store, &storage, 0);
    store.close().await.unwrap();
    drop(store);
    drop(storage);

    let storage = open();
    let store = ObjectStore::start(storage.clone(), Default::default(), Arc::new(()));
    assert_eq!(check(&store, &storage, 0), before, "trees are rebuilt at startup");
    store.close().await.unwrap();
}

/// A purged tombstone is gone, from the data and from the tree; the replica's next write of the
/// key mints past every dot the tombstone covered, so a stale copy of the deleted value that
/// turns up later stays deleted instead of colliding with the new write.
#[tokio::test]
async fn purged_tombstones_leave_a_floor_for_the_next_dot() {
    let store =
        ObjectStore::start(Arc::new(MemoryStorage::new()), Default::default(), Arc::new(()));
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
    let store =
        ObjectStore::start(Arc::new(MemoryStorage::new()), Default::default(), Arc::new(()));
    let mut counters = Vec::new();
    for name in ["a", "b", "a", "c", "b"] {
        let state = store.update(&key(name), write(&VersionVector::new(), name)).await.unwrap();
        counters.push(state.siblings().iter().map(|s| s.dot.counter).max().unwrap());
    }
    assert_eq!(counters, vec![1, 2, 3, 4, 5]);
}

fn in_partition(p: u16, name: &str) -> ObjectKey {
    ObjectKey { namespace: NamespaceId(1), partition: PartitionId(p), key: Key::new(name).unwrap() }
}

/// Dropping a partition goes through the committer: while the committer is held in a commit,
/// the drop waits in its queue and deletes nothing; released, it deletes the partition in
/// bounded steps (more keys than one step holds) and the tree follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drop_waits_for_the_committer_like_any_write() {
    let (entered_tx, entered) = std_mpsc::channel();
    let (release, release_rx) = std_mpsc::channel();
    let storage = Arc::new(GatedStorage {
        inner: MemoryStorage::new(),
        holds: StdMutex::new(0),
        entered: StdMutex::new(entered_tx),
        release: StdMutex::new(release_rx),
        durabilities: StdMutex::new(Vec::new()),
    });
    let store = Arc::new(ObjectStore::start(storage.clone(), Default::default(), Arc::new(())));
    let keys = DROP_STEP_MAX + 100;
    let objects: Vec<(Key, DvvSet)> = {
        let first = in_partition(5, "k");
        let state = store.update(&first, write(&VersionVector::new(), "v")).await.unwrap();
        (0..keys).map(|i| (Key::new(format!("k{i:05}")).unwrap(), state.clone())).collect()
    };
    let policy = ConflictPolicy::Siblings;
    store
        .merge_all(NamespaceId(1), PartitionId(5), objects, policy, Durability::Sync)
        .await
        .unwrap();
    let stored = keys + 1;
    assert_eq!(store.count(NamespaceId(1), PartitionId(5)).unwrap(), stored);

    *storage.holds.lock().unwrap() = 1;
    let held = {
        let store = store.clone();
        tokio::spawn(
            async move { store.update(&key("held"), write(&VersionVector::new(), "x")).await },
        )
    };
    wait_entered(&Arc::new(StdMutex::new(entered))).await;
    let drop = {
        let store = store.clone();
        tokio::spawn(async move { store.drop_partition(NamespaceId(1), PartitionId(5)).await })
    };
    wait_until_queued_past(&store, 0).await;
    assert_eq!(
        store.count(NamespaceId(1), PartitionId(5)).unwrap(),
        stored,
        "deleted around the committer"
    );

    release.send(()).unwrap();
    held.await.unwrap().unwrap();
    assert_eq!(drop.await.unwrap().unwrap(), stored);
    assert!(!store.holds(NamespaceId(1), PartitionId(5)).unwrap());
    assert_eq!(store.trees().get(NamespaceId(1), PartitionId(5)).keys(), 0);
    assert!(store.get(&key("held")).unwrap().is_some(), "other partitions are left alone");
}

/// Writes to a partition racing its drop: each write is either dropped from the data and the
/// tree or kept in both; the tree the committer keeps equals one built from the data. Half the
/// written keys were stored before the drop, half are new.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_racing_a_drop_stay_consistent_in_data_and_tree() {
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> =
        Arc::new(FjallStorage::open(dir.path(), &crate::FjallOptions::default()).unwrap());
    let store = Arc::new(ObjectStore::start(storage.clone(), Default::default(), Arc::new(())));
    for round in 0..5 {
        for i in 0..(DROP_STEP_MAX + 200) {
            let object = in_partition(7, &format!("k{i:05}"));
            store.update(&object, write(&VersionVector::new(), "old")).await.unwrap();
        }
        let mut writers = Vec::new();
        for i in 0..200 {
            let object = in_partition(7, &format!("k{:05}", (i * 13 + round) % 2400));
            let store = store.clone();
            writers.push(tokio::spawn(async move {
                store.update(&object, write(&VersionVector::new(), "new")).await
            }));
        }
        let dropped = store.drop_partition(NamespaceId(1), PartitionId(7)).await.unwrap();
        for writer in writers {
            writer.await.unwrap().unwrap();
        }
        let kept = store.trees().get(NamespaceId(1), PartitionId(7));
        let built = crate::tree::build(&*storage, NamespaceId(1), PartitionId(7)).unwrap();
        assert_eq!(kept, built, "round {round}: the tree and the data disagree");
        let left = store.count(NamespaceId(1), PartitionId(7)).unwrap();
        println!("round {round}: dropped {dropped}, {left} written after the drop kept");
        store.drop_partition(NamespaceId(1), PartitionId(7)).await.unwrap();
        assert_eq!(store.trees().get(NamespaceId(1), PartitionId(7)).keys(), 0);
    }
    store.close().await.unwrap();
}

/// Handoff chunks and anti-entropy segment reads keep to their byte bound: an object that would
/// take a chunk past it starts the next chunk, and only an object larger than the bound is
/// returned alone, over it. Paging through the chunks still returns every object once.
#[tokio::test]
async fn chunks_keep_to_their_byte_bound_and_a_larger_object_goes_alone() {
    let store =
        ObjectStore::start(Arc::new(MemoryStorage::new()), Default::default(), Arc::new(()));
    let sizes = [400, 400, 400, 2000, 400, 100, 300];
    for (i, size) in sizes.iter().enumerate() {
        let value = "x".repeat(*size);
        store
            .update(&in_partition(2, &format!("k{i}")), write(&VersionVector::new(), &value))
            .await
            .unwrap();
    }
    let bound = 1000;
    let (mut after, mut seen, mut chunks) = (None::<Key>, 0, Vec::new());
    loop {
        let chunk =
            store.scan_objects(NamespaceId(1), PartitionId(2), after.as_ref(), 100, bound).unwrap();
        assert!(chunk.bytes <= bound || chunk.objects.len() == 1, "{} bytes", chunk.bytes);
        seen += chunk.objects.len();
        chunks.push(chunk.objects.len());
        after = chunk.objects.last().map(|(k, _)| k.clone());
        if !chunk.more {
            break;
        }
    }
    assert_eq!(seen, sizes.len());
    assert_eq!(chunks, [2, 1, 1, 3], "k0 k1 | k2 | the 2000-byte k3 alone | k4 k5 k6");

    let all: std::collections::BTreeSet<usize> = (0..crate::tree::SEGMENTS).collect();
    let objects = store.objects_in_segments(NamespaceId(1), PartitionId(2), &all, 100, bound);
    let size: usize = objects.unwrap().iter().map(|(k, v)| k.as_bytes().len() + v.len()).sum();
    assert!(size <= bound, "{size} bytes of segment objects");
}
