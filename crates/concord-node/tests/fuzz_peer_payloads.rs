//! A bounded fuzzer of every peer message kind's payload decoders, requests and replies, as the
//! layers that own them decode them (issue 19, defect 2). Proptest drives it with a fixed
//! number of cases per kind, so it runs with every `cargo test`, in CI too.
//!
//! For each kind: arbitrary bytes, and valid encodings of its payloads with bytes flipped, cut,
//! appended or spliced in. Each is decoded as the kind's request type and as its reply type
//! (`concord_rpc::Rpc`, so exactly the decoders the router and the typed calls use; the test
//! also checks each type travels as the kind it is fuzzed for). For every input: no panic, and
//! a decode either fails or yields a valid value, shown by encoding it and decoding that again
//! (every type validates itself as it decodes, so a value that decodes twice passed every check
//! twice) to the same bytes. SWIM packets go through the pure SWIM machine's `handle_data`,
//! which decodes them. Stored objects carried by handoff and anti-entropy are decoded as the
//! receiver decodes them.
//!
//! Every run prints its seed; `CONCORD_TEST_SEED=<seed>` replays it.

use std::cell::RefCell;
use std::collections::BTreeMap;

use bytes::Bytes;
use concord_consensus::TypeConfig as GroupTypes;
use concord_consensus::messages::{GroupAppend, GroupRefusal, GroupSnapshot, GroupVote};
use concord_membership::{Output, Swim, SwimConfig, SwimId, SwimPacket, SwimTimer, TimeProbe};
use concord_meta::messages::{ForwardRequest, Forwarded, RaftAppend, RaftSnapshot, RaftVote};
use concord_meta::{Command, CommandResult, JoinReply, JoinRequest, TypeConfig};
use concord_replica::exchange::{MergeBatch, SegmentObjects, SegmentRequest, TreeLeavesRequest};
use concord_replica::hints::HintRequest;
use concord_replica::list::{ListReply, ListRequest};
use concord_replica::messages::{
    FetchReply, FetchRequest, MergeRequest, ReadReply, ReadRequest, WriteReply, WriteRequest,
};
use concord_replica::tombstones::PurgeRequest;
use concord_replica::verify::{TreeRoot, TreeRootRequest};
use concord_rpc::handshake::Hello;
use concord_rpc::{MessageKind, Payload, Rpc};
use concord_storage::{ObjectStore, StoredState};
use concord_types::{
    ActorId, Addr, ClusterId, ConflictPolicy, Content, Dot, DvvSet, Key, NamespaceConfig,
    NamespaceId, NamespaceName, NodeId, PartitionId, Timestamp, VersionVector,
};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Vote};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestRunner};

/// Cases per message kind.
const CASES: u32 = 2000;

type RaftId = u64;

/// Decodes `bytes` as `T`; if that works, the value re-encodes to bytes that decode again and
/// encode the same: the decoded value is in the valid domain of `T`.
fn round_trip<T: Payload>(bytes: &[u8]) {
    if let Ok(value) = T::from_payload(Bytes::copy_from_slice(bytes)) {
        let again = value.to_payload();
        let back = T::from_payload(again.clone())
            .unwrap_or_else(|e| panic!("a decoded {} does not decode again: {e}", name::<T>()));
        assert_eq!(back.to_payload(), again, "{} is not stable", name::<T>());
    }
}

/// Decodes `bytes` as the request `R` and as its reply, each as [`round_trip`]; `R` must be the
/// request that travels as `kind`.
fn rpc<R: Rpc>(kind: MessageKind, bytes: &[u8]) {
    assert_eq!(R::KIND, kind, "{} is fuzzed as {kind:?}", name::<R>());
    round_trip::<R>(bytes);
    round_trip::<R::Reply>(bytes);
}

fn name<T>() -> &'static str {
    std::any::type_name::<T>()
}

/// Objects as a peer stores them: decoded (and validated) as handoff and anti-entropy do.
fn stored_objects(objects: Vec<(Key, StoredState)>) {
    if let Ok(states) = ObjectStore::decode_states(objects) {
        assert!(states.iter().all(|(_, state)| state.is_well_formed()));
    }
}

