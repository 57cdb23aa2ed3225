//! Configuration: [`SwimConfig`] for the pure machine, [`MembershipConfig`] for the driver.
//!
//! The defaults are chosen for the target in the crate docs (a SIGKILLed node is down on every
//! other node of a 5-node cluster within 2 s at the median and 4 s at worst, with no false
//! suspicion under CPU load); the arithmetic is in the crate docs and checked by
//! `swim_sim_tests::kill_is_detected_within_target_on_every_survivor`.

use std::num::{NonZeroU8, NonZeroUsize};
use std::time::Duration;

use crate::Error;

/// SWIM parameters. Every duration is wall time on the probing node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwimConfig {
    /// One probe round: each round pings one member; a member that acknowledged neither the
    /// ping nor any indirect probe by the end of the round becomes Suspect. This is the
    /// effective failure timeout, so it is the knob against false suspicions. Default 500 ms:
    /// hundreds of times a loopback or LAN round trip, and longer than the scheduling stalls
    /// of a loaded 2-core machine.
    pub probe_period: Duration,
    /// How long to wait for the direct ack before asking others to probe indirectly. A late
    /// direct ack still counts until the round ends. Default 200 ms; must be below
    /// `probe_period`.
    pub probe_rtt: Duration,
    /// How many other members are asked to ping the target when the direct ping is late
    /// (SWIM's k). Default 3.
    pub num_indirect_probes: usize,
    /// How long a suspected member has to refute (bump its incarnation) before it is declared
    /// down. Default 700 ms: seven gossip periods. A live suspect hears of the suspicion and
    /// its refutation is back everywhere within 200 ms in simulation, so the window leaves
    /// room for 500 ms of scheduling delay; a longer one would push the median detection
    /// time past the 2 s target.
    pub suspect_to_down_after: Duration,
    /// How often pending updates (suspect, down, refutations) are gossiped on their own, on
    /// top of riding on probes. Default 100 ms; this bounds how long a "down" takes to reach
    /// every node once one node decided it, and how fast a refutation spreads. Gossip is only
    /// sent while there are updates to spread, so a quiet cluster pays nothing for it.
    pub gossip_period: Duration,
    /// How many random live members each gossip round goes to. Default 3, so in a 5-node
    /// cluster with one node dead a round reaches every other survivor.
    pub gossip_fanout: usize,
    /// How many times one update is sent before it is dropped (bounded retransmission).
    /// Default 6: two gossip rounds at fanout 3, and every receiver retransmits it too.
    pub max_transmissions: u8,
    /// Largest SWIM packet produced and accepted, in bytes. Default 1400, one Ethernet frame.
    pub max_packet_size: usize,
    /// How often members that are down or never heard from are sent an announce, so a
    /// restarted or reconnected node is found again without operator action. Default 1 s.
    pub announce_period: Duration,
}

impl Default for SwimConfig {
    fn default() -> Self {
        Self {
            probe_period: Duration::from_millis(500),
            probe_rtt: Duration::from_millis(200),
            num_indirect_probes: 3,
            suspect_to_down_after: Duration::from_millis(700),
            gossip_period: Duration::from_millis(100),
            gossip_fanout: 3,
            max_transmissions: 6,
            max_packet_size: 1400,
            announce_period: Duration::from_secs(1),
        }
    }
}

/// foca rejects packets that cannot hold a header and a few updates; below this any node
/// name would make SWIM useless.
const MIN_PACKET_SIZE: usize = 256;

