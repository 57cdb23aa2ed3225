//! Deletes and lost data on real processes: deletes made while a replica is cut off never come
//! back and their tombstones are purged after the grace only once every replica holds them; a
//! node down longer than the grace refuses to start; a node whose data dir was wiped is refused
//! until removed, then rebuilt by a fresh join; a replica restored from an older copy of its data
//! dir is brought back by anti-entropy.
//!
//! The grace is set to a few seconds where the test needs it to pass. Waiting for it to pass is
//! the scenario itself (time a tombstone or a stopped node must age), not a wait for a condition.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::eventual::*;
use concord_client::{GetResult, Quorum, WriteOptions};
use concord_testkit::{TestCluster, TestServer};

/// The tombstone grace of the tests that let it pass, in seconds.
const GRACE_S: u64 = 4;

fn all() -> WriteOptions {
    w(Quorum::All)
}

fn two() -> WriteOptions {
    WriteOptions { w: Some(Quorum::Count(2)), timeout_ms: Some(2000), ..Default::default() }
}

/// Waits until `at` (a time the scenario needs to pass), printing why.
async fn until(at: Instant, why: &str) {
    println!("let time pass: {why}");
    tokio::time::sleep_until(at.into()).await;
}

/// Every replica of every partition holds exactly `expected` objects in `ev` (tombstones
/// included), and the replicas agree.
async fn wait_for_objects(
    cluster: &TestCluster,
    expected: u64,
    within: Duration,
) -> anyhow::Result<()> {
    let what = format!("every node holding {expected} objects, replicas agreeing");
    cluster
        .wait_for(&what, within, async || {
            let held = objects_held(cluster).await.map_err(|e| format!("{e:#}"))?;
            let disagree = disagreeing(cluster).await.map_err(|e| format!("{e:#}"))?;
            if held.values().all(|n| *n == expected) && disagree.is_empty() {
                Ok(())
            } else {
                Err(format!("held {held:?}, {} partitions disagree", disagree.len()))
            }
        })
        .await
}

/// Reads every key of `deleted` at R=3 through every node, and n3's own copy: all absent.
async fn assert_deleted(
    cluster: &TestCluster,
    deleted: std::ops::Range<usize>,
) -> anyhow::Result<()> {
    for i in deleted {
        for node in 0..cluster.len() {
            let read = cluster.client(node).get(NS, &key(i), r(Quorum::All)).await?;
            assert!(matches!(read, GetResult::NotFound { .. }), "key {i} came back: {read:?}");
        }
        let own = local_read(cluster, 2, &key(i)).await?;
        assert!(matches!(own, GetResult::NotFound { .. }), "key {i} came back on n3: {own:?}");
    }
    Ok(())
}

