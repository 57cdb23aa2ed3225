//! The async driver: [`Membership`] is one tokio task that owns a [`Swim`] machine and runs
//! its outputs, plus the periodic time probes; [`MembershipHandle`] is how the rest of the
//! node talks to it.
//!
//! The task reacts to, in priority order: shutdown, received packets (bounded inbox, dropped
//! when full since SWIM tolerates loss), member-list changes (a watch: the latest list wins
//! and is never lost), finished time probes, the time-probe tick, and due SWIM timers.
//! Packets come before timers so that an ack already received is seen before the round that
//! waits for it ends.
//!
//! The network is a seam, [`SwimNet`]: the node wires `send` to one-way transport messages
//! and `time_probe` to a request/response answered with [`crate::answer_time_probe`].

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use concord_types::NodeId;
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinError, JoinHandle, JoinSet};
use tokio::time::{Instant, MissedTickBehavior};
use tracing::Instrument;

use crate::timers::TimerQueue;
use crate::{
    ClockSample, Error, Liveness, MembershipConfig, OffsetEstimator, Output, Swim, SwimId,
};

/// An answer to a time probe: the peer's (t1, t2), or `None` if it could not be reached.
pub type TimeProbeFuture = Pin<Box<dyn Future<Output = Option<(u64, u64)>> + Send>>;

/// How SWIM reaches other nodes. Implementations must not block: `send` queues or drops.
pub trait SwimNet: Send + Sync + 'static {
    /// Sends a SWIM packet to `to`, one way. Loss is tolerated.
    fn send(&self, to: &NodeId, payload: Bytes);
    /// Asks `to` for its clock: resolves to the peer's (t1, t2), from
    /// [`crate::answer_time_probe`], or `None` if it could not be reached. The driver bounds
    /// it with `time_probe_timeout`.
    fn time_probe(&self, to: &NodeId) -> TimeProbeFuture;
}

/// Wall-clock milliseconds since the Unix epoch (possibly with an injected offset, for tests
/// and fault injection).
pub type WallClock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Every member's liveness, as published to subscribers.
pub type LivenessMap = BTreeMap<NodeId, Liveness>;

/// What this node knows about one peer.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerStatus {
    pub node: NodeId,
    pub liveness: Liveness,
    /// Estimated offset of the peer's clock from ours in milliseconds (positive: the peer is
    /// ahead), rounded; `None` until a time probe succeeded.
    pub clock_offset_ms: Option<i64>,
    /// Round-trip delay of the sample the offset comes from, in milliseconds.
    pub delay_ms: Option<f64>,
    /// Whether the offset is beyond `max_clock_offset_ms`.
    pub alarm: bool,
}

/// A received SWIM packet waiting in the driver's inbox.
struct Incoming {
    from: NodeId,
    payload: Bytes,
}

/// A finished time probe.
struct TimeProbe {
    node: NodeId,
    t0: u64,
    answer: Option<(u64, u64)>,
    t3: u64,
}

/// The driver task's state. Created and spawned by [`Membership::start`].
pub struct Membership {
    swim: Swim,
    config: MembershipConfig,
    net: Arc<dyn SwimNet>,
    clock: WallClock,
    /// SWIM timers armed by `swim`, due in deadline order.
    timers: TimerQueue,
    /// Whether the last due batch was postponed because the driver had stalled; the next one
    /// fires regardless.
    timers_postponed: bool,
    /// Per-member clock estimate; entries leave with their member.
    clocks: BTreeMap<NodeId, OffsetEstimator>,
    /// Members whose offset is currently beyond the limit, to log each alarm once.
    clock_alarms: BTreeSet<NodeId>,
    /// Time probes in flight; aborted with the task.
    time_probes: JoinSet<TimeProbe>,
    /// The members in `time_probes`: at most one probe per member is in flight.
    time_probing: BTreeSet<NodeId>,
    inbox: mpsc::Receiver<Incoming>,
    members: watch::Receiver<Vec<NodeId>>,
    shutdown: watch::Receiver<bool>,
    liveness_tx: watch::Sender<LivenessMap>,
    status_tx: watch::Sender<Vec<PeerStatus>>,
    identity_tx: watch::Sender<SwimId>,
}