impl SwimConfig {
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |field, reason| Err(Error::InvalidConfig { field, reason });
        if self.probe_rtt.is_zero() {
            return invalid("probe_rtt", "must not be zero");
        }
        if self.probe_rtt >= self.probe_period {
            return invalid("probe_rtt", "must be less than probe_period");
        }
        if self.suspect_to_down_after.is_zero() {
            return invalid("suspect_to_down_after", "must not be zero");
        }
        if self.gossip_period.is_zero() {
            return invalid("gossip_period", "must not be zero");
        }
        if self.announce_period.is_zero() {
            return invalid("announce_period", "must not be zero");
        }
        if self.num_indirect_probes == 0 {
            return invalid("num_indirect_probes", "must not be zero");
        }
        if self.gossip_fanout == 0 {
            return invalid("gossip_fanout", "must not be zero");
        }
        if self.max_transmissions == 0 {
            return invalid("max_transmissions", "must not be zero");
        }
        if self.max_packet_size < MIN_PACKET_SIZE {
            return invalid("max_packet_size", "must be at least 256 bytes");
        }
        Ok(())
    }

    /// The foca configuration: our parameters, plus the extensions we rely on.
    pub(crate) fn to_foca(&self) -> Result<foca::Config, Error> {
        self.validate()?;
        let non_zero = |value: usize| NonZeroUsize::new(value).expect("validated above");
        Ok(foca::Config {
            probe_period: self.probe_period,
            probe_rtt: self.probe_rtt,
            num_indirect_probes: non_zero(self.num_indirect_probes),
            max_transmissions: NonZeroU8::new(self.max_transmissions).expect("validated above"),
            suspect_to_down_after: self.suspect_to_down_after,
            // Never forget a down identity: memory is bounded by the member list anyway
            // (foca keys members by NodeId), and forgetting would let stale gossip about an
            // old generation resurrect it.
            remove_down_after: None,
            max_packet_size: non_zero(self.max_packet_size),
            // A node we consider down is told so when it talks to us, and renews its
            // generation: this is how a paused-too-long or partitioned node comes back.
            notify_down_members: true,
            // Members come from the metadata layer, not from discovery.
            periodic_announce: None,
            // `Swim` announces to down and unknown members itself, also while foca is idle
            // (every peer down), which foca's own timer does not.
            periodic_announce_to_down_members: None,
            periodic_gossip: Some(foca::PeriodicParams {
                frequency: self.gossip_period,
                num_members: non_zero(self.gossip_fanout),
            }),
        })
    }
}

/// Driver parameters: SWIM plus clock-offset measurement and queue bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipConfig {
    pub swim: SwimConfig,
    /// How often every live member is sent a time probe. Default 1 s.
    pub time_probe_period: Duration,
    /// How long a time probe may take before it is abandoned. Default 1 s. At most one probe
    /// per peer is in flight.
    pub time_probe_timeout: Duration,
    /// Clock offsets beyond this, in milliseconds, are alarms (`cluster.max_clock_offset_ms`).
    /// Default 500.
    pub max_clock_offset_ms: u64,
    /// Bound of the driver's inbox of received SWIM packets; packets beyond it are dropped
    /// (SWIM tolerates loss). Default 1024.
    pub inbox_capacity: usize,
}

impl Default for MembershipConfig {
    fn default() -> Self {
        Self {
            swim: SwimConfig::default(),
            time_probe_period: Duration::from_secs(1),
            time_probe_timeout: Duration::from_secs(1),
            max_clock_offset_ms: 500,
            inbox_capacity: 1024,
        }
    }
}

impl MembershipConfig {
    pub fn validate(&self) -> Result<(), Error> {
        self.swim.validate()?;
        let invalid = |field, reason| Err(Error::InvalidConfig { field, reason });
        if self.time_probe_period.is_zero() {
            return invalid("time_probe_period", "must not be zero");
        }
        if self.time_probe_timeout.is_zero() {
            return invalid("time_probe_timeout", "must not be zero");
        }
        if self.inbox_capacity == 0 {
            return invalid("inbox_capacity", "must not be zero");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        MembershipConfig::default().validate().unwrap();
    }

    #[test]
    fn probe_rtt_must_be_below_probe_period() {
        let config = SwimConfig { probe_rtt: Duration::from_millis(500), ..SwimConfig::default() };
        assert_eq!(
            config.validate(),
            Err(Error::InvalidConfig {
                field: "probe_rtt",
                reason: "must be less than probe_period"
            })
        );
    }
}
