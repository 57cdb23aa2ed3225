//! The metadata state machine with exact expected outcomes.

use super::*;
use concord_types::{Consistency, Quorum};

fn node(name: &str) -> NodeId {
    NodeId::new(name).unwrap()
}

fn addr(text: &str) -> Addr {
    Addr::parse(text).unwrap()
}

fn bootstrapped(partitions: u16) -> MetaState {
    let mut state = MetaState::default();
    let default = NamespaceName::new("default").unwrap();
    let result = state.apply(&Command::Bootstrap(Founding {
        cluster_id: ClusterId(7),
        partitions,
        node: node("n1"),
        http_addr: addr("h1:1"),
        peer_addr: addr("p1:1"),
        incarnation: 1,
        namespaces: vec![(
            default,
            NamespaceEntry { id: NamespaceId(1), config: NamespaceConfig::default() },
        )],
        context_key: ContextKey::new([1; 32]),
    }));
    assert_eq!(result, CommandResult::Ok);
    state
}

fn add(state: &mut MetaState, name: &str) -> CommandResult {
    state.apply(&Command::AddNode {
        node: node(name),
        http_addr: addr(&format!("h-{name}:1")),
        peer_addr: addr(&format!("p-{name}:1")),
        incarnation: 1,
    })
}

/// Reports every pending move done, as the receiving nodes would.
fn finish_moves(state: &mut MetaState) {
    let epoch = state.target_epoch;
    for planned in state.moves.clone() {
        let result = state.apply(&Command::MoveDone {
            partition: planned.partition,
            node: planned.node,
            target_epoch: epoch,
        });
        assert_eq!(result, CommandResult::Ok);
    }
}

#[test]
fn bootstrap_makes_a_one_node_ring_and_only_once() {
    let state = bootstrapped(8);
    assert_eq!(state.epoch, 1);
    assert_eq!(state.members.len(), 1);
    assert_eq!(state.members[&node("n1")].state, MemberState::Active);
    let ring = state.ring.as_ref().unwrap();
    assert!(ring.partitions().all().all(|p| ring.preference_list(p) == [node("n1")]));
    assert_eq!(state.next_namespace_id, 2);
    let again = state.clone().apply(&Command::Bootstrap(Founding {
        cluster_id: ClusterId(9),
        partitions: 8,
        node: node("other"),
        http_addr: addr("h:1"),
        peer_addr: addr("p:1"),
        incarnation: 2,
        namespaces: Vec::new(),
        context_key: ContextKey::new([2; 32]),
    }));
    assert_eq!(again, CommandResult::Unchanged);
    assert_eq!(state.context_key, Some(ContextKey::new([1; 32])), "the founder's key stays");
}

#[test]
fn a_join_plans_moves_to_the_new_node_and_completes_when_they_are_done() {
    let mut state = bootstrapped(8);
    assert_eq!(add(&mut state, "n2"), CommandResult::Ok);
    assert_eq!(state.members[&node("n2")].state, MemberState::Joining);
    assert!(state.in_transition());
    // Two nodes: n2 enters every preference list, so it must receive every partition.
    assert_eq!(state.moves.len(), 8);
    assert!(state.moves.iter().all(|m| m.node == node("n2")));
    // During the transition writes go to old and new owners, reads to the old.
    let p = PartitionId(0);
    assert_eq!(state.read_replicas(p, 2), vec![node("n1")]);
    let mut writes = state.write_replicas(p, 2);
    writes.sort();
    assert_eq!(writes, vec![node("n1"), node("n2")]);
    let mut incoming = state.target_replicas(p, 2);
    incoming.sort();
    assert_eq!(incoming, vec![node("n1"), node("n2")]);

    finish_moves(&mut state);
    assert!(state.target_replicas(p, 2).is_empty(), "no transition, no target replicas");
    assert!(!state.in_transition());
    assert!(state.moves.is_empty());
    assert_eq!(state.members[&node("n2")].state, MemberState::Active);
    let ring = state.ring.as_ref().unwrap();
    assert_eq!(ring.members(), [node("n1"), node("n2")]);
}

