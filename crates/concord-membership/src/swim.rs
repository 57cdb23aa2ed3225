//! [`Swim`]: the pure SWIM state machine. Events in (a packet, a timer, a new member list),
//! [`Output`]s out (packets to send, timers to arm, liveness changes). No clock, no I/O, no
//! tokio: the same inputs and seed always give the same outputs.
//!
//! It wraps [`foca::Foca`] and adds what Concord needs on top:
//!
//! - **The member list is given, not discovered.** Only members are probed, sent to or
//!   listened to: packets from other nodes are dropped before foca sees them, packets to them
//!   are never emitted, and foca entries for them (learned from gossip) are marked down
//!   locally, without telling anyone, so foca never probes them.
//! - **Every member has a liveness**, including members foca never heard from (down) and
//!   suspects (foca only notifies up and down). A `Changed` output is emitted whenever a
//!   member's liveness differs from the last one reported.
//! - **Members that are down or unknown are announced to every `announce_period`**, so a
//!   restarted node (new generation) or a healed partition is found again by itself.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use concord_types::NodeId;
use foca::{
    Codec, Foca, Member, NoCustomBroadcast, Notification, PostcardCodec, Runtime, State, Timer,
};
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;

use crate::{Error, SwimConfig, SwimId};

/// How one node currently sees another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Liveness {
    /// Answers probes (directly or through others).
    Alive,
    /// Failed a probe; will be down after `suspect_to_down_after` unless it refutes. Still
    /// treated as alive for routing, as SWIM prescribes.
    Suspect,
    /// Declared down by the cluster, or never heard from since it became a member.
    Down,
}

impl fmt::Display for Liveness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Liveness::Alive => "up",
            Liveness::Suspect => "suspect",
            Liveness::Down => "down",
        })
    }
}

impl Liveness {
    fn from_foca(state: State) -> Self {
        match state {
            State::Alive => Liveness::Alive,
            State::Suspect => Liveness::Suspect,
            State::Down => Liveness::Down,
        }
    }
}

/// A timer the driver must hand back through [`Swim::handle_timer`] once its delay elapsed.
/// Opaque on purpose: only the machine that armed it knows what it means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwimTimer(pub(crate) TimerKind);

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TimerKind {
    Foca(Timer<SwimId>),
    AnnounceToDown,
}

/// What the driver must do after an input, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send a SWIM packet to a member (one-way, loss tolerated).
    Send { to: NodeId, payload: Bytes },
    /// Call [`Swim::handle_timer`] with `timer` after `after`.
    Schedule { timer: SwimTimer, after: Duration },
    /// A member's liveness changed.
    Changed { node: NodeId, liveness: Liveness },
}

type Engine = Foca<SwimId, PostcardCodec, Xoshiro256PlusPlus, NoCustomBroadcast>;

/// The SWIM state machine of one node.
pub struct Swim {
    /// The SWIM protocol proper: probes, suspicion, incarnations, dissemination.
    foca: Engine,
    config: SwimConfig,
    /// The peers the metadata layer says are members (never ourselves). The only nodes we
    /// probe, send to, or accept packets from.
    members: BTreeSet<NodeId>,
    /// The liveness last reported for each member, so `Changed` is emitted once per change.
    /// Always holds exactly the keys of `members`.
    reported: BTreeMap<NodeId, Liveness>,
    /// Whether the periodic announce timer has been armed (on the first `set_members`).
    announce_armed: bool,
    /// For each member foca holds suspect: how many announce periods it has been so.
    suspect_periods: BTreeMap<NodeId, u32>,
}

/// Announce periods after which a suspicion that neither was refuted nor turned into down is
/// settled as down. foca drops its pending suspicion timers whenever it invalidates its timer
/// token (it went idle with no live member, or learned it was declared down itself), which
/// would otherwise leave a member suspect forever — seen after a healed network cut.
const STALE_SUSPICION_PERIODS: u32 = 4;

impl Swim {
    /// A machine for identity `me`, with an RNG seeded from `seed` (probe order, indirect
    /// probe and gossip targets). It has no members until [`Swim::set_members`].
    pub fn new(me: SwimId, config: SwimConfig, seed: u64) -> Result<Self, Error> {
        let foca_config = config.to_foca()?;
        let rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        Ok(Self {
            foca: Foca::new(me, foca_config, rng, PostcardCodec),
            config,
            members: BTreeSet::new(),
            reported: BTreeMap::new(),
            announce_armed: false,
            suspect_periods: BTreeMap::new(),
        })
    }

    /// Our current identity; its generation grows when we rejoin after being declared down.
    pub fn identity(&self) -> &SwimId {
        self.foca.identity()
    }

    /// The liveness of a member, or `None` for a node that is not a member.
    pub fn liveness(&self, node: &NodeId) -> Option<Liveness> {
        self.reported.get(node).copied()
    }

    /// Every member (excluding ourselves) with its liveness, ordered by node.
    pub fn members(&self) -> impl Iterator<Item = (&NodeId, Liveness)> {
        self.reported.iter().map(|(node, liveness)| (node, *liveness))
    }