/// Every decoder a payload of `kind` meets, requests and replies.
fn decode_as(kind: MessageKind, bytes: &[u8], swim: &RefCell<Swim>, from: &NodeId) {
    round_trip::<String>(bytes); // any kind's error response
    match kind {
        MessageKind::Hello => round_trip::<Hello>(bytes),
        MessageKind::Join => rpc::<JoinRequest>(kind, bytes),
        MessageKind::MetaForward => rpc::<ForwardRequest>(kind, bytes),
        MessageKind::RaftAppend => rpc::<RaftAppend>(kind, bytes),
        MessageKind::RaftVote => rpc::<RaftVote>(kind, bytes),
        MessageKind::RaftSnapshot => rpc::<RaftSnapshot>(kind, bytes),
        MessageKind::GroupAppend => rpc::<GroupAppend>(kind, bytes),
        MessageKind::GroupVote => rpc::<GroupVote>(kind, bytes),
        MessageKind::GroupSnapshot => rpc::<GroupSnapshot>(kind, bytes),
        MessageKind::Swim => {
            round_trip::<SwimPacket>(bytes);
            drop(swim.borrow_mut().handle_data(from, bytes));
        }
        MessageKind::TimeProbe => rpc::<TimeProbe>(kind, bytes),
        MessageKind::ReplicaRead => rpc::<ReadRequest>(kind, bytes),
        MessageKind::ReplicaWrite => rpc::<WriteRequest>(kind, bytes),
        MessageKind::ReplicaMerge => rpc::<MergeRequest>(kind, bytes),
        MessageKind::ReplicaList => rpc::<ListRequest>(kind, bytes),
        MessageKind::ReplicaHint => rpc::<HintRequest>(kind, bytes),
        MessageKind::HandoffFetch => {
            rpc::<FetchRequest>(kind, bytes);
            if let Ok(reply) = FetchReply::from_payload(Bytes::copy_from_slice(bytes)) {
                stored_objects(reply.objects);
            }
        }
        MessageKind::TreeRoot => rpc::<TreeRootRequest>(kind, bytes),
        MessageKind::TreeLeaves => rpc::<TreeLeavesRequest>(kind, bytes),
        MessageKind::SegmentObjects => {
            rpc::<SegmentRequest>(kind, bytes);
            if let Ok(reply) = SegmentObjects::from_payload(Bytes::copy_from_slice(bytes)) {
                stored_objects(reply.objects);
            }
        }
        MessageKind::MergeBatch => {
            rpc::<MergeBatch>(kind, bytes);
            if let Ok(batch) = MergeBatch::from_payload(Bytes::copy_from_slice(bytes)) {
                stored_objects(batch.objects);
            }
        }
        MessageKind::PurgeTombstones => rpc::<PurgeRequest>(kind, bytes),
    }
}

fn node(name: &str) -> NodeId {
    NodeId::new(name).unwrap()
}

fn addr(text: &str) -> Addr {
    Addr::parse(text).unwrap()
}

fn key(text: &str) -> Key {
    Key::new(text.as_bytes().to_vec()).unwrap()
}

fn state() -> DvvSet {
    let mut state = DvvSet::new();
    let content = Content::Value { data: b"value".to_vec(), content_type: "text/plain".into() };
    let (context, policy) = (VersionVector::new(), ConflictPolicy::Siblings);
    state
        .write(
            &context,
            Dot { actor: ActorId(7), counter: 0 },
            Timestamp::from_wall_ms(1),
            content.clone(),
            policy,
        )
        .unwrap();
    state
        .write(
            &VersionVector::new(),
            Dot { actor: ActorId(9), counter: 0 },
            Timestamp::from_wall_ms(2),
            content,
            policy,
        )
        .unwrap();
    state
}

/// An object as a node stores it: format byte 1 and the postcard DVV set.
fn stored() -> StoredState {
    StoredState::encode(&state())
}

fn log_id(index: u64) -> LogId<RaftId> {
    LogId::new(CommittedLeaderId::new(3, 11), index)
}

fn commands() -> Vec<Command> {
    vec![
        Command::AddNode {
            node: node("n4"),
            http_addr: addr("10.0.0.4:8080"),
            peer_addr: addr("10.0.0.4:7070"),
            incarnation: 9,
        },
        Command::MoveDone { partition: PartitionId(5), node: node("n2"), target_epoch: 4 },
        Command::CreateNamespace {
            name: NamespaceName::new("carts").unwrap(),
            config: NamespaceConfig::default(),
        },
    ]
}