#[test]
fn stale_move_reports_change_nothing() {
    let mut state = bootstrapped(8);
    add(&mut state, "n2");
    let planned = state.moves.iter().next().unwrap().clone();
    let stale = Command::MoveDone {
        partition: planned.partition,
        node: planned.node.clone(),
        target_epoch: state.target_epoch + 5,
    };
    let before = state.clone();
    assert_eq!(state.apply(&stale), CommandResult::Unchanged);
    assert_eq!(state, before);
}

#[test]
fn a_leave_moves_data_away_then_removes_the_member() {
    let mut state = bootstrapped(8);
    add(&mut state, "n2");
    finish_moves(&mut state);
    add(&mut state, "n3");
    finish_moves(&mut state);
    assert_eq!(state.apply(&Command::Leave { node: node("n3") }), CommandResult::Ok);
    assert_eq!(state.members[&node("n3")].state, MemberState::Leaving);
    // n3 still serves until the transition completes.
    let target = state.target.as_ref().unwrap();
    assert!(target.partitions().all().all(|p| !target.preference_list(p).contains(&node("n3"))));
    finish_moves(&mut state);
    assert!(!state.members.contains_key(&node("n3")));
    let ring = state.ring.as_ref().unwrap();
    assert_eq!(ring.members(), [node("n1"), node("n2")]);
}

#[test]
fn remove_drops_a_member_at_once_and_replans_from_the_rest() {
    let mut state = bootstrapped(8);
    add(&mut state, "n2");
    finish_moves(&mut state);
    add(&mut state, "n3");
    finish_moves(&mut state);
    assert_eq!(state.apply(&Command::Remove { node: node("n2") }), CommandResult::Ok);
    assert!(!state.members.contains_key(&node("n2")));
    // The removed node is never a replica, not even while its partitions are rebuilt.
    for p in state.ring.as_ref().unwrap().partitions().all() {
        assert!(!state.write_replicas(p, 3).contains(&node("n2")));
    }
    finish_moves(&mut state);
    assert_eq!(state.ring.as_ref().unwrap().members(), [node("n1"), node("n3")]);
    assert_eq!(state.apply(&Command::Remove { node: node("n2") }), CommandResult::Unchanged);
}

#[test]
fn the_last_member_cannot_leave_or_be_removed() {
    let mut state = bootstrapped(8);
    assert!(matches!(state.apply(&Command::Leave { node: node("n1") }), CommandResult::Refused(_)));
    assert!(matches!(
        state.apply(&Command::Remove { node: node("n1") }),
        CommandResult::Refused(_)
    ));
}

#[test]
fn a_rejoin_with_new_addresses_updates_them_without_a_transition() {
    let mut state = bootstrapped(8);
    add(&mut state, "n2");
    finish_moves(&mut state);
    let epoch = state.epoch;
    assert_eq!(add(&mut state, "n2"), CommandResult::Unchanged);
    let moved = state.apply(&Command::AddNode {
        node: node("n2"),
        http_addr: addr("new-h:1"),
        peer_addr: addr("new-p:1"),
        incarnation: 1,
    });
    assert_eq!(moved, CommandResult::Ok);
    assert_eq!(state.epoch, epoch + 1);
    assert_eq!(state.members[&node("n2")].peer_addr, "new-p:1");
    assert!(!state.in_transition());
}

#[test]
fn a_member_that_lost_its_data_is_refused_until_removed() {
    let mut state = bootstrapped(8);
    add(&mut state, "n2");
    finish_moves(&mut state);
    let wiped = Command::AddNode {
        node: node("n2"),
        http_addr: addr("h-n2:1"),
        peer_addr: addr("p-n2:1"),
        incarnation: 99,
    };
    let before = state.clone();
    match state.apply(&wiped) {
        CommandResult::Refused(why) => assert!(why.contains("cluster remove n2"), "{why}"),
        other => panic!("a wiped node was admitted: {other:?}"),
    }
    assert_eq!(state, before, "a refused join changes nothing");
    assert_eq!(state.apply(&Command::Remove { node: node("n2") }), CommandResult::Ok);
    finish_moves(&mut state);
    assert_eq!(state.apply(&wiped), CommandResult::Ok, "after removal it joins afresh");
    assert_eq!(state.members[&node("n2")].incarnation, 99);
    assert_eq!(state.members[&node("n2")].state, MemberState::Joining);
}

