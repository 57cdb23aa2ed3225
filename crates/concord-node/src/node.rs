//! Building a node from its configuration, and taking it down.
//!
//! Startup, in order: lock the data dir; learn the identity (stored, or — for a fresh node with
//! `--join` — from the seed, which also admits the node to the cluster); open storage; start
//! the transport, the metadata group, SWIM, the replica layer and handoff; start serving peers;
//! then bootstrap a new cluster, or wait until the metadata shows this node as a member. A
//! node whose data dir left the cluster, or was removed from it, does not start
//! (`departure`), and a running node that leaves stops serving: [`Node::departed`] resolves.
//!
//! Shutdown stops the background tasks and waits for them (bounded), then SWIM, the peer
//! listener and the metadata group, and flushes storage last.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use concord_consensus::{GroupHost, HostConfig, Syncer};
use concord_membership::{MembershipConfig, MembershipHandle};
use concord_meta::{Command, CommandResult, Meta, MetaConfig, MetaNode, NamespaceEntry};
use concord_replica::background::Background;
use concord_replica::{
    Actors, DeletedConfig, ExchangeConfig, HandoffConfig, HintConfig, Replica, ReplicaParts,
    TombstoneConfig,
};
use concord_ring::PartitionCount;
use concord_rpc::{
    Calls, Faults, Local, MessageKind, RpcServer, ServerLimits, TcpTransport, Transport,
    TransportConfig,
};
use concord_storage::{
    Durability, EngineWatch, FjallOptions, FjallStorage, ObjectStore, ObjectStoreOptions, Storage,
};
use concord_types::{Addr, ClusterId, FailureLog, NodeId, WallClock};
use rand::Rng;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::DurabilityMode;
use crate::database::{Database, DatabaseParts};
use crate::departure::{self, Departed};
use crate::identity::{DataDirLock, draw_incarnation, lock_data_dir};
use crate::namespaces::Namespaces;
use crate::peers::{SwimPeers, SwimTransport};
use crate::tasks::BackgroundTasks;
use crate::{Config, Error, Identity, Metrics};

/// Threads of the background lane (handoff scans and decodes; their priority is
/// `cluster.handoff_nice`).
const BULK_THREADS: usize = 2;

/// Most log-append callbacks waiting for the node-wide group log syncer (a bound, invariant 5).
const GROUP_SYNC_QUEUE_MAX: usize = 1024;

/// How long a fresh node waits to see itself in the replicated metadata after joining.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a restarting member waits for a seed to confirm they share a cluster.
const SEED_CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// How long shutdown waits for the background tasks to end their round (an exchange or a
/// handoff chunk in flight, bounded by the request deadline) before aborting them.
const TASKS_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The system clock, shifted by the fault-injection clock offset (zero unless a test sets it).
pub(crate) struct NodeClock {
    pub(crate) faults: Arc<Faults>,
}

impl WallClock for NodeClock {
    fn now_ms(&self) -> u64 {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        now.saturating_add_signed(self.faults.clock_offset_ms())
    }
}

/// A running node.
pub struct Node {
    database: Arc<Database>,
    config: Config,
    meta: Arc<Meta>,
    /// The strong namespaces' Raft groups this node hosts (none until the node wiring of
    /// issue 22 starts them); its endpoints answer group messages from the first start.
    groups: GroupHost,
    membership: MembershipHandle,
    rpc: tokio::sync::Mutex<Option<RpcServer>>,
    faults: Arc<Faults>,
    /// Stopped, and waited for, first at shutdown.
    tasks: tokio::sync::Mutex<BackgroundTasks>,
    peer_addr: String,
    /// `Some` once this node has left the cluster or been removed from it.
    departed: watch::Receiver<Option<Departed>>,
    /// Held until the node is dropped, so a second process cannot open the same data dir.
    _lock: DataDirLock,
}

