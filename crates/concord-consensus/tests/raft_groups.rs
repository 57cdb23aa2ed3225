//! Three nodes, each with its own fjall database and one syncer, host two strong groups
//! (partitions 0 and 1) with real `openraft::Raft` instances, wired by an in-memory test
//! network that passes every RPC through postcard as the real network will (so a follower
//! decodes, and validates, every command it receives).
//!
//! The story: the groups elect leaders; puts, a compare-and-set hit and miss, a create-only
//! and a conditional delete answer as the semantics say, and every node applies the same
//! records; a follower is stopped, the groups go on (enough writes that group 0 snapshots and
//! purges its log past the stopped node), the follower restarts from its data dir and catches
//! up (group 0 by snapshot, group 1 by log), its one syncer flushing both groups' appends.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use concord_consensus::{
    Change, Command, DeleteCondition, GroupId, GroupLogStore, GroupNode, GroupStateMachine,
    GroupTiming, PutCondition, RaftId, Record, Response, Syncer, TypeConfig, Value, raft_config,
};
use concord_storage::{FjallOptions, FjallStorage, Storage};
use concord_types::{Key, NamespaceId, PartitionId};
use openraft::error::{InstallSnapshotError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{Raft, SnapshotPolicy};
use serde::Serialize;
use serde::de::DeserializeOwned;

const GROUPS: [GroupId; 2] = [PartitionId(0), PartitionId(1)];
const NODES: [RaftId; 3] = [1, 2, 3];
const NAMESPACE: NamespaceId = NamespaceId(1);
/// Group 0's snapshots come this often in the test, so a short run purges its log.
const TEST_SNAPSHOT_EVERY_ENTRIES: u64 = 20;
const DEADLINE: Duration = Duration::from_secs(20);

type GroupRaft = Raft<TypeConfig>;

/// Which Raft instances are running, by group and node: the in-memory network.
#[derive(Default)]
struct Router {
    rafts: Mutex<HashMap<(GroupId, RaftId), GroupRaft>>,
}

impl Router {
    fn get(&self, group: GroupId, node: RaftId) -> Option<GroupRaft> {
        self.rafts.lock().unwrap().get(&(group, node)).cloned()
    }
}

struct TestNetwork {
    group: GroupId,
    router: Arc<Router>,
}

struct TestClient {
    group: GroupId,
    target: RaftId,
    router: Arc<Router>,
}

impl RaftNetworkFactory<TypeConfig> for TestNetwork {
    type Network = TestClient;

    async fn new_client(&mut self, target: RaftId, _node: &GroupNode) -> TestClient {
        TestClient { group: self.group, target, router: self.router.clone() }
    }
}

/// Encodes and decodes as the real network will.
fn wire<T: Serialize + DeserializeOwned>(message: &T) -> T {
    postcard::from_bytes(&postcard::to_allocvec(message).unwrap()).expect("a Raft message decodes")
}

impl TestClient {
    /// The target's Raft, or `None` while its node is down.
    fn target(&self) -> Option<GroupRaft> {
        self.router.get(self.group, self.target)
    }

    fn down<E: std::error::Error>(&self) -> RPCError<RaftId, GroupNode, E> {
        let down = std::io::Error::other(format!("node {} is down", self.target));
        RPCError::Unreachable(Unreachable::new(&down))
    }
}

impl RaftNetwork<TypeConfig> for TestClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<RaftId>, RPCError<RaftId, GroupNode, RaftError<RaftId>>> {
        let Some(raft) = self.target() else { return Err(self.down()) };
        let answer = raft.append_entries(wire(&rpc)).await;
        answer
            .map(|a| wire(&a))
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<RaftId>,
        RPCError<RaftId, GroupNode, RaftError<RaftId, InstallSnapshotError>>,
    > {
        let Some(raft) = self.target() else { return Err(self.down()) };
        let answer = raft.install_snapshot(wire(&rpc)).await;
        answer
            .map(|a| wire(&a))
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<RaftId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<RaftId>, RPCError<RaftId, GroupNode, RaftError<RaftId>>> {
        let Some(raft) = self.target() else { return Err(self.down()) };
        let answer = raft.vote(wire(&rpc)).await;
        answer
            .map(|a| wire(&a))
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

/// One running node: its database, its syncer, and its groups.
struct Node {
    storage: Arc<dyn Storage>,
    syncer: Syncer,
    groups: BTreeMap<GroupId, (GroupRaft, GroupStateMachine)>,
}

fn config(group: GroupId) -> Arc<openraft::Config> {
    let mut config =
        raft_config(group, GroupTiming { heartbeat_ms: 50, election_timeout_ms: 300 }).unwrap();
    if group == GROUPS[0] {
        config.snapshot_policy = SnapshotPolicy::LogsSinceLast(TEST_SNAPSHOT_EVERY_ENTRIES);
        config.max_in_snapshot_log_to_keep = 5;
        config.purge_batch_size = 1;
    }
    Arc::new(config.validate().unwrap())
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

async fn start_node(id: RaftId, dir: &Path, router: &Arc<Router>) -> Node {
    let storage = open_storage(dir);
    let syncer = Syncer::start(storage.clone(), 1024).unwrap();
    let mut groups = BTreeMap::new();
    for group in GROUPS {
        let log = GroupLogStore::new(group, storage.clone(), syncer.clone());
        let sm = GroupStateMachine::open(group, storage.clone(), syncer.clone()).unwrap();
        let network = TestNetwork { group, router: router.clone() };
        let raft = Raft::new(id, config(group), network, log, sm.clone()).await.unwrap();
        router.rafts.lock().unwrap().insert((group, id), raft.clone());
        groups.insert(group, (raft, sm));
    }
    Node { storage, syncer, groups }
}

async fn stop_node(id: RaftId, node: Node, router: &Router) {
    for (group, (raft, _)) in node.groups {
        router.rafts.lock().unwrap().remove(&(group, id));
        raft.shutdown().await.unwrap();
    }
    node.storage.persist().unwrap();
}

fn key(name: &str) -> Key {
    Key::new(name.as_bytes().to_vec()).unwrap()
}

fn put(name: &str, text: &str, condition: PutCondition) -> Command {
    let value = Value::new(text.as_bytes().to_vec(), "text/plain".into()).unwrap();
    Command::Put { namespace: NAMESPACE, key: key(name), value, condition }
}

/// The node that leads `group`, once one does.
async fn leader(nodes: &BTreeMap<RaftId, Node>, group: GroupId) -> RaftId {
    let (any, _) = nodes.values().next().unwrap().groups[&group].clone();
    let metrics = any
        .wait(Some(DEADLINE))
        .metrics(|m| m.current_leader.is_some_and(|l| nodes.contains_key(&l)), "a running leader")
        .await
        .unwrap();
    metrics.current_leader.unwrap()
}

/// Commits `command` through the group's leader. A node that is no longer the leader refuses
/// it without applying it, so that refusal alone is retried (bounded).
async fn write(nodes: &BTreeMap<RaftId, Node>, group: GroupId, command: Command) -> Response {
    let start = Instant::now();
    loop {
        let leader = leader(nodes, group).await;
        let (raft, _) = &nodes[&leader].groups[&group];
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

/// Waits until every running node applied `group`'s log up to `index` (the revision of a write
/// the leader answered: its metrics may not show it yet), then checks they all hold the same
/// records for `names`.
async fn converged(nodes: &BTreeMap<RaftId, Node>, group: GroupId, index: u64, names: &[String]) {
    for (id, node) in nodes {
        let (raft, _) = &node.groups[&group];
        let applied = |m: &openraft::RaftMetrics<RaftId, GroupNode>| {
            m.last_applied.is_some_and(|applied| applied.index >= index)
        };
        raft.wait(Some(DEADLINE))
            .metrics(applied, "applied")
            .await
            .unwrap_or_else(|e| panic!("node {id} did not apply group {group} to {index}: {e}"));
    }
    let reads = |node: &Node| -> Vec<Option<Record>> {
        let (_, sm) = &node.groups[&group];
        names.iter().map(|name| sm.read(NAMESPACE, &key(name)).unwrap()).collect()
    };
    let mut all = nodes.values().map(reads);
    let first = all.next().unwrap();
    for other in all {
        assert_eq!(other, first, "group {group}: nodes hold different records");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_elect_apply_compare_and_set_and_a_restarted_node_catches_up() {
    let dirs: Vec<_> = NODES.iter().map(|_| tempfile::tempdir().unwrap()).collect();
    let router = Arc::new(Router::default());
    let mut nodes = BTreeMap::new();
    for (id, dir) in NODES.iter().zip(&dirs) {
        nodes.insert(*id, start_node(*id, dir.path(), &router).await);
    }

    eprintln!("phase: initialize both groups on node 1 and elect leaders");
    let members: BTreeMap<RaftId, GroupNode> =
        NODES.iter().map(|id| (*id, GroupNode { name: format!("n{id}") })).collect();
    for group in GROUPS {
        nodes[&1].groups[&group].0.initialize(members.clone()).await.unwrap();
        eprintln!("group {group}: leader {}", leader(&nodes, group).await);
    }

    eprintln!("phase: puts, compare-and-set, create-only, conditional delete");
    for group in GROUPS {
        let first = written(&write(&nodes, group, put("counter", "0", PutCondition::None)).await);
        assert_eq!((first.version, first.create_revision), (1, first.mod_revision));
        let hit =
            write(&nodes, group, put("counter", "1", PutCondition::IfMatch(first.mod_revision)))
                .await;
        let second = written(&hit);
        assert_eq!((second.version, second.create_revision), (2, first.mod_revision));
        let miss =
            write(&nodes, group, put("counter", "x", PutCondition::IfMatch(first.mod_revision)))
                .await;
        assert_eq!(
            miss,
            Response::PreconditionFailed { current_mod_revision: Some(second.mod_revision) }
        );
        let taken = write(&nodes, group, put("counter", "y", PutCondition::CreateOnly)).await;
        assert_eq!(
            taken,
            Response::PreconditionFailed { current_mod_revision: Some(second.mod_revision) }
        );
        let created =
            written(&write(&nodes, group, put("lock", "me", PutCondition::CreateOnly)).await);
        let delete = Command::Delete {
            namespace: NAMESPACE,
            key: key("lock"),
            condition: DeleteCondition::IfMatch(created.mod_revision),
        };
        let deleted = write(&nodes, group, delete).await;
        let Response::Applied { change: Change::Deleted { existed: true }, revision } = deleted
        else {
            panic!("the conditional delete applies: {deleted:?}");
        };
        let names = ["counter".to_string(), "lock".to_string()];
        converged(&nodes, group, revision, &names).await;
    }

    eprintln!("phase: stop a follower of group 0");
    let stopped = *NODES.iter().find(|id| **id != leader_now(&nodes, GROUPS[0])).unwrap();
    let stopped_at = nodes[&stopped].groups[&GROUPS[0]].1.applied_index();
    let node = nodes.remove(&stopped).unwrap();
    stop_node(stopped, node, &router).await;

    eprintln!(
        "phase: 3 x {TEST_SNAPSHOT_EVERY_ENTRIES} writes to each group without node {stopped}"
    );
    let names: Vec<String> = (0..10).map(|i| format!("k{i}")).collect();
    let mut last_revision = BTreeMap::new();
    for round in 0..3 * TEST_SNAPSHOT_EVERY_ENTRIES {
        for group in GROUPS {
            let name = &names[(round % 10) as usize];
            let answer = write(&nodes, group, put(name, &format!("v{round}"), PutCondition::None));
            last_revision.insert(group, written(&answer.await).mod_revision);
        }
    }
    let group0_leader = leader(&nodes, GROUPS[0]).await;
    let (raft0, _) = &nodes[&group0_leader].groups[&GROUPS[0]];
    let purged = raft0
        .wait(Some(DEADLINE))
        .metrics(
            |m| m.purged.is_some_and(|p| p.index > stopped_at),
            "log purged past the stopped node",
        )
        .await
        .unwrap()
        .purged;
    eprintln!("group 0 purged to {purged:?}; node {stopped} stopped at {stopped_at}");

    eprintln!("phase: restart node {stopped} from its data dir and catch up");
    let dir = dirs[(stopped - 1) as usize].path();
    nodes.insert(stopped, start_node(stopped, dir, &router).await);
    for group in GROUPS {
        converged(&nodes, group, last_revision[&group], &names).await;
    }
    let (restarted0, _) = &nodes[&stopped].groups[&GROUPS[0]];
    let snapshot = restarted0.metrics().borrow().snapshot;
    assert!(
        snapshot.is_some_and(|s| s.index > stopped_at),
        "group 0 caught up by snapshot: {snapshot:?}"
    );

    eprintln!("phase: each node's one syncer flushed both groups' appends");
    for (id, node) in &nodes {
        let stats = node.syncer.stats();
        eprintln!("node {id}: {stats:?}");
        assert!(stats.append_flush_count > 0, "node {id}: {stats:?}");
        assert!(stats.persist_count <= stats.append_flush_count + stats.durable_wait_count);
    }
    for (id, node) in std::mem::take(&mut nodes) {
        stop_node(id, node, &router).await;
    }
}

fn leader_now(nodes: &BTreeMap<RaftId, Node>, group: GroupId) -> RaftId {
    let (raft, _) = &nodes.values().next().unwrap().groups[&group];
    raft.metrics().borrow().current_leader.expect("group 0 has a leader")
}
