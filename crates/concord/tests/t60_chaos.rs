//! The bounded chaos suite: seven schedules, each a fresh five-node cluster of real processes on
//! loopback, with set and read-your-writes clients running while the nemesis injects faults of
//! the schedule's kinds, then heals. Every schedule must end with no lost or unexpected element,
//! no stale read, every partition converged and every node up (`concord_testkit::chaos`).
//!
//! Each schedule's seed is fixed so CI runs the same fault choices every time;
//! `CONCORD_TEST_SEED` replaces it. Histories are written under the target's tmp dir. The long
//! soak is `concord-chaos` (README, "Chaos testing").

use std::path::Path;
use std::time::Duration;

use concord_testkit::chaos::nemesis::Partition;
use concord_testkit::chaos::runner;
use concord_testkit::chaos::schedule::{FaultKind, Schedule};
use tokio::sync::Mutex;

/// One cluster at a time: they share two cores.
static SERIAL: Mutex<()> = Mutex::const_new(());

const DURATION: Duration = Duration::from_secs(15);

async fn run(name: &str, seed: u64, kinds: &[FaultKind]) -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let seed = std::env::var("CONCORD_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(seed);
    let schedule = Schedule { seed, kinds: kinds.to_vec(), duration: DURATION, nodes: 5 };
    println!(
        "{name}: seed {seed}, faults {} (replay with CONCORD_TEST_SEED={seed})",
        schedule.mix()
    );
    let history = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("chaos-{name}-{seed}.jsonl"));
    let mode = runner::HostMode::choose()?;
    println!("{name}: host mode {}", mode.name());
    let binary = Path::new(env!("CARGO_BIN_EXE_concord"));
    let outcome = runner::run(binary, &schedule, mode, &history).await?;
    println!(
        "{name}: ok {} fail {} unknown {}; acknowledged adds {}, recovered {}; faults: {}",
        outcome.ok,
        outcome.fail,
        outcome.unknown,
        outcome.set.acknowledged,
        outcome.set.recovered,
        outcome.faults.join("; ")
    );
    assert!(
        outcome.valid(),
        "{name} (seed {seed}) violated: lost {:?}, unexpected {:?}, stale reads {:?}, converged {}, \
         all up {}; history in {}",
        outcome.set.lost,
        outcome.set.unexpected,
        outcome.stale_reads,
        outcome.converged,
        outcome.all_up,
        history.display()
    );
    assert!(outcome.set.acknowledged > 0, "{name}: no add was acknowledged at all");
    Ok(())
}

#[tokio::test]
async fn kill_one_or_a_minority() -> anyhow::Result<()> {
    run("kill_one_or_a_minority", 101, &[FaultKind::KillOne, FaultKind::KillMinority]).await
}

#[tokio::test]
async fn kill_all() -> anyhow::Result<()> {
    run("kill_all", 202, &[FaultKind::KillAll]).await
}

#[tokio::test]
async fn pauses_and_kills() -> anyhow::Result<()> {
    run("pauses_and_kills", 303, &[FaultKind::Pause, FaultKind::KillOne]).await
}

#[tokio::test]
async fn halves_and_isolation() -> anyhow::Result<()> {
    let kinds = [FaultKind::Partition(Partition::Halves), FaultKind::Partition(Partition::Isolate)];
    run("halves_and_isolation", 404, &kinds).await
}

#[tokio::test]
async fn majorities_ring_bridge_and_one_way() -> anyhow::Result<()> {
    let kinds = [
        FaultKind::Partition(Partition::MajoritiesRing),
        FaultKind::Partition(Partition::Bridge),
        FaultKind::Partition(Partition::OneWay),
    ];
    run("majorities_ring_bridge_and_one_way", 505, &kinds).await
}

#[tokio::test]
async fn clock_offsets_and_partitions() -> anyhow::Result<()> {
    let kinds = [FaultKind::ClockOffset, FaultKind::Partition(Partition::Halves)];
    run("clock_offsets_and_partitions", 606, &kinds).await
}

#[tokio::test]
async fn a_node_joins_and_leaves_under_load() -> anyhow::Result<()> {
    run("a_node_joins_and_leaves_under_load", 707, &[FaultKind::Membership]).await
}