/// Valid payloads of `kind`, requests and replies, to mutate.
fn samples(kind: MessageKind) -> Vec<Vec<u8>> {
    let e = |value: &dyn erased::Encode| value.encode();
    let ns = NamespaceId(1);
    let samples: Vec<Vec<u8>> = match kind {
        MessageKind::Hello => vec![e(&Hello::new(Some(ClusterId(5)), node("n1")))],
        MessageKind::Join => vec![
            e(&JoinRequest {
                node: node("n4"),
                http_addr: addr("127.0.0.1:8080"),
                peer_addr: addr("[::1]:7070"),
                incarnation: 3,
            }),
            e(&JoinReply::Accepted { partitions: 64 }),
        ],
        MessageKind::MetaForward => {
            let mut out: Vec<Vec<u8>> =
                commands().into_iter().map(|c| e(&ForwardRequest::Propose(c))).collect();
            out.push(e(&ForwardRequest::ReadIndex));
            out.push(e(&Forwarded::Applied(CommandResult::NamespaceCreated(ns))));
            out.push(e(&Forwarded::ReadIndex(Some(12))));
            out
        }
        MessageKind::RaftAppend => {
            let entries = commands()
                .into_iter()
                .enumerate()
                .map(|(i, c)| Entry::<TypeConfig> {
                    log_id: log_id(i as u64 + 1),
                    payload: EntryPayload::Normal(c),
                })
                .collect();
            let request = AppendEntriesRequest::<TypeConfig> {
                vote: Vote::new_committed(3, 11),
                prev_log_id: Some(log_id(0)),
                entries,
                leader_commit: Some(log_id(2)),
            };
            let reply: Result<_, openraft::error::RaftError<RaftId>> =
                Ok(AppendEntriesResponse::<RaftId>::Success);
            vec![e(&request), e(&reply)]
        }
        MessageKind::RaftVote => {
            let reply: Result<_, openraft::error::RaftError<RaftId>> =
                Ok(VoteResponse::new(Vote::new(3, 11), Some(log_id(4)), true));
            vec![e(&VoteRequest::new(Vote::new(3, 11), Some(log_id(4)))), e(&reply)]
        }
        MessageKind::RaftSnapshot => {
            let request = InstallSnapshotRequest::<TypeConfig> {
                vote: Vote::new_committed(3, 11),
                meta: openraft::SnapshotMeta {
                    last_log_id: Some(log_id(7)),
                    last_membership: openraft::StoredMembership::default(),
                    snapshot_id: "3-11-7".into(),
                },
                offset: 0,
                data: b"snapshot bytes".to_vec(),
                done: true,
            };
            let reply: Result<_, openraft::error::RaftError<RaftId>> =
                Ok(InstallSnapshotResponse { vote: Vote::new_committed(3, 11) });
            vec![e(&request), e(&reply)]
        }
        MessageKind::GroupAppend => {
            let entries = (1..=3)
                .map(|i| Entry::<GroupTypes> { log_id: log_id(i), payload: EntryPayload::Blank })
                .collect();
            let request = AppendEntriesRequest::<GroupTypes> {
                vote: Vote::new_committed(3, 11),
                prev_log_id: Some(log_id(0)),
                entries,
                leader_commit: Some(log_id(2)),
            };
            let reply: <GroupAppend as Rpc>::Reply = Ok(Ok(AppendEntriesResponse::Success));
            let refused: <GroupAppend as Rpc>::Reply =
                Err(GroupRefusal::NoSuchPartition { group: 70, partitions: 64 });
            vec![e(&GroupAppend { group: PartitionId(5), request }), e(&reply), e(&refused)]
        }
        MessageKind::GroupVote => {
            let request = VoteRequest::new(Vote::new(3, 11), Some(log_id(4)));
            let reply: <GroupVote as Rpc>::Reply =
                Ok(Ok(VoteResponse::new(Vote::new(3, 11), Some(log_id(4)), true)));
            vec![e(&GroupVote { group: PartitionId(5), request }), e(&reply)]
        }
        MessageKind::GroupSnapshot => {
            let request = InstallSnapshotRequest::<GroupTypes> {
                vote: Vote::new_committed(3, 11),
                meta: openraft::SnapshotMeta {
                    last_log_id: Some(log_id(7)),
                    last_membership: openraft::StoredMembership::default(),
                    snapshot_id: "3-11-7".into(),
                },
                offset: 0,
                data: b"snapshot bytes".to_vec(),
                done: true,
            };
            let reply: <GroupSnapshot as Rpc>::Reply = Err(GroupRefusal::NotHosted { group: 5 });
            vec![e(&GroupSnapshot { group: PartitionId(5), request }), e(&reply)]
        }
        MessageKind::Swim => Vec::new(), // filled from a live SWIM machine by the caller
        MessageKind::TimeProbe => vec![e(&TimeProbe), e(&(1_000u64, 1_002u64))],
        MessageKind::ReplicaRead => {
            vec![
                e(&ReadRequest { namespace: ns, key: key("k") }),
                e(&ReadReply { state: Some(state()) }),
            ]
        }
        MessageKind::ReplicaWrite => {
            let op = concord_replica::WriteOp::Put {
                context: state().context().clone(),
                data: b"v".to_vec(),
                content_type: "text/plain".into(),
            };
            let request = WriteRequest {
                namespace: ns,
                key: key("k"),
                op,
                required: 2,
                strict: false,
                timeout_ms: 500,
            };
            let reply = WriteReply::Done { state: state(), answered: 2, required: 2 };
            vec![e(&request), e(&reply)]
        }
        MessageKind::ReplicaMerge => {
            let policy = ConflictPolicy::Siblings;
            vec![e(&MergeRequest { namespace: ns, key: key("k"), state: state(), policy })]
        }
        MessageKind::ReplicaList => vec![
            e(&ListRequest {
                namespace: ns,
                partition: PartitionId(3),
                prefix: b"a".to_vec(),
                after: Some(b"ab".to_vec()),
                limit: 10,
            }),
            e(&ListReply { keys: vec![key("a"), key("b")], stopped_at: Some(key("c")) }),
        ],
        MessageKind::ReplicaHint => vec![e(&HintRequest {
            target: node("n2"),
            namespace: ns,
            key: key("k"),
            state: state(),
            policy: ConflictPolicy::Lww,
        })],
        MessageKind::HandoffFetch => vec![
            e(&FetchRequest {
                namespace: ns,
                partition: PartitionId(3),
                after: Some(key("a")),
                max_objects: 100,
                max_bytes: 1 << 20,
            }),
            e(&FetchReply {
                objects: vec![(key("a"), stored()), (key("b"), stored())],
                more: true,
            }),
        ],
        MessageKind::TreeRoot | MessageKind::TreeLeaves => vec![
            e(&TreeRootRequest { namespace: ns, partition: PartitionId(3), asker_root: Some(9) }),
            e(&TreeRoot { root: 77, keys: 3 }),
            e(&vec![1u64, 2, 3]),
        ],
        MessageKind::SegmentObjects => vec![
            e(&SegmentRequest {
                namespace: ns,
                partition: PartitionId(3),
                segments: vec![1, 900],
                max_objects: 50,
            }),
            e(&SegmentObjects { objects: vec![(key("a"), stored())] }),
        ],
        MessageKind::MergeBatch => vec![e(&MergeBatch {
            namespace: ns,
            partition: PartitionId(3),
            policy: ConflictPolicy::Siblings,
            objects: vec![(key("a"), stored())],
        })],
        MessageKind::PurgeTombstones => vec![
            e(&PurgeRequest {
                namespace: ns,
                partition: PartitionId(3),
                check: true,
                tombstones: vec![(key("a"), state())],
            }),
            e(&vec![true, false]),
        ],
    };
    samples
}

