//! The running metadata service of one node.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use concord_rpc::{Calls, Endpoint, Router, Rpc, Transport};
use concord_storage::Storage;
use concord_types::NodeId;
use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::metrics::WaitError;
use openraft::{ChangeMembers, Raft, ServerState, SnapshotPolicy};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::messages::{
    ForwardRequest, Forwarded, JoinReply, JoinRequest, RaftAppend, RaftSnapshot, RaftVote,
};
use crate::network::Network;
use crate::state::{Command, CommandResult, Departure, MemberState, MetaState};
use crate::store::{LogStore, StateMachineStore};
use crate::{MetaNode, TypeConfig, raft_id};

/// At most this many voters; every other member is a learner (DESIGN.md §6).
pub const VOTERS_MAX: usize = 5;

/// Timing of the metadata group.
#[derive(Debug, Clone)]
pub struct MetaConfig {
    pub heartbeat: Duration,
    /// Election timeouts are drawn from `[election_timeout, 2 * election_timeout]`.
    pub election_timeout: Duration,
    /// How long a proposal may wait for a leader and a commit before it fails as unavailable.
    pub propose_timeout: Duration,
    /// How often the leader reconciles the Raft voter set with the members.
    pub reconcile_every: Duration,
}

impl Default for MetaConfig {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_millis(250),
            election_timeout: Duration::from_millis(1000),
            propose_timeout: Duration::from_secs(5),
            reconcile_every: Duration::from_millis(500),
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum MetaError {
    /// No leader could commit the change in time (a majority of voters may be down).
    #[error("metadata unavailable: {0}")]
    Unavailable(String),
    /// The state machine refused the command.
    #[error("{0}")]
    Refused(String),
    #[error("metadata service failed: {0}")]
    Fatal(String),
}

/// A node's handle on the metadata group.
pub struct Meta {
    /// This node's Raft id ([`raft_id`] of its name and incarnation).
    raft_id: u64,
    raft: Raft<TypeConfig>,
    sm: StateMachineStore,
    transport: Arc<dyn Transport>,
    config: MetaConfig,
    /// Departed members still in the Raft group: when the leader first saw each, and its last
    /// applied log index then (see [`Meta::reconcile_once`]).
    departing: std::sync::Mutex<std::collections::HashMap<u64, (std::time::Instant, u64)>>,
    /// When the last successful [`Meta::catch_up`] began. The lock also lets one catch-up run
    /// at a time: callers queued behind it reuse it if it began after they asked.
    catch_up_last: tokio::sync::Mutex<Option<Instant>>,
}

/// How long a departed member may stay in the Raft group while it catches up on the entries
/// that removed it; a dead one is removed after this regardless.
const DEPARTED_CATCH_UP: Duration = Duration::from_secs(10);
/// How long a departed member that has the entries is kept, so heartbeats tell it they are
/// committed before it is cut off.
const DEPARTED_LINGER: Duration = Duration::from_secs(1);

impl Meta {
    /// Opens the Raft log and state machine in `storage` and starts this node's Raft member.
    /// A fresh node is not part of any group until [`Meta::bootstrap`] or a leader adds it.
    pub async fn open(
        me: NodeId,
        incarnation: u64,
        storage: Arc<dyn Storage>,
        transport: Arc<dyn Transport>,
        config: MetaConfig,
    ) -> Result<Arc<Meta>, MetaError> {
        let election_ms = config.election_timeout.as_millis() as u64;
        let raft_config = openraft::Config {
            cluster_name: "concord-meta".into(),
            heartbeat_interval: config.heartbeat.as_millis() as u64,
            election_timeout_min: election_ms,
            election_timeout_max: election_ms * 2,
            install_snapshot_timeout: 2000,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(1000),
            max_in_snapshot_log_to_keep: 100,
            ..Default::default()
        }
        .validate()
        .map_err(|e| MetaError::Fatal(e.to_string()))?;
        let log = LogStore::new(storage.clone());
        let sm = StateMachineStore::open(storage).map_err(|e| MetaError::Fatal(e.to_string()))?;
        let network = Network::new(transport.clone());
        let id = raft_id(&me, incarnation);
        let raft = Raft::new(id, Arc::new(raft_config), network, log, sm.clone())
            .await
            .map_err(|e| MetaError::Fatal(e.to_string()))?;
        let departing = Default::default();
        let catch_up_last = tokio::sync::Mutex::new(None);
        let meta =
            Arc::new(Meta { raft_id: id, raft, sm, transport, config, departing, catch_up_last });
        tokio::spawn(keep_address_book(meta.transport.clone(), meta.subscribe()));
        tokio::spawn(reconcile(Arc::downgrade(&meta)));
        Ok(meta)
    }

