//! [`TcpTransport`]: the dialing side. Keeps, per peer, a pool of at most `pool_size`
//! connections (dialed lazily, used round-robin, redialed when they break) and a bounded queue
//! of one-way messages drained by one task.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use concord_types::{ClusterId, NodeId};
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::time::Instant;
use tracing::debug;

use crate::frame::{Frame, FrameType};
use crate::tcp::backoff::Backoff;
use crate::tcp::conn::{self, Conn, DialContext};
use crate::transport::BoxFuture;
use crate::{
    DropReason, Faults, Local, MessageKind, RpcError, RpcMetrics, Transport, TransportConfig,
};

/// The TCP implementation of [`Transport`].
pub struct TcpTransport {
    inner: Arc<Inner>,
}

struct Inner {
    ctx: Arc<DialContext>,
    /// The address book, with each peer's pool and one-way queue.
    peers: Mutex<HashMap<NodeId, PeerEntry>>,
    /// Where one-way drain tasks run: `set_peer` is synchronous and may be called from outside
    /// the runtime.
    runtime: Handle,
}

struct PeerEntry {
    pool: Arc<PeerPool>,
    /// Dropping this (remove or re-address the peer) ends the peer's drain task.
    one_way: mpsc::Sender<OneWay>,
}

struct OneWay {
    kind: MessageKind,
    payload: Bytes,
}

/// The connections to one peer.
struct PeerPool {
    node: NodeId,
    addr: String,
    /// `pool_size` slots, each empty or holding one connection. The async lock is held while
    /// a slot dials, so a slot never dials twice at once and the pool never exceeds its size.
    slots: Vec<tokio::sync::Mutex<Option<Arc<Conn>>>>,
    next_slot: AtomicUsize,
    backoff: Mutex<Backoff>,
}

impl TcpTransport {
    /// Creates the transport. Must be called inside a tokio runtime, which runs its tasks.
    pub fn new(
        local: Arc<Local>,
        faults: Arc<Faults>,
        metrics: RpcMetrics,
        config: TransportConfig,
    ) -> Self {
        config.assert_valid();
        let ctx = Arc::new(DialContext { local, faults, metrics, config });
        let inner = Inner { ctx, peers: Mutex::new(HashMap::new()), runtime: Handle::current() };
        TcpTransport { inner: Arc::new(inner) }
    }
}

