//! Tests of the DVV laws. States are produced by random histories of client writes and replica
//! syncs, so every state tested is one a real cluster could reach (arbitrary vectors would break
//! the contiguity invariant the merge relies on).

use proptest::prelude::*;

use super::*;

fn value(tag: u64) -> Content {
    Content::Value { data: tag.to_be_bytes().to_vec(), content_type: "test".into() }
}

fn actor(i: usize) -> ActorId {
    ActorId(100 + i as u64)
}

/// One step of a random history over `REPLICAS` replicas of one key.
#[derive(Debug, Clone)]
enum Step {
    /// A client reads replica `read_from` (or nothing) and writes at replica `at`.
    Write { at: usize, read_from: Option<usize>, delete: bool },
    /// Replica `to` merges the state of replica `from`.
    Sync { from: usize, to: usize },
}

const REPLICAS: usize = 3;

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..REPLICAS, proptest::option::of(0..REPLICAS), proptest::bool::weighted(0.15))
            .prop_map(|(at, read_from, delete)| Step::Write { at, read_from, delete }),
        (0..REPLICAS, 0..REPLICAS).prop_map(|(from, to)| Step::Sync { from, to }),
    ]
}

/// Runs a history and returns the replicas' final states.
fn run(steps: &[Step], policy: ConflictPolicy) -> Vec<DvvSet> {
    let mut replicas = vec![DvvSet::new(); REPLICAS];
    for (tick, step) in steps.iter().enumerate() {
        match *step {
            Step::Write { at, read_from, delete } => {
                let context = read_from.map(|r| replicas[r].context().clone()).unwrap_or_default();
                let content = if delete { Content::Tombstone } else { value(tick as u64) };
                let ts = Timestamp(1_000 + (tick as u64 * 7919) % 97);
                replicas[at].write(&context, actor(at), ts, content, policy);
            }
            Step::Sync { from, to } => {
                let other = replicas[from].clone();
                replicas[to].merge(&other, policy);
            }
        }
        assert!(replicas.iter().all(DvvSet::is_well_formed));
    }
    replicas
}

fn merged(a: &DvvSet, b: &DvvSet, policy: ConflictPolicy) -> DvvSet {
    let mut out = a.clone();
    out.merge(b, policy);
    out
}