/// Encoding behind a trait object, so one list holds samples of many types.
mod erased {
    pub trait Encode {
        fn encode(&self) -> Vec<u8>;
    }

    impl<T: serde::Serialize> Encode for T {
        fn encode(&self) -> Vec<u8> {
            concord_rpc::encode(self).to_vec()
        }
    }
}

/// Two SWIM machines that know each other, and packets the first sent the second.
fn swim_pair() -> (Swim, Vec<Vec<u8>>) {
    let (a, b) = (node("a"), node("b"));
    let mut sender = Swim::new(SwimId::new(a.clone(), 1), SwimConfig::default(), 1).unwrap();
    let mut receiver = Swim::new(SwimId::new(b.clone(), 1), SwimConfig::default(), 2).unwrap();
    let members = [a.clone(), b.clone()];
    drop(receiver.set_members(members.clone()));
    let mut outputs = sender.set_members(members);
    let mut packets = Vec::new();
    // Fire the sender's timers a bounded number of times until it has sent something.
    for _ in 0..20 {
        let mut timers: Vec<SwimTimer> = Vec::new();
        for output in outputs.drain(..) {
            match output {
                Output::Send { payload, .. } => packets.push(payload.to_vec()),
                Output::Schedule { timer, .. } => timers.push(timer),
                Output::Changed { .. } => {}
            }
        }
        if packets.len() >= 2 {
            break;
        }
        for timer in timers {
            outputs.extend(sender.handle_timer(timer));
        }
    }
    assert!(!packets.is_empty(), "the SWIM sender sent nothing to fuzz with");
    (receiver, packets)
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, xor: u8 },
    Cut { at: usize },
    Append(Vec<u8>),
    Splice { at: usize, bytes: Vec<u8> },
}

