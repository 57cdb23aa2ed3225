//! Partition scans: listings bounded in keys looked at, byte-bounded chunks and segment reads.

use super::*;

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
    let store = memory_store();
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
    let store = memory_store();
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

/// Handoff reads a partition in bounded chunks, tombstones included, and a dropped partition
/// leaves its neighbours alone.
#[tokio::test]
async fn partition_chunks_and_drop() {
    let store = memory_store();
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

/// Handoff chunks and anti-entropy segment reads keep to their byte bound: an object that would
/// take a chunk past it starts the next chunk, and only an object larger than the bound is
/// returned alone, over it. Paging through the chunks still returns every object once.
#[tokio::test]
async fn chunks_keep_to_their_byte_bound_and_a_larger_object_goes_alone() {
    let store = memory_store();
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
    let size: usize =
        objects.unwrap().iter().map(|(k, v)| k.as_bytes().len() + v.encoded_len()).sum();
    assert!(size <= bound, "{size} bytes of segment objects");
}

/// A paced drop goes one bounded step at a time: each step deletes at most `DROP_STEP_MAX`
/// objects and says whether more may be left, and the neighbours stay.
#[tokio::test]
async fn a_drop_step_is_bounded_and_says_whether_more_is_left() {
    let store = memory_store();
    for i in 0..DROP_STEP_MAX + 5 {
        let write = write(&VersionVector::new(), "v");
        store.update(&in_partition(2, &format!("k{i:05}")), write).await.unwrap();
    }
    store.update(&in_partition(3, "other"), write(&VersionVector::new(), "v")).await.unwrap();
    let (ns, p) = (NamespaceId(1), PartitionId(2));
    let first = store.drop_partition_step(ns, p).await.unwrap();
    assert_eq!(first, DropStep { dropped: DROP_STEP_MAX, more: true });
    let second = store.drop_partition_step(ns, p).await.unwrap();
    assert_eq!(second, DropStep { dropped: 5, more: false });
    assert!(!store.holds(ns, p).unwrap());
    assert!(store.holds(ns, PartitionId(3)).unwrap());
}