#[test]
fn a_second_join_during_a_transition_keeps_finished_moves() {
    let mut state = bootstrapped(16);
    add(&mut state, "n2");
    finish_moves(&mut state);
    add(&mut state, "n3");
    // n3 finishes half of its moves, then n4 joins.
    let epoch = state.target_epoch;
    let done: Vec<Move> = state.moves.iter().take(state.moves.len() / 2).cloned().collect();
    for planned in &done {
        state.apply(&Command::MoveDone {
            partition: planned.partition,
            node: planned.node.clone(),
            target_epoch: epoch,
        });
    }
    add(&mut state, "n4");
    for planned in &done {
        let position = state.target.as_ref().unwrap().position(planned.partition, &planned.node);
        let completed = state.completed[&(planned.partition, planned.node.clone())];
        if position.is_some_and(|p| p >= completed) {
            assert!(!state.moves.contains(planned), "{planned:?} was done and is planned again");
        }
    }
    finish_moves(&mut state);
    assert_eq!(state.ring.as_ref().unwrap().members().len(), 4);
    assert!(state.members.values().all(|m| m.state == MemberState::Active));
}

#[test]
fn namespaces_are_created_once_and_conflicts_reported() {
    let mut state = bootstrapped(8);
    let carts = NamespaceName::new("carts").unwrap();
    let create = |config: NamespaceConfig| Command::CreateNamespace { name: carts.clone(), config };
    assert_eq!(
        state.apply(&create(NamespaceConfig::default())),
        CommandResult::NamespaceCreated(NamespaceId(2))
    );
    assert_eq!(
        state.apply(&create(NamespaceConfig::default())),
        CommandResult::NamespaceExists(NamespaceId(2))
    );
    let lww =
        NamespaceConfig { conflicts: concord_types::ConflictPolicy::Lww, ..Default::default() };
    assert_eq!(
        state.apply(&create(lww)),
        CommandResult::NamespaceConflict(NamespaceConfig::default())
    );
    let strong = NamespaceConfig { consistency: Consistency::Strong, ..Default::default() };
    let locks =
        Command::CreateNamespace { name: NamespaceName::new("locks").unwrap(), config: strong };
    assert!(matches!(state.apply(&locks), CommandResult::Refused(_)));
}

#[test]
fn desired_voters_are_odd_and_at_most_five() {
    let mut state = bootstrapped(8);
    let ids = |state: &MetaState| -> BTreeSet<u64> {
        state.members.values().map(|m| m.raft_id).collect()
    };
    let mut voters = ids(&state);
    for (i, expected) in [(2, 1), (3, 3), (4, 3), (5, 5), (6, 5), (7, 5)] {
        add(&mut state, &format!("n{i}"));
        finish_moves(&mut state);
        voters = crate::service::desired_voters(&state, &voters);
        assert_eq!(voters.len(), expected, "{i} members");
        assert!(voters.iter().all(|v| ids(&state).contains(v)));
    }
}

/// Regression (issue 20, item 10): a fresh three-node cluster showed epoch 131, one bump per
/// partition move reported. The epoch counts the changes an operator makes or sees settle:
/// bootstrap, each join, and each transition that completes.
#[test]
fn the_epoch_counts_changes_not_partition_moves() {
    let mut state = bootstrapped(64);
    assert_eq!(state.epoch, 1, "bootstrap");
    add(&mut state, "n2");
    assert_eq!(state.epoch, 2, "n2 joins");
    let moves = state.moves.len();
    assert!(moves >= 64, "{moves} moves to n2");
    finish_moves(&mut state);
    assert_eq!(state.epoch, 3, "n2's transition completes, after {moves} move reports");
    add(&mut state, "n3");
    finish_moves(&mut state);
    assert_eq!(state.epoch, 5, "a fresh three-node cluster");
    // A transition's target epoch is still unique: the command that plans it bumps the epoch.
    add(&mut state, "n4");
    assert_eq!((state.epoch, state.target_epoch), (6, 6));
}

