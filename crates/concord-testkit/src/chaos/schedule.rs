//! Schedules: which faults a run injects, drawn from one seed. A schedule is a list of fault
//! kinds; the runner alternates a fault of a kind drawn from the list (for a few seconds) with a
//! calm period, until the schedule's duration has passed, then heals everything.

use std::time::Duration;

use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;

use super::nemesis::Partition;

/// One kind of fault the nemesis injects, then heals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// SIGKILL one node; restart it at heal.
    KillOne,
    /// SIGKILL a minority; restart them at heal.
    KillMinority,
    /// SIGKILL every node; restart them all at heal.
    KillAll,
    /// SIGSTOP one node for longer than the suspicion timeout; SIGCONT at heal.
    Pause,
    /// Cut links between nodes through fault injection; clear at heal.
    Partition(Partition),
    /// Shift one node's wall clock by up to ±10 s through fault injection; clear at heal.
    ClockOffset,
    /// A membership change under load: the first one joins a new node, the second makes it
    /// leave (its partitions move away while clients run), later ones change nothing.
    Membership,
}

impl FaultKind {
    /// Every kind, in the order the soak draws from.
    pub const ALL: [FaultKind; 11] = [
        FaultKind::KillOne,
        FaultKind::KillMinority,
        FaultKind::KillAll,
        FaultKind::Pause,
        FaultKind::Partition(Partition::Halves),
        FaultKind::Partition(Partition::Isolate),
        FaultKind::Partition(Partition::MajoritiesRing),
        FaultKind::Partition(Partition::Bridge),
        FaultKind::Partition(Partition::OneWay),
        FaultKind::ClockOffset,
        FaultKind::Membership,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::KillOne => "kill-one",
            FaultKind::KillMinority => "kill-minority",
            FaultKind::KillAll => "kill-all",
            FaultKind::Pause => "pause",
            FaultKind::Partition(Partition::Halves) => "partition-halves",
            FaultKind::Partition(Partition::Isolate) => "partition-isolate",
            FaultKind::Partition(Partition::MajoritiesRing) => "partition-majorities-ring",
            FaultKind::Partition(Partition::Bridge) => "partition-bridge",
            FaultKind::Partition(Partition::OneWay) => "partition-one-way",
            FaultKind::ClockOffset => "clock-offset",
            FaultKind::Membership => "membership",
        }
    }
}

/// What one schedule runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// Drives every random choice of the run: faults, victims, timings, client keys.
    pub seed: u64,
    /// The kinds each fault step draws from.
    pub kinds: Vec<FaultKind>,
    /// How long clients run while faults come and go.
    pub duration: Duration,
    pub nodes: usize,
}

impl Schedule {
    /// The `index`-th schedule of a soak started with `seed`: two or three kinds drawn from
    /// every kind, and its own seed.
    pub fn soak(seed: u64, index: u64, duration: Duration) -> Schedule {
        use rand::SeedableRng;
        let own = seed.wrapping_add(index.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut rng = StdRng::seed_from_u64(own);
        let count = rng.random_range(2..=3);
        let kinds = FaultKind::ALL.choose_multiple(&mut rng, count).copied().collect();
        Schedule { seed: own, kinds, duration, nodes: 5 }
    }

    /// The kinds as `a+b+c`, for tables and file names.
    pub fn mix(&self) -> String {
        self.kinds.iter().map(|k| k.name()).collect::<Vec<_>>().join("+")
    }
}

/// How long one fault step lasts, and the calm after it.
pub fn step_timing(rng: &mut StdRng) -> (Duration, Duration) {
    let fault = Duration::from_millis(rng.random_range(2_000..=4_000));
    let calm = Duration::from_millis(rng.random_range(1_000..=2_000));
    (fault, calm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soak_schedules_are_reproducible_and_varied() {
        let a = Schedule::soak(42, 3, Duration::from_secs(10));
        assert_eq!(a, Schedule::soak(42, 3, Duration::from_secs(10)));
        assert!((2..=3).contains(&a.kinds.len()));
        let mixes: std::collections::BTreeSet<String> =
            (0..40).map(|i| Schedule::soak(42, i, Duration::from_secs(1)).mix()).collect();
        assert!(mixes.len() > 20, "40 schedules drew only {} mixes", mixes.len());
        let kinds: std::collections::BTreeSet<&str> = (0..100)
            .flat_map(|i| Schedule::soak(7, i, Duration::from_secs(1)).kinds)
            .map(|k| k.name())
            .collect();
        assert_eq!(kinds.len(), FaultKind::ALL.len(), "every kind is drawn in a soak");
    }
}