impl Membership {
    /// Starts the driver for node `me` on the current tokio runtime. Its SWIM generation is
    /// the clock's reading now, so a restarted node outranks its previous life. It probes
    /// nobody until [`MembershipHandle::set_members`]. `seed` seeds SWIM's random choices.
    pub fn start(
        me: NodeId,
        config: MembershipConfig,
        net: Arc<dyn SwimNet>,
        clock: WallClock,
        seed: u64,
    ) -> Result<MembershipHandle, Error> {
        config.validate()?;
        let identity = SwimId::new(me.clone(), clock());
        let swim = Swim::new(identity.clone(), config.swim.clone(), seed)?;
        tracing::debug!(%identity, ?config, "starting membership");

        let (inbox_tx, inbox) = mpsc::channel(config.inbox_capacity);
        let (members_tx, members) = watch::channel(Vec::new());
        let (shutdown_tx, shutdown) = watch::channel(false);
        let (liveness_tx, liveness_rx) = watch::channel(LivenessMap::new());
        let (status_tx, status_rx) = watch::channel(Vec::new());
        let (identity_tx, identity_rx) = watch::channel(identity);
        let shared_clock = clock.clone();
        let driver = Membership {
            swim,
            config,
            net,
            clock,
            timers: TimerQueue::default(),
            timers_postponed: false,
            clocks: BTreeMap::new(),
            clock_alarms: BTreeSet::new(),
            time_probes: JoinSet::new(),
            time_probing: BTreeSet::new(),
            inbox,
            members,
            shutdown,
            liveness_tx,
            status_tx,
            identity_tx,
        };
        // Every log line of the task names the node it runs on.
        let span = tracing::info_span!("membership", me = %me);
        let task = tokio::spawn(driver.run().instrument(span));
        Ok(MembershipHandle {
            shared: Arc::new(Shared {
                me,
                inbox: inbox_tx,
                members: members_tx,
                shutdown: shutdown_tx,
                liveness: liveness_rx,
                status: status_rx,
                identity: identity_rx,
                clock: shared_clock,
                dropped_incoming_count: AtomicU64::new(0),
                task: Mutex::new(Some(task)),
            }),
        })
    }

