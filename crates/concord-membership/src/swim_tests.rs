//! Exact-output tests of [`Swim`]: one machine ("a"), its peers played by hand-made packets,
//! timers fired by hand. Each output is rendered as one line ("send c ping#1", "arm probe
//! 500ms", "c is suspect") so a test states the whole sequence it expects. The seed is fixed,
//! so which member is probed first is part of the expectation (SWIM paper §4.3: probe targets
//! in a shuffled round robin).

use std::time::Duration;

use bytes::BufMut;
use concord_types::NodeId;
use foca::{Codec, Header, Member, Message, PostcardCodec, State, Timer};

use crate::swim::TimerKind;
use crate::{Liveness, Output, Swim, SwimConfig, SwimId, SwimTimer};

pub(crate) const SEED: u64 = 7;

pub(crate) fn node(name: &str) -> NodeId {
    NodeId::new(name).unwrap()
}

pub(crate) fn id(name: &str, generation: u64) -> SwimId {
    SwimId::new(node(name), generation)
}

fn machine(name: &str) -> Swim {
    Swim::new(id(name, 1), SwimConfig::default(), SEED).unwrap()
}

/// A SWIM packet as peer `src` would send it to `dst`, carrying `updates`.
fn packet(
    src: &SwimId,
    src_incarnation: u16,
    dst: &SwimId,
    message: Message<SwimId>,
    updates: &[Member<SwimId>],
) -> Vec<u8> {
    let header = Header { src: src.clone(), src_incarnation, dst: dst.clone(), message };
    let mut buf = Vec::new();
    PostcardCodec.encode_header(&header, &mut buf).unwrap();
    if !updates.is_empty() {
        buf.put_u16(u16::try_from(updates.len()).unwrap());
        for member in updates {
            PostcardCodec.encode_member(member, &mut buf).unwrap();
        }
    }
    buf
}

/// The header and piggybacked updates of a packet we emitted.
pub(crate) fn decode(payload: &[u8]) -> (Header<SwimId>, Vec<Member<SwimId>>) {
    let mut buf = payload;
    let header = Codec::<SwimId>::decode_header(&mut PostcardCodec, &mut buf).unwrap();
    let mut updates = Vec::new();
    if buf.len() >= 2 {
        let count = u16::from_be_bytes([buf[0], buf[1]]);
        buf = &buf[2..];
        for _ in 0..count {
            updates.push(Codec::<SwimId>::decode_member(&mut PostcardCodec, &mut buf).unwrap());
        }
    }
    (header, updates)
}

fn describe_message(message: &Message<SwimId>) -> String {
    match message {
        Message::Ping(n) => format!("ping#{n}"),
        Message::Ack(n) => format!("ack#{n}"),
        Message::PingReq { target, probe_number } => {
            format!("ping-req#{probe_number} {}", target.node())
        }
        Message::IndirectPing { origin, probe_number } => {
            format!("indirect-ping#{probe_number} {}", origin.node())
        }
        Message::IndirectAck { target, probe_number } => {
            format!("indirect-ack#{probe_number} {}", target.node())
        }
        Message::ForwardedAck { origin, probe_number } => {
            format!("forwarded-ack#{probe_number} {}", origin.node())
        }
        Message::Announce => "announce".to_string(),
        Message::Feed => "feed".to_string(),
        Message::Gossip => "gossip".to_string(),
        Message::Broadcast => "broadcast".to_string(),
        Message::TurnUndead => "turn-undead".to_string(),
    }
}

fn describe_timer(timer: &SwimTimer) -> String {
    match &timer.0 {
        TimerKind::AnnounceToDown => "announce".to_string(),
        TimerKind::Foca(Timer::ProbeRandomMember(_)) => "probe".to_string(),
        TimerKind::Foca(Timer::SendIndirectProbe { probed_id, .. }) => {
            format!("indirect-probe {}", probed_id.node())
        }
        TimerKind::Foca(Timer::ChangeSuspectToDown { member_id, incarnation, .. }) => {
            format!("suspect-to-down {}@{incarnation}", member_id.node())
        }
        TimerKind::Foca(Timer::PeriodicGossip(_)) => "gossip".to_string(),
        TimerKind::Foca(other) => format!("{other:?}"),
    }
}

/// One line per output; packets without their piggybacked updates.
pub(crate) fn describe(out: &[Output]) -> Vec<String> {
    out.iter()
        .map(|output| match output {
            Output::Send { to, payload } => {
                format!("send {to} {}", describe_message(&decode(payload).0.message))
            }
            Output::Schedule { timer, after } => {
                format!("arm {} {after:?}", describe_timer(timer))
            }
            Output::Changed { node, liveness } => format!("{node} is {liveness}"),
        })
        .collect()
}