fn any_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(at, xor)| Mutation::Flip { at, xor }),
        any::<usize>().prop_map(|at| Mutation::Cut { at }),
        prop::collection::vec(any::<u8>(), 1..32).prop_map(Mutation::Append),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..12))
            .prop_map(|(at, bytes)| Mutation::Splice { at, bytes }),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutation: &[Mutation]) -> Vec<u8> {
    for step in mutation {
        let len = bytes.len().max(1);
        match step {
            Mutation::Flip { at, xor } => {
                if let Some(byte) = bytes.get_mut(at % len) {
                    *byte ^= xor;
                }
            }
            Mutation::Cut { at } => bytes.truncate(at % len),
            Mutation::Append(more) => bytes.extend_from_slice(more),
            Mutation::Splice { at, bytes: more } => {
                let at = (at % len).min(bytes.len());
                bytes.splice(at..at, more.iter().copied());
            }
        }
    }
    bytes
}

/// Every message kind's decoders, each with its own case budget: arbitrary bytes, and its
/// valid payloads mutated.
#[test]
fn every_message_kind_decodes_only_valid_values_and_never_panics() {
    let seed: u64 = match std::env::var("CONCORD_TEST_SEED") {
        Ok(value) => value.parse().expect("CONCORD_TEST_SEED must be a u64"),
        Err(_) => rand::random(),
    };
    println!("seed {seed} (replay with CONCORD_TEST_SEED={seed})");
    let (swim, packets) = swim_pair();
    let swim = RefCell::new(swim);
    let from = node("a");
    let mut covered = BTreeMap::new();
    for kind in MessageKind::ALL {
        let mut valid = samples(kind);
        if kind == MessageKind::Swim {
            valid = packets.clone();
        }
        assert!(!valid.is_empty(), "{kind} has no sample payload");
        // The untouched samples decode.
        for sample in &valid {
            decode_as(kind, sample, &swim, &from);
        }
        let config = Config {
            cases: CASES,
            rng_seed: RngSeed::Fixed(seed ^ u64::from(kind.as_u8())),
            failure_persistence: None,
            ..Config::default()
        };
        let mutated = (prop::sample::select(valid), prop::collection::vec(any_mutation(), 1..4))
            .prop_map(|(sample, mutation)| mutate(sample, &mutation));
        let input = prop_oneof![mutated, prop::collection::vec(any::<u8>(), 0..256)];
        let result = TestRunner::new(config).run(&input, |bytes| {
            decode_as(kind, &bytes, &swim, &from);
            Ok(())
        });
        if let Err(e) = result {
            panic!("{kind}: {e} (seed {seed})");
        }
        covered.insert(kind.as_u8(), kind.as_str());
    }
    assert_eq!(covered.len(), MessageKind::ALL.len());
    println!("fuzzed {} kinds, {CASES} cases each: {covered:?}", covered.len());
}