impl Node {
    /// Starts a node whose HTTP API will be reachable at `http_addr` (already bound by the
    /// caller, so that the address stored in the cluster metadata is the real one).
    pub async fn start(config: Config, http_addr: String) -> Result<Node, Error> {
        config.validate()?;
        let data_dir = &config.node.data_dir;
        let lock = lock_data_dir(data_dir)?;
        let stored = Identity::load(data_dir, &config.node.id)?;
        let node_id = match &stored {
            Some(identity) => identity.node_id.clone(),
            None if config.node.id.is_empty() => {
                NodeId::new(format!("n-{:08x}", rand::rng().random::<u32>()))?
            }
            None => NodeId::new(config.node.id.clone())?,
        };

        let metrics = Arc::new(Metrics::new());
        let faults = Arc::new(Faults::new());
        let local = Arc::new(Local::new(node_id.clone(), stored.as_ref().map(|i| i.cluster_id)));
        let transport: Arc<dyn Transport> = Arc::new(TcpTransport::new(
            local.clone(),
            faults.clone(),
            metrics.rpc().clone(),
            TransportConfig::default(),
        ));
        let listener = TcpListener::bind(&config.peer.addr).await.map_err(|e| {
            Error::Startup(format!("cannot listen for peers on {}: {e}", config.peer.addr))
        })?;
        let peer_addr = if config.peer.advertise.is_empty() {
            listener.local_addr().map_err(|e| Error::Startup(e.to_string()))?.to_string()
        } else {
            config.peer.advertise.clone()
        };
        // Parsed once: these are what the metadata records and every member dials.
        let addrs = NodeAddrs {
            http: Addr::parse_field("http address", http_addr)?,
            peer: Addr::parse_field("peer address (peer.advertise)", peer_addr)?,
        };

        // A fresh node with seeds joins first: the seed's handshake tells it the cluster id.
        let joiner = |incarnation| concord_meta::JoinRequest {
            node: node_id.clone(),
            http_addr: addrs.http.clone(),
            peer_addr: addrs.peer.clone(),
            incarnation,
        };
        let (identity, joined) = match stored {
            Some(identity) => (identity, false),
            None if !config.cluster.join.is_empty() => {
                let request = joiner(draw_incarnation());
                let identity = join(&*transport, &config.cluster.join, &request).await?;
                identity.write(data_dir)?;
                (identity, true)
            }
            None => {
                let identity = Identity {
                    node_id: node_id.clone(),
                    cluster_id: ClusterId(rand::rng().random()),
                    partitions: config.cluster.partitions,
                    incarnation: draw_incarnation(),
                };
                identity.write(data_dir)?;
                (identity, false)
            }
        };
        if local.cluster_id().is_none() {
            local
                .set_cluster_id(identity.cluster_id)
                .map_err(|e| Error::Startup(format!("cluster id: {e:?}")))?;
        }
        let partitions = PartitionCount::new(identity.partitions).ok_or_else(|| {
            Error::Startup(format!("invalid stored partition count {}", identity.partitions))
        })?;

        let clock: Arc<dyn WallClock> = Arc::new(NodeClock { faults: faults.clone() });
        let engine = FjallOptions {
            memtable_bytes: config.storage.memtable_bytes,
            background_threads: config.storage.background_threads,
            cache_bytes: config.storage.block_cache_bytes,
            writeback_step_bytes: config.storage.table_writeback_bytes,
        };
        let storage: Arc<dyn Storage> =
            Arc::new(FjallStorage::open(&data_dir.join("db"), &engine)?);
        // Samples flushes and compactions into the metrics and the debug log; it holds the
        // storage weakly and ends after it is closed.
        EngineWatch::spawn(&storage, metrics.clone());
        let grace = Duration::from_secs(config.anti_entropy.tombstone_grace_s);
        let allow = config.anti_entropy.start_after_grace;
        crate::downtime::check(&*storage, &*clock, grace, allow, node_id.as_str())?;
        let meta = Meta::open(
            node_id.clone(),
            identity.incarnation,
            storage.clone(),
            transport.clone(),
            MetaConfig::default(),
        )
        .await?;
        departure::check_at_start(&meta, &identity, data_dir.clone(), &config.cluster.join).await?;
        if !joined && !config.cluster.join.is_empty() {
            if meta.is_initialized().await {
                // A member restarting with its --join flags: the seeds may be down too (a whole
                // cluster restarting), so only a refusal — another cluster — stops it.
                check_same_cluster(&*transport, &config.cluster.join).await?;
            } else {
                // Restarted after a failed join: try again, as the same incarnation.
                join(&*transport, &config.cluster.join, &joiner(identity.incarnation)).await?;
            }
        }

        let options = ObjectStoreOptions {
            durability: match config.storage.durability {
                DurabilityMode::Sync => Durability::Sync,
                DurabilityMode::Buffered => Durability::Buffered,
            },
            batch_max: config.storage.commit_batch_max,
            queue_max: config.storage.commit_queue_max,
            bulk_max: config.storage.commit_bulk_max,
            siblings_max: config.limits.siblings_max,
        };
        let objects = Arc::new(ObjectStore::start(storage.clone(), options, metrics.clone()));
        let actors = Arc::new(Actors::draw_all(partitions.get(), clock.clone()));

        let swim_clock = clock.clone();
        let membership = concord_membership::Membership::start(
            node_id.clone(),
            membership_config(&config),
            Arc::new(SwimTransport { transport: transport.clone() }),
            Arc::new(move || swim_clock.now_ms()),
            rand::rng().random(),
        )
        .map_err(|e| Error::Startup(format!("membership: {e}")))?;
        let peers =
            Arc::new(SwimPeers { membership: membership.clone(), transport: transport.clone() });

        let replica = Replica::new(ReplicaParts {
            me: node_id.clone(),
            partitions,
            objects,
            actors,
            clock: clock.clone(),
            transport: transport.clone(),
            meta: meta.clone(),
            liveness: peers.clone(),
            hints: HintConfig {
                max_per_target: config.replication.hints_max_per_target,
                replay_rate: config.replication.hint_replay_rate,
                replay_interval: Duration::from_millis(config.replication.hint_replay_interval_ms),
            },
            tombstones: tombstone_config(&config),
            read_repair_wait: Duration::from_millis(config.replication.read_repair_wait_ms),
            metrics: metrics.replica().clone(),
            background: Background::new("concord-bulk", BULK_THREADS, config.cluster.handoff_nice)
                .map_err(|e| Error::Startup(format!("starting the background lane: {e}")))?,
        });
        let syncer = Syncer::start(storage.clone(), GROUP_SYNC_QUEUE_MAX)
            .map_err(|e| Error::Startup(format!("starting the group log syncer: {e}")))?;
        let groups = GroupHost::new(
            HostConfig::new(
                concord_meta::raft_id(&node_id, identity.incarnation),
                partitions.get(),
            ),
            storage.clone(),
            syncer,
            transport.clone(),
        );
        let handler = Arc::new(crate::peers::router(
            &meta,
            &replica,
            &membership,
            &groups,
            transport.clone(),
        ));
        let rpc = RpcServer::serve(
            listener,
            local.clone(),
            handler,
            faults.clone(),
            metrics.rpc().clone(),
            ServerLimits::default(),
        )
        .map_err(|e| Error::Startup(format!("peer listener: {e}")))?;

        let me = MetaNode {
            name: node_id.to_string(),
            peer_addr: addrs.peer.to_string(),
            http_addr: addrs.http.to_string(),
        };
        if !meta.is_initialized().await {
            if joined || !config.cluster.join.is_empty() {
                tracing::info!("joined; waiting for the cluster metadata");
            } else {
                bootstrap(&meta, &identity, &storage, me.clone(), &addrs).await?;
            }
        }
        meta.wait_for(JOIN_TIMEOUT, |state| state.members.contains_key(&node_id)).await.map_err(
            |e| Error::Startup(format!("this node never appeared in the metadata: {e}")),
        )?;
        let mut tasks = BackgroundTasks::new();
        let stopped = tasks.stop_signal();
        let announce = announce_addresses(
            meta.clone(),
            node_id.clone(),
            identity.incarnation,
            addrs.clone(),
            stopped.clone(),
        );
        tasks.spawn("announce addresses", announce);
        tasks
            .spawn("feed members", feed_members(meta.clone(), membership.clone(), stopped.clone()));
        let replay = concord_replica::hints::run_replay(replica.clone(), stopped.clone());
        tasks.spawn("hint replay", replay);
        let purge = concord_replica::tombstones::run(replica.clone(), stopped.clone());
        tasks.spawn("tombstone purge", purge);
        let alive = crate::downtime::keep_alive(storage.clone(), clock, grace, stopped.clone());
        tasks.spawn("last-alive record", alive);
        let exchange = concord_replica::exchange::run(
            replica.clone(),
            exchange_config(&config),
            stopped.clone(),
        );
        tasks.spawn("anti-entropy", exchange);
        let deleted = concord_replica::deleted::run(
            replica.clone(),
            deleted_config(&config),
            stopped.clone(),
        );
        tasks.spawn("deleted namespaces' drop", deleted);
        let handoff =
            concord_replica::handoff::run(replica.clone(), handoff_config(&config), stopped);
        tasks.spawn("handoff", handoff);

        let departure_wait = departure::wait(
            meta.subscribe(),
            identity.clone(),
            data_dir.clone(),
            config.cluster.join.clone(),
            tasks.stop_signal(),
        );
        let database = Arc::new(Database::new(DatabaseParts {
            identity,
            meta: meta.clone(),
            replica,
            peers,
            metrics,
            request_timeout: Duration::from_millis(config.limits.request_timeout_ms),
            http_addr: addrs.http.to_string(),
            peer_addr: addrs.peer.to_string(),
            faults: config.admin.enable_fault_injection.then(|| faults.clone()),
        }));
        let (departed_tx, departed) = watch::channel(None);
        let serving = database.clone();
        tasks.spawn("departure watch", async move {
            if let Some(departed) = departure_wait.await {
                serving.set_ready(false);
                tracing::warn!("{departed}");
                let _ = departed_tx.send(Some(departed));
            }
        });
        Ok(Node {
            database,
            config,
            meta,
            groups,
            membership,
            rpc: tokio::sync::Mutex::new(Some(rpc)),
            faults,
            tasks: tokio::sync::Mutex::new(tasks),
            peer_addr: addrs.peer.to_string(),
            departed,
            _lock: lock,
        })
    }