/// The timer armed by `out` whose description starts with `prefix`.
fn armed(out: &[Output], prefix: &str) -> SwimTimer {
    out.iter()
        .find_map(|output| match output {
            Output::Schedule { timer, .. } if describe_timer(timer).starts_with(prefix) => {
                Some(timer.clone())
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("no timer {prefix:?} in {:?}", describe(out)))
}

/// "a" with members b, c, d, all of which answered its announce: the starting point of most
/// tests. Returns the machine and its first probe timer.
fn a_with_three_live_peers() -> (Swim, SwimTimer) {
    let mut a = machine("a");
    let out = a.set_members([node("b"), node("c"), node("d"), node("a")]);
    assert_eq!(
        describe(&out),
        ["send b announce", "send c announce", "send d announce", "arm announce 1s"]
    );
    assert_eq!(a.liveness(&node("b")), Some(Liveness::Down), "never heard from");
    assert_eq!(a.liveness(&node("a")), None, "we are not our own member");

    let feed = |peer: &str| packet(&id(peer, 1), 0, &id("a", 1), Message::Feed, &[]);
    let out = a.handle_data(&node("b"), &feed("b"));
    assert_eq!(describe(&out), ["arm probe 500ms", "arm gossip 100ms", "b is up"]);
    let probe = armed(&out, "probe");
    assert_eq!(describe(&a.handle_data(&node("c"), &feed("c"))), ["c is up"]);
    assert_eq!(describe(&a.handle_data(&node("d"), &feed("d"))), ["d is up"]);
    (a, probe)
}

/// SWIM §4.1 and §4.2 on a member that never answers: ping, then after `probe_rtt` ping
/// requests to the k = 2 other members, then at the end of the round suspicion, then after
/// `suspect_to_down_after` down (and a note to it that it is down).
#[test]
fn unanswered_probe_leads_to_indirect_probes_then_suspect_then_down() {
    let (mut a, probe) = a_with_three_live_peers();

    let out = a.handle_timer(probe);
    assert_eq!(describe(&out), ["send d ping#1", "arm indirect-probe d 200ms", "arm probe 500ms"]);
    let indirect = armed(&out, "indirect-probe");
    let probe = armed(&out, "probe");

    let out = a.handle_timer(indirect);
    assert_eq!(describe(&out), ["send c ping-req#1 d", "send b ping-req#1 d"]);

    let out = a.handle_timer(probe);
    assert_eq!(
        describe(&out),
        [
            "arm suspect-to-down d@0 700ms",
            "send b ping#2",
            "arm indirect-probe b 200ms",
            "arm probe 500ms",
            "d is suspect"
        ]
    );
    assert_eq!(a.liveness(&node("d")), Some(Liveness::Suspect));
    let suspect_to_down = armed(&out, "suspect-to-down");

    let out = a.handle_timer(suspect_to_down);
    assert_eq!(describe(&out), ["send d turn-undead", "d is down"]);
    assert_eq!(
        a.members().collect::<Vec<_>>(),
        [
            (&node("b"), Liveness::Alive),
            (&node("c"), Liveness::Alive),
            (&node("d"), Liveness::Down)
        ]
    );
}

/// Suspicion is piggybacked on the next packets (SWIM §4.4, dissemination).
#[test]
fn suspicion_rides_on_the_next_ping() {
    let (mut a, probe) = a_with_three_live_peers();
    let out = a.handle_timer(probe);
    a.handle_timer(armed(&out, "indirect-probe"));
    let out = a.handle_timer(armed(&out, "probe"));
    let Output::Send { to, payload } = &out[1] else {
        panic!("expected the next ping: {:?}", describe(&out))
    };
    assert_eq!(to, &node("b"));
    let (_, updates) = decode(payload);
    assert!(updates.contains(&Member::new(id("d", 1), 0, State::Suspect)), "{updates:?}");
}

/// A late direct ack, after the indirect probes went out but within the round, still counts.
#[test]
fn ack_within_the_round_prevents_suspicion() {
    let (mut a, probe) = a_with_three_live_peers();
    let out = a.handle_timer(probe);
    a.handle_timer(armed(&out, "indirect-probe"));
    let ack = packet(&id("d", 1), 0, &id("a", 1), Message::Ack(1), &[]);
    assert_eq!(describe(&a.handle_data(&node("d"), &ack)), Vec::<String>::new());
    let out = a.handle_timer(armed(&out, "probe"));
    assert_eq!(describe(&out), ["send b ping#2", "arm indirect-probe b 200ms", "arm probe 500ms"]);
    assert_eq!(a.liveness(&node("d")), Some(Liveness::Alive));
}

/// SWIM §4.2: a suspect that speaks with a higher incarnation is alive again, and the pending
/// down timer (armed for incarnation 0) no longer applies. In particular the refuted suspect
/// is not told it is down (foca 2.0.0 would, see `Swim::handle_foca_timer`).
#[test]
fn suspect_refuting_with_higher_incarnation_is_alive_again() {
    let (mut a, probe) = a_with_three_live_peers();
    let out = a.handle_timer(probe);
    a.handle_timer(armed(&out, "indirect-probe"));
    let out = a.handle_timer(armed(&out, "probe"));
    let suspect_to_down = armed(&out, "suspect-to-down d@0");

    let refutation = packet(&id("d", 1), 1, &id("a", 1), Message::Gossip, &[]);
    assert_eq!(describe(&a.handle_data(&node("d"), &refutation)), ["d is up"]);
    assert_eq!(describe(&a.handle_timer(suspect_to_down)), Vec::<String>::new());
    assert_eq!(a.liveness(&node("c")), Some(Liveness::Alive));
}

/// The other side of refutation: told it is suspected, "a" bumps its incarnation and gossips
/// to k members so the refutation spreads.
#[test]
fn suspected_node_refutes_with_next_incarnation() {
    let (mut a, _) = a_with_three_live_peers();
    let rumour = packet(
        &id("b", 1),
        0,
        &id("a", 1),
        Message::Gossip,
        &[Member::new(id("a", 1), 0, State::Suspect)],
    );
    let out = a.handle_data(&node("b"), &rumour);
    assert_eq!(describe(&out), ["send c gossip", "send b gossip", "send d gossip"]);
    for output in &out {
        let Output::Send { payload, .. } = output else { unreachable!() };
        assert_eq!(decode(payload).0.src_incarnation, 1);
    }
}

/// A member declared down that restarts with a new generation is alive again as soon as it
/// talks to us: the new generation replaces the old one (foca `Identity::renew`).
#[test]
fn restarted_member_with_new_generation_is_alive_again() {
    let (mut a, probe) = a_with_three_live_peers();
    let out = a.handle_timer(probe);
    a.handle_timer(armed(&out, "indirect-probe"));
    let out = a.handle_timer(armed(&out, "probe"));
    a.handle_timer(armed(&out, "suspect-to-down"));
    assert_eq!(a.liveness(&node("d")), Some(Liveness::Down));

    // The old generation stays dead: its packets are answered with "you are down".
    let stale = packet(&id("d", 1), 5, &id("a", 1), Message::Gossip, &[]);
    assert_eq!(describe(&a.handle_data(&node("d"), &stale)), ["send d turn-undead"]);
    assert_eq!(a.liveness(&node("d")), Some(Liveness::Down));

    let announce = packet(&id("d", 2), 0, &id("a", 0), Message::Announce, &[]);
    assert_eq!(describe(&a.handle_data(&node("d"), &announce)), ["send d feed", "d is up"]);
}

/// Told by a peer that it is down, "a" renews itself as the next generation and tells the
/// cluster at once; nobody has to intervene.
#[test]
fn node_declared_down_rejoins_as_next_generation() {
    let (mut a, _) = a_with_three_live_peers();
    let verdict = packet(&id("b", 1), 0, &id("a", 1), Message::TurnUndead, &[]);
    let out = a.handle_data(&node("b"), &verdict);
    assert_eq!(a.identity(), &id("a", 2));
    assert_eq!(describe(&out), ["send c gossip", "send b gossip", "send d gossip"]);
    let Output::Send { payload, .. } = &out[0] else { unreachable!() };
    let (header, updates) = decode(payload);
    assert_eq!(header.src, id("a", 2));
    assert!(updates.contains(&Member::down(id("a", 1))), "{updates:?}");
}

/// Packets from nodes outside the member list, packets whose sender is not the connection's
/// peer, and garbage are dropped without any output.
#[test]
fn non_members_spoofers_and_garbage_are_ignored() {
    let (mut a, _) = a_with_three_live_peers();

    let from_e = packet(&id("e", 1), 0, &id("a", 1), Message::Ping(1), &[]);
    assert!(a.handle_data(&node("e"), &from_e).is_empty());
    assert_eq!(a.liveness(&node("e")), None);

    let c_via_b = packet(&id("c", 1), 3, &id("a", 1), Message::Ping(1), &[]);
    assert!(a.handle_data(&node("b"), &c_via_b).is_empty());

    let mut garbage = 0x9e37_79b9_7f4a_7c15_u64;
    for len in 0..300 {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                garbage ^= garbage << 13;
                garbage ^= garbage >> 7;
                garbage ^= garbage << 17;
                garbage as u8
            })
            .collect();
        assert!(a.handle_data(&node("b"), &bytes).is_empty(), "len {len}");
    }

    // A valid header followed by a truncated update list.
    let mut truncated = packet(
        &id("b", 1),
        0,
        &id("a", 1),
        Message::Gossip,
        &[Member::new(id("c", 1), 0, State::Suspect)],
    );
    truncated.pop();
    assert!(a.handle_data(&node("b"), &truncated).is_empty());
    assert_eq!(a.liveness(&node("c")), Some(Liveness::Alive));
}