/// Deletes made while n3 is cut off, with their hints lost, never come back once it is healed,
/// and their tombstones are purged after the grace once all replicas hold them. While n3 cannot
/// confirm, tombstones outlive the grace; a key purged and then written again holds only the
/// new value.
#[tokio::test]
async fn deletes_stay_deleted_and_tombstones_go_after_the_grace() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let grace = GRACE_S.to_string();
    let cluster = start_cluster_with(
        3,
        &[
            ("CONCORD_ANTI_ENTROPY_TOMBSTONE_GRACE_S", grace.as_str()),
            ("CONCORD_ANTI_ENTROPY_PURGE_INTERVAL_MS", "500"),
            ("CONCORD_ANTI_ENTROPY_INTERVAL_MS", "1000"),
        ],
    )
    .await?;
    let client = cluster.client(0);
    println!("write 60 keys on all three replicas");
    for i in 0..60 {
        client.put(NS, &key(i), format!("v-{i}"), None, None, all()).await?;
    }

    println!("phase 1: cut n3 off, delete keys 0..20, lose the hints, heal within the grace");
    isolate(&cluster, 2).await?;
    for i in 0..20 {
        client.delete(NS, &key(i), None, two()).await?;
    }
    drop_hints(&cluster, &[0, 1]).await?;
    heal(&cluster).await?;
    wait_for_agreement(&cluster, SETTLE_TIMEOUT).await?;
    assert_deleted(&cluster, 0..20).await?;
    println!("the tombstones are purged once the grace has passed");
    wait_for_objects(&cluster, 40, Duration::from_secs(GRACE_S + 30)).await?;
    assert_deleted(&cluster, 0..20).await?;
    let purged = counter_sum(&cluster, "concord_replica_tombstones_purged_total").await?;
    assert!(purged >= 60.0, "tombstones purged on the three replicas: {purged}");

    println!("phase 2: cut n3 off again, delete keys 20..40, lose the hints");
    isolate(&cluster, 2).await?;
    let deleted_at = Instant::now();
    for i in 20..40 {
        client.delete(NS, &key(i), None, two()).await?;
    }
    drop_hints(&cluster, &[0, 1]).await?;
    until(
        deleted_at + Duration::from_secs(GRACE_S + 3),
        "the tombstones age past the grace while n3 cannot confirm them",
    )
    .await;
    let held = objects_held(&cluster).await?;
    let on = |node: &str| held.get(node).copied().unwrap_or(0);
    assert_eq!((on("n1"), on("n2")), (40, 40), "tombstones purged without n3: {held:?}");
    heal(&cluster).await?;
    wait_for_objects(&cluster, 20, Duration::from_secs(GRACE_S + 30)).await?;
    assert_deleted(&cluster, 0..40).await?;
    for i in 40..60 {
        let read = local_read(&cluster, 2, &key(i)).await?;
        assert_eq!(value_of(&read), Some(format!("v-{i}").as_bytes()), "key {i} on n3");
    }

    println!("phase 3: a purged key written again holds only the new value");
    cluster.client(2).put(NS, &key(5), "again", None, None, all()).await?;
    let read = client.get(NS, &key(5), r(Quorum::All)).await?;
    assert_eq!(value_of(&read), Some(&b"again"[..]), "{read:?}");
    Ok(())
}

/// A node stopped for longer than the grace refuses to start, saying how to rebuild it; it
/// starts when told that the whole cluster was down together.
#[tokio::test]
async fn a_node_down_longer_than_the_grace_refuses_to_start() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let grace = GRACE_S.to_string();
    let mut cluster =
        start_cluster_with(3, &[("CONCORD_ANTI_ENTROPY_TOMBSTONE_GRACE_S", grace.as_str())])
            .await?;
    cluster.stop(2)?;
    let stopped_at = Instant::now();
    let options = cluster.node(2).options.clone();
    until(stopped_at + Duration::from_secs(GRACE_S + 2), "n3 stays down past the grace").await;
    let refused = TestServer::run_to_exit(binary(), &options, Duration::from_secs(30))?;
    assert!(!refused.status.success(), "n3 started after a downtime past the grace");
    assert!(
        refused.log.contains("longer than anti_entropy.tombstone_grace_s")
            && refused.log.contains("concord cluster remove n3"),
        "the refusal explains itself:\n{}",
        refused.log
    );
    let allowed = options.env("CONCORD_ANTI_ENTROPY_START_AFTER_GRACE", "true");
    let mut started = TestServer::start(binary(), allowed)?;
    let health = reqwest::get(format!("{}/health", started.endpoint)).await?;
    assert_eq!(health.status(), 200);
    started.kill9();
    Ok(())
}

/// A node restarted with an empty data dir under its old id is refused; after `cluster remove`
/// it joins afresh and is rebuilt by handoff with every key.
#[tokio::test]
async fn a_wiped_node_is_refused_until_removed_then_rebuilt() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let mut cluster = start_cluster(3).await?;
    let client = cluster.client(0);
    for i in 0..100 {
        client.put(NS, &key(i), format!("v-{i}"), None, None, all()).await?;
    }
    cluster.stop(2)?;
    let options = cluster.node(2).options.clone();
    println!("wipe n3's data dir and start it again under its id");
    std::fs::remove_dir_all(&options.data_dir)?;
    let refused = TestServer::run_to_exit(binary(), &options, Duration::from_secs(30))?;
    assert!(!refused.status.success(), "a wiped n3 was admitted");
    assert!(
        refused.log.contains("refused the join") && refused.log.contains("cluster remove n3"),
        "the refusal explains itself:\n{}",
        refused.log
    );
    assert_eq!(client.cluster().await?.node("n3").map(|n| n.state.as_str()), Some("down"));

    println!("remove n3, then start it again: a fresh join");
    client.remove("n3").await?;
    cluster
        .wait_for("n3 gone from the members", SETTLE_TIMEOUT, async || {
            let status = client.cluster().await.map_err(|e| format!("{e:#}"))?;
            match (status.node("n3"), status.moves.pending) {
                (None, 0) => Ok(()),
                (n3, pending) => {
                    Err(format!("n3 {:?}, {pending} moves pending", n3.map(|n| &n.state)))
                }
            }
        })
        .await?;
    std::fs::remove_dir_all(&options.data_dir)?;
    cluster.restart(2)?;
    cluster
        .wait_for("n3 rebuilt: up, no move pending", Duration::from_secs(60), async || {
            let status = client.cluster().await.map_err(|e| format!("{e:#}"))?;
            let n3 = status.node("n3").map(|n| n.state.clone());
            match (n3.as_deref(), status.moves.pending) {
                (Some("up"), 0) => Ok(()),
                (n3, pending) => Err(format!("n3 {n3:?}, {pending} moves pending")),
            }
        })
        .await?;
    wait_for_objects(&cluster, 100, SETTLE_TIMEOUT).await?;
    for i in 0..100 {
        let read = local_read(&cluster, 2, &key(i)).await?;
        assert_eq!(value_of(&read), Some(format!("v-{i}").as_bytes()), "key {i} on n3");
    }
    Ok(())
}