    pub fn database(&self) -> &Arc<Database> {
        &self.database
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn peer_addr(&self) -> &str {
        &self.peer_addr
    }

    /// Resolves once this node has left the cluster or been removed from it (its metadata
    /// records the departure of its data dir); it has stopped being ready then, and should
    /// shut down. Never resolves otherwise.
    pub async fn departed(&self) -> Departed {
        let mut departed = self.departed.clone();
        match departed.wait_for(Option::is_some).await {
            Ok(seen) => seen.clone().expect("waited for Some"),
            Err(_) => std::future::pending().await,
        }
    }

    /// This node's departure, if it has left the cluster or been removed from it.
    pub fn departure(&self) -> Option<Departed> {
        self.departed.borrow().clone()
    }

    /// The transport's fault rules, if fault injection is enabled.
    pub fn faults(&self) -> Option<Arc<Faults>> {
        self.config.admin.enable_fault_injection.then(|| self.faults.clone())
    }

    /// Stops background work (waiting for it, up to a deadline) and peer traffic, then
    /// flushes everything acknowledged.
    pub async fn shutdown(&self) -> Result<(), Error> {
        let aborted = self.stop_background_tasks().await;
        if !aborted.is_empty() {
            tracing::warn!(
                ?aborted,
                "background tasks did not stop within {TASKS_STOP_TIMEOUT:?}; aborted them"
            );
        }
        self.membership.shutdown().await;
        if let Some(rpc) = self.rpc.lock().await.take() {
            rpc.shutdown().await;
        }
        self.groups.shutdown().await;
        self.meta.shutdown().await;
        self.database.close().await
    }
}

impl Node {
    /// Stops the background tasks and waits until none runs; returns the names of those that
    /// had to be aborted at the deadline.
    async fn stop_background_tasks(&self) -> Vec<&'static str> {
        self.tasks.lock().await.stop(TASKS_STOP_TIMEOUT).await
    }
}

