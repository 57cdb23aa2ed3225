//! Runs one schedule: a fresh cluster of real processes, the workloads, the nemesis injecting
//! and healing faults, then heal, quiescence and the checks.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use concord_client::{ConflictPolicy, FaultRules, GetOptions, NamespaceConfig, Quorum};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;

use super::checker::{SetReport, StaleRead, check_read_your_writes, check_sets};
use super::nemesis::cut_links;
use super::schedule::{FaultKind, Schedule, step_timing};
use super::workload::{self, RW_NS, Recorder, SET_NS};
use crate::netns::NetnsHosts;
use crate::{ProcessState, ServerOptions, TestCluster};

/// Keys of the set workload.
const SET_KEYS: usize = 4;
const SET_CLIENTS: u32 = 3;
const RW_CLIENTS: u32 = 2;
/// How long a paused node stays frozen: well past the suspicion timeout.
const PAUSE: Duration = Duration::from_secs(4);
/// Deadlines of the phases after the last heal.
const UP_TIMEOUT: Duration = Duration::from_secs(60);
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(120);

/// Where a run's nodes live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostMode {
    /// Every node on 127.0.0.1, on its own ports.
    Loopback,
    /// Every node in its own network namespace with its own address ([`crate::netns`]).
    Netns,
}

impl HostMode {
    pub fn name(self) -> &'static str {
        match self {
            HostMode::Loopback => "loopback",
            HostMode::Netns => "netns",
        }
    }

    /// `CONCORD_CHAOS_MODE` (`netns` or `loopback`) if set; else network namespaces where this
    /// machine allows them (root, `ip`), else loopback.
    pub fn choose() -> anyhow::Result<HostMode> {
        match std::env::var("CONCORD_CHAOS_MODE").as_deref() {
            Ok("netns") => Ok(HostMode::Netns),
            Ok("loopback") => Ok(HostMode::Loopback),
            Ok(other) => {
                anyhow::bail!("CONCORD_CHAOS_MODE must be netns or loopback, not {other:?}")
            }
            Err(_) if NetnsHosts::available() => Ok(HostMode::Netns),
            Err(_) => Ok(HostMode::Loopback),
        }
    }
}

/// What one schedule found.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub schedule: Schedule,
    /// Operations completed ok, failed, unknown.
    pub ok: usize,
    pub fail: usize,
    pub unknown: usize,
    pub set: SetReport,
    pub stale_reads: Vec<StaleRead>,
    /// Every partition's replicas agreed after heal, in both namespaces.
    pub converged: bool,
    /// Every node was up and serving after heal.
    pub all_up: bool,
    /// The faults injected, in order.
    pub faults: Vec<String>,
    pub elapsed: Duration,
}

impl Outcome {
    pub fn valid(&self) -> bool {
        self.set.valid() && self.stale_reads.is_empty() && self.converged && self.all_up
    }
}

/// A fault in force, and how to heal it.
enum Active {
    Killed(Vec<usize>),
    Paused(usize),
    Faults,
    /// Nothing to undo (a membership change runs its course).
    Nothing,
}

/// The node a membership fault adds, and whether it was told to leave.
#[derive(Default)]
struct Joiner {
    index: Option<usize>,
    left: bool,
}

impl Joiner {
    /// The joined node once it was told to leave: it stops on its own when it has left, and is
    /// neither healed nor restarted.
    fn departed(&self) -> Option<usize> {
        self.index.filter(|_| self.left)
    }
}

/// Node `i`'s options in `hosts` (its namespace and address), or unchanged on loopback.
fn placed(hosts: &Option<NetnsHosts>, i: usize, options: ServerOptions) -> ServerOptions {
    let options = options.fault_injection().env("CONCORD_ANTI_ENTROPY_INTERVAL_MS", "1000");
    match hosts {
        Some(hosts) => {
            let address = hosts.address(i);
            let (http, peer) = (format!("{address}:7700"), format!("{address}:7000"));
            options.netns(&hosts.namespace(i)).addrs(&http, &peer)
        }
        None => options,
    }
}