impl Transport for TcpTransport {
    fn call(
        &self,
        to: &NodeId,
        kind: MessageKind,
        payload: Bytes,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Bytes, RpcError>> {
        let inner = self.inner.clone();
        let to = to.clone();
        Box::pin(async move {
            let started = Instant::now();
            let result = inner.call(&to, kind, payload, timeout).await;
            inner.ctx.metrics.record_call(kind, &result, started.elapsed());
            result
        })
    }

    fn send(&self, to: &NodeId, kind: MessageKind, payload: Bytes) -> Result<(), RpcError> {
        self.inner.send(to, kind, payload)
    }

    fn call_addr(
        &self,
        addr: &str,
        kind: MessageKind,
        payload: Bytes,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<(NodeId, ClusterId, Bytes), RpcError>> {
        let inner = self.inner.clone();
        let addr = addr.to_string();
        Box::pin(async move {
            let started = Instant::now();
            let result =
                match tokio::time::timeout(timeout, inner.call_addr(&addr, kind, payload)).await {
                    Ok(result) => result,
                    Err(_) => Err(RpcError::Timeout),
                };
            let recorded =
                result.as_ref().map(|(_, _, response)| response.clone()).map_err(Clone::clone);
            inner.ctx.metrics.record_call(kind, &recorded, started.elapsed());
            result
        })
    }

    fn set_peer(&self, node: NodeId, addr: String) {
        self.inner.set_peer(node, addr);
    }

    fn remove_peer(&self, node: &NodeId) {
        let removed = self.inner.peers.lock().unwrap_or_else(PoisonError::into_inner).remove(node);
        drop(removed);
    }

    fn reachable(&self, node: &NodeId) -> bool {
        self.inner
            .pool(node)
            .is_ok_and(|pool| pool.backoff().wait_remaining(Instant::now()).is_none())
    }

    fn heard_from(&self, node: &NodeId) {
        if let Ok(pool) = self.inner.pool(node) {
            pool.backoff().succeeded();
        }
    }
}

impl Inner {
    fn check_size(&self, payload: &Bytes) -> Result<(), RpcError> {
        let max = self.ctx.config.max_frame_bytes;
        if payload.len() > max as usize {
            return Err(RpcError::TooLarge { len: payload.len(), max });
        }
        Ok(())
    }

    fn pool(&self, node: &NodeId) -> Result<Arc<PeerPool>, RpcError> {
        let peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        match peers.get(node) {
            Some(entry) => Ok(entry.pool.clone()),
            None => Err(RpcError::Unreachable(format!("no address known for node {node}"))),
        }
    }

    async fn call(
        &self,
        to: &NodeId,
        kind: MessageKind,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, RpcError> {
        self.check_size(&payload)?;
        let pool = self.pool(to)?;
        if self.ctx.faults.drops_to(to) {
            // A cut cable: the request vanishes and the caller learns nothing until its deadline.
            self.ctx.metrics.drop_frame(DropReason::FaultTo);
            tokio::time::sleep(timeout).await;
            return Err(RpcError::Timeout);
        }
        let exchange = async {
            let conn = pool.connection(&self.ctx).await?;
            conn.check_kind(kind)?;
            conn.call(kind, payload, self.ctx.faults.delay_to(to)).await
        };
        tokio::time::timeout(timeout, exchange).await.unwrap_or(Err(RpcError::Timeout))
    }

    async fn call_addr(
        &self,
        addr: &str,
        kind: MessageKind,
        payload: Bytes,
    ) -> Result<(NodeId, ClusterId, Bytes), RpcError> {
        self.check_size(&payload)?;
        // A connection of its own, closed when `conn` drops: seeds are contacted rarely, and
        // the pools are keyed by node id, which is what this call learns.
        let conn = conn::dial(&self.ctx, addr, None).await?;
        let Some(cluster) = conn.peer_cluster else {
            return Err(RpcError::Rejected(format!(
                "{addr} (node {}) has not joined a cluster",
                conn.peer
            )));
        };
        if self.ctx.faults.drops_to(&conn.peer) {
            self.ctx.metrics.drop_frame(DropReason::FaultTo);
            // The caller's deadline ends this.
            return std::future::pending().await;
        }
        conn.check_kind(kind)?;
        let response = conn.call(kind, payload, self.ctx.faults.delay_to(&conn.peer)).await?;
        Ok((conn.peer.clone(), cluster, response))
    }

    fn send(&self, to: &NodeId, kind: MessageKind, payload: Bytes) -> Result<(), RpcError> {
        self.check_size(&payload)?;
        if self.ctx.faults.drops_to(to) {
            self.ctx.metrics.drop_frame(DropReason::FaultTo);
            return Ok(());
        }
        let peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(entry) = peers.get(to) else {
            return Err(RpcError::Unreachable(format!("no address known for node {to}")));
        };
        match entry.one_way.try_send(OneWay { kind, payload }) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                self.ctx.metrics.drop_frame(DropReason::QueueFull);
                Err(RpcError::Overloaded)
            }
            // The drain task only ends when its entry is gone, which cannot be while we hold it.
            Err(TrySendError::Closed(_)) => Err(RpcError::Closed),
        }
    }

    fn set_peer(&self, node: NodeId, addr: String) {
        let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        if peers.get(&node).is_some_and(|entry| entry.pool.addr == addr) {
            return;
        }
        let config = &self.ctx.config;
        let pool = Arc::new(PeerPool {
            node: node.clone(),
            addr,
            slots: (0..config.pool_size).map(|_| tokio::sync::Mutex::new(None)).collect(),
            next_slot: AtomicUsize::new(0),
            backoff: Mutex::new(Backoff::default()),
        });
        let (one_way, queue) = mpsc::channel(config.one_way_queue_len);
        self.runtime.spawn(drain_one_way(pool.clone(), self.ctx.clone(), queue));
        // Replacing an entry drops the old pool: its connections close once idle.
        peers.insert(node, PeerEntry { pool, one_way });
    }
}

impl PeerPool {
    fn backoff(&self) -> std::sync::MutexGuard<'_, Backoff> {
        self.backoff.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A usable connection from the next slot, dialing it if it is empty or broken.
    async fn connection(&self, ctx: &DialContext) -> Result<Arc<Conn>, RpcError> {
        let index = self.next_slot.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let mut slot = self.slots[index].lock().await;
        if let Some(conn) = slot.as_ref()
            && conn.is_usable(ctx.local.cluster_id())
        {
            return Ok(conn.clone());
        }
        *slot = None;
        let wait = self.backoff().wait_remaining(Instant::now());
        if let Some(wait) = wait {
            return Err(RpcError::Unreachable(format!(
                "node {} at {}: connect failed recently, next try in {} ms",
                self.node,
                self.addr,
                wait.as_millis()
            )));
        }
        let dialed = conn::dial(ctx, &self.addr, Some(&self.node)).await;
        let mut backoff = self.backoff();
        match dialed {
            Ok(conn) => {
                backoff.succeeded();
                let conn = Arc::new(conn);
                *slot = Some(conn.clone());
                Ok(conn)
            }
            Err(e) => {
                let config = &ctx.config;
                backoff.failed(
                    Instant::now(),
                    config.backoff_min,
                    config.backoff_max,
                    rand::random(),
                );
                Err(e)
            }
        }
    }
}

/// Sends one peer's one-way messages in order, until the peer's entry is dropped. A message
/// that finds no connection is dropped and counted: one-way messages are best effort.
async fn drain_one_way(
    pool: Arc<PeerPool>,
    ctx: Arc<DialContext>,
    mut queue: mpsc::Receiver<OneWay>,
) {
    let connect_within = ctx.config.connect_timeout + ctx.config.handshake_timeout;
    while let Some(message) = queue.recv().await {
        let conn = match tokio::time::timeout(connect_within, pool.connection(&ctx)).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                debug!(peer = %pool.node, kind = %message.kind, error = %e, "one-way message dropped");
                ctx.metrics.drop_frame(DropReason::Unreachable);
                continue;
            }
            Err(_) => {
                ctx.metrics.drop_frame(DropReason::Unreachable);
                continue;
            }
        };
        if conn.check_kind(message.kind).is_err() {
            ctx.metrics.drop_frame(DropReason::NotJoined);
            continue;
        }
        let frame = Frame {
            kind: message.kind,
            frame_type: FrameType::OneWay,
            request_id: 0,
            payload: message.payload,
        };
        if conn.enqueue(&frame, ctx.faults.delay_to(&pool.node)).await.is_err() {
            ctx.metrics.drop_frame(DropReason::Unreachable);
        }
    }
}