    async fn run(mut self) {
        let mut time_probe_tick = tokio::time::interval(self.config.time_probe_period);
        time_probe_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let next_timer = self.timers.next_deadline();
            tokio::select! {
                biased;
                stop = self.shutdown.changed() => {
                    // An error means every handle is gone: stop without a word.
                    if stop.is_ok() {
                        self.leave();
                    }
                    break;
                }
                Some(incoming) = self.inbox.recv() => self.on_incoming(incoming),
                changed = self.members.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    self.on_members();
                }
                Some(joined) = self.time_probes.join_next() => self.on_time_probe(joined),
                _ = time_probe_tick.tick() => self.start_time_probes(),
                () = sleep_until(next_timer), if next_timer.is_some() => self.on_timers_due(),
            }
        }
        tracing::debug!(identity = %self.swim.identity(), "membership stopped");
    }

    fn on_incoming(&mut self, incoming: Incoming) {
        let out = self.swim.handle_data(&incoming.from, &incoming.payload);
        self.execute(out);
    }

    fn on_members(&mut self) {
        let members = self.members.borrow_and_update().clone();
        let out = self.swim.set_members(members);
        let swim = &self.swim;
        self.clocks.retain(|node, _| swim.liveness(node).is_some());
        self.clock_alarms.retain(|node| swim.liveness(node).is_some());
        self.execute(out);
        self.publish();
    }

    /// Fires every due timer, unless the driver itself was stalled (process paused, machine
    /// overloaded): then the packets that queued up meanwhile, acks and refutations among
    /// them, are likely not read yet, and judging peers now would suspect them for our own
    /// stall. So every timer is postponed by the stall plus one `probe_rtt`, once: if the
    /// postponed timers are late again the driver is simply slow, and they fire, so that a
    /// constantly overloaded node still probes.
    fn on_timers_due(&mut self) {
        let now = Instant::now();
        let Some(first) = self.timers.next_deadline() else {
            return;
        };
        let lag = now.saturating_duration_since(first);
        if lag > self.stall_threshold() && !self.timers_postponed {
            let postpone = lag + self.config.swim.probe_rtt;
            tracing::debug!(
                lag_ms = lag.as_millis(),
                "membership driver was stalled, postponing SWIM timers"
            );
            self.timers.postpone_all(postpone);
            self.timers_postponed = true;
            return;
        }
        self.timers_postponed = false;
        while let Some(timer) = self.timers.pop_due(now) {
            let out = self.swim.handle_timer(timer);
            self.execute(out);
        }
    }

    fn stall_threshold(&self) -> Duration {
        self.config.swim.probe_rtt / 2
    }

    fn leave(&mut self) {
        let out = self.swim.leave();
        for output in out {
            if let Output::Send { to, payload } = output {
                self.net.send(&to, payload);
            }
        }
    }

    fn execute(&mut self, out: Vec<Output>) {
        let mut liveness_changed = false;
        for output in out {
            match output {
                Output::Send { to, payload } => self.net.send(&to, payload),
                Output::Schedule { timer, after } => {
                    self.timers.push(Instant::now() + after, timer);
                    assert!(
                        self.timers.len() <= self.max_pending_timers(),
                        "{} SWIM timers pending: one is re-armed without bound",
                        self.timers.len()
                    );
                }
                Output::Changed { node, liveness } => {
                    tracing::info!(peer = %node, %liveness, "node {node} is {liveness}");
                    liveness_changed = true;
                }
            }
        }
        self.identity_tx.send_if_modified(|published| {
            let identity = self.swim.identity();
            let changed = published != identity;
            if changed {
                *published = identity.clone();
            }
            changed
        });
        if liveness_changed {
            self.publish();
        }
    }

    /// foca keeps one probe, one indirect-probe, one gossip and one announce timer, plus a
    /// suspicion timer per failed probe of a live member (at most a few rounds' worth per
    /// member). Far more means a bug.
    fn max_pending_timers(&self) -> usize {
        64 + 8 * self.swim.members().count()
    }

    fn start_time_probes(&mut self) {
        let targets: Vec<NodeId> = self
            .swim
            .members()
            .filter(|(node, liveness)| {
                *liveness != Liveness::Down && !self.time_probing.contains(*node)
            })
            .map(|(node, _)| node.clone())
            .collect();
        for node in targets {
            self.time_probing.insert(node.clone());
            let net = Arc::clone(&self.net);
            let clock = Arc::clone(&self.clock);
            let timeout = self.config.time_probe_timeout;
            self.time_probes.spawn(async move {
                let t0 = clock();
                let answer =
                    tokio::time::timeout(timeout, net.time_probe(&node)).await.ok().flatten();
                let t3 = clock();
                TimeProbe { node, t0, answer, t3 }
            });
        }
    }

    fn on_time_probe(&mut self, joined: Result<TimeProbe, JoinError>) {
        let probe = match joined {
            Ok(probe) => probe,
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            Err(error) => unreachable!("time probes are only cancelled with the driver: {error}"),
        };
        self.time_probing.remove(&probe.node);
        let Some((t1, t2)) = probe.answer else {
            tracing::trace!(node = %probe.node, "time probe unanswered");
            return;
        };
        if self.swim.liveness(&probe.node).is_none() {
            return;
        }
        let sample = match ClockSample::new(probe.t0, t1, t2, probe.t3) {
            Ok(sample) => sample,
            Err(error) => {
                tracing::debug!(node = %probe.node, %error, "time probe discarded");
                return;
            }
        };
        let estimator = self.clocks.entry(probe.node.clone()).or_default();
        estimator.record(sample);
        self.check_clock_alarm(&probe.node);
        self.publish();
    }

    fn check_clock_alarm(&mut self, node: &NodeId) {
        let max_offset_ms = self.config.max_clock_offset_ms;
        let Some(estimator) = self.clocks.get(node) else {
            return;
        };
        let offset_ms = estimator.offset_ms().unwrap_or(0.0);
        if estimator.alarm(max_offset_ms) {
            if self.clock_alarms.insert(node.clone()) {
                tracing::warn!(peer = %node, offset_ms, max_offset_ms, "clock of node {node} is off by {offset_ms} ms");
            }
        } else if self.clock_alarms.remove(node) {
            tracing::info!(peer = %node, offset_ms, "clock of node {node} is back within bounds");
        }
    }

    fn publish(&self) {
        let liveness: LivenessMap =
            self.swim.members().map(|(node, liveness)| (node.clone(), liveness)).collect();
        let status = self.status(&liveness);
        replace_if_changed(&self.liveness_tx, liveness);
        replace_if_changed(&self.status_tx, status);
    }

    fn status(&self, liveness: &LivenessMap) -> Vec<PeerStatus> {
        liveness
            .iter()
            .map(|(node, liveness)| {
                let best = self.clocks.get(node).and_then(OffsetEstimator::best);
                PeerStatus {
                    node: node.clone(),
                    liveness: *liveness,
                    clock_offset_ms: best.map(|sample| sample.offset_ms().round() as i64),
                    delay_ms: best.map(|sample| sample.delay_ms() as f64),
                    alarm: self.clock_alarms.contains(node),
                }
            })
            .collect()
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Publishes `value` only if it differs, so subscribers wake for real changes only.
fn replace_if_changed<T: PartialEq>(sender: &watch::Sender<T>, value: T) {
    sender.send_if_modified(|current| {
        let changed = *current != value;
        if changed {
            *current = value;
        }
        changed
    });
}

/// The node's handle on its membership driver. Cheap to clone; the driver stops when
/// [`MembershipHandle::shutdown`] is called or the last handle is dropped.
#[derive(Clone)]
pub struct MembershipHandle {
    shared: Arc<Shared>,
}

struct Shared {
    me: NodeId,
    inbox: mpsc::Sender<Incoming>,
    members: watch::Sender<Vec<NodeId>>,
    shutdown: watch::Sender<bool>,
    liveness: watch::Receiver<LivenessMap>,
    status: watch::Receiver<Vec<PeerStatus>>,
    identity: watch::Receiver<SwimId>,
    /// The driver's clock, which also answers peers' time probes ([`crate::TimeProbe`]).
    clock: WallClock,
    /// Packets dropped because the inbox was full: a sign the driver cannot keep up.
    dropped_incoming_count: AtomicU64,
    /// The driver task, taken by the first `shutdown` to wait for it.
    task: Mutex<Option<JoinHandle<()>>>,
}

impl MembershipHandle {
    pub fn me(&self) -> &NodeId {
        &self.shared.me
    }

    /// Our current SWIM identity; the generation grows if the cluster ever declares us down.
    pub fn identity(&self) -> SwimId {
        self.shared.identity.borrow().clone()
    }

    /// Hands a SWIM packet received from `from` to the driver. Never blocks: when the inbox
    /// is full the packet is dropped and counted.
    pub fn handle_incoming(&self, from: NodeId, payload: Bytes) {
        match self.shared.inbox.try_send(Incoming { from, payload }) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(incoming)) => {
                self.shared.dropped_incoming_count.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(from = %incoming.from, "membership inbox full, SWIM packet dropped");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Replaces the member list (all nodes of the cluster, ourselves included or not).
    pub fn set_members(&self, members: Vec<NodeId>) {
        self.shared.members.send_replace(members);
    }

    /// Every peer's liveness and clock estimate, ordered by node.
    pub fn status(&self) -> Vec<PeerStatus> {
        self.shared.status.borrow().clone()
    }

    /// A member's liveness; `None` for a node that is not a member (or ourselves).
    pub fn liveness(&self, node: &NodeId) -> Option<Liveness> {
        self.shared.liveness.borrow().get(node).copied()
    }

    /// Every member's liveness, updated whenever one changes.
    pub fn subscribe(&self) -> watch::Receiver<LivenessMap> {
        self.shared.liveness.clone()
    }

    /// The clock this node's time probes are answered from.
    pub(crate) fn clock(&self) -> &WallClock {
        &self.shared.clock
    }

    pub fn dropped_incoming_count(&self) -> u64 {
        self.shared.dropped_incoming_count.load(Ordering::Relaxed)
    }

    /// Tells a few members we are leaving (so the cluster sees us down at once rather than
    /// after a suspicion timeout) and waits for the driver to stop.
    pub async fn shutdown(&self) {
        self.shared.shutdown.send_replace(true);
        let task = self.shared.task.lock().expect("task lock poisoned").take();
        if let Some(task) = task
            && let Err(error) = task.await
            && error.is_panic()
        {
            std::panic::resume_unwind(error.into_panic());
        }
    }
}
