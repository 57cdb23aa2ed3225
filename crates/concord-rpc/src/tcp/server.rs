//! [`RpcServer`]: the listening side. Accepts a bounded number of connections; on each, checks
//! the handshake within a deadline, then reads frames and runs their handlers concurrently,
//! bounded per connection. A peer that breaks the protocol gets its connection closed and one
//! counted rejection; nothing it sends can reach past its own connection. Refusals are logged at
//! most once a minute per source address, with the count of those not logged ([`RefusalLog`]):
//! at info for a connection that never said a valid hello (a scanner, a misdirected client), at
//! warn for a node of another cluster or version, or a node that broke the protocol after its
//! handshake.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use concord_types::NodeId;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, info, warn};

use crate::frame::{Frame, FrameError, FrameType};
use crate::handshake::{self, Admission, Hello};
use crate::tcp::io::{CloseSignal, FrameReader, OutFrame, ReadError, write_frames};
use crate::tcp::refusals::{REFUSAL_LOG_INTERVAL, REFUSAL_LOG_SOURCES_MAX, RefusalLog, Verdict};
use crate::transport::BoxFuture;
use crate::{
    DropReason, Faults, Handler, Local, MessageKind, RejectReason, RpcMetrics, ServerLimits,
};

/// A running peer listener. Dropping it stops it too, without waiting.
pub struct RpcServer {
    local_addr: SocketAddr,
    /// Set to `true` to stop: the accept loop and every connection watch it.
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

/// What every connection of a server needs.
struct ServerContext {
    local: Arc<Local>,
    handler: Arc<dyn Handler>,
    faults: Arc<Faults>,
    metrics: RpcMetrics,
    limits: ServerLimits,
    /// Which refusals get a log line: a flood of garbage connections must not flood the log.
    refusals: Mutex<RefusalLog>,
}

/// Why the server closes a connection: counted under `reason`, logged with `message`.
struct Rejection {
    reason: RejectReason,
    message: String,
}

impl From<FrameError> for Rejection {
    fn from(error: FrameError) -> Self {
        Rejection { reason: (&error).into(), message: error.to_string() }
    }
}

impl RpcServer {
    /// Serves peers on `listener` until [`RpcServer::shutdown`]. Must be called inside a tokio
    /// runtime.
    pub fn serve(
        listener: TcpListener,
        local: Arc<Local>,
        handler: Arc<dyn Handler>,
        faults: Arc<Faults>,
        metrics: RpcMetrics,
        limits: ServerLimits,
    ) -> std::io::Result<RpcServer> {
        limits.assert_valid();
        let local_addr = listener.local_addr()?;
        let (shutdown, watcher) = watch::channel(false);
        let refusals = Mutex::new(RefusalLog::new(REFUSAL_LOG_INTERVAL, REFUSAL_LOG_SOURCES_MAX));
        let ctx = Arc::new(ServerContext { local, handler, faults, metrics, limits, refusals });
        let task = tokio::spawn(accept_loop(listener, ctx, watcher));
        Ok(RpcServer { local_addr, shutdown, task: Some(task) })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, closes every connection (dropping handlers still running) and waits
    /// until all connection tasks have ended.
    pub async fn shutdown(mut self) {
        self.shutdown.send_replace(true);
        if let Some(task) = self.task.take() {
            // The accept loop does not panic; if it did, there is nothing left to stop.
            let _ = task.await;
        }
    }
}

impl Drop for RpcServer {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}

async fn stopped(watcher: &mut watch::Receiver<bool>) {
    // A dropped sender also means stop.
    let _ = watcher.wait_for(|stop| *stop).await;
}

async fn accept_loop(
    listener: TcpListener,
    ctx: Arc<ServerContext>,
    mut watcher: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(ctx.limits.max_connections));
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let accepted = tokio::select! {
            () = stopped(&mut watcher) => break,
            accepted = accept_within_limit(&listener, &slots) => accepted,
        };
        let (stream, addr, permit) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Usually out of file descriptors: wait a little rather than spin.
                warn!(error = %e, "accepting a peer connection failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        ctx.metrics.accepted();
        let connection = Connection { ctx: ctx.clone(), addr, _permit: permit };
        connections.spawn(connection.run(stream, watcher.clone()));
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

async fn accept_within_limit(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> std::io::Result<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
    let permit =
        slots.clone().acquire_owned().await.expect("the connection semaphore is never closed");
    let (stream, addr) = listener.accept().await?;
    Ok((stream, addr, permit))
}

/// One accepted connection.
struct Connection {
    ctx: Arc<ServerContext>,
    addr: SocketAddr,
    /// Held for the connection's life: one of `max_connections`.
    _permit: OwnedSemaphorePermit,
}

impl Connection {
    async fn run(self, stream: TcpStream, mut watcher: watch::Receiver<bool>) {
        let _open = self.ctx.metrics.open_connection("inbound");
        let _ = stream.set_nodelay(true);
        let (read, mut write) = stream.into_split();
        let mut reader = FrameReader::new(read, self.ctx.limits.max_frame_bytes);
        let deadline = self.ctx.limits.handshake_timeout;
        let handshake = tokio::time::timeout(deadline, self.handshake(&mut reader, &mut write));
        let admitted = tokio::select! {
            () = stopped(&mut watcher) => return,
            admitted = handshake => admitted,
        };
        let admission = match admitted {
            Ok(Ok(Some(admission))) => admission,
            Ok(Ok(None)) => return,
            Ok(Err(rejection)) => return self.log_rejection(None, rejection),
            Err(_) => {
                let message = format!("no hello within {deadline:?}");
                let rejection = Rejection { reason: RejectReason::HandshakeTimeout, message };
                return self.log_rejection(None, rejection);
            }
        };
        debug!(peer = %admission.peer, peer_addr = %self.addr, joined = admission.joined, "peer connected");
        let peer = admission.peer.clone();
        if !self.ctx.faults.drops_from(&peer) {
            self.ctx.handler.connected(&peer);
        }
        match self.serve(admission, reader, write, watcher).await {
            Ok(()) => debug!(peer = %peer, peer_addr = %self.addr, "peer connection closed"),
            Err(rejection) => self.log_rejection(Some(&peer), rejection),
        }
    }

    /// Reads the dialer's `Hello` and answers it. `Ok(None)`: the peer left before saying
    /// anything, or the socket failed; nobody to blame.
    async fn handshake(
        &self,
        reader: &mut FrameReader<OwnedReadHalf>,
        write: &mut OwnedWriteHalf,
    ) -> Result<Option<Admission>, Rejection> {
        let frame = match reader.read_frame().await {
            Ok(Some(frame)) => frame,
            Ok(None) | Err(ReadError::Io(_)) => return Ok(None),
            Err(ReadError::Frame(error)) => {
                if let FrameError::BadVersion(_) = error {
                    // Same header layout in every version: tell the peer what we speak.
                    send_refusal(write, &error.to_string()).await;
                }
                return Err(error.into());
            }
        };
        if (frame.kind, frame.frame_type) != (MessageKind::Hello, FrameType::Request) {
            let message = format!(
                "first frame is {} {:?}, not a hello request",
                frame.kind, frame.frame_type
            );
            return Err(Rejection { reason: RejectReason::BadHello, message });
        }
        let hello: Hello = crate::decode(&frame.payload).map_err(|e| Rejection {
            reason: RejectReason::BadHello,
            message: format!("undecodable hello: {e}"),
        })?;
        match handshake::listener_admits(self.ctx.local.cluster_id(), &hello) {
            Ok(admission) => {
                let reply = hello_response(&self.ctx.local, 0).encode();
                // If the peer is already gone, the first read of `serve` notices.
                let _ = write.write_all(&reply).await;
                Ok(Some(admission))
            }
            Err(refusal) => {
                send_refusal(write, &refusal.message).await;
                Err(Rejection { reason: refusal.reason, message: refusal.message })
            }
        }
    }

    async fn serve(
        &self,
        admission: Admission,
        mut reader: FrameReader<OwnedReadHalf>,
        write: OwnedWriteHalf,
        mut watcher: watch::Receiver<bool>,
    ) -> Result<(), Rejection> {
        let limits = &self.ctx.limits;
        let (queue, queue_receiver) = mpsc::channel(limits.max_in_flight_per_connection);
        let close = CloseSignal::new();
        let writer_close = close.clone();
        let peer = admission.peer.clone();
        tokio::spawn(async move {
            if let Err(e) = write_frames(write, queue_receiver, writer_close.clone()).await {
                debug!(peer = %peer, error = %e, "connection writer failed");
            }
            writer_close.close();
        });
        let mut session = Session {
            ctx: self.ctx.clone(),
            peer: admission.peer,
            joined: admission.joined,
            queue,
            in_flight: Arc::new(Semaphore::new(limits.max_in_flight_per_connection)),
            handlers: JoinSet::new(),
        };
        let result = session.read_loop(&mut reader, &mut watcher, &close).await;
        // Ends the writer even if handlers are still queued behind a slow peer.
        close.close();
        result
    }

    fn log_rejection(&self, peer: Option<&NodeId>, rejection: Rejection) {
        self.ctx.metrics.reject(rejection.reason);
        let verdict = self
            .ctx
            .refusals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .refused(self.addr.ip(), std::time::Instant::now());
        let Verdict::Log { suppressed } = verdict else { return };
        // A node of another cluster or version is a misconfiguration, and a node that breaks
        // the protocol after its handshake a bug: warn. Anything else never said a valid hello.
        let misconfigured =
            matches!(rejection.reason, RejectReason::ClusterMismatch | RejectReason::BadVersion);
        let reason = rejection.reason.as_str();
        let message = rejection.message;
        let addr = self.addr;
        match peer {
            Some(peer) => {
                warn!(%peer, peer_addr = %addr, reason, suppressed, "closing peer connection: {message}")
            }
            None if misconfigured => {
                warn!(peer_addr = %addr, reason, suppressed, "refusing peer connection: {message}")
            }
            None => {
                info!(peer_addr = %addr, reason, suppressed, "refusing a connection that is not a Concord peer: {message}")
            }
        }
    }
}

/// Best effort: the connection closes right after.
async fn send_refusal(write: &mut OwnedWriteHalf, message: &str) {
    let frame = Frame {
        kind: MessageKind::Hello,
        frame_type: FrameType::ErrorResponse,
        request_id: 0,
        payload: crate::encode(message),
    };
    let _ = write.write_all(&frame.encode()).await;
}

fn hello_response(local: &Local, request_id: u64) -> Frame {
    let hello = Hello::new(local.cluster_id(), local.node_id().clone());
    Frame {
        kind: MessageKind::Hello,
        frame_type: FrameType::Response,
        request_id,
        payload: crate::encode(&hello),
    }
}

/// A connection after its handshake.
struct Session {
    ctx: Arc<ServerContext>,
    peer: NodeId,
    joined: bool,
    queue: mpsc::Sender<OutFrame>,
    in_flight: Arc<Semaphore>,
    /// Running handlers; dropped (cancelled) with the connection.
    handlers: JoinSet<()>,
}

impl Session {
    async fn read_loop(
        &mut self,
        reader: &mut FrameReader<OwnedReadHalf>,
        watcher: &mut watch::Receiver<bool>,
        close: &CloseSignal,
    ) -> Result<(), Rejection> {
        loop {
            // Reap finished handlers; at most `max_in_flight_per_connection` + 1 accumulate.
            while self.handlers.try_join_next().is_some() {}
            let read = tokio::select! {
                () = stopped(watcher) => return Ok(()),
                () = close.closed() => return Ok(()),
                read = reader.read_frame() => read,
            };
            let frame = match read {
                Ok(Some(frame)) => frame,
                Ok(None) | Err(ReadError::Io(_)) => return Ok(()),
                Err(ReadError::Frame(error)) => return Err(error.into()),
            };
            let permit = match frame.frame_type {
                FrameType::Request => tokio::select! {
                    () = stopped(watcher) => return Ok(()),
                    () = close.closed() => return Ok(()),
                    permit = self.in_flight.clone().acquire_owned() => {
                        Some(permit.expect("the in-flight semaphore is never closed"))
                    }
                },
                _ => None,
            };
            self.dispatch(frame, permit)?;
        }
    }

    fn dispatch(
        &mut self,
        frame: Frame,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Result<(), Rejection> {
        let kind = frame.kind;
        if !self.joined && !kind.allowed_before_join() {
            let message = format!("{kind} from a peer that is not in this node's cluster");
            return Err(Rejection { reason: RejectReason::NotJoined, message });
        }
        if self.ctx.faults.drops_from(&self.peer) {
            self.ctx.metrics.drop_frame(DropReason::FaultFrom);
            self.ctx.metrics.record_served(kind, "dropped");
            return Ok(());
        }
        match (frame.frame_type, permit) {
            (FrameType::Request, Some(permit)) => self.spawn_handler(frame, permit),
            (FrameType::OneWay, _) => {
                if kind != MessageKind::Hello {
                    self.ctx.handler.handle_one_way(self.peer.clone(), kind, frame.payload);
                }
                self.ctx.metrics.record_served(kind, "one_way");
            }
            (frame_type, _) => {
                let message = format!("a server received a {frame_type:?} frame");
                return Err(Rejection { reason: RejectReason::UnexpectedFrame, message });
            }
        }
        Ok(())
    }

    fn spawn_handler(&mut self, frame: Frame, permit: OwnedSemaphorePermit) {
        let Frame { kind, request_id, payload, .. } = frame;
        let ctx = self.ctx.clone();
        let peer = self.peer.clone();
        let queue = self.queue.clone();
        let answer: BoxFuture<'static, Result<Bytes, String>> = if kind == MessageKind::Hello {
            // A ping: the transport answers it itself.
            let hello = hello_response(&ctx.local, request_id).payload;
            Box::pin(std::future::ready(Ok(hello)))
        } else {
            ctx.handler.handle(peer.clone(), kind, payload)
        };
        self.handlers.spawn(async move {
            let result = answer.await;
            let response = response_frame(&ctx, kind, request_id, result);
            if ctx.faults.drops_to(&peer) {
                ctx.metrics.drop_frame(DropReason::FaultTo);
                return;
            }
            // Fails only if the connection is closing; the caller then sees it close.
            let _ = queue.send(OutFrame::new(&response, ctx.faults.delay_to(&peer))).await;
            drop(permit);
        });
    }
}

fn response_frame(
    ctx: &ServerContext,
    kind: MessageKind,
    request_id: u64,
    result: Result<Bytes, String>,
) -> Frame {
    let max = ctx.limits.max_frame_bytes as usize;
    let (frame_type, payload) = match result {
        Ok(payload) if payload.len() <= max => {
            ctx.metrics.record_served(kind, "ok");
            (FrameType::Response, payload)
        }
        Ok(payload) => {
            ctx.metrics.record_served(kind, "error");
            let message =
                format!("response of {} bytes exceeds the maximum frame size", payload.len());
            (FrameType::ErrorResponse, crate::encode(&message))
        }
        Err(message) => {
            ctx.metrics.record_served(kind, "error");
            (FrameType::ErrorResponse, crate::encode(&message))
        }
    };
    Frame { kind, frame_type, request_id, payload }
}