/// Asks the seeds, in order, to admit this node; returns the identity the cluster gives it.
async fn join(
    transport: &dyn Transport,
    seeds: &[String],
    request: &concord_meta::JoinRequest,
) -> Result<Identity, Error> {
    let mut errors = Vec::new();
    for seed in seeds {
        match transport.call_addr_rpc(seed, request, JOIN_TIMEOUT).await {
            Ok((_, cluster_id, reply)) => match reply {
                concord_meta::JoinReply::Accepted { partitions } => {
                    tracing::info!(%seed, cluster = %cluster_id, "joined the cluster");
                    return Ok(Identity {
                        node_id: request.node.clone(),
                        cluster_id,
                        partitions,
                        incarnation: request.incarnation,
                    });
                }
                concord_meta::JoinReply::Refused(why) => {
                    return Err(Error::Startup(format!("{seed} refused the join: {why}")));
                }
            },
            Err(concord_rpc::RpcError::Rejected(why)) => {
                return Err(Error::Startup(format!(
                    "{seed} refused this node: {why} (a node that holds another cluster's data \
                     cannot join; start it with an empty --data-dir)"
                )));
            }
            Err(e) => errors.push(format!("{seed}: {e}")),
        }
    }
    Err(Error::Startup(format!("could not join through any seed: {}", errors.join("; "))))
}