/// Gossip about a node outside the member list does not make us probe it.
#[test]
fn gossip_about_non_members_never_makes_them_probed() {
    let (mut a, mut probe) = a_with_three_live_peers();
    let gossip = packet(&id("b", 1), 0, &id("a", 1), Message::Gossip, &[Member::alive(id("e", 1))]);
    assert!(a.handle_data(&node("b"), &gossip).is_empty());
    for _ in 0..12 {
        let out = a.handle_timer(probe);
        assert!(describe(&out).iter().all(|line| !line.contains(" e ")), "{:?}", describe(&out));
        probe = armed(&out, "probe");
    }
}

/// A member removed from the list is no longer reported, probed or listened to; added back,
/// it is announced to and alive again as soon as it answers, with the same generation.
#[test]
fn removed_member_is_forgotten_and_can_be_added_back() {
    let (mut a, mut probe) = a_with_three_live_peers();
    assert!(a.set_members([node("b"), node("d")]).is_empty());
    assert_eq!(a.liveness(&node("c")), None);
    let from_c = packet(&id("c", 1), 0, &id("a", 1), Message::Ping(9), &[]);
    assert!(a.handle_data(&node("c"), &from_c).is_empty());
    for _ in 0..8 {
        let out = a.handle_timer(probe);
        assert!(describe(&out).iter().all(|line| !line.contains(" c ")), "{:?}", describe(&out));
        probe = armed(&out, "probe");
    }

    assert_eq!(describe(&a.set_members([node("b"), node("c"), node("d")])), ["send c announce"]);
    assert_eq!(a.liveness(&node("c")), Some(Liveness::Down));
    let feed = packet(&id("c", 1), 0, &id("a", 1), Message::Feed, &[]);
    assert_eq!(describe(&a.handle_data(&node("c"), &feed)), ["c is up"]);
}

