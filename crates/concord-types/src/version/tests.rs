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
    let mut floors = [0; REPLICAS];
    for (tick, step) in steps.iter().enumerate() {
        match *step {
            Step::Write { at, read_from, delete } => {
                let context = read_from.map(|r| replicas[r].context().clone()).unwrap_or_default();
                let content = if delete { Content::Tombstone } else { value(tick as u64) };
                let ts = Timestamp(1_000 + (tick as u64 * 7919) % 97);
                let dot = replicas[at]
                    .write(
                        &context,
                        Dot { actor: actor(at), counter: floors[at] },
                        ts,
                        content,
                        policy,
                    )
                    .unwrap();
                floors[at] = dot.counter;
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
        let dot = after.write(read.context(), Dot { actor: actor(at), counter: 0 }, Timestamp(1), value(u64::MAX), ConflictPolicy::Siblings).unwrap();
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
        a.write(
            &blind,
            Dot { actor: actor(0), counter: 0 },
            Timestamp(i),
            value(i),
            ConflictPolicy::Siblings,
        )
        .unwrap();
    }
    assert_eq!(a.values().count(), 10);

    let mut b = DvvSet::new();
    b.write(
        &blind,
        Dot { actor: actor(1), counter: 0 },
        Timestamp(0),
        value(99),
        ConflictPolicy::Siblings,
    )
    .unwrap();
    a.merge(&b, ConflictPolicy::Siblings);
    assert_eq!(a.values().count(), 11);
}

#[test]
fn write_with_full_context_leaves_one_sibling() {
    let mut a = DvvSet::new();
    let blind = VersionVector::new();
    a.write(
        &blind,
        Dot { actor: actor(0), counter: 0 },
        Timestamp(1),
        value(1),
        ConflictPolicy::Siblings,
    )
    .unwrap();
    a.write(
        &blind,
        Dot { actor: actor(0), counter: 0 },
        Timestamp(2),
        value(2),
        ConflictPolicy::Siblings,
    )
    .unwrap();
    let context = a.context().clone();
    a.write(
        &context,
        Dot { actor: actor(0), counter: 0 },
        Timestamp(3),
        value(3),
        ConflictPolicy::Siblings,
    )
    .unwrap();
    let values: Vec<_> = a.values().map(|s| s.content.clone()).collect();
    assert_eq!(values, vec![value(3)]);
}

#[test]
fn delete_with_context_reads_as_deleted_but_keeps_causality() {
    let mut a = DvvSet::new();
    a.write(
        &VersionVector::new(),
        Dot { actor: actor(0), counter: 0 },
        Timestamp(1),
        value(1),
        ConflictPolicy::Siblings,
    )
    .unwrap();
    let context = a.context().clone();
    a.write(
        &context,
        Dot { actor: actor(0), counter: 0 },
        Timestamp(2),
        Content::Tombstone,
        ConflictPolicy::Siblings,
    )
    .unwrap();
    assert!(a.is_deleted());
    assert!(a.context().descends(&context));
}

#[test]
fn lww_keeps_the_latest_timestamp_even_for_blind_writes() {
    let mut a = DvvSet::new();
    let blind = VersionVector::new();
    a.write(
        &blind,
        Dot { actor: actor(0), counter: 0 },
        Timestamp(5),
        value(5),
        ConflictPolicy::Lww,
    )
    .unwrap();
    let mut b = DvvSet::new();
    b.write(
        &blind,
        Dot { actor: actor(1), counter: 0 },
        Timestamp(9),
        value(9),
        ConflictPolicy::Lww,
    )
    .unwrap();
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

/// Histories with restarts: every restart gives a replica a fresh actor that sorts after every
/// earlier one (actor ids begin with the minute they were drawn), so a key is written by far
/// more actors than a vector keeps entries for, and pruning is exercised.
mod bounded {
    use std::collections::BTreeSet;

    use super::*;

    #[derive(Debug, Clone)]
    enum Step {
        /// A client reads replica `read_from` (or nothing) and writes at replica `at` with the
        /// context it was given.
        Write {
            at: usize,
            read_from: Option<usize>,
            delete: bool,
        },
        Sync {
            from: usize,
            to: usize,
        },
        /// Replica `at` restarts: a fresh actor.
        Restart {
            at: usize,
        },
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (0..REPLICAS, proptest::option::of(0..REPLICAS), proptest::bool::weighted(0.1))
                .prop_map(|(at, read_from, delete)| Step::Write { at, read_from, delete }),
            3 => (0..REPLICAS, 0..REPLICAS).prop_map(|(from, to)| Step::Sync { from, to }),
            2 => (0..REPLICAS).prop_map(|at| Step::Restart { at }),
        ]
    }

    struct Run {
        replicas: Vec<DvvSet>,
        /// Every dot minted, and those a later write's context covered (the client saw them
        /// and wrote over them): the others must never disappear.
        minted: BTreeSet<Dot>,
        overwritten: BTreeSet<Dot>,
        actors_used: usize,
    }

    fn run(steps: &[Step], policy: ConflictPolicy) -> Result<Run, TestCaseError> {
        let mut replicas = vec![DvvSet::new(); REPLICAS];
        let mut actors: Vec<ActorId> = (0..REPLICAS).map(actor).collect();
        let mut next_actor = 100 + REPLICAS as u64;
        let mut floors = std::collections::HashMap::<ActorId, u64>::new();
        let (mut minted, mut overwritten) = (BTreeSet::new(), BTreeSet::new());
        for (tick, step) in steps.iter().enumerate() {
            match *step {
                Step::Write { at, read_from, delete } => {
                    let context =
                        read_from.map(|r| replicas[r].client_context()).unwrap_or_default();
                    overwritten.extend(minted.iter().filter(|d| context.covers(**d)).copied());
                    let content = if delete { Content::Tombstone } else { value(tick as u64) };
                    let ts = Timestamp(1_000 + (tick as u64 * 7919) % 97);
                    let floor = floors.entry(actors[at]).or_default();
                    let dot = replicas[at]
                        .write(
                            &context,
                            Dot { actor: actors[at], counter: *floor },
                            ts,
                            content,
                            policy,
                        )
                        .unwrap();
                    *floor = dot.counter;
                    prop_assert!(minted.insert(dot), "dot {:?} minted twice", dot);
                }
                Step::Sync { from, to } => {
                    let other = replicas[from].clone();
                    replicas[to].merge(&other, policy);
                }
                Step::Restart { at } => {
                    actors[at] = ActorId(next_actor);
                    next_actor += 1;
                }
            }
            for state in &replicas {
                prop_assert!(state.is_well_formed());
                prop_assert!(within_bound(state), "vector over its bound: {:?}", state.context());
                prop_assert!(state.client_context().len() <= state.siblings().len());
            }
        }
        let actors_used = (next_actor - 100) as usize;
        Ok(Run { replicas, minted, overwritten, actors_used })
    }

    fn within_bound(state: &DvvSet) -> bool {
        let live: BTreeSet<ActorId> = state.siblings().iter().map(|s| s.dot.actor).collect();
        state.context().len() <= live.len() + HISTORY_ENTRIES_MAX
    }

    fn exchange_all(replicas: &mut [DvvSet], policy: ConflictPolicy) {
        for _round in 0..3 {
            for from in 0..replicas.len() {
                for to in 0..replicas.len() {
                    let other = replicas[from].clone();
                    replicas[to].merge(&other, policy);
                }
            }
        }
    }

    fn history() -> impl Strategy<Value = Vec<Step>> {
        prop::collection::vec(step(), 100..600)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// However many actors write a key, its vector stays within the bound, no dot is minted
        /// twice, and after a full exchange every replica holds the same state, in which every
        /// write no client wrote over is still a sibling.
        #[test]
        fn vectors_stay_bounded_and_no_write_is_lost(steps in history()) {
            let policy = ConflictPolicy::Siblings;
            let mut run = run(&steps, policy)?;
            exchange_all(&mut run.replicas, policy);
            prop_assert_eq!(&run.replicas[0], &run.replicas[1]);
            prop_assert_eq!(&run.replicas[1], &run.replicas[2]);
            for dot in run.minted.difference(&run.overwritten) {
                prop_assert!(run.replicas[0].contains(*dot), "write {:?} lost ({} actors)", dot, run.actors_used);
            }
            prop_assert!(within_bound(&run.replicas[0]));
        }

        /// Pruning keeps merge commutative, and a state merged with itself unchanged. (Merging
        /// a stale state again after pruning may bring back a superseded sibling: the false
        /// conflict the module doc describes.)
        #[test]
        fn bounded_merge_is_commutative_and_idempotent(steps in history(), policy in policy()) {
            let r = run(&steps, policy)?.replicas;
            prop_assert_eq!(merged(&r[0], &r[1], policy), merged(&r[1], &r[0], policy));
            prop_assert_eq!(merged(&r[0], &r[0], policy), r[0].clone());
        }
    }

    /// The histories above do reach past the bound (a test of pruning that never pruned would
    /// prove nothing).
    #[test]
    fn a_key_written_by_many_actors_is_pruned_to_the_bound() {
        let mut state = DvvSet::new();
        let mut context = VersionVector::new();
        for i in 0..200 {
            let at = ActorId(1_000 + i);
            state
                .write(
                    &context,
                    Dot { actor: at, counter: 0 },
                    Timestamp(i),
                    value(i),
                    ConflictPolicy::Siblings,
                )
                .unwrap();
            context = state.client_context();
            assert_eq!(context.len(), 1, "one sibling, one entry in its context");
        }
        assert_eq!(state.context().len(), 1 + HISTORY_ENTRIES_MAX);
        assert_eq!(state.values().count(), 1);
        // The newest actors are the ones kept.
        let oldest_kept = state.context().iter().next().unwrap().0;
        assert_eq!(oldest_kept, ActorId(1_000 + 200 - 1 - HISTORY_ENTRIES_MAX as u64));
    }

    /// The committer passes an actor's last counter as the floor: a key whose entry for the
    /// actor was pruned still gets a dot the actor never minted.
    #[test]
    fn the_floor_keeps_an_actor_from_minting_a_dot_twice() {
        let mut state = DvvSet::new();
        let dot = state
            .write(
                &VersionVector::new(),
                Dot { actor: actor(0), counter: 41 },
                Timestamp(1),
                value(1),
                ConflictPolicy::Siblings,
            )
            .unwrap();
        assert_eq!(dot, Dot { actor: actor(0), counter: 42 });
        let dot = state
            .write(
                &VersionVector::new(),
                Dot { actor: actor(0), counter: 7 },
                Timestamp(2),
                value(2),
                ConflictPolicy::Siblings,
            )
            .unwrap();
        assert_eq!(dot.counter, 43, "the stored entry is a floor too");
    }

    #[test]
    fn a_counter_at_its_end_is_refused_not_wrapped() {
        let mut state = DvvSet::new();
        let context = VersionVector::from_entries([(actor(0), u64::MAX)]);
        let write = state.write(
            &context,
            Dot { actor: actor(0), counter: 0 },
            Timestamp(1),
            value(1),
            ConflictPolicy::Siblings,
        );
        assert_eq!(write, Err(CounterExhausted { actor: actor(0) }));
        assert_eq!(state, DvvSet::new(), "a refused write changes nothing");
    }
}

/// `DvvSet::prune` is linear (one walk of the entries and the siblings, both sorted by actor);
/// it forgets exactly what the quadratic version it replaced forgot.
mod prune {
    use std::collections::BTreeMap;

    use super::*;

    /// The pruning as first written: for each entry, a scan of every sibling.
    fn prune_quadratic(state: &mut DvvSet) {
        let live = |actor: ActorId| state.siblings.iter().any(|s| s.dot.actor == actor);
        let history = state.vv.entries.iter().filter(|(a, _)| !live(*a)).count();
        if history <= HISTORY_ENTRIES_MAX {
            return;
        }
        let mut excess = history - HISTORY_ENTRIES_MAX;
        let siblings = &state.siblings;
        state.vv.entries.retain(|(actor, _)| {
            if excess == 0 || siblings.iter().any(|s| s.dot.actor == *actor) {
                return true;
            }
            excess -= 1;
            false
        });
    }

    /// A well-formed state over up to 200 actors (ids drawn from a small range, so siblings
    /// share actors and actors cluster), with up to 40 siblings: below, at and far past the
    /// history bound, live actors among the oldest, the newest and in between.
    fn state() -> impl Strategy<Value = DvvSet> {
        let entries = proptest::collection::btree_map(0u64..400, 1u64..20, 0..200);
        (entries, proptest::collection::vec((any::<prop::sample::Index>(), 1u64..20), 0..40))
            .prop_map(|(entries, picks): (BTreeMap<u64, u64>, _)| {
                let entries: Vec<(ActorId, u64)> =
                    entries.into_iter().map(|(a, c)| (ActorId(a), c)).collect();
                let mut siblings: Vec<Sibling> = Vec::new();
                if !entries.is_empty() {
                    for (index, counter) in picks {
                        let (actor, top) = entries[index.index(entries.len())];
                        let dot = Dot { actor, counter: counter.min(top) };
                        if siblings.iter().all(|s| s.dot != dot) {
                            let content = Content::Tombstone;
                            siblings.push(Sibling { dot, timestamp: Timestamp(1), content });
                        }
                    }
                }
                siblings.sort_by_key(|s| s.dot);
                DvvSet { vv: VersionVector { entries }, siblings }
            })
    }

    proptest! {
        #[test]
        fn linear_pruning_forgets_what_the_quadratic_one_did(state in state()) {
            prop_assert!(state.is_well_formed());
            let mut linear = state.clone();
            linear.prune();
            let mut quadratic = state.clone();
            prune_quadratic(&mut quadratic);
            prop_assert_eq!(&linear, &quadratic);
            prop_assert!(linear.is_well_formed());
        }
    }

    /// The generated states do reach past the bound, with live siblings among the entries
    /// pruning must keep (a comparison that never pruned would prove nothing).
    #[test]
    fn pruning_drops_the_oldest_history_and_keeps_every_live_actor() {
        let entries: Vec<(ActorId, u64)> = (0..100).map(|a| (ActorId(a), 3)).collect();
        let live = [0u64, 1, 50, 99];
        let siblings = live
            .iter()
            .map(|&a| Sibling {
                dot: Dot { actor: ActorId(a), counter: 2 },
                timestamp: Timestamp(1),
                content: Content::Tombstone,
            })
            .collect();
        let mut state = DvvSet { vv: VersionVector { entries }, siblings };
        let mut quadratic = state.clone();
        state.prune();
        prune_quadratic(&mut quadratic);
        assert_eq!(state, quadratic);
        // 96 entries without a sibling, 64 kept: the 32 oldest of them (2..=33) are forgotten.
        let kept: Vec<u64> = state.context().iter().map(|(a, _)| a.0).collect();
        let expected: Vec<u64> = [0, 1].into_iter().chain(34..100).collect();
        assert_eq!(kept, expected);
        assert_eq!(state.context().len(), HISTORY_ENTRIES_MAX + live.len());
    }
}