/// Refuses to start a node whose data belongs to another cluster than its seeds'. Seeds that
/// cannot be reached are skipped: they may be restarting.
async fn check_same_cluster(transport: &dyn Transport, seeds: &[String]) -> Result<(), Error> {
    for seed in seeds {
        let hello = transport.call_addr(seed, MessageKind::Hello, Bytes::new(), SEED_CHECK_TIMEOUT);
        match hello.await {
            Err(concord_rpc::RpcError::Rejected(why)) => {
                return Err(Error::Startup(format!(
                    "{seed} refused this node: {why} (this data dir belongs to another cluster; \
                     a node that holds another cluster's data cannot join)"
                )));
            }
            Err(e) => tracing::warn!(%seed, error = %e, "could not check the seed's cluster"),
            Ok(_) => return Ok(()),
        }
    }
    Ok(())
}

/// Founds a new cluster: this node, and the namespaces its data dir already has.
async fn bootstrap(
    meta: &Meta,
    identity: &Identity,
    storage: &Arc<dyn Storage>,
    me: MetaNode,
    addrs: &NodeAddrs,
) -> Result<(), Error> {
    let local = Namespaces::load(storage.clone())?;
    let mut namespaces: Vec<(concord_types::NamespaceName, NamespaceEntry)> = local
        .all()
        .iter()
        .map(|ns| (ns.name.clone(), NamespaceEntry { id: ns.id, config: ns.config.clone() }))
        .collect();
    let default = concord_types::NamespaceName::new(concord_types::NamespaceName::DEFAULT)
        .expect("valid name");
    if !namespaces.iter().any(|(name, _)| name == &default) {
        let id = namespaces.iter().map(|(_, e)| e.id.0 + 1).max().unwrap_or(1);
        namespaces.push((
            default,
            NamespaceEntry {
                id: concord_types::NamespaceId(id),
                config: concord_types::NamespaceConfig::default(),
            },
        ));
    }
    let command = Command::Bootstrap(concord_meta::Founding {
        cluster_id: identity.cluster_id,
        partitions: identity.partitions,
        node: identity.node_id.clone(),
        http_addr: addrs.http.clone(),
        peer_addr: addrs.peer.clone(),
        incarnation: identity.incarnation,
        namespaces,
        context_key: concord_types::ContextKey::new(rand::rng().random()),
    });
    meta.bootstrap(me, command).await?;
    tracing::info!(cluster = %identity.cluster_id, "bootstrapped a new cluster");
    Ok(())
}

/// This node's addresses, as it announces them to the cluster.
#[derive(Clone)]
struct NodeAddrs {
    http: Addr,
    peer: Addr,
}