/// Members never heard from are announced to every `announce_period`, until they answer.
#[test]
fn silent_members_are_announced_to_periodically() {
    let mut a = machine("a");
    let out = a.set_members([node("b"), node("c")]);
    let announce = armed(&out, "announce");
    let feed = packet(&id("b", 1), 0, &id("a", 1), Message::Feed, &[]);
    a.handle_data(&node("b"), &feed);
    assert_eq!(describe(&a.handle_timer(announce)), ["send c announce", "arm announce 1s"]);
}

#[test]
fn invalid_config_is_refused() {
    let config = SwimConfig { gossip_fanout: 0, ..SwimConfig::default() };
    assert!(Swim::new(id("a", 1), config, SEED).is_err());
}

#[test]
fn timers_of_a_new_machine_are_only_the_announce_timer() {
    let mut a = machine("a");
    let out = a.set_members([]);
    assert_eq!(describe(&out), ["arm announce 1s"]);
    assert_eq!(Duration::from_secs(1), SwimConfig::default().announce_period);
}

/// A suspicion whose timer is lost (foca invalidates pending timers when it goes idle or
/// learns it was declared down itself, as after a healed network cut) is settled as down after
/// four announce periods instead of staying suspect forever; the down update is gossiped so
/// the member learns it and rejoins.
#[test]
fn a_suspicion_whose_timer_is_lost_settles_as_down() {
    let (mut a, probe) = a_with_three_live_peers();
    let out = a.handle_timer(probe);
    let indirect = armed(&out, "indirect-probe");
    let probe = armed(&out, "probe");
    a.handle_timer(indirect);
    let out = a.handle_timer(probe);
    assert_eq!(a.liveness(&node("d")), Some(Liveness::Suspect));
    // The suspect-to-down timer is never delivered: it is lost.
    let _lost = armed(&out, "suspect-to-down");

    let mut announce = a.set_members([node("b"), node("c"), node("d")]);
    assert!(announce.is_empty(), "no change of members: {:?}", describe(&announce));
    let mut timer = SwimTimer(TimerKind::AnnounceToDown);
    for period in 1..=3 {
        announce = a.handle_timer(timer);
        assert_eq!(a.liveness(&node("d")), Some(Liveness::Suspect), "period {period}");
        timer = armed(&announce, "announce");
    }
    let out = a.handle_timer(timer);
    assert!(describe(&out).contains(&"d is down".to_string()), "{:?}", describe(&out));
    assert_eq!(a.liveness(&node("d")), Some(Liveness::Down));
}