/// A member that left is remembered with its data dir's incarnation: that data dir's join is
/// refused with the way back in, while a fresh data dir under the same name joins as new.
#[test]
fn a_departed_data_dir_is_refused_and_a_fresh_one_joins() {
    let mut state = bootstrapped(8);
    add(&mut state, "n2");
    finish_moves(&mut state);
    add(&mut state, "n3");
    finish_moves(&mut state);
    state.apply(&Command::Leave { node: node("n3") });
    assert_eq!(state.departure(&node("n3"), 1), None, "still leaving");
    finish_moves(&mut state);
    let left = Departure { node: node("n3"), incarnation: 1, how: DepartureKind::Left };
    assert_eq!(state.departure(&node("n3"), 1), Some(&left));
    assert_eq!(state.apply(&Command::Remove { node: node("n2") }), CommandResult::Ok);
    let removed = Departure { node: node("n2"), incarnation: 1, how: DepartureKind::Removed };
    assert_eq!(state.departed, [left, removed]);

    let before = state.clone();
    match add(&mut state, "n3") {
        CommandResult::Refused(why) => {
            assert!(why.starts_with("n3 left the cluster"), "{why}");
            assert!(why.contains("empty its data dir and start it with --join"), "{why}");
        }
        other => panic!("the departed data dir of n3 joined: {other:?}"),
    }
    assert!(
        matches!(add(&mut state, "n2"), CommandResult::Refused(why) if why.starts_with("n2 was removed"))
    );
    assert_eq!(state, before, "refused joins change nothing");

    let fresh = Command::AddNode {
        node: node("n3"),
        http_addr: addr("h:1"),
        peer_addr: addr("p:1"),
        incarnation: 2,
    };
    assert_eq!(state.apply(&fresh), CommandResult::Ok);
    assert_eq!(state.departure(&node("n3"), 1), None, "forgotten once the name is a member");
    assert_eq!(state.departed.len(), 1);
}

/// At most [`DEPARTED_MAX`] departures are remembered, the oldest forgotten first.
#[test]
fn departures_are_bounded_oldest_first() {
    let mut state = bootstrapped(8);
    for i in 0..DEPARTED_MAX + 2 {
        let name = format!("x{i}");
        add(&mut state, &name);
        assert_eq!(state.apply(&Command::Remove { node: node(&name) }), CommandResult::Ok);
    }
    assert_eq!(state.departed.len(), DEPARTED_MAX);
    assert_eq!(state.departed[0].node, node("x2"));
    assert_eq!(state.departed[DEPARTED_MAX - 1].node, node(&format!("x{}", DEPARTED_MAX + 1)));
}