/// Runs `schedule` on a fresh cluster of `binary`, writes its history to `history_path`.
pub async fn run(
    binary: &Path,
    schedule: &Schedule,
    mode: HostMode,
    history_path: &Path,
) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(schedule.seed);
    // Declared before the cluster, so the namespaces outlive its processes. One spare host for
    // a node that joins.
    let hosts = match mode {
        HostMode::Netns => Some(NetnsHosts::create(schedule.nodes + 1)?),
        HostMode::Loopback => None,
    };
    let mut cluster =
        TestCluster::start(binary, schedule.nodes, |i, options| placed(&hosts, i, options))?;
    let mut joiner = Joiner::default();
    cluster
        .wait_for("every node up everywhere", UP_TIMEOUT, async || all_up(&cluster, None).await)
        .await?;
    create_namespaces(&cluster).await?;

    let recorder = Recorder::new();
    let (stop, stopped) = watch::channel(false);
    let nodes: Vec<_> = (0..cluster.len()).map(|i| cluster.client(i)).collect();
    let mut clients = Vec::new();
    for p in 0..SET_CLIENTS {
        let seed = rng.random();
        let task = workload::set_client(
            p,
            nodes.clone(),
            SET_KEYS,
            seed,
            recorder.clone(),
            stopped.clone(),
        );
        clients.push(tokio::spawn(task));
    }
    for p in SET_CLIENTS..SET_CLIENTS + RW_CLIENTS {
        let task =
            workload::rw_client(p, nodes.clone(), rng.random(), recorder.clone(), stopped.clone());
        clients.push(tokio::spawn(task));
    }

    let mut faults = Vec::new();
    let deadline = Instant::now() + schedule.duration;
    while Instant::now() < deadline {
        let kind = *schedule.kinds.choose(&mut rng).expect("a schedule has fault kinds");
        let (length, calm) = step_timing(&mut rng);
        let (active, what) = if kind == FaultKind::Membership {
            change_membership(&mut cluster, &hosts, &mut joiner, schedule.nodes).await?
        } else {
            inject(&mut cluster, kind, schedule.nodes, &mut rng).await?
        };
        println!("nemesis: {what}");
        faults.push(what);
        // The fault's length is the scenario: it is in force while clients keep running.
        tokio::time::sleep(if kind == FaultKind::Pause { PAUSE } else { length }).await;
        heal(&mut cluster, active, joiner.departed()).await?;
        tokio::time::sleep(calm).await;
    }
    heal_everything(&mut cluster, joiner.departed()).await?;
    let _ = stop.send(true);
    for client in clients {
        client.await?;
    }

    let departed = joiner.departed();
    if let Some(i) = departed {
        let id = cluster.id(i).to_owned();
        cluster
            .wait_for(&format!("{id} gone from the members"), CONVERGE_TIMEOUT, async || {
                let status = cluster.client(0).cluster().await.map_err(|e| format!("{e:#}"))?;
                match status.node(&id) {
                    None => Ok(()),
                    Some(node) => Err(format!("{id} is {}", node.state)),
                }
            })
            .await?;
        // A node that left stops on its own.
        let exited = cluster.wait_exit(i, UP_TIMEOUT)?;
        anyhow::ensure!(exited.status.success(), "{id} exited with {}", exited.status);
    }
    let all_up = cluster
        .wait_for("every node up everywhere after heal", UP_TIMEOUT, async || {
            all_up(&cluster, departed).await
        })
        .await
        .is_ok();
    let converged = all_up && converge(&cluster).await.is_ok();
    let finals = final_sets(&cluster).await?;

    let history = recorder.history();
    let mut file = std::io::BufWriter::new(std::fs::File::create(history_path)?);
    history.write_jsonl(&mut file)?;
    let (ok, fail, unknown) = history.counts();
    Ok(Outcome {
        schedule: schedule.clone(),
        ok,
        fail,
        unknown,
        set: check_sets(&history, &finals),
        stale_reads: check_read_your_writes(&history),
        converged,
        all_up,
        faults,
        elapsed: started.elapsed(),
    })
}

