//! Helpers of the cluster tests on eventual namespaces (`t50_eventual`, `t51_tombstones`): a
//! started cluster with namespace `ev`, network cuts through fault injection, a replica's own
//! copy of a key, hints pending, and whether every partition's replicas agree.
//!
//! A replica's own copy of a key is read by cutting its outgoing links for a moment and reading
//! with `r=1` on it: only its local answer can then arrive.

use std::path::Path;
use std::time::Duration;

use concord_client::{FaultRules, GetOptions, GetResult, NamespaceConfig, Quorum, WriteOptions};
use concord_testkit::{ServerOptions, TestCluster};
use tokio::sync::Mutex;

/// One cluster test at a time: they share two cores.
pub static SERIAL: Mutex<()> = Mutex::const_new(());

pub const CLUSTER_UP_TIMEOUT: Duration = Duration::from_secs(30);
/// Deadline for hints to be stored, replayed, or a repair to land.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
pub const NS: &str = "ev";

pub fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_concord"))
}

/// Starts `n` nodes with fault injection, waits until all see all up, creates namespace `ev`
/// (N=3, quorum reads and writes, siblings).
pub async fn start_cluster(n: usize) -> anyhow::Result<TestCluster> {
    start_cluster_with(n, &[]).await
}

/// [`start_cluster`] with `CONCORD_*` settings for every node.
pub async fn start_cluster_with(n: usize, env: &[(&str, &str)]) -> anyhow::Result<TestCluster> {
    let cluster = TestCluster::start(binary(), n, |_, o: ServerOptions| {
        env.iter().fold(o.fault_injection(), |o, (name, value)| o.env(name, value))
    })?;
    cluster
        .wait_for("every node up everywhere", CLUSTER_UP_TIMEOUT, async || all_up(&cluster).await)
        .await?;
    let config = NamespaceConfig { replicas: Some(3), ..Default::default() };
    cluster.client(0).create_namespace(NS, &config).await?;
    cluster.wait_for_namespace(NS, CLUSTER_UP_TIMEOUT).await?;
    cluster
        .wait_for("no partition move pending", CLUSTER_UP_TIMEOUT, async || {
            let status = cluster.client(0).cluster().await.map_err(|e| format!("{e:#}"))?;
            if status.moves.pending == 0 { Ok(()) } else { Err(format!("{:?}", status.moves)) }
        })
        .await?;
    Ok(cluster)
}

pub async fn all_up(cluster: &TestCluster) -> Result<(), String> {
    cluster.check_up(&cluster.running()).await
}

pub fn w(quorum: Quorum) -> WriteOptions {
    WriteOptions { w: Some(quorum), ..Default::default() }
}

pub fn r(quorum: Quorum) -> GetOptions {
    GetOptions { r: Some(quorum), ..Default::default() }
}

pub fn key(i: usize) -> Vec<u8> {
    format!("key-{i:03}").into_bytes()
}

/// Hints held for node `target`, summed over every running node.
pub async fn hints_for(cluster: &TestCluster, target: &str) -> Result<u64, String> {
    let mut total = 0;
    for (_, status) in cluster.statuses().await? {
        total += status.node(target).map_or(0, |n| n.hints_pending);
    }
    Ok(total)
}

/// Node `i`'s own copy of a key: its outgoing links are cut while it reads with r=1.
pub async fn local_read(cluster: &TestCluster, i: usize, k: &[u8]) -> anyhow::Result<GetResult> {
    let others: Vec<String> =
        (0..cluster.len()).filter(|j| *j != i).map(|j| cluster.id(j).to_owned()).collect();
    let client = cluster.client(i);
    client.set_faults(&FaultRules { drop_to: others, ..Default::default() }).await?;
    let read = client.get(NS, k, r(Quorum::One)).await;
    client.clear_faults().await?;
    Ok(read?)
}

