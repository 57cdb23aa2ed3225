//! concord-membership: who is alive, and how far off their clocks are (DESIGN.md §6).
//!
//! This crate owns SWIM failure detection (probing, indirect probes, suspicion with
//! incarnations and refutation, dissemination of updates) and clock-offset measurement. It is
//! a pure state machine, [`Swim`], plus one async driver, [`Membership`]. It must not decide
//! anything else: **membership is decided by Raft** (`concord-meta`) and handed in with
//! [`MembershipHandle::set_members`]; only those nodes are probed or listened to. **Liveness
//! never changes ring ownership**: it only steers requests to fallbacks.
//!
//! # Layout
//!
//! - `swim.rs`: [`Swim`], the pure machine: events in (packet, timer, member list),
//!   [`Output`]s out (send, schedule, changed). No clock, no I/O; a seed fixes its choices.
//! - `identity.rs`: [`SwimId`], a node's SWIM identity: its `NodeId` and a generation.
//! - `config.rs`: [`SwimConfig`] and [`MembershipConfig`], with the defaults argued below.
//! - `clock.rs`: [`ClockSample`] (δ and θ from four timestamps) and [`OffsetEstimator`].
//! - `driver.rs`: [`Membership`], the tokio task running a `Swim`, its timers and the time
//!   probes; [`MembershipHandle`]; the [`SwimNet`] seam the node plugs its transport into.
//! - `timers.rs`: the driver's timer queue.
//! - `messages.rs`: the wire messages, [`SwimPacket`] (one way, foca's bytes) and
//!   [`TimeProbe`] (answered with the peer's clock), and [`MembershipHandle::register`], which
//!   adds their endpoints to the node's `concord_rpc::Router`.
//!
//! # Why foca
//!
//! The SWIM protocol proper is [foca] 2.0: a sans-IO implementation (it returns packets and
//! timers through a `Runtime` callback and never touches a socket or a clock), so it fits
//! invariant 1 (protocol logic is pure) as it is, and is deterministic given a seeded RNG. It
//! implements what DESIGN.md §6 asks, the SWIM paper with its suspicion subprotocol: one
//! member probed per round in a shuffled round robin, k indirect probes when the ack is late,
//! suspicion with incarnation numbers and refutation, then down; updates piggybacked on every
//! packet with bounded retransmission; and the extensions we rely on: periodic gossip (a down
//! reaches everyone within a gossip period), renewable identities (a node declared down, or
//! restarted, comes back under a new generation without operator action) and telling a down
//! node that it is down. It is small, has no I/O dependencies, and runs in production
//! (fly.io's Corrosion). We found it fit, with one bug worked around: foca 2.0.0 tells a
//! suspect "you are down" when its suspicion timer fires even if it refuted in time, which
//! would make a live node renew itself and flap; [`Swim`] drops that packet.
//!
//! What [`Swim`] adds: the member list is given, not discovered (packets from and to other
//! nodes are dropped, and gossip about them is neutralised locally); every member has a
//! [`Liveness`], including suspects and members never heard from (down); members that are down
//! or unknown are announced to every second, which is how restarts and healed partitions are
//! found.
//!
//! # Defaults and detection time
//!
//! Target (5 nodes on loopback): a SIGKILLed node is down on every other node within 2 s at
//! the median and 4 s at worst, with no false suspicion over 10 minutes under CPU load on two
//! cores. Defaults: `probe_period` 500 ms, `probe_rtt` 200 ms, k = 3 indirect probes,
//! `suspect_to_down_after` 700 ms, gossip every 100 ms to 3 members, 6 transmissions per
//! update, announces every 1 s, time probes every 1 s, `max_clock_offset_ms` 500.
//!
//! - **No false suspicion**: a member is suspected only if neither it nor any of the k
//!   members asked to probe it answered within a whole `probe_period` (a late direct ack
//!   still counts). 500 ms is hundreds of loopback round trips and well above the scheduling
//!   delays of a loaded machine. If the driver itself was stalled (its timers fire late), it
//!   postpones its timers and reads what arrived first, rather than blaming peers for its own
//!   stall.
//! - **Detection**, from the kill to down everywhere, is W + 500 ms + 700 ms + G:
//!   - W, until some survivor starts a probe of the dead node. Each of the 4 survivors probes
//!     each of its 4 peers once per 4 rounds in shuffled order, so one survivor waits up to 7
//!     rounds, but the first of four rarely waits long: P(W > 1 round) ≈ 0.75⁴ = 0.32,
//!     P(W > 2) ≈ 0.52⁴ = 0.07, P(W > 3) ≈ 0.31⁴ = 0.01, P(W > 4) ≈ 0.16⁴ = 0.0006;
//!   - the probe fails at the end of its round (500 ms): suspect;
//!   - nobody refutes within `suspect_to_down_after` (700 ms): down;
//!   - G: the down is gossiped to 3 of the 3 other survivors within a gossip period (100 ms).
//!
//!   So at least 1.2 s; the median is about 1.2 s + 0.6 round + 50 ms ≈ 1.55 s; 99% within
//!   1.2 s + 3 rounds + 100 ms = 2.8 s; 4 s needs more than 5 rounds without any survivor
//!   probing it (probability about 10⁻⁵). The deterministic simulation
//!   (`swim_sim_tests.rs`, 500 kills, ideal network) measures median 1.52 s, p90 2.10 s, max
//!   3.21 s; the driver tests on an in-memory network agree (median 1.7 s over 60 kills with
//!   all nodes started at the same instant, the least favourable case).
//! - **Refutation**: a suspect hears of it through gossip or piggybacked updates and answers
//!   with its next incarnation; in simulation the refutation is everywhere within 200 ms, so
//!   the 700 ms window leaves room for 500 ms of delay. A node stopped (SIGSTOP) for less than
//!   `probe_period + suspect_to_down_after` minus that (about 1 s) is at worst suspected and is
//!   never down; stopped longer, it is down, learns so when it resumes, renews its generation
//!   and is up again by itself.
//!
//! # Identities and generations
//!
//! SWIM never lets an identity come back from down, so a node's [`SwimId`] carries a
//! generation: the wall clock in milliseconds when the driver started (a restarted process
//! outranks its previous life without persisting anything), plus one each time the cluster
//! declares it down. foca keys members by `NodeId`, so a newer generation replaces the older.
//!
//! # Clocks
//!
//! Every `time_probe_period` each live member is asked for its clock: t0 and t3 are read from
//! our clock around the request, t1 and t2 come from the peer ([`answer_time_probe`]). δ =
//! (t3 − t0) − (t2 − t1), θ = ((t1 − t0) + (t2 − t3)) / 2; the per-peer estimate is the
//! sample with the smallest δ among the last [`OFFSET_WINDOW_SAMPLES`]. |θ| beyond
//! `max_clock_offset_ms` is an alarm ([`PeerStatus::alarm`], logged at warn once).
//!
//! # Wiring it into a node
//!
//! Implement [`SwimNet`] (`send`: a one-way [`SwimPacket`]; `time_probe`: a [`TimeProbe`]
//! call), call [`Membership::start`], register the handle's endpoints with the node's router
//! ([`MembershipHandle::register`]: received packets go to the driver, probes are answered
//! with [`answer_time_probe`]), and call `set_members` whenever the metadata's member list
//! changes. Liveness changes are logged at info ("node n3 is down") and published through
//! [`MembershipHandle::subscribe`].
//!
//! [foca]: https://docs.rs/foca/2.0.0

mod clock;
mod config;
mod driver;
mod error;
mod identity;
mod messages;
mod swim;
mod timers;

pub use clock::{ClockSample, OFFSET_WINDOW_SAMPLES, OffsetEstimator, answer_time_probe};
pub use config::{MembershipConfig, SwimConfig};
pub use driver::{
    LivenessMap, Membership, MembershipHandle, PeerStatus, SwimNet, TimeProbeFuture, WallClock,
};
pub use error::Error;
pub use identity::SwimId;
pub use messages::{SwimPacket, TimeProbe};
pub use swim::{Liveness, Output, Swim, SwimTimer};

#[cfg(test)]
mod swim_sim_tests;
#[cfg(test)]
mod swim_tests;