/// Every member runs and every running node sees every member up; `departed` left the cluster.
async fn all_up(cluster: &TestCluster, departed: Option<usize>) -> Result<(), String> {
    let members: Vec<usize> = (0..cluster.len()).filter(|i| Some(*i) != departed).collect();
    let running = cluster.running();
    if running != members {
        return Err(format!("only {running:?} run"));
    }
    cluster.check_up(&members).await
}

async fn create_namespaces(cluster: &TestCluster) -> anyhow::Result<()> {
    let client = cluster.client(0);
    let set = NamespaceConfig {
        replicas: Some(3),
        conflicts: Some(ConflictPolicy::Siblings),
        ..Default::default()
    };
    client.create_namespace(SET_NS, &set).await?;
    let rw = NamespaceConfig {
        replicas: Some(3),
        read_quorum: Some(Quorum::Quorum),
        write_quorum: Some(Quorum::Quorum),
        strict: Some(true),
        ..Default::default()
    };
    client.create_namespace(RW_NS, &rw).await?;
    cluster.wait_for_namespace(SET_NS, UP_TIMEOUT).await?;
    cluster.wait_for_namespace(RW_NS, UP_TIMEOUT).await?;
    cluster
        .wait_for("no partition move pending", UP_TIMEOUT, async || {
            let status = cluster.client(0).cluster().await.map_err(|e| format!("{e:#}"))?;
            if status.moves.pending == 0 { Ok(()) } else { Err(format!("{:?}", status.moves)) }
        })
        .await
}

/// The membership change due: join a new node, else make it leave, else nothing.
async fn change_membership(
    cluster: &mut TestCluster,
    hosts: &Option<NetnsHosts>,
    joiner: &mut Joiner,
    nodes: usize,
) -> anyhow::Result<(Active, String)> {
    match joiner.index {
        None => {
            let i = cluster.add(0, |options| placed(hosts, nodes, options))?;
            joiner.index = Some(i);
            Ok((Active::Nothing, format!("membership join {}", cluster.id(i))))
        }
        Some(i) if !joiner.left => {
            cluster.client(0).leave(cluster.id(i)).await?;
            joiner.left = true;
            Ok((Active::Nothing, format!("membership leave {}", cluster.id(i))))
        }
        Some(_) => Ok((Active::Nothing, "membership (no change left)".into())),
    }
}

/// Injects one fault of `kind` among the first `n` nodes (a joined node is never a victim);
/// returns how to heal it and a description.
async fn inject(
    cluster: &mut TestCluster,
    kind: FaultKind,
    n: usize,
    rng: &mut StdRng,
) -> anyhow::Result<(Active, String)> {
    let victims: Vec<usize> = (0..n).collect();
    let what = |nodes: &[usize]| -> String {
        let ids: Vec<&str> = nodes.iter().map(|&i| cluster.id(i)).collect();
        format!("{} {}", kind.name(), ids.join(","))
    };
    Ok(match kind {
        FaultKind::KillOne | FaultKind::KillMinority | FaultKind::KillAll => {
            let count = match kind {
                FaultKind::KillOne => 1,
                FaultKind::KillMinority => (n - 1) / 2,
                _ => n,
            };
            let chosen: Vec<usize> = victims.choose_multiple(rng, count).copied().collect();
            let description = what(&chosen);
            for &i in &chosen {
                cluster.kill9(i);
            }
            (Active::Killed(chosen), description)
        }
        FaultKind::Pause => {
            let i = *victims.choose(rng).expect("nodes");
            let description = what(&[i]);
            cluster.sigstop(i)?;
            (Active::Paused(i), description)
        }
        FaultKind::Partition(shape) => {
            let cut = cut_links(shape, n, rng);
            for i in 0..n {
                let id = |j: usize| cluster.id(j).to_owned();
                let rules = FaultRules {
                    drop_to: cut.iter().filter(|l| l.0 == i).map(|l| id(l.1)).collect(),
                    drop_from: cut.iter().filter(|l| l.1 == i).map(|l| id(l.0)).collect(),
                    ..Default::default()
                };
                cluster.client(i).set_faults(&rules).await?;
            }
            let links: Vec<String> =
                cut.iter().map(|(a, b)| format!("{}>{}", cluster.id(*a), cluster.id(*b))).collect();
            (Active::Faults, format!("{} cut {}", kind.name(), links.join(" ")))
        }
        FaultKind::ClockOffset => {
            let i = *victims.choose(rng).expect("nodes");
            let offset: i64 = rng.random_range(1_000..=10_000) * if rng.random() { 1 } else { -1 };
            let rules = FaultRules { clock_offset_ms: offset, ..Default::default() };
            cluster.client(i).set_faults(&rules).await?;
            (Active::Faults, format!("{} {} {offset:+} ms", kind.name(), cluster.id(i)))
        }
        FaultKind::Membership => unreachable!("membership changes go through change_membership"),
    })
}