fn policy() -> impl Strategy<Value = ConflictPolicy> {
    prop_oneof![Just(ConflictPolicy::Siblings), Just(ConflictPolicy::Lww)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn merge_is_commutative(steps in prop::collection::vec(step(), 0..40), policy in policy()) {
        let r = run(&steps, policy);
        prop_assert_eq!(merged(&r[0], &r[1], policy), merged(&r[1], &r[0], policy));
    }

    #[test]
    fn merge_is_associative(steps in prop::collection::vec(step(), 0..40), policy in policy()) {
        let r = run(&steps, policy);
        let left = merged(&merged(&r[0], &r[1], policy), &r[2], policy);
        let right = merged(&r[0], &merged(&r[1], &r[2], policy), policy);
        prop_assert_eq!(left, right);
    }

    #[test]
    fn merge_is_idempotent(steps in prop::collection::vec(step(), 0..40), policy in policy()) {
        let r = run(&steps, policy);
        prop_assert_eq!(merged(&r[0], &r[0], policy), r[0].clone());
        let once = merged(&r[0], &r[1], policy);
        prop_assert_eq!(merged(&once, &r[1], policy), once);
    }

    /// A write carrying the context of a read removes every sibling that read returned and keeps
    /// every sibling the read did not see.
    #[test]
    fn write_with_read_context_supersedes_exactly_what_was_read(
        steps in prop::collection::vec(step(), 0..40),
        read_from in 0..REPLICAS,
        at in 0..REPLICAS,
    ) {
        let r = run(&steps, ConflictPolicy::Siblings);
        let read = r[read_from].clone();
        let before = r[at].clone();
        let mut after = before.clone();
        let dot = after.write(read.context(), actor(at), Timestamp(1), value(u64::MAX), ConflictPolicy::Siblings);
        for s in read.siblings() {
            prop_assert!(!after.contains(s.dot), "read sibling {:?} survived", s.dot);
        }
        for s in before.siblings() {
            let seen = read.context().covers(s.dot);
            prop_assert_eq!(after.contains(s.dot), !seen, "unseen sibling {:?} handled wrongly", s.dot);
        }
        prop_assert!(after.contains(dot));
        prop_assert!(after.context().descends(read.context()));
        prop_assert!(after.context().descends(before.context()));
    }

    /// After every replica has exchanged state with every other, they are all equal.
    #[test]
    fn full_exchange_converges(steps in prop::collection::vec(step(), 0..40), policy in policy()) {
        let mut r = run(&steps, policy);
        for _round in 0..2 {
            for from in 0..REPLICAS {
                for to in 0..REPLICAS {
                    let other = r[from].clone();
                    r[to].merge(&other, policy);
                }
            }
        }
        prop_assert_eq!(&r[0], &r[1]);
        prop_assert_eq!(&r[1], &r[2]);
    }
}

#[test]
fn concurrent_writes_without_context_are_all_kept() {
    let mut a = DvvSet::new();
    let blind = VersionVector::new();
    for i in 0..10 {
        a.write(&blind, actor(0), Timestamp(i), value(i), ConflictPolicy::Siblings);
    }
    assert_eq!(a.values().count(), 10);

    let mut b = DvvSet::new();
    b.write(&blind, actor(1), Timestamp(0), value(99), ConflictPolicy::Siblings);
    a.merge(&b, ConflictPolicy::Siblings);
    assert_eq!(a.values().count(), 11);
}

#[test]
fn write_with_full_context_leaves_one_sibling() {
    let mut a = DvvSet::new();
    let blind = VersionVector::new();
    a.write(&blind, actor(0), Timestamp(1), value(1), ConflictPolicy::Siblings);
    a.write(&blind, actor(0), Timestamp(2), value(2), ConflictPolicy::Siblings);
    let context = a.context().clone();
    a.write(&context, actor(0), Timestamp(3), value(3), ConflictPolicy::Siblings);
    let values: Vec<_> = a.values().map(|s| s.content.clone()).collect();
    assert_eq!(values, vec![value(3)]);
}

#[test]
fn delete_with_context_reads_as_deleted_but_keeps_causality() {
    let mut a = DvvSet::new();
    a.write(&VersionVector::new(), actor(0), Timestamp(1), value(1), ConflictPolicy::Siblings);
    let context = a.context().clone();
    a.write(&context, actor(0), Timestamp(2), Content::Tombstone, ConflictPolicy::Siblings);
    assert!(a.is_deleted());
    assert!(a.context().descends(&context));
}

#[test]
fn lww_keeps_the_latest_timestamp_even_for_blind_writes() {
    let mut a = DvvSet::new();
    let blind = VersionVector::new();
    a.write(&blind, actor(0), Timestamp(5), value(5), ConflictPolicy::Lww);
    let mut b = DvvSet::new();
    b.write(&blind, actor(1), Timestamp(9), value(9), ConflictPolicy::Lww);
    a.merge(&b, ConflictPolicy::Lww);
    let values: Vec<_> = a.values().map(|s| s.content.clone()).collect();
    assert_eq!(values, vec![value(9)]);
}

/// Values and keys are serialized as byte strings; postcard writes the same bytes a derived
/// `Vec<u8>` did, so data stored by earlier builds still decodes, and the other way round.
#[test]
fn byte_strings_keep_the_stored_format() {
    #[derive(Serialize)]
    enum PlainContent {
        Value { data: Vec<u8>, content_type: String },
        Tombstone,
    }
    let data: Vec<u8> = (0..=255u8).cycle().take(1500).collect();
    let ours = Content::Value { data: data.clone(), content_type: "a/b".into() };
    let plain = PlainContent::Value { data, content_type: "a/b".into() };
    let encoded = postcard::to_allocvec(&ours).unwrap();
    assert_eq!(encoded, postcard::to_allocvec(&plain).unwrap());
    assert_eq!(postcard::from_bytes::<Content>(&encoded).unwrap(), ours);
    assert_eq!(
        postcard::to_allocvec(&Content::Tombstone).unwrap(),
        postcard::to_allocvec(&PlainContent::Tombstone).unwrap()
    );

    let key = crate::Key::new(b"some key".to_vec()).unwrap();
    let encoded = postcard::to_allocvec(&key).unwrap();
    assert_eq!(encoded, postcard::to_allocvec(&b"some key".to_vec()).unwrap());
    assert_eq!(postcard::from_bytes::<crate::Key>(&encoded).unwrap(), key);
    // A key out of bounds is refused when decoded.
    let empty = postcard::to_allocvec(&Vec::<u8>::new()).unwrap();
    assert!(postcard::from_bytes::<crate::Key>(&empty).is_err());
}
