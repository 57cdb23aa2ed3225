//! One dialed connection: the handshake, and requests multiplexed over it by request id.
//!
//! A connection has a writer task (owns the write half, drains a bounded queue) and a reader
//! task (owns the read half, completes pending requests). Whichever ends first closes the other
//! through the connection's [`CloseSignal`]; the reader then fails every pending request with
//! `Closed`. Dropping the last [`Conn`] drops the queue's sender, which ends the writer and so
//! the connection.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use concord_types::{ClusterId, NodeId};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tracing::{debug, warn};

use crate::frame::{Frame, FrameType};
use crate::handshake::{self, Hello};
use crate::tcp::io::{CloseSignal, FrameReader, OutFrame, ReadError, write_frames};
use crate::{Faults, Local, MessageKind, RejectReason, RpcError, RpcMetrics, TransportConfig};

/// What every dial needs; shared by all pools of one transport.
pub(crate) struct DialContext {
    pub(crate) local: Arc<Local>,
    pub(crate) faults: Arc<Faults>,
    pub(crate) metrics: RpcMetrics,
    pub(crate) config: TransportConfig,
}

/// A handshaken connection to one peer.
pub(crate) struct Conn {
    /// The node that answered the handshake.
    pub(crate) peer: NodeId,
    /// The listener's cluster id (`None` if it has not joined one).
    pub(crate) peer_cluster: Option<ClusterId>,
    /// Both sides named the same cluster; otherwise only `Join` and `Hello` may be sent.
    pub(crate) joined: bool,
    /// This node's cluster id when it dialed: once the node learns its cluster, connections
    /// dialed before are replaced, because the listener still treats them as not joined.
    dialed_cluster: Option<ClusterId>,
    queue: mpsc::Sender<OutFrame>,
    /// Bounds the requests in flight on this connection.
    in_flight: Semaphore,
    next_request_id: AtomicU64,
    shared: Arc<Shared>,
}

type Reply = Result<Bytes, RpcError>;

/// State shared with the reader task.
struct Shared {
    /// Requests waiting for a response, by request id; `None` once the connection closed, so
    /// that no request can register after the reader failed the others.
    pending: Mutex<Option<HashMap<u64, oneshot::Sender<Reply>>>>,
    close: CloseSignal,
}

impl Shared {
    fn register(&self, request_id: u64) -> Result<oneshot::Receiver<Reply>, RpcError> {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let map = pending.as_mut().ok_or(RpcError::Closed)?;
        let (sender, receiver) = oneshot::channel();
        map.insert(request_id, sender);
        Ok(receiver)
    }

    fn complete(&self, request_id: u64, reply: Reply) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let sender = pending.as_mut().and_then(|map| map.remove(&request_id));
        drop(pending);
        match sender {
            // The caller may have given up a moment ago; that is fine.
            Some(sender) => drop(sender.send(reply)),
            None => debug!(request_id, "response for a request that is no longer waiting"),
        }
    }

    fn forget(&self, request_id: u64) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(map) = pending.as_mut() {
            map.remove(&request_id);
        }
    }

    fn shut_down(&self) {
        self.close.close();
        let pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner).take();
        for (_, sender) in pending.into_iter().flatten() {
            drop(sender.send(Err(RpcError::Closed)));
        }
    }
}

/// Removes a request's pending entry when the call ends in any way, including its deadline
/// dropping the call's future.
struct PendingGuard<'a> {
    shared: &'a Shared,
    request_id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.shared.forget(self.request_id);
    }
}

impl Conn {
    /// Whether new requests may use this connection, given this node's cluster id now.
    pub(crate) fn is_usable(&self, local_cluster: Option<ClusterId>) -> bool {
        !self.shared.close.is_closed() && self.dialed_cluster == local_cluster
    }

    /// Refuses kinds this connection may not carry.
    pub(crate) fn check_kind(&self, kind: MessageKind) -> Result<(), RpcError> {
        if self.joined || kind.allowed_before_join() {
            return Ok(());
        }
        Err(RpcError::Rejected(format!(
            "{kind} cannot be sent to {} before both nodes are in the same cluster",
            self.peer
        )))
    }