/// Makes sure the metadata has this node's current addresses (they change when a node restarts
/// on other ports). Retries until it succeeds or `stop` turns true.
async fn announce_addresses(
    meta: Arc<Meta>,
    node: NodeId,
    incarnation: u64,
    me: NodeAddrs,
    mut stop: watch::Receiver<bool>,
) {
    // Retried every second while the metadata group has no leader: logged when that starts,
    // once a minute while it lasts, and when it ends.
    let mut failures = FailureLog::default();
    while !*stop.borrow() {
        let state = meta.state();
        let Some(member) = state.members.get(&node) else { return };
        if member.http_addr == me.http && member.peer_addr == me.peer {
            return;
        }
        let command = Command::AddNode {
            node: node.clone(),
            http_addr: me.http.clone(),
            peer_addr: me.peer.clone(),
            incarnation,
        };
        match meta.propose(command).await {
            Ok(CommandResult::Refused(why)) => {
                tracing::error!(%why, "the cluster refused this node's new addresses");
                return;
            }
            Ok(_) => {
                if let Some(line) = failures.succeeded(std::time::Instant::now()) {
                    tracing::info!("announcing new addresses: {line}");
                }
                tracing::info!("announced new addresses");
            }
            Err(e) => {
                if let Some(line) = failures.failed(std::time::Instant::now(), &e) {
                    tracing::warn!("announcing new addresses: {line}; retrying every second");
                }
                if concord_replica::stopped_after(Duration::from_secs(1), &mut stop).await {
                    return;
                }
            }
        }
    }
}

/// Keeps SWIM probing exactly the current members.
async fn feed_members(
    meta: Arc<Meta>,
    membership: MembershipHandle,
    mut stop: watch::Receiver<bool>,
) {
    let mut states = meta.subscribe();
    loop {
        let members: Vec<NodeId> = states.borrow_and_update().members.keys().cloned().collect();
        membership.set_members(members);
        tokio::select! {
            changed = states.changed() => if changed.is_err() { return },
            _ = stop.changed() => return,
        }
    }
}

fn membership_config(config: &Config) -> MembershipConfig {
    MembershipConfig {
        max_clock_offset_ms: config.cluster.max_clock_offset_ms,
        ..Default::default()
    }
}

fn exchange_config(config: &Config) -> ExchangeConfig {
    let ae = &config.anti_entropy;
    ExchangeConfig {
        enabled: ae.enabled,
        interval: Duration::from_millis(ae.interval_ms),
        pause: Duration::from_millis(ae.pause_ms),
        max_segments: ae.max_segments,
        max_objects: ae.max_objects,
        request_timeout: Duration::from_millis(config.limits.request_timeout_ms),
    }
}

fn tombstone_config(config: &Config) -> TombstoneConfig {
    let ae = &config.anti_entropy;
    TombstoneConfig {
        grace: Duration::from_secs(ae.tombstone_grace_s),
        interval: Duration::from_millis(ae.purge_interval_ms),
        pause: Duration::from_millis(ae.pause_ms),
        request_timeout: Duration::from_millis(config.limits.request_timeout_ms),
        ..TombstoneConfig::default()
    }
}

/// A deleted namespace's data waits as long as data that moved away (requests that resolved
/// the namespace before it was deleted are over by then), and it is dropped with anti-entropy's
/// pause after each bounded step.
fn deleted_config(config: &Config) -> DeletedConfig {
    DeletedConfig {
        delay: Duration::from_millis(config.cluster.handoff_drop_delay_ms),
        pause: Duration::from_millis(config.anti_entropy.pause_ms),
    }
}

fn handoff_config(config: &Config) -> HandoffConfig {
    HandoffConfig {
        rate_bytes: config.cluster.handoff_rate_bytes,
        drop_delay: Duration::from_millis(config.cluster.handoff_drop_delay_ms),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every background task of a running node ends on the stop signal, well before the
    /// deadline, so shutdown closes storage with none of them running or writing.
    #[tokio::test]
    async fn shutdown_waits_for_every_background_task() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.node.data_dir = dir.path().join("node");
        config.peer.addr = "127.0.0.1:0".to_owned();
        let node = Node::start(config, "127.0.0.1:1".to_owned()).await.expect("node starts");
        let running = node.tasks.lock().await.running_count();
        assert!(running >= 6, "only {running} background tasks run");

        let started = tokio::time::Instant::now();
        let aborted = node.stop_background_tasks().await;
        assert!(aborted.is_empty(), "tasks that ignored the stop signal: {aborted:?}");
        assert!(started.elapsed() < TASKS_STOP_TIMEOUT / 2, "took {:?}", started.elapsed());
        assert_eq!(node.tasks.lock().await.running_count(), 0);
        node.shutdown().await.expect("clean shutdown");
    }
}