    /// Whether this node has Raft state (it bootstrapped or was added to a group before).
    pub async fn is_initialized(&self) -> bool {
        self.raft.is_initialized().await.unwrap_or(false)
    }

    /// Founds a new cluster with this node as its only voter and applies `command`
    /// (a [`Command::Bootstrap`]).
    pub async fn bootstrap(&self, node: MetaNode, command: Command) -> Result<(), MetaError> {
        let members = BTreeMap::from([(self.raft_id, node)]);
        if let Err(e) = self.raft.initialize(members).await {
            tracing::debug!(error = %e, "raft already initialized");
        }
        match self.propose(command).await? {
            CommandResult::Refused(why) => Err(MetaError::Refused(why)),
            _ => Ok(()),
        }
    }

    /// The latest applied metadata.
    pub fn state(&self) -> Arc<MetaState> {
        self.sm.current()
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<MetaState>> {
        self.sm.subscribe()
    }

    /// Waits until the applied state satisfies `ready`, or the timeout passes.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        ready: impl Fn(&MetaState) -> bool,
    ) -> Result<Arc<MetaState>, MetaError> {
        let mut states = self.subscribe();
        let wait = states.wait_for(|state| ready(state));
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(state)) => Ok(state.clone()),
            Ok(Err(_)) => Err(MetaError::Fatal("metadata service stopped".into())),
            Err(_) => Err(MetaError::Unavailable("timed out waiting for metadata".into())),
        }
    }

    /// The current metadata leader as this node knows it.
    pub fn leader(&self) -> Option<MetaNode> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let leader = metrics.current_leader?;
        metrics.membership_config.membership().get_node(&leader).cloned()
    }

    /// The names of the Raft voters.
    pub fn voters(&self) -> Vec<String> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let membership = metrics.membership_config.membership();
        let mut voters: Vec<String> = membership
            .voter_ids()
            .filter_map(|id| membership.get_node(&id).map(|n| n.name.clone()))
            .collect();
        voters.sort();
        voters
    }

    /// Commits `command` through the leader, wherever it is, and returns what applying it did.
    /// Fails with [`MetaError::Unavailable`] when no leader commits it within the propose
    /// timeout; the command may still be applied later, so commands are idempotent.
    pub async fn propose(&self, command: Command) -> Result<CommandResult, MetaError> {
        let deadline = Instant::now() + self.config.propose_timeout;
        let mut last_error = String::from("no metadata leader is known");
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(MetaError::Unavailable(format!(
                    "{last_error}; a majority of metadata voters may be down"
                )));
            }
            match tokio::time::timeout(remaining, self.raft.client_write(command.clone())).await {
                Err(_) => last_error = "the metadata change was not committed in time".into(),
                Ok(Ok(response)) => return Ok(response.data),
                Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward)))) => {
                    if let Some(leader) = forward.leader_node {
                        match self.forward(&leader, &command, remaining).await {
                            Ok(result) => return Ok(result),
                            Err(e) => last_error = e,
                        }
                    }
                }
                Ok(Err(RaftError::APIError(e))) => last_error = e.to_string(),
                Ok(Err(RaftError::Fatal(e))) => return Err(MetaError::Fatal(e.to_string())),
            }
            // A leader is being elected or just moved: try again shortly.
            tokio::time::sleep(Duration::from_millis(50).min(remaining)).await;
        }
    }

    async fn forward(
        &self,
        leader: &MetaNode,
        command: &Command,
        timeout: Duration,
    ) -> Result<CommandResult, String> {
        let request = ForwardRequest::Propose(command.clone());
        match self.call_leader(leader, &request, timeout).await? {
            Forwarded::Applied(result) => Ok(result),
            Forwarded::NotLeader => Err(format!("{} is no longer the leader", leader.name)),
            Forwarded::Failed(e) => Err(e),
            other => Err(format!("the leader answered a proposal with {other:?}")),
        }
    }

    /// Sends `request` to `leader` and decodes its answer.
    async fn call_leader(
        &self,
        leader: &MetaNode,
        request: &ForwardRequest,
        timeout: Duration,
    ) -> Result<Forwarded, String> {
        let Some(name) = leader.node_id() else {
            return Err(format!("leader has an invalid name {}", leader.name));
        };
        self.transport.set_peer(name.clone(), leader.peer_addr.clone());
        let call = self.transport.call_rpc(&name, request, timeout);
        call.await.map_err(|e| format!("forwarding to leader {name}: {e}"))
    }

    /// Brings this node's applied metadata up to everything committed before the call: gets
    /// the leader's read index (from this node's Raft if it leads, else by asking the leader)
    /// and waits until that entry is applied here. A node that does not know a name (say a
    /// namespace just created through another node) calls this before answering that it does
    /// not exist. Fails as unavailable when no leader confirms a read index, or this node does
    /// not apply up to it, within `timeout`.
    ///
    /// One catch-up runs at a time, and callers queued behind one that began after they asked
    /// reuse it, so a flood of lookups of unknown names costs the leader one read index at a
    /// time.
    pub async fn catch_up(&self, timeout: Duration) -> Result<(), MetaError> {
        let asked = Instant::now();
        let deadline = asked + timeout;
        let late = |what: &str| {
            MetaError::Unavailable(format!("catching up with the metadata leader: {what}"))
        };
        let mut last = tokio::time::timeout_at(deadline, self.catch_up_last.lock())
            .await
            .map_err(|_| late("timed out behind another catch-up"))?;
        if last.is_some_and(|began| began >= asked) {
            return Ok(());
        }
        let began = Instant::now();
        let index = self.read_index(deadline).await.map_err(|e| late(&e))?;
        let remaining = deadline.saturating_duration_since(Instant::now());
        self.raft
            .wait(Some(remaining))
            .applied_index_at_least(index, "metadata catch-up")
            .await
            .map_err(|e| match e {
                WaitError::Timeout(..) => late("timed out applying up to the read index"),
                WaitError::ShuttingDown => MetaError::Fatal("metadata service stopped".into()),
            })?;
        *last = Some(began);
        Ok(())
    }

    /// The leader's read index, by `deadline`.
    async fn read_index(&self, deadline: Instant) -> Result<Option<u64>, String> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let asked = tokio::time::timeout(remaining, self.raft.get_read_log_id()).await;
        match asked.map_err(|_| "the leader did not confirm its leadership in time".to_string())? {
            Ok((read, _applied)) => Ok(read.map(|id| id.index)),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(forward))) => {
                let leader = forward.leader_node.ok_or("no metadata leader is known")?;
                let remaining = deadline.saturating_duration_since(Instant::now());
                match self.call_leader(&leader, &ForwardRequest::ReadIndex, remaining).await? {
                    Forwarded::ReadIndex(index) => Ok(index),
                    Forwarded::NotLeader => Err(format!("{} is no longer the leader", leader.name)),
                    Forwarded::Failed(e) => Err(e),
                    other => Err(format!("the leader answered a read index with {other:?}")),
                }
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// On the leader: the answer to a forwarded [`ForwardRequest`].
    async fn serve_forwarded(&self, request: ForwardRequest) -> Forwarded {
        let timeout = self.config.propose_timeout;
        match request {
            ForwardRequest::Propose(command) => {
                match tokio::time::timeout(timeout, self.raft.client_write(command)).await {
                    Ok(Ok(response)) => Forwarded::Applied(response.data),
                    Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => {
                        Forwarded::NotLeader
                    }
                    Ok(Err(e)) => Forwarded::Failed(e.to_string()),
                    Err(_) => Forwarded::Failed("the leader did not commit in time".into()),
                }
            }
            ForwardRequest::ReadIndex => {
                match tokio::time::timeout(timeout, self.raft.get_read_log_id()).await {
                    Ok(Ok((read, _applied))) => Forwarded::ReadIndex(read.map(|id| id.index)),
                    Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(_)))) => {
                        Forwarded::NotLeader
                    }
                    Ok(Err(e)) => Forwarded::Failed(e.to_string()),
                    Err(_) => Forwarded::Failed("the leader did not confirm in time".into()),
                }
            }
            ForwardRequest::Departure { node, incarnation } => {
                Forwarded::Departure(self.state().departure(&node, incarnation).cloned())
            }
        }
    }

    /// Asks the other members this node's metadata lists whether they record the departure of
    /// `node`'s data dir of `incarnation`: a node removed while it was down still finds itself
    /// a member in its own metadata. The first member that knows of the departure answers it;
    /// members that do not answer within `timeout` are skipped (a whole cluster may be
    /// restarting), so `None` means none said so.
    pub async fn departure_known_to_others(
        &self,
        node: &NodeId,
        incarnation: u64,
        timeout: Duration,
    ) -> Option<Departure> {
        let request = ForwardRequest::Departure { node: node.clone(), incarnation };
        let mut asks = tokio::task::JoinSet::new();
        for (name, member) in &self.state().members {
            if name == node {
                continue;
            }
            let (transport, name, request) =
                (self.transport.clone(), name.clone(), request.clone());
            transport.set_peer(name.clone(), member.peer_addr.to_string());
            asks.spawn(async move {
                let answer = transport.call_rpc(&name, &request, timeout).await.ok()?;
                departure_answered(&request, answer, &name)
            });
        }
        while let Some(answer) = asks.join_next().await {
            if let Ok(Some(departure)) = answer {
                return Some(departure);
            }
        }
        None
    }

    /// Admits `request`'s node, if it is the node `from` that said hello on the connection: a
    /// node joins as itself, never on behalf of another.
    async fn join(&self, from: &NodeId, request: JoinRequest) -> JoinReply {
        if request.node != *from {
            return JoinReply::Refused(format!(
                "a join for node {} on a connection from node {from}: a node joins as itself",
                request.node
            ));
        }
        let command = Command::AddNode {
            node: request.node.clone(),
            http_addr: request.http_addr,
            peer_addr: request.peer_addr,
            incarnation: request.incarnation,
        };
        match self.propose(command).await {
            Ok(CommandResult::Refused(why)) => JoinReply::Refused(why),
            Ok(_) => match &self.state().ring {
                Some(ring) => {
                    tracing::info!(node = %request.node, "admitted a node");
                    JoinReply::Accepted { partitions: ring.partitions().get() }
                }
                None => JoinReply::Refused("the cluster is not bootstrapped".into()),
            },
            Err(e) => JoinReply::Refused(e.to_string()),
        }
    }

    /// Stops this node's Raft member.
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
    }

    fn is_leader(&self) -> bool {
        self.raft.metrics().borrow().state == ServerState::Leader
    }

    /// On the leader: make the Raft group match the members — every member a learner, the
    /// largest odd number up to [`VOTERS_MAX`] of them voters, departed members removed.
    async fn reconcile_once(&self) -> Result<(), String> {
        if !self.is_leader() {
            return Ok(());
        }
        let state = self.state();
        let membership = self.raft.metrics().borrow().membership_config.clone();
        let membership = membership.membership();
        let known: BTreeSet<u64> = membership.nodes().map(|(id, _)| *id).collect();
        for (name, member) in &state.members {
            if !known.contains(&member.raft_id) {
                let node = MetaNode {
                    name: name.to_string(),
                    peer_addr: member.peer_addr.to_string(),
                    http_addr: member.http_addr.to_string(),
                };
                tracing::info!(node = %name, "adding metadata learner");
                self.raft
                    .add_learner(member.raft_id, node, false)
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let desired = desired_voters(&state, &voters);
        if desired != voters && !desired.is_empty() {
            tracing::info!(?desired, "changing metadata voters");
            self.raft.change_membership(desired, true).await.map_err(|e| e.to_string())?;
            return Ok(());
        }
        let member_ids: BTreeSet<u64> = state.members.values().map(|m| m.raft_id).collect();
        let departed: BTreeSet<u64> = known
            .iter()
            .filter(|id| !member_ids.contains(id) && !voters.contains(id))
            .copied()
            .collect();
        let departed = self.caught_up(departed);
        if !departed.is_empty() && !state.members.is_empty() {
            tracing::info!(?departed, "removing departed members from the metadata group");
            self.raft
                .change_membership(ChangeMembers::RemoveNodes(departed), false)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

impl Meta {
    /// Of the departed members still in the Raft group, those that may be cut off now: they hold
    /// every entry the leader had applied when it first saw them departed (so they learn that
    /// they left, and their own view stops listing them) and have had a moment to hear that
    /// those entries are committed, or they have not caught up within [`DEPARTED_CATCH_UP`]
    /// (dead or partitioned away).
    fn caught_up(&self, departed: BTreeSet<u64>) -> BTreeSet<u64> {
        let metrics = self.raft.metrics().borrow().clone();
        let applied = metrics.last_applied.map_or(0, |id| id.index);
        let now = std::time::Instant::now();
        let mut departing = self.departing.lock().expect("departing lock");
        departing.retain(|id, _| departed.contains(id));
        departed
            .into_iter()
            .filter(|id| {
                let (since, index) = *departing.entry(*id).or_insert((now, applied));
                let matched = metrics
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(id).cloned().flatten())
                    .map_or(0, |log_id| log_id.index);
                let elapsed = now.duration_since(since);
                (matched >= index && elapsed >= DEPARTED_LINGER) || elapsed >= DEPARTED_CATCH_UP
            })
            .collect()
    }
}

impl Meta {
    /// Registers the metadata layer's endpoints with the node's router: `Join`, `MetaForward`
    /// and the three Raft RPCs.
    pub fn register(self: &Arc<Self>, router: &mut Router) {
        router
            .endpoint::<JoinRequest, _>(self.clone())
            .endpoint::<ForwardRequest, _>(self.clone())
            .endpoint::<RaftAppend, _>(self.clone())
            .endpoint::<RaftVote, _>(self.clone())
            .endpoint::<RaftSnapshot, _>(self.clone());
    }
}

/// A `Join` is admitted only for the node that said hello on the connection (`from`).
impl Endpoint<JoinRequest> for Meta {
    async fn handle(&self, from: &NodeId, request: JoinRequest) -> Result<JoinReply, String> {
        Ok(self.join(from, request).await)
    }
}

/// A `Departure` question is answered only about the node that asks (`from`): a restarting
/// node asks whether it was removed, never about another.
impl Endpoint<ForwardRequest> for Meta {
    async fn handle(&self, from: &NodeId, request: ForwardRequest) -> Result<Forwarded, String> {
        if let ForwardRequest::Departure { node, .. } = &request
            && node != from
        {
            return Err(format!(
                "a departure question about node {node} on a connection from node {from}: a \
                 node asks only about itself"
            ));
        }
        Ok(self.serve_forwarded(request).await)
    }
}

/// The departure `answer` to `question` says was recorded, if it is an answer to that
/// question: a departure of another node or data dir (a wrong or forged answer) is ignored,
/// with a warning, rather than stop the asking node.
fn departure_answered(
    question: &ForwardRequest,
    answer: Forwarded,
    from: &NodeId,
) -> Option<Departure> {
    let ForwardRequest::Departure { node, incarnation } = question else { return None };
    match answer {
        Forwarded::Departure(Some(departure)) if departure.is_of(node, *incarnation) => {
            Some(departure)
        }
        Forwarded::Departure(None) => None,
        other => {
            tracing::warn!(peer = %from, answer = ?other, "ignored an answer that is not about this node's departure");
            None
        }
    }
}

impl Endpoint<RaftAppend> for Meta {
    async fn handle(
        &self,
        _from: &NodeId,
        RaftAppend(request): RaftAppend,
    ) -> Result<<RaftAppend as Rpc>::Reply, String> {
        Ok(self.raft.append_entries(request).await)
    }
}

impl Endpoint<RaftVote> for Meta {
    async fn handle(
        &self,
        _from: &NodeId,
        RaftVote(request): RaftVote,
    ) -> Result<<RaftVote as Rpc>::Reply, String> {
        Ok(self.raft.vote(request).await)
    }
}

impl Endpoint<RaftSnapshot> for Meta {
    async fn handle(
        &self,
        _from: &NodeId,
        RaftSnapshot(request): RaftSnapshot,
    ) -> Result<<RaftSnapshot as Rpc>::Reply, String> {
        Ok(self.raft.install_snapshot(request).await)
    }
}

/// The voter set the leader steers towards: keep current voters that are still owning
/// members, fill up from the other members in name order, shrink leaving ones first, and keep
/// the count odd.
pub fn desired_voters(state: &MetaState, current: &BTreeSet<u64>) -> BTreeSet<u64> {
    if state.members.is_empty() {
        return current.clone();
    }
    let eligible: Vec<(u64, bool)> =
        state.members.values().map(|m| (m.raft_id, m.state != MemberState::Leaving)).collect();
    let owners = eligible.iter().filter(|(_, owning)| *owning).count().max(1);
    let mut count = owners.min(VOTERS_MAX);
    if count % 2 == 0 {
        count -= 1;
    }
    let mut voters: Vec<u64> = eligible
        .iter()
        .filter(|(id, owning)| *owning && current.contains(id))
        .map(|(id, _)| *id)
        .collect();
    for (id, owning) in &eligible {
        if voters.len() >= count {
            break;
        }
        if *owning && !voters.contains(id) {
            voters.push(*id);
        }
    }
    voters.truncate(count);
    voters.into_iter().collect()
}

/// Keeps the transport's address book in step with the members' peer addresses.
async fn keep_address_book(
    transport: Arc<dyn Transport>,
    mut states: watch::Receiver<Arc<MetaState>>,
) {
    loop {
        let state = states.borrow_and_update().clone();
        for (name, member) in &state.members {
            transport.set_peer(name.clone(), member.peer_addr.to_string());
        }
        if states.changed().await.is_err() {
            return;
        }
    }
}

/// Runs [`Meta::reconcile_once`] on every state change and periodically, while the service
/// lives.
async fn reconcile(meta: std::sync::Weak<Meta>) {
    let (mut states, every) = match meta.upgrade() {
        Some(meta) => (meta.subscribe(), meta.config.reconcile_every),
        None => return,
    };
    loop {
        let _ = tokio::time::timeout(every, states.changed()).await;
        let Some(meta) = meta.upgrade() else { return };
        if let Err(e) = meta.reconcile_once().await {
            tracing::debug!(error = %e, "metadata reconcile failed; retrying");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DepartureKind;

    fn node(name: &str) -> NodeId {
        NodeId::new(name).unwrap()
    }

    fn departure(name: &str, incarnation: u64) -> Departure {
        Departure { node: node(name), incarnation, how: DepartureKind::Removed }
    }

    /// A restarting node asks the others whether its data dir departed, and stops if one says
    /// so. Only an answer about that node and that data dir counts: a member answering with
    /// another node's departure, or another data dir's, does not stop it.
    #[test]
    fn only_a_departure_of_the_asking_data_dir_stops_a_restarting_node() {
        let question = ForwardRequest::Departure { node: node("n2"), incarnation: 7 };
        let peer = node("n3");
        let answered = |answer| departure_answered(&question, answer, &peer);
        assert_eq!(
            answered(Forwarded::Departure(Some(departure("n2", 7)))),
            Some(departure("n2", 7))
        );
        assert_eq!(answered(Forwarded::Departure(None)), None);
        assert_eq!(answered(Forwarded::Departure(Some(departure("n1", 7)))), None);
        assert_eq!(answered(Forwarded::Departure(Some(departure("n2", 8)))), None);
        assert_eq!(answered(Forwarded::NotLeader), None);
        assert_eq!(answered(Forwarded::ReadIndex(Some(3))), None);
    }
}