    /// Sends a request and waits for its response, with no deadline of its own: the caller
    /// bounds it.
    pub(crate) async fn call(
        &self,
        kind: MessageKind,
        payload: Bytes,
        delay: Option<Duration>,
    ) -> Result<Bytes, RpcError> {
        let _permit = self.in_flight.acquire().await.map_err(|_| RpcError::Closed)?;
        let request_id = self.next_request_id.fetch_add(1, Ordering::Relaxed);
        let reply = self.shared.register(request_id)?;
        let _guard = PendingGuard { shared: &self.shared, request_id };
        let frame = Frame { kind, frame_type: FrameType::Request, request_id, payload };
        self.enqueue(&frame, delay).await?;
        reply.await.unwrap_or(Err(RpcError::Closed))
    }

    /// Queues a frame for the writer, waiting while the bounded queue is full.
    pub(crate) async fn enqueue(
        &self,
        frame: &Frame,
        delay: Option<Duration>,
    ) -> Result<(), RpcError> {
        self.queue.send(OutFrame::new(frame, delay)).await.map_err(|_| RpcError::Closed)
    }
}

/// Connects to `addr`, exchanges `Hello`s and starts the connection's tasks. `expected_peer`
/// is the node the caller means to reach, or `None` when it does not know (a seed address).
///
/// The caller bounds the whole dial with its own deadline; connect and handshake also have
/// their own.
pub(crate) async fn dial(
    ctx: &DialContext,
    addr: &str,
    expected_peer: Option<&NodeId>,
) -> Result<Conn, RpcError> {
    let config = &ctx.config;
    let stream = match tokio::time::timeout(config.connect_timeout, TcpStream::connect(addr)).await
    {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return Err(RpcError::Unreachable(format!("connect to {addr}: {e}"))),
        Err(_) => return Err(RpcError::Unreachable(format!("connect to {addr}: timed out"))),
    };
    // Frames are written whole and flushed on purpose; Nagle would only add latency.
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();
    let mut reader = FrameReader::new(read, config.max_frame_bytes);
    let dialed_cluster = ctx.local.cluster_id();
    let exchange = exchange_hellos(ctx, &mut reader, &mut write, dialed_cluster, expected_peer);
    let (reply, joined) = match tokio::time::timeout(config.handshake_timeout, exchange).await {
        Ok(result) => result.inspect_err(|e| debug!(addr, error = %e, "handshake failed"))?,
        Err(_) => {
            let message = format!("no handshake reply within {:?}", config.handshake_timeout);
            return Err(reject(ctx, addr, RejectReason::HandshakeTimeout, message));
        }
    };
    let (queue, queue_receiver) = mpsc::channel(config.max_in_flight_per_connection);
    let shared =
        Arc::new(Shared { pending: Mutex::new(Some(HashMap::new())), close: CloseSignal::new() });
    let close = shared.close.clone();
    tokio::spawn(async move {
        if let Err(e) = write_frames(write, queue_receiver, close.clone()).await {
            debug!(error = %e, "connection writer failed");
        }
        close.close();
    });
    let reader_task = ResponseReader {
        peer: reply.node_id.clone(),
        addr: addr.to_string(),
        shared: shared.clone(),
        faults: ctx.faults.clone(),
        metrics: ctx.metrics.clone(),
    };
    tokio::spawn(reader_task.run(reader));
    Ok(Conn {
        peer: reply.node_id,
        peer_cluster: reply.cluster_id,
        joined,
        dialed_cluster,
        queue,
        in_flight: Semaphore::new(config.max_in_flight_per_connection),
        next_request_id: AtomicU64::new(1),
        shared,
    })
}