async fn heal(
    cluster: &mut TestCluster,
    active: Active,
    departed: Option<usize>,
) -> anyhow::Result<()> {
    match active {
        Active::Killed(nodes) => {
            for i in nodes {
                cluster.restart(i)?;
            }
        }
        Active::Paused(i) => cluster.sigcont(i)?,
        Active::Faults => clear_faults(cluster, departed).await?,
        Active::Nothing => {}
    }
    Ok(())
}

/// Resumes, restarts and clears every node but one that left, whatever state it is in.
async fn heal_everything(cluster: &mut TestCluster, departed: Option<usize>) -> anyhow::Result<()> {
    for i in (0..cluster.len()).filter(|i| Some(*i) != departed) {
        match cluster.state(i) {
            ProcessState::Paused => cluster.sigcont(i)?,
            ProcessState::Stopped => cluster.restart(i)?,
            ProcessState::Running => {}
        }
    }
    clear_faults(cluster, departed).await
}

/// Clears the fault rules of every node but one that left (it may have stopped already).
async fn clear_faults(cluster: &TestCluster, departed: Option<usize>) -> anyhow::Result<()> {
    for i in (0..cluster.len()).filter(|i| Some(*i) != departed) {
        cluster.client(i).clear_faults().await?;
    }
    Ok(())
}

/// Waits for quiescence: no move pending, no hint held, every partition's replicas agreeing in
/// both namespaces.
async fn converge(cluster: &TestCluster) -> anyhow::Result<()> {
    cluster
        .wait_for("no moves or hints pending", CONVERGE_TIMEOUT, async || {
            for (i, status) in cluster.statuses().await? {
                let hints: u64 = status.nodes.iter().map(|n| n.hints_pending).sum();
                if status.moves.pending > 0 || hints > 0 {
                    let id = cluster.id(i);
                    return Err(format!("{id}: {} moves, {hints} hints", status.moves.pending));
                }
            }
            Ok(())
        })
        .await?;
    cluster
        .wait_for("every partition's replicas agree", CONVERGE_TIMEOUT, async || {
            for ns in [SET_NS, RW_NS] {
                match cluster.disagreeing(ns).await.map_err(|e| format!("{e:#}"))? {
                    d if d.is_empty() => {}
                    d => return Err(format!("{ns}: partitions {d:?} disagree")),
                }
            }
            Ok(())
        })
        .await
}

/// Every set key read with R=all after heal: the elements found, siblings united.
async fn final_sets(cluster: &TestCluster) -> anyhow::Result<BTreeMap<String, BTreeSet<u64>>> {
    let mut finals = BTreeMap::new();
    for k in 0..SET_KEYS {
        let key = format!("set-{k}");
        let mut found = None;
        cluster
            .wait_for(&format!("a read of {key} at R=all"), UP_TIMEOUT, async || {
                let options = GetOptions { r: Some(Quorum::All), ..Default::default() };
                let read = cluster.client(0).get(SET_NS, key.as_bytes(), options).await;
                let read = read.map_err(|e| format!("{e:#}"))?;
                found = Some(workload::numbers(&read).0);
                Ok(())
            })
            .await?;
        finals.insert(key, found.unwrap_or_default());
    }
    Ok(finals)
}