/// n3's data dir is copied while it is stopped; it then misses new keys, overwrites and deletes
/// made while it runs and while it is stopped; restored from the copy, anti-entropy brings it to
/// the others' state, and writes it coordinates afterwards are not confused with the ones its
/// copy forgot.
#[tokio::test]
async fn a_replica_restored_from_an_old_copy_catches_up() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let mut cluster =
        start_cluster_with(3, &[("CONCORD_ANTI_ENTROPY_INTERVAL_MS", "1000")]).await?;
    let client = cluster.client(0);
    for i in 0..100 {
        client.put(NS, &key(i), format!("v1-{i}"), None, None, all()).await?;
    }
    cluster.stop(2)?;
    let data_dir = cluster.node(2).options.data_dir.clone();
    let copy = cluster.dir().join("n3-copy");
    copy_dir(&data_dir, &copy)?;
    cluster.restart(2)?;
    cluster
        .wait_for("every node up everywhere", SETTLE_TIMEOUT, async || all_up(&cluster).await)
        .await?;
    println!("after the copy: overwrite 0..50 (through n3 too), delete 50..70, add 100..150");
    let mut expected: BTreeMap<usize, Option<String>> =
        (0..100).map(|i| (i, Some(format!("v1-{i}")))).collect();
    for i in 0..50 {
        let writer = cluster.client(i % 3);
        let context = writer.get(NS, &key(i), r(Quorum::All)).await?.context().map(str::to_owned);
        writer.put(NS, &key(i), format!("v2-{i}"), None, context.as_deref(), all()).await?;
        expected.insert(i, Some(format!("v2-{i}")));
    }
    for i in 50..70 {
        client.delete(NS, &key(i), None, all()).await?;
        expected.insert(i, None);
    }
    for i in 100..150 {
        client.put(NS, &key(i), format!("v1-{i}"), None, None, all()).await?;
        expected.insert(i, Some(format!("v1-{i}")));
    }
    cluster.stop(2)?;
    println!("restore n3's data dir from the copy and start it");
    std::fs::remove_dir_all(&data_dir)?;
    copy_dir(&copy, &data_dir)?;
    cluster.restart(2)?;
    wait_for_agreement(&cluster, Duration::from_secs(60)).await?;
    for (&i, value) in &expected {
        let read = local_read(&cluster, 2, &key(i)).await?;
        assert_eq!(value_of(&read), value.as_deref().map(str::as_bytes), "key {i} on n3: {read:?}");
    }
    println!("n3 coordinates new writes of keys its copy had forgotten writes of");
    for i in 0..50 {
        let writer = cluster.client(2);
        let context = writer.get(NS, &key(i), r(Quorum::All)).await?.context().map(str::to_owned);
        writer.put(NS, &key(i), format!("v3-{i}"), None, context.as_deref(), all()).await?;
        let read = client.get(NS, &key(i), r(Quorum::All)).await?;
        assert_eq!(value_of(&read), Some(format!("v3-{i}").as_bytes()), "key {i}: {read:?}");
    }
    Ok(())
}

/// Copies a directory tree (a stopped node's data dir).
fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}