/// Sends our `Hello`, reads the listener's answer and decides. Returns the listener's `Hello`
/// and whether the connection is joined.
async fn exchange_hellos(
    ctx: &DialContext,
    reader: &mut FrameReader<OwnedReadHalf>,
    write: &mut tokio::net::tcp::OwnedWriteHalf,
    dialed_cluster: Option<ClusterId>,
    expected_peer: Option<&NodeId>,
) -> Result<(Hello, bool), RpcError> {
    let hello = Hello::new(dialed_cluster, ctx.local.node_id().clone());
    let frame = Frame {
        kind: MessageKind::Hello,
        frame_type: FrameType::Request,
        request_id: 0,
        payload: crate::encode(&hello),
    };
    let unreachable = |e: std::io::Error| RpcError::Unreachable(format!("handshake: {e}"));
    write.write_all(&frame.encode()).await.map_err(unreachable)?;
    let addr = peer_addr_of(write);
    let reply = match reader.read_frame().await {
        Ok(Some(reply)) => reply,
        Ok(None) => return Err(RpcError::Unreachable("closed during the handshake".into())),
        Err(ReadError::Io(e)) => return Err(unreachable(e)),
        Err(ReadError::Frame(e)) => return Err(reject(ctx, &addr, (&e).into(), e.to_string())),
    };
    match (reply.kind, reply.frame_type) {
        (MessageKind::Hello, FrameType::Response) => {}
        (_, FrameType::ErrorResponse) => {
            let reason = crate::decode::<String>(&reply.payload)
                .unwrap_or_else(|_| "(undecodable reason)".to_string());
            warn!(peer_addr = %addr, "peer refused the handshake: {reason}");
            return Err(RpcError::Rejected(reason));
        }
        (kind, frame_type) => {
            let message = format!("expected a hello response, got {kind} {frame_type:?}");
            return Err(reject(ctx, &addr, RejectReason::UnexpectedFrame, message));
        }
    }
    let reply: Hello = crate::decode(&reply.payload)
        .map_err(|e| reject(ctx, &addr, RejectReason::BadHello, e.to_string()))?;
    match handshake::dialer_admits(dialed_cluster, expected_peer, &reply) {
        Ok(admission) => Ok((reply, admission.joined)),
        Err(refusal) => Err(reject(ctx, &addr, refusal.reason, refusal.message)),
    }
}

fn peer_addr_of(write: &tokio::net::tcp::OwnedWriteHalf) -> String {
    write.peer_addr().map(|addr| addr.to_string()).unwrap_or_else(|_| "?".to_string())
}

/// Counts and logs a connection this side refuses, once, and turns it into the caller's error.
fn reject(ctx: &DialContext, addr: &str, reason: RejectReason, message: String) -> RpcError {
    ctx.metrics.reject(reason);
    warn!(peer_addr = %addr, reason = reason.as_str(), "closing outbound connection: {message}");
    RpcError::Rejected(message)
}

/// The reader task of a connection: completes pending requests with the responses that arrive.
struct ResponseReader {
    peer: NodeId,
    addr: String,
    shared: Arc<Shared>,
    faults: Arc<Faults>,
    metrics: RpcMetrics,
}

impl ResponseReader {
    async fn run(self, mut reader: FrameReader<OwnedReadHalf>) {
        let _open = self.metrics.open_connection("outbound");
        loop {
            let read = tokio::select! {
                read = reader.read_frame() => read,
                () = self.shared.close.closed() => break,
            };
            match read {
                Ok(Some(frame)) => {
                    if let Err(message) = self.on_frame(frame) {
                        self.refuse(RejectReason::UnexpectedFrame, &message);
                        break;
                    }
                }
                Ok(None) => {
                    debug!(peer = %self.peer, "peer closed the connection");
                    break;
                }
                Err(ReadError::Io(e)) => {
                    debug!(peer = %self.peer, error = %e, "connection failed");
                    break;
                }
                Err(ReadError::Frame(e)) => {
                    self.refuse((&e).into(), &e.to_string());
                    break;
                }
            }
        }
        self.shared.shut_down();
    }

    fn on_frame(&self, frame: Frame) -> Result<(), String> {
        let reply = match frame.frame_type {
            FrameType::Response => Ok(frame.payload),
            FrameType::ErrorResponse => Err(RpcError::Remote(
                crate::decode::<String>(&frame.payload)
                    .unwrap_or_else(|_| "(undecodable error)".to_string()),
            )),
            FrameType::Request | FrameType::OneWay => {
                return Err(format!("a dialed connection received a {:?}", frame.frame_type));
            }
        };
        if self.faults.drops_from(&self.peer) {
            self.metrics.drop_frame(crate::DropReason::FaultFrom);
            return Ok(());
        }
        self.shared.complete(frame.request_id, reply);
        Ok(())
    }

    fn refuse(&self, reason: RejectReason, message: &str) {
        self.metrics.reject(reason);
        warn!(
            peer = %self.peer,
            peer_addr = %self.addr,
            reason = reason.as_str(),
            "closing outbound connection: {message}"
        );
    }
}