    /// Replaces the member list (as decided by the metadata layer). New members start down
    /// and are announced to at once; removed members are forgotten and no longer probed.
    pub fn set_members(&mut self, members: impl IntoIterator<Item = NodeId>) -> Vec<Output> {
        let me = self.identity().node().clone();
        let members: BTreeSet<NodeId> = members.into_iter().filter(|node| *node != me).collect();
        let added: Vec<NodeId> = members.difference(&self.members).cloned().collect();
        for removed in self.members.difference(&members) {
            self.reported.remove(removed);
        }
        self.members = members;

        let mut out = Vec::new();
        for node in &added {
            self.forget_down(node, &mut out);
            self.reported.insert(node.clone(), Liveness::Down);
            self.announce(node.clone(), &mut out);
        }
        if !self.announce_armed {
            self.announce_armed = true;
            out.push(self.announce_timer());
        }
        self.after_input(&mut out);
        out
    }

    /// Handles a packet that arrived from `from` (as authenticated by the transport). Packets
    /// from non-members, packets whose sender is not `from`, and undecodable packets are
    /// dropped.
    pub fn handle_data(&mut self, from: &NodeId, payload: &[u8]) -> Vec<Output> {
        let mut out = Vec::new();
        if !self.members.contains(from) {
            tracing::trace!(%from, "dropping SWIM packet from a non-member");
            return out;
        }
        match Codec::<SwimId>::decode_header(&mut PostcardCodec, payload) {
            Ok(header) if header.src.node() == from => {}
            Ok(header) => {
                tracing::debug!(%from, src = %header.src, "dropping SWIM packet with a foreign sender");
                return out;
            }
            Err(error) => {
                tracing::debug!(%from, %error, "dropping undecodable SWIM packet");
                return out;
            }
        }
        let mut runtime = Collector::new(&self.members, &mut out);
        if let Err(error) = self.foca.handle_data(payload, &mut runtime) {
            tracing::debug!(%from, %error, "SWIM packet rejected");
        }
        self.after_input(&mut out);
        out
    }

    /// Handles a timer armed by an earlier [`Output::Schedule`].
    pub fn handle_timer(&mut self, timer: SwimTimer) -> Vec<Output> {
        let mut out = Vec::new();
        match timer.0 {
            TimerKind::Foca(timer) => self.handle_foca_timer(timer, &mut out),
            TimerKind::AnnounceToDown => {
                let down: Vec<NodeId> = self
                    .members()
                    .filter(|(_, liveness)| *liveness == Liveness::Down)
                    .map(|(node, _)| node.clone())
                    .collect();
                for node in down {
                    self.announce(node, &mut out);
                }
                self.settle_stale_suspicions(&mut out);
                out.push(self.announce_timer());
            }
        }
        self.after_input(&mut out);
        out
    }

    fn handle_foca_timer(&mut self, timer: Timer<SwimId>, out: &mut Vec<Output>) {
        let suspect = match &timer {
            Timer::ChangeSuspectToDown { member_id, .. } => Some(member_id.node().clone()),
            _ => None,
        };
        let first_new = out.len();
        let mut runtime = Collector::new(&self.members, out);
        if let Err(error) = self.foca.handle_timer(timer, &mut runtime) {
            tracing::debug!(%error, "SWIM timer rejected");
        }
        // foca 2.0.0 tells the suspect "you are down" (TurnUndead) when the suspicion timer
        // fires even if the suspect refuted in time, because it checks that the member is
        // known rather than that it went down. A live node told so renews its generation and
        // the cluster may briefly see it down: a false "down" after every refuted suspicion.
        // The TurnUndead is the only packet this timer sends, so drop it unless the member
        // really is down now.
        if let Some(suspect) = suspect
            && self.foca_state(&suspect) != Some(State::Down)
        {
            let produced = out.split_off(first_new);
            out.extend(
                produced
                    .into_iter()
                    .filter(|output| !matches!(output, Output::Send { to, .. } if *to == suspect)),
            );
        }
    }

    /// Declares down every member that has been suspect for [`STALE_SUSPICION_PERIODS`]
    /// announce periods: its suspicion timer was lost, and it never refuted. The update spreads
    /// like any other, so the member learns it and rejoins with a new generation.
    fn settle_stale_suspicions(&mut self, out: &mut Vec<Output>) {
        let suspects: Vec<Member<SwimId>> = self
            .foca
            .iter_membership_state()
            .filter(|member| member.state() == State::Suspect)
            .filter(|member| self.members.contains(member.id().node()))
            .cloned()
            .collect();
        self.suspect_periods
            .retain(|node, _| suspects.iter().any(|member| member.id().node() == node));
        let mut stale = Vec::new();
        for member in suspects {
            let periods = self.suspect_periods.entry(member.id().node().clone()).or_insert(0);
            *periods += 1;
            if *periods >= STALE_SUSPICION_PERIODS {
                tracing::info!(node = %member.id(), "suspicion never settled; declaring down");
                stale.push(Member::new(member.id().clone(), member.incarnation(), State::Down));
            }
        }
        if stale.is_empty() {
            return;
        }
        let mut runtime = Collector::new(&self.members, out);
        if let Err(error) = self.foca.apply_many(stale.into_iter(), true, &mut runtime) {
            tracing::debug!(%error, "settling stale suspicions failed");
        }
    }

