//! Three `GroupHost`s in one process, each with its own fjall dir, syncer, `TcpTransport` and
//! `RpcServer` on 127.0.0.1, host two strong groups (partitions 0 and 1 of 4) and talk over
//! real TCP through the group endpoints.
//!
//! The story: each host starts both groups with the same three voters (each initializes them;
//! openraft takes the same first membership from all); the groups elect leaders; puts and a
//! compare-and-set hit and miss go through the leader and every host applies the same records;
//! a message for a group this node does not host, or for a partition that does not exist, is
//! refused over the wire and reaches no Raft, as is a snapshot chunk at an offset far past what
//! was received; one host stops (server, groups, storage), writes
//! still commit (enough that group 0 snapshots and purges its log past the stopped host);
//! the host restarts from its dir on a new port and catches up by a snapshot sent through the
//! snapshot intake (the logs were purged past it), then takes the next writes by log.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use concord_consensus::messages::{GroupRefusal, GroupSnapshot, GroupVote};
use concord_consensus::{
    Change, Command, GroupHost, GroupId, GroupNode, GroupTiming, HostConfig, HostError,
    PutCondition, RaftId, Record, Response, Syncer, Value,
};
use concord_rpc::{
    Calls, Faults, Local, Router, RpcMetrics, RpcServer, ServerLimits, TcpTransport, Transport,
    TransportConfig,
};
use concord_storage::{FjallOptions, FjallStorage, Storage};
use concord_types::{ClusterId, Key, NamespaceId, NodeId, PartitionId};
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{InstallSnapshotRequest, VoteRequest};
use openraft::{ServerState, SnapshotMeta, Vote};
use tokio::net::TcpListener;

const CLUSTER: ClusterId = ClusterId(0xC0C0);
const PARTITIONS: u16 = 4;
const GROUPS: [GroupId; 2] = [PartitionId(0), PartitionId(1)];
const NODES: [RaftId; 3] = [1, 2, 3];
const NAMESPACE: NamespaceId = NamespaceId(1);
/// Snapshots come this often in the test, so a short run purges the log.
const TEST_SNAPSHOT_EVERY_ENTRIES: u64 = 20;
const DEADLINE: Duration = Duration::from_secs(30);

fn name(id: RaftId) -> NodeId {
    NodeId::new(format!("n{id}")).unwrap()
}

/// One running node: its storage, syncer, transport, server and host.
struct Node {
    storage: Arc<dyn Storage>,
    syncer: Syncer,
    transport: Arc<TcpTransport>,
    server: RpcServer,
    host: GroupHost,
}