/// A deleted namespace frees its name at once and waits for every member to drop its data; a
/// namespace created again under the name gets a new id, so the drop (by id) never touches it.
#[test]
fn a_deleted_namespace_is_dropped_by_every_member_and_its_name_reused_with_a_new_id() {
    let mut state = bootstrapped(8);
    add(&mut state, "n2");
    finish_moves(&mut state);
    let carts = NamespaceName::new("carts").unwrap();
    let create =
        Command::CreateNamespace { name: carts.clone(), config: NamespaceConfig::default() };
    assert_eq!(state.apply(&create), CommandResult::NamespaceCreated(NamespaceId(2)));
    let epoch = state.epoch;

    let delete = Command::DeleteNamespace { name: carts.clone() };
    assert_eq!(state.apply(&delete), CommandResult::NamespaceDeleted(NamespaceId(2)));
    assert_eq!(state.epoch, epoch + 1);
    assert!(!state.namespaces.contains_key(&carts));
    assert!(state.namespace_deleted(NamespaceId(2)));
    assert!(!state.namespace_deleted(NamespaceId(1)), "default lives");
    assert!(!state.namespace_deleted(NamespaceId(3)), "an id not handed out yet is unknown");
    let drop = &state.dropping[&NamespaceId(2)];
    assert_eq!(drop.nodes, BTreeSet::from([node("n1"), node("n2")]));
    assert_eq!(state.apply(&delete), CommandResult::NamespaceNotFound);

    assert_eq!(state.apply(&create), CommandResult::NamespaceCreated(NamespaceId(3)));
    assert_eq!(state.drops_for(&node("n1")).map(|d| d.id).collect::<Vec<_>>(), [NamespaceId(2)]);
    let dropped = |n: &str| Command::NamespaceDropped { id: NamespaceId(2), node: node(n) };
    let epoch = state.epoch;
    assert_eq!(state.apply(&dropped("n1")), CommandResult::Ok);
    assert_eq!(state.apply(&dropped("n1")), CommandResult::Unchanged);
    assert_eq!(state.apply(&dropped("n2")), CommandResult::Ok);
    assert!(state.dropping.is_empty());
    assert_eq!(state.epoch, epoch, "drop reports are progress, not changes");
    assert_eq!(state.namespaces[&carts].id, NamespaceId(3));
}

/// A member that leaves or is removed has nothing more to drop: a deletion waits only for
/// the members that remain.
#[test]
fn a_departed_member_is_not_waited_for() {
    let mut state = bootstrapped(8);
    add(&mut state, "n2");
    finish_moves(&mut state);
    add(&mut state, "n3");
    finish_moves(&mut state);
    state.apply(&Command::DeleteNamespace { name: NamespaceName::new("default").unwrap() });
    state.apply(&Command::Remove { node: node("n3") });
    assert_eq!(state.dropping[&NamespaceId(1)].nodes, BTreeSet::from([node("n1"), node("n2")]));
    state.apply(&Command::NamespaceDropped { id: NamespaceId(1), node: node("n1") });
    state.apply(&Command::Leave { node: node("n2") });
    finish_moves(&mut state);
    assert!(state.dropping.is_empty(), "{:?}", state.dropping);
}

/// Quorums and `strict` change (an epoch each, none when nothing changes); a fixed field is
/// refused by name, an invalid result refused, an unknown namespace not found.
#[test]
fn namespace_updates_change_only_what_may_change() {
    let mut state = bootstrapped(8);
    let default = NamespaceName::new("default").unwrap();
    let update = |patch| Command::UpdateNamespace { name: default.clone(), patch };
    let epoch = state.epoch;
    let patch = NamespacePatch { write_quorum: Some(Quorum::All), ..Default::default() };
    assert_eq!(
        state.apply(&update(patch.clone())),
        CommandResult::NamespaceUpdated(NamespaceId(1))
    );
    assert_eq!(state.namespaces[&default].config.write_quorum, Quorum::All);
    assert_eq!(state.apply(&update(patch)), CommandResult::NamespaceExists(NamespaceId(1)));
    assert_eq!(state.epoch, epoch + 1);

    let before = state.clone();
    let replicas = NamespacePatch { replicas: Some(5), ..Default::default() };
    assert_eq!(
        state.apply(&update(replicas)),
        CommandResult::NamespaceFieldFixed("replicas".into())
    );
    let too_many = NamespacePatch { read_quorum: Some(Quorum::Count(4)), ..Default::default() };
    assert!(matches!(state.apply(&update(too_many)), CommandResult::Refused(_)));
    assert_eq!(state, before, "refused updates change nothing");
    let stranger = Command::UpdateNamespace {
        name: NamespaceName::new("nope").unwrap(),
        patch: NamespacePatch::default(),
    };
    assert_eq!(state.apply(&stranger), CommandResult::NamespaceNotFound);
}
