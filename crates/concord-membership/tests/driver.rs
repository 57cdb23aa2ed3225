//! Clusters of [`Membership`] drivers in one process, wired by an in-memory [`SwimNet`], on
//! paused tokio time: seconds of SWIM run in milliseconds and do not depend on the machine's
//! load. Packets take 1 ms. Each test logs its phases (`--nocapture`) and waits on conditions
//! with deadlines.
//!
//! - kill: the node's packets are dropped from then on, both ways (SIGKILL: no goodbye);
//! - hold: packets to and from the node are held and delivered when released (a SIGSTOPped
//!   process or a stalled link: the kernel keeps what arrives).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use concord_membership::{
    Liveness, Membership, MembershipConfig, MembershipHandle, SwimNet, TimeProbeFuture, WallClock,
    answer_time_probe,
};
use concord_types::NodeId;
use tokio::time::Instant;

/// One-way packet delay, unless a test says otherwise.
const PACKET_LATENCY: Duration = Duration::from_millis(1);
/// Wall-clock milliseconds at the start of every test, so generations look like real ones.
const EPOCH_MS: u64 = 1_700_000_000_000;

fn node(name: &str) -> NodeId {
    NodeId::new(name).unwrap()
}

fn names(count: usize) -> Vec<NodeId> {
    (1..=count).map(|i| node(&format!("n{i}"))).collect()
}

/// Shows the drivers' own log lines ("node n3 is down") with `--nocapture`; `RUST_LOG`
/// overrides the level.
fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("concord_membership=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .without_time()
        .try_init();
}

fn phase(message: &str) {
    eprintln!("[{:>8.3}s] {message}", elapsed().as_secs_f64());
}

fn elapsed() -> Duration {
    START.with(|start| start.elapsed())
}