/// Opens the data dir, waiting (bounded) for a previous run of the node to release its lock.
fn open_storage(dir: &Path) -> Arc<dyn Storage> {
    let start = Instant::now();
    loop {
        match FjallStorage::open(dir, &FjallOptions::default()) {
            Ok(storage) => return Arc::new(storage),
            Err(e) if start.elapsed() < DEADLINE => {
                eprintln!("waiting for the previous run to release {}: {e}", dir.display());
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("cannot open {}: {e}", dir.display()),
        }
    }
}

fn host_config(id: RaftId) -> HostConfig {
    HostConfig {
        // Faster than the node's timing, so the story runs in seconds.
        timing: GroupTiming { heartbeat_ms: 100, election_timeout_ms: 500 },
        snapshot_every_entries: TEST_SNAPSHOT_EVERY_ENTRIES,
        log_kept_after_snapshot_entries: 5,
        // A snapshot of a few hundred bytes goes in several chunks, through the intake.
        snapshot_chunk_bytes: 64,
        ..HostConfig::new(id, PARTITIONS)
    }
}

/// Starts node `id` on its dir: storage, syncer, transport, a host with its endpoints on a
/// router served on a fresh port. Groups are started separately.
async fn start_node(id: RaftId, dir: &Path) -> Node {
    start_node_with(host_config(id), dir).await
}

async fn start_node_with(host_config: HostConfig, dir: &Path) -> Node {
    let id = host_config.raft_id;
    let storage = open_storage(dir);
    let syncer = Syncer::start(storage.clone(), 1024).unwrap();
    let local = Arc::new(Local::new(name(id), Some(CLUSTER)));
    let faults = Arc::new(Faults::new());
    let metrics = RpcMetrics::unregistered();
    let config = TransportConfig {
        backoff_min: Duration::from_millis(10),
        backoff_max: Duration::from_millis(200),
        ..TransportConfig::default()
    };
    let transport =
        Arc::new(TcpTransport::new(local.clone(), faults.clone(), metrics.clone(), config));
    let dyn_transport: Arc<dyn Transport> = transport.clone();
    let host = GroupHost::new(host_config, storage.clone(), syncer.clone(), dyn_transport);
    let mut router = Router::new();
    host.register(&mut router);
    let heard = transport.clone();
    router.on_connected(move |peer| heard.heard_from(peer));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let limits = ServerLimits::default();
    let server =
        RpcServer::serve(listener, local, Arc::new(router), faults, metrics, limits).unwrap();
    Node { storage, syncer, transport, server, host }
}

/// Tells every node every other node's address.
fn introduce(nodes: &BTreeMap<RaftId, Node>) {
    for (id, node) in nodes {
        for (other, peer) in nodes {
            if other != id {
                node.transport.set_peer(name(*other), peer.server.local_addr().to_string());
            }
        }
    }
}

async fn start_groups(node: &Node) {
    let voters: BTreeMap<RaftId, GroupNode> =
        NODES.iter().map(|id| (*id, GroupNode { name: name(*id).to_string() })).collect();
    for group in GROUPS {
        node.host.start(group, voters.clone()).await.unwrap();
    }
}

async fn stop_node(node: Node) {
    node.server.shutdown().await;
    node.host.shutdown().await;
    node.storage.persist().unwrap();
}

fn key(name: &str) -> Key {
    Key::new(name.as_bytes().to_vec()).unwrap()
}

fn put(name: &str, text: &str, condition: PutCondition) -> Command {
    let value = Value::new(text.as_bytes().to_vec(), "text/plain".into()).unwrap();
    Command::Put { namespace: NAMESPACE, key: key(name), value, condition }
}

/// The node that leads `group`: one a running node names as leader and whose own metrics say
/// it leads (a node may name a leader that has not taken office yet, or has left it).
async fn leader(nodes: &BTreeMap<RaftId, Node>, group: GroupId) -> RaftId {
    let start = Instant::now();
    let any = nodes.values().next().unwrap().host.get(group).unwrap();
    loop {
        let left = DEADLINE.saturating_sub(start.elapsed());
        let running = |l: &RaftId| nodes.contains_key(l);
        let named = any
            .raft
            .wait(Some(left))
            .metrics(|m| m.current_leader.is_some_and(|l| running(&l)), "a running leader")
            .await
            .unwrap_or_else(|e| panic!("group {group} has no running leader: {e}"))
            .current_leader
            .unwrap();
        let candidate = nodes[&named].host.get(group).unwrap();
        let settled = |m: &openraft::RaftMetrics<RaftId, GroupNode>| {
            m.state == ServerState::Leader || m.current_leader != Some(named)
        };
        let own = candidate
            .raft
            .wait(Some(DEADLINE.saturating_sub(start.elapsed())))
            .metrics(settled, "the named leader leads or names another")
            .await
            .unwrap_or_else(|e| panic!("group {group}: node {named} neither leads nor not: {e}"));
        if own.state == ServerState::Leader {
            return named;
        }
    }
}

/// Commits `command` through the group's leader; a node that no longer leads refuses it
/// without applying it, so that refusal alone is retried (bounded).
async fn write(nodes: &BTreeMap<RaftId, Node>, group: GroupId, command: Command) -> Response {
    let start = Instant::now();
    loop {
        let leader = leader(nodes, group).await;
        let raft = nodes[&leader].host.get(group).unwrap().raft;
        match raft.client_write(command.clone()).await {
            Ok(answer) => return answer.data,
            Err(e) if e.forward_to_leader().is_some() && start.elapsed() < DEADLINE => {
                eprintln!("group {group}: node {leader} no longer leads, retrying");
            }
            Err(e) => panic!("group {group}: the write failed: {e}"),
        }
    }
}

fn written(response: &Response) -> Record {
    match response {
        Response::Applied { change: Change::Written(record), .. } => record.clone(),
        other => panic!("expected a write, got {other:?}"),
    }
}

/// Waits until every running node applied `group`'s log up to `index`, then checks they all
/// hold the same records for `names`.
async fn converged(nodes: &BTreeMap<RaftId, Node>, group: GroupId, index: u64, names: &[String]) {
    for (id, node) in nodes {
        let raft = node.host.get(group).unwrap().raft;
        raft.wait(Some(DEADLINE))
            .metrics(|m| m.last_applied.is_some_and(|a| a.index >= index), "applied")
            .await
            .unwrap_or_else(|e| panic!("node {id} did not apply group {group} to {index}: {e}"));
    }
    let reads = |node: &Node| -> Vec<Option<Record>> {
        let state = node.host.get(group).unwrap().state;
        names.iter().map(|name| state.read(NAMESPACE, &key(name)).unwrap()).collect()
    };
    let mut all = nodes.values().map(reads);
    let first = all.next().unwrap();
    assert!(first.iter().all(Option::is_some), "group {group}: records missing: {first:?}");
    for other in all {
        assert_eq!(other, first, "group {group}: nodes hold different records");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_talk_over_tcp_elect_apply_and_a_restarted_host_catches_up() {
    let dirs: Vec<_> = NODES.iter().map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes = BTreeMap::new();
    for (id, dir) in NODES.iter().zip(&dirs) {
        nodes.insert(*id, start_node(*id, dir.path()).await);
    }
    introduce(&nodes);

    eprintln!("phase: every host starts both groups with the same voters; leaders are elected");
    for node in nodes.values() {
        start_groups(node).await;
    }
    for group in GROUPS {
        eprintln!("group {group}: leader {}", leader(&nodes, group).await);
    }

    eprintln!("phase: puts and a compare-and-set through the leader, applied everywhere");
    for group in GROUPS {
        let first = written(&write(&nodes, group, put("counter", "0", PutCondition::None)).await);
        let hit = put("counter", "1", PutCondition::IfMatch(first.mod_revision));
        let second = written(&write(&nodes, group, hit).await);
        assert_eq!((second.version, second.create_revision), (2, first.mod_revision));
        let miss = put("counter", "x", PutCondition::IfMatch(first.mod_revision));
        assert_eq!(
            write(&nodes, group, miss).await,
            Response::PreconditionFailed { current_mod_revision: Some(second.mod_revision) }
        );
        let other = written(&write(&nodes, group, put("other", "y", PutCondition::None)).await);
        let names = ["counter".to_string(), "other".to_string()];
        converged(&nodes, group, other.mod_revision, &names).await;
    }

    eprintln!("phase: messages for a group not hosted or a partition that does not exist");
    let vote = |group| GroupVote {
        group: PartitionId(group),
        request: VoteRequest::new(Vote::new(99, 1), None),
    };
    let timeout = Duration::from_secs(5);
    let asker = &nodes[&1].transport;
    let not_hosted = asker.call_rpc(&name(2), &vote(2), timeout).await.unwrap();
    assert_eq!(not_hosted.unwrap_err(), GroupRefusal::NotHosted { group: 2 });
    let no_partition = asker.call_rpc(&name(2), &vote(PARTITIONS), timeout).await.unwrap();
    let refusal = GroupRefusal::NoSuchPartition { group: PARTITIONS, partitions: PARTITIONS };
    assert_eq!(no_partition.unwrap_err(), refusal);
    // A snapshot chunk far past what was received would make openraft allocate up to its
    // offset: the intake answers openraft's mismatch (the sender starts again from 0).
    let far = GroupSnapshot {
        group: GROUPS[0],
        request: InstallSnapshotRequest {
            vote: Vote::new_committed(99, 1),
            meta: SnapshotMeta {
                last_log_id: None,
                last_membership: Default::default(),
                snapshot_id: "far".into(),
            },
            offset: 1 << 40,
            data: vec![0; 8],
            done: true,
        },
    };
    let answer = asker.call_rpc(&name(2), &far, timeout).await.unwrap().unwrap();
    let Err(RaftError::APIError(InstallSnapshotError::SnapshotMismatch(mismatch))) = answer else {
        panic!("a chunk at 2^40 is refused as a mismatch: {answer:?}");
    };
    assert_eq!((mismatch.expect.offset, mismatch.got.offset), (0, 1 << 40));
    for group in GROUPS {
        let metrics = nodes[&2].host.get(group).unwrap().raft.metrics().borrow().clone();
        assert!(metrics.current_term < 99, "group {group}: the refused vote reached no Raft");
    }

    let leader0 = leader(&nodes, GROUPS[0]).await;
    let stopped = *NODES.iter().find(|id| **id != leader0).unwrap();
    eprintln!("phase: stop node {stopped} (a follower of group 0)");
    let stopped_at = nodes[&stopped].host.get(GROUPS[0]).unwrap().state.applied_index();
    stop_node(nodes.remove(&stopped).unwrap()).await;

    let rounds = 3 * TEST_SNAPSHOT_EVERY_ENTRIES;
    eprintln!("phase: {rounds} writes to each group without node {stopped}");
    let names: Vec<String> = (0..10).map(|i| format!("k{i}")).collect();
    let mut last_revision = BTreeMap::new();
    for round in 0..rounds {
        for group in GROUPS {
            let name = &names[(round % 10) as usize];
            let answer = write(&nodes, group, put(name, &format!("v{round}"), PutCondition::None));
            last_revision.insert(group, written(&answer.await).mod_revision);
        }
    }
    for group in GROUPS {
        converged(&nodes, group, last_revision[&group], &names).await;
    }
    let leader0 = leader(&nodes, GROUPS[0]).await;
    let raft0 = nodes[&leader0].host.get(GROUPS[0]).unwrap().raft;
    let purged = raft0
        .wait(Some(DEADLINE))
        .metrics(|m| m.purged.is_some_and(|p| p.index > stopped_at), "log purged past the stop")
        .await
        .unwrap()
        .purged;
    eprintln!("group 0 purged to {purged:?}; node {stopped} stopped at {stopped_at}");

    eprintln!("phase: restart node {stopped} from its dir on a new port; it catches up");
    let dir = dirs[(stopped - 1) as usize].path();
    let node = start_node(stopped, dir).await;
    start_groups(&node).await;
    nodes.insert(stopped, node);
    introduce(&nodes);
    for group in GROUPS {
        converged(&nodes, group, last_revision[&group], &names).await;
    }
    let restarted0 = nodes[&stopped].host.get(GROUPS[0]).unwrap().raft;
    let snapshot = restarted0.metrics().borrow().snapshot;
    assert!(
        snapshot.is_some_and(|s| s.index > stopped_at),
        "group 0 caught up by snapshot: {snapshot:?}"
    );

    eprintln!("phase: one more write to each group reaches every node by log");
    for group in GROUPS {
        let last = written(&write(&nodes, group, put("k0", "after", PutCondition::None)).await);
        converged(&nodes, group, last.mod_revision, &names).await;
    }

    eprintln!("phase: each node's one syncer flushed the groups' appends");
    for (id, node) in &nodes {
        let stats = node.syncer.stats();
        eprintln!("node {id}: {stats:?}");
        assert!(stats.append_flush_count > 0, "node {id}: {stats:?}");
    }
    for (_, node) in std::mem::take(&mut nodes) {
        stop_node(node).await;
    }
}

/// A host starts only groups of existing partitions, with voters, once each, and at most
/// `groups_max`; after `shutdown` it hosts none. A group whose only voter is this node elects
/// it at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_is_bounded_and_starts_each_group_once() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node_with(HostConfig { groups_max: 2, ..host_config(1) }, dir.path()).await;
    let host = &node.host;
    let me: BTreeMap<RaftId, GroupNode> = [(1, GroupNode { name: "n1".into() })].into();
    let error = |result: Result<_, HostError>| result.err().expect("refused").to_string();
    let no_partition = host.start(PartitionId(PARTITIONS), me.clone()).await;
    assert_eq!(error(no_partition), "group 4 names no partition (the cluster has 4)");
    assert_eq!(error(host.start(PartitionId(0), BTreeMap::new()).await), "group 0 has no voters");
    for group in GROUPS {
        let hosted = host.start(group, me.clone()).await.unwrap();
        let wait = hosted.raft.wait(Some(DEADLINE));
        wait.state(ServerState::Leader, "alone, it leads").await.unwrap();
    }
    let again = host.start(GROUPS[0], me.clone()).await;
    assert_eq!(error(again), "group 0 is already hosted");
    assert_eq!(
        error(host.start(PartitionId(2), me.clone()).await),
        "this node hosts at most 2 groups"
    );
    assert_eq!(host.groups(), GROUPS.to_vec());
    host.shutdown().await;
    assert!(host.groups().is_empty() && host.get(GROUPS[0]).is_none());
    let refusal = host.admit(GROUPS[0]).err().unwrap();
    assert_eq!(refusal, GroupRefusal::NotHosted { group: 0 });
    stop_node(node).await;
}