    fn foca_state(&self, node: &NodeId) -> Option<State> {
        self.foca
            .iter_membership_state()
            .find(|member| member.id().node() == node)
            .map(|member| member.state())
    }

    /// Declares ourselves down to a few members so the cluster learns of a graceful stop at
    /// once instead of after a suspicion timeout. The machine is inert afterwards.
    pub fn leave(&mut self) -> Vec<Output> {
        let mut out = Vec::new();
        let mut runtime = Collector::new(&self.members, &mut out);
        if let Err(error) = self.foca.leave_cluster(&mut runtime) {
            tracing::debug!(%error, "leaving the SWIM cluster failed");
        }
        out
    }

    /// Sends a join request to `node`. The generation in the destination does not matter:
    /// foca accepts an announce addressed to any generation of its node.
    fn announce(&mut self, node: NodeId, out: &mut Vec<Output>) {
        let mut runtime = Collector::new(&self.members, out);
        if let Err(error) = self.foca.announce(SwimId::new(node, 0), &mut runtime) {
            tracing::debug!(%error, "SWIM announce failed");
        }
    }

    fn announce_timer(&self) -> Output {
        Output::Schedule {
            timer: SwimTimer(TimerKind::AnnounceToDown),
            after: self.config.announce_period,
        }
    }

    /// Drops foca's memory of a down identity of `node`, so that a node re-added to the
    /// member list starts fresh instead of having to renew its generation first.
    fn forget_down(&mut self, node: &NodeId, out: &mut Vec<Output>) {
        let down = self
            .foca
            .iter_membership_state()
            .find(|member| member.id().node() == node && member.state() == State::Down)
            .map(|member| member.id().clone());
        if let Some(id) = down {
            let mut runtime = Collector::new(&self.members, out);
            if let Err(error) = self.foca.handle_timer(Timer::RemoveDown(id), &mut runtime) {
                tracing::debug!(%error, "forgetting a down identity failed");
            }
        }
    }

    fn after_input(&mut self, out: &mut Vec<Output>) {
        self.down_non_members(out);
        self.report_changes(out);
    }

    /// Marks down, locally and without gossiping it, every live foca entry for a node that
    /// is not a member, so that foca never probes it. Such entries come from gossip of nodes
    /// whose member list is ahead of or behind ours, and from members just removed.
    fn down_non_members(&mut self, out: &mut Vec<Output>) {
        let strays: Vec<Member<SwimId>> = self
            .foca
            .iter_membership_state()
            .filter(|member| member.state() != State::Down)
            .filter(|member| !self.members.contains(member.id().node()))
            .map(|member| Member::down(member.id().clone()))
            .collect();
        if strays.is_empty() {
            return;
        }
        let mut runtime = Collector::new(&self.members, out);
        if let Err(error) = self.foca.apply_many(strays.into_iter(), false, &mut runtime) {
            tracing::debug!(%error, "marking non-members down failed");
        }
    }

    fn report_changes(&mut self, out: &mut Vec<Output>) {
        let known: HashMap<&NodeId, State> = self
            .foca
            .iter_membership_state()
            .map(|member| (member.id().node(), member.state()))
            .collect();
        for (node, reported) in &mut self.reported {
            let liveness =
                known.get(node).map_or(Liveness::Down, |state| Liveness::from_foca(*state));
            if *reported != liveness {
                *reported = liveness;
                out.push(Output::Changed { node: node.clone(), liveness });
            }
        }
    }
}

/// The foca [`Runtime`] for one call: turns foca's callbacks into [`Output`]s, dropping
/// packets to non-members.
struct Collector<'a> {
    members: &'a BTreeSet<NodeId>,
    out: &'a mut Vec<Output>,
}

impl<'a> Collector<'a> {
    fn new(members: &'a BTreeSet<NodeId>, out: &'a mut Vec<Output>) -> Self {
        Self { members, out }
    }
}

impl Runtime<SwimId> for Collector<'_> {
    fn notify(&mut self, notification: Notification<'_, SwimId>) {
        match notification {
            Notification::Rejoin(id) => {
                tracing::info!(identity = %id, "the cluster declared us down; rejoined as {id}");
            }
            // Also what leaving the cluster looks like, so not a warning in itself.
            Notification::Defunct => tracing::debug!("our identity is down for good"),
            other => tracing::trace!(notification = ?other, "foca notification"),
        }
    }

    fn send_to(&mut self, to: SwimId, data: &[u8]) {
        if self.members.contains(to.node()) {
            self.out.push(Output::Send {
                to: to.node().clone(),
                payload: Bytes::copy_from_slice(data),
            });
        }
    }

    fn submit_after(&mut self, event: Timer<SwimId>, after: Duration) {
        self.out.push(Output::Schedule { timer: SwimTimer(TimerKind::Foca(event)), after });
    }
}