thread_local! {
    /// The test's virtual start (each test runs on its own current-thread runtime).
    static START: Instant = Instant::now();
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Link {
    Up,
    Held,
    Dead,
}

struct Peer {
    handle: Option<MembershipHandle>,
    link: Link,
    clock_offset_ms: i64,
}

/// The in-memory network: who is reachable, and the packets held for paused nodes.
struct Hub {
    peers: Mutex<BTreeMap<NodeId, Peer>>,
    held: Mutex<Vec<(NodeId, NodeId, Bytes)>>,
    latency: Duration,
}

impl Hub {
    fn new(latency: Duration) -> Self {
        Self { peers: Mutex::default(), held: Mutex::default(), latency }
    }

    fn clock(&self, name: &NodeId) -> WallClock {
        let offset_ms = self.peers.lock().unwrap()[name].clock_offset_ms;
        Arc::new(move || {
            let now_ms = EPOCH_MS + elapsed().as_millis() as u64;
            now_ms.saturating_add_signed(offset_ms)
        })
    }

    fn link(&self, name: &NodeId) -> Link {
        self.peers.lock().unwrap().get(name).map_or(Link::Dead, |peer| peer.link)
    }

    fn set_link(&self, name: &NodeId, link: Link) {
        self.peers.lock().unwrap().get_mut(name).unwrap().link = link;
    }

    fn deliver(&self, from: NodeId, to: NodeId, payload: Bytes) {
        match (self.link(&from), self.link(&to)) {
            (Link::Dead, _) | (_, Link::Dead) => {}
            (Link::Held, _) | (_, Link::Held) => {
                self.held.lock().unwrap().push((from, to, payload))
            }
            (Link::Up, Link::Up) => {
                let handle = self.peers.lock().unwrap()[&to].handle.clone();
                if let Some(handle) = handle {
                    handle.handle_incoming(from, payload);
                }
            }
        }
    }

    /// Lets `name` talk again and delivers what was held, in order.
    fn release(&self, name: &NodeId) {
        self.set_link(name, Link::Up);
        let held = std::mem::take(&mut *self.held.lock().unwrap());
        for (from, to, payload) in held {
            self.deliver(from, to, payload);
        }
    }
}

struct MemNet {
    me: NodeId,
    hub: Arc<Hub>,
}

impl SwimNet for MemNet {
    fn send(&self, to: &NodeId, payload: Bytes) {
        let (hub, from, to) = (Arc::clone(&self.hub), self.me.clone(), to.clone());
        tokio::spawn(async move {
            tokio::time::sleep(hub.latency).await;
            hub.deliver(from, to, payload);
        });
    }

    fn time_probe(&self, to: &NodeId) -> TimeProbeFuture {
        let reachable = self.hub.link(&self.me) == Link::Up && self.hub.link(to) == Link::Up;
        if !reachable {
            return Box::pin(std::future::pending());
        }
        let peer_clock = self.hub.clock(to);
        let latency = self.hub.latency;
        Box::pin(async move {
            tokio::time::sleep(latency).await;
            let answer = answer_time_probe(&*peer_clock);
            tokio::time::sleep(latency).await;
            Some(answer)
        })
    }
}

struct Cluster {
    hub: Arc<Hub>,
    members: Vec<NodeId>,
}

impl Cluster {
    /// Starts every node in `members` (with the given clock offsets) and waits until each
    /// sees all others up.
    async fn start(members: Vec<NodeId>, clock_offsets_ms: &[(&str, i64)]) -> Self {
        Self::start_with(members, clock_offsets_ms, 0, PACKET_LATENCY).await
    }

    async fn start_with(
        members: Vec<NodeId>,
        clock_offsets_ms: &[(&str, i64)],
        seed: u64,
        latency: Duration,
    ) -> Self {
        init_logs();
        let cluster = Self { hub: Arc::new(Hub::new(latency)), members };
        for (index, name) in cluster.members.iter().enumerate() {
            let offset_ms = clock_offsets_ms
                .iter()
                .find(|(n, _)| node(n) == *name)
                .map_or(0, |(_, offset)| *offset);
            cluster.start_node(name, offset_ms, seed + index as u64);
        }
        phase(&format!("started {} nodes", cluster.members.len()));
        let took = cluster
            .wait_until(Duration::from_secs(3), "everyone up", |c| {
                c.members.iter().all(|n| c.sees(n, Liveness::Alive))
            })
            .await;
        phase(&format!("everyone sees everyone up after {took:?}"));
        cluster
    }

    fn start_node(&self, name: &NodeId, clock_offset_ms: i64, seed: u64) -> MembershipHandle {
        self.hub
            .peers
            .lock()
            .unwrap()
            .insert(name.clone(), Peer { handle: None, link: Link::Up, clock_offset_ms });
        let net = Arc::new(MemNet { me: name.clone(), hub: Arc::clone(&self.hub) });
        let handle = Membership::start(
            name.clone(),
            MembershipConfig::default(),
            net,
            self.hub.clock(name),
            seed,
        )
        .unwrap();
        handle.set_members(self.members.clone());
        self.hub.peers.lock().unwrap().get_mut(name).unwrap().handle = Some(handle.clone());
        handle
    }

    fn handle(&self, name: &NodeId) -> MembershipHandle {
        self.hub.peers.lock().unwrap()[name].handle.clone().unwrap()
    }

    fn others(&self, name: &NodeId) -> impl Iterator<Item = &NodeId> {
        self.members.iter().filter(move |n| *n != name)
    }

    /// Whether every other node with a live link sees `name` as `liveness`.
    fn sees(&self, name: &NodeId, liveness: Liveness) -> bool {
        self.others(name)
            .filter(|observer| self.hub.link(observer) != Link::Dead)
            .all(|observer| self.handle(observer).liveness(name) == Some(liveness))
    }

    /// SIGKILL: `name` is cut off for good, then its driver stops (its goodbye is lost).
    async fn kill(&self, name: &NodeId) {
        self.hub.set_link(name, Link::Dead);
        self.handle(name).shutdown().await;
    }

    /// Polls `condition` every 5 ms of virtual time until it holds; panics after `deadline`.
    /// Returns how long it took.
    async fn wait_until(
        &self,
        deadline: Duration,
        what: &str,
        condition: impl Fn(&Self) -> bool,
    ) -> Duration {
        let start = Instant::now();
        while !condition(self) {
            assert!(start.elapsed() <= deadline, "{what}: not within {deadline:?}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        start.elapsed()
    }

    /// An observer that sees a node other than `victim` as suspect or down, if any.
    fn anyone_sees_survivor_suspect(&self, victim: &NodeId) -> Option<(NodeId, NodeId)> {
        for observer in self.others(victim) {
            for subject in self.others(victim) {
                let liveness = self.handle(observer).liveness(subject);
                if liveness != Some(Liveness::Alive) && observer != subject {
                    return Some((observer.clone(), subject.clone()));
                }
            }
        }
        None
    }

    /// Whether some running node sees some other node as `liveness`.
    fn anyone_sees_anyone(&self, liveness: Liveness) -> Option<(NodeId, NodeId)> {
        let running: Vec<&NodeId> =
            self.members.iter().filter(|n| self.hub.link(n) != Link::Dead).collect();
        for observer in &running {
            for subject in &running {
                if self.handle(observer).liveness(subject) == Some(liveness) {
                    return Some(((*observer).clone(), (*subject).clone()));
                }
            }
        }
        None
    }

    /// Runs for `duration`, failing if anyone ever sees anyone down meanwhile.
    async fn nobody_down_for(&self, duration: Duration) {
        let start = Instant::now();
        while start.elapsed() < duration {
            if let Some((observer, subject)) = self.anyone_sees_anyone(Liveness::Down) {
                panic!("{observer} sees {subject} down");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// A tiny deterministic generator for test timings (the seed is printed).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 =
            self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % bound
    }
}

/// A SIGKILLed node of a 5-node cluster is down on every survivor within 4 s (the target's
/// max; the median must be within 2 s), and nobody else is ever suspected. Ten clusters, each
/// killed at a different phase of its probe rounds.
#[tokio::test(start_paused = true)]
async fn killed_node_is_down_everywhere_within_target() {
    let seed = 0x5eed;
    phase(&format!("seed {seed}"));
    let mut timings = Lcg(seed);
    let victim = node("n3");
    let mut detection = Vec::new();
    for trial in 0..10 {
        let cluster = Cluster::start_with(names(5), &[], trial * 10, PACKET_LATENCY).await;
        tokio::time::sleep(Duration::from_millis(1000 + timings.below(1000))).await;
        phase(&format!("trial {trial}: kill n3"));
        cluster.kill(&victim).await;
        let took = cluster
            .wait_until(Duration::from_secs(4), "n3 down everywhere", |c| {
                assert_eq!(c.anyone_sees_survivor_suspect(&victim), None);
                c.sees(&victim, Liveness::Down)
            })
            .await;
        phase(&format!("trial {trial}: n3 is down on every survivor after {took:?}"));
        detection.push(took);
    }
    detection.sort_unstable();
    phase(&format!("kill to down: median {:?}, max {:?}", detection[5], detection[9]));
    assert!(detection[5] <= Duration::from_secs(2));
}

/// A whole process frozen for 2 s at random moments (VM pause, swap storm: `advance` jumps
/// the clock while no task runs) suspects nobody: the driver sees its timers are late and
/// first reads what arrived meanwhile. Packets take 50 ms here so that freezes often catch a
/// probe in flight; without the driver's stall handling this test fails.
#[tokio::test(start_paused = true)]
async fn frozen_process_suspects_nobody() {
    let seed = 0xf0f0;
    phase(&format!("seed {seed}"));
    let mut timings = Lcg(seed);
    let cluster = Cluster::start_with(names(5), &[], 0, Duration::from_millis(50)).await;
    for _ in 0..20 {
        let until = Instant::now() + Duration::from_millis(timings.below(700));
        while Instant::now() < until {
            assert_eq!(cluster.anyone_sees_anyone(Liveness::Suspect), None);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::advance(Duration::from_secs(2)).await;
    }
    let settle = Instant::now() + Duration::from_secs(2);
    while Instant::now() < settle {
        assert_eq!(cluster.anyone_sees_anyone(Liveness::Suspect), None);
        assert_eq!(cluster.anyone_sees_anyone(Liveness::Down), None);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    phase("20 freezes, no suspicion");
}

/// A killed node restarted with the same NodeId (a later generation, from its clock) is up
/// again everywhere without anyone acting, and sees everyone up.
#[tokio::test(start_paused = true)]
async fn restarted_node_is_up_again_without_operator_action() {
    let cluster = Cluster::start(names(5), &[]).await;
    let victim = node("n3");
    let old_generation = cluster.handle(&victim).identity().generation();

    phase("kill n3");
    cluster.kill(&victim).await;
    cluster
        .wait_until(Duration::from_secs(4), "n3 down everywhere", |c| {
            c.sees(&victim, Liveness::Down)
        })
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    phase("restart n3");
    let restarted = cluster.start_node(&victim, 0, 99);
    assert!(restarted.identity().generation() > old_generation);
    let took = cluster
        .wait_until(Duration::from_secs(2), "n3 up everywhere", |c| {
            c.sees(&victim, Liveness::Alive)
                && c.others(&victim).all(|n| restarted.liveness(n) == Some(Liveness::Alive))
        })
        .await;
    phase(&format!("n3 is up again everywhere after {took:?}"));
}

/// A node whose packets are held for 900 ms (less than the 1.2 s from the start of a probe
/// round to a down verdict, minus time to refute) is at worst suspected, refutes once
/// released, and is never down anywhere: it keeps its generation. Its own probes fail while
/// it is held, so it may suspect others too; they refute as well, and nobody is ever down.
#[tokio::test(start_paused = true)]
async fn held_node_refutes_and_is_never_down() {
    let cluster = Cluster::start(names(5), &[]).await;
    let victim = node("n3");
    let generation = cluster.handle(&victim).identity().generation();
    let mut suspected = false;
    for round in 0..5 {
        phase(&format!("hold n3 for 900 ms (round {round})"));
        cluster.hub.set_link(&victim, Link::Held);
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(900) {
            suspected |= cluster
                .others(&victim)
                .any(|n| cluster.handle(n).liveness(&victim) == Some(Liveness::Suspect));
            cluster.nobody_down_for(Duration::from_millis(5)).await;
        }
        phase("release n3");
        cluster.hub.release(&victim);
        cluster.nobody_down_for(Duration::from_secs(2)).await;
        assert!(cluster.sees(&victim, Liveness::Alive));
    }
    assert!(suspected, "900 ms should be long enough to be suspected");
    assert_eq!(cluster.handle(&victim).identity().generation(), generation);
    phase("n3 was suspected, refuted, and never down");
}

/// Held far beyond the suspicion timeout, a node is declared down; released, it learns so,
/// renews its generation and is up again everywhere by itself.
#[tokio::test(start_paused = true)]
async fn node_held_past_suspicion_rejoins_with_next_generation() {
    let cluster = Cluster::start(names(5), &[]).await;
    let victim = node("n3");
    let generation = cluster.handle(&victim).identity().generation();

    phase("hold n3");
    cluster.hub.set_link(&victim, Link::Held);
    cluster
        .wait_until(Duration::from_secs(4), "n3 down everywhere", |c| {
            c.sees(&victim, Liveness::Down)
        })
        .await;
    phase("release n3");
    cluster.hub.release(&victim);
    let took = cluster
        .wait_until(Duration::from_secs(3), "n3 up everywhere", |c| {
            c.sees(&victim, Liveness::Alive)
        })
        .await;
    phase(&format!("n3 up again after {took:?}"));
    assert!(cluster.handle(&victim).identity().generation() > generation);
}

/// A graceful shutdown tells the cluster at once: down everywhere well before a suspicion
/// could even start.
#[tokio::test(start_paused = true)]
async fn graceful_shutdown_is_seen_at_once() {
    let cluster = Cluster::start(names(5), &[]).await;
    let leaver = node("n2");
    phase("shut n2 down");
    cluster.handle(&leaver).shutdown().await;
    let took = cluster
        .wait_until(Duration::from_millis(300), "n2 down everywhere", |c| {
            c.sees(&leaver, Liveness::Down)
        })
        .await;
    phase(&format!("n2 down everywhere after {took:?}"));
}

/// Time probes measure the injected clock offsets exactly (both legs take 1 ms), and an
/// offset beyond 500 ms is an alarm on both sides.
#[tokio::test(start_paused = true)]
async fn clock_offsets_are_measured_and_alarmed() {
    let cluster = Cluster::start(names(3), &[("n2", 800), ("n3", -120)]).await;
    let n1 = cluster.handle(&node("n1"));
    cluster
        .wait_until(Duration::from_secs(3), "offsets measured", |c| {
            c.members.iter().all(|name| {
                c.handle(name).status().iter().all(|peer| peer.clock_offset_ms.is_some())
            })
        })
        .await;

    let status = n1.status();
    let offsets: Vec<_> = status
        .iter()
        .map(|peer| (peer.node.as_str(), peer.clock_offset_ms, peer.delay_ms, peer.alarm))
        .collect();
    phase(&format!("n1 sees {offsets:?}"));
    assert_eq!(offsets, [("n2", Some(800), Some(2.0), true), ("n3", Some(-120), Some(2.0), false)]);
    let from_n2 = cluster.handle(&node("n2")).status();
    assert_eq!(from_n2[0].node, node("n1"));
    assert_eq!(from_n2[0].clock_offset_ms, Some(-800));
    assert!(from_n2[0].alarm);
    assert_eq!(from_n2[1].clock_offset_ms, Some(-920));
    assert!(from_n2[1].alarm);
}

/// Packets beyond the inbox bound are dropped and counted, never blocking the caller.
#[tokio::test(start_paused = true)]
async fn full_inbox_drops_packets() {
    let hub = Arc::new(Hub::new(PACKET_LATENCY));
    hub.peers
        .lock()
        .unwrap()
        .insert(node("n1"), Peer { handle: None, link: Link::Up, clock_offset_ms: 0 });
    let config = MembershipConfig { inbox_capacity: 4, ..MembershipConfig::default() };
    let net = Arc::new(MemNet { me: node("n1"), hub: Arc::clone(&hub) });
    let handle = Membership::start(node("n1"), config, net, hub.clock(&node("n1")), 1).unwrap();
    // The driver cannot run between these calls (one thread, no await), so exactly the
    // capacity is queued.
    for _ in 0..10 {
        handle.handle_incoming(node("n2"), Bytes::from_static(b"garbage"));
    }
    assert_eq!(handle.dropped_incoming_count(), 6);
    handle.shutdown().await;
}

/// The subscription wakes on liveness changes.
#[tokio::test(start_paused = true)]
async fn subscribers_see_liveness_changes() {
    let cluster = Cluster::start(names(3), &[]).await;
    let mut changes = cluster.handle(&node("n1")).subscribe();
    changes.borrow_and_update();
    cluster.kill(&node("n2")).await;
    tokio::time::timeout(Duration::from_secs(4), async {
        loop {
            changes.changed().await.unwrap();
            if changes.borrow_and_update().get(&node("n2")) == Some(&Liveness::Down) {
                break;
            }
        }
    })
    .await
    .expect("n2 down within 4 s");
}