/// Cuts node `i` off from every other node, both ways and on both sides.
pub async fn isolate(cluster: &TestCluster, i: usize) -> anyhow::Result<()> {
    let me = cluster.id(i).to_owned();
    let others: Vec<String> =
        (0..cluster.len()).filter(|j| *j != i).map(|j| cluster.id(j).to_owned()).collect();
    let cut = FaultRules { drop_to: others.clone(), drop_from: others, ..Default::default() };
    cluster.client(i).set_faults(&cut).await?;
    for j in (0..cluster.len()).filter(|j| *j != i) {
        let cut = FaultRules {
            drop_to: vec![me.clone()],
            drop_from: vec![me.clone()],
            ..Default::default()
        };
        cluster.client(j).set_faults(&cut).await?;
    }
    Ok(())
}

pub async fn heal(cluster: &TestCluster) -> anyhow::Result<()> {
    for i in cluster.running() {
        cluster.client(i).clear_faults().await?;
    }
    Ok(())
}

pub fn value_of(read: &GetResult) -> Option<&[u8]> {
    match read {
        GetResult::Value { value, .. } => Some(value),
        _ => None,
    }
}

/// Partitions of `ev` whose replicas' anti-entropy roots differ.
pub async fn disagreeing(cluster: &TestCluster) -> anyhow::Result<Vec<u32>> {
    cluster.disagreeing(NS).await
}

/// Waits until every partition's replicas of `ev` agree.
pub async fn wait_for_agreement(cluster: &TestCluster, within: Duration) -> anyhow::Result<()> {
    cluster
        .wait_for("every partition's replicas agree", within, async || {
            match disagreeing(cluster).await.map_err(|e| format!("{e:#}"))? {
                d if d.is_empty() => Ok(()),
                d => Err(format!("{} partitions disagree", d.len())),
            }
        })
        .await
}

/// Runs `concord cluster verify --ns ev` against n1; true if it exits 0.
pub fn verify_cli(cluster: &TestCluster) -> anyhow::Result<bool> {
    let output = std::process::Command::new(binary())
        .args(["cluster", "verify", "--ns", NS, "--endpoint", cluster.client(0).endpoint()])
        .output()?;
    println!("concord cluster verify: {}", String::from_utf8_lossy(&output.stderr).trim());
    Ok(output.status.success())
}

/// The value of a Prometheus counter in a `/metrics` text, 0 if absent.
pub fn counter(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// Drops every hint held on the given nodes (`DELETE /v1/admin/hints`), as if they had been
/// lost with a dead fallback or expired.
pub async fn drop_hints(cluster: &TestCluster, nodes: &[usize]) -> anyhow::Result<()> {
    for &i in nodes {
        let url = format!("{}/v1/admin/hints", cluster.client(i).endpoint().trim_end_matches('/'));
        let response = reqwest::Client::new().delete(&url).send().await?;
        anyhow::ensure!(response.status() == 200, "{}", response.text().await?);
    }
    Ok(())
}

/// Objects (tombstones included) each node holds in `ev`, by node id, summed over every
/// partition's anti-entropy tree.
pub async fn objects_held(
    cluster: &TestCluster,
) -> anyhow::Result<std::collections::BTreeMap<String, u64>> {
    let client = cluster.client(0);
    let partitions = client.ring().await?.partitions.len() as u32;
    let mut held = std::collections::BTreeMap::new();
    for p in 0..partitions {
        for replica in client.partition(p, NS).await?.replicas {
            *held.entry(replica.node).or_default() += replica.keys.unwrap_or(0);
        }
    }
    Ok(held)
}

/// The sum over the running nodes of a counter in their `/metrics`.
pub async fn counter_sum(cluster: &TestCluster, name: &str) -> anyhow::Result<f64> {
    let mut total = 0.0;
    for i in cluster.running() {
        let url = format!("{}/metrics", cluster.client(i).endpoint().trim_end_matches('/'));
        total += counter(&reqwest::get(url).await?.text().await?, name);
    }
    Ok(total)
}
