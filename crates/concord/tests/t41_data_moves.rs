//! T2: data movement with real processes. Keys are written into a cluster, then two nodes join,
//! one leaves and a killed one is removed; every key must still read back with its last
//! acknowledged value, and every partition replica must live exactly where the final ring says.
//!
//! `CONCORD_MOVE_KEYS` sets the number of keys (default 100000).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use concord_client::{Client, GetOptions, GetResult, WriteOptions};
use concord_testkit::TestCluster;
use serde::Deserialize;

const NS: &str = "default";

fn binary() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_BIN_EXE_concord"))
}

fn key(i: usize) -> Vec<u8> {
    format!("key-{i:06}").into_bytes()
}

/// Writes `value(i)` to every key in `keys` through the nodes in turn, 48 at a time. With
/// `overwrite`, each write first reads the key and writes with its context, so it supersedes the
/// value read instead of becoming a sibling. Panics on any failed write: every write here must
/// be acknowledged.
async fn write_all(
    clients: &[Client],
    keys: Vec<usize>,
    overwrite: bool,
    value: impl Fn(usize) -> String + Send + Sync + 'static,
) {
    let value = Arc::new(value);
    let queue = Arc::new(std::sync::Mutex::new(keys));
    let mut workers = Vec::new();
    for w in 0..48 {
        let client = clients[w % clients.len()].clone();
        let queue = queue.clone();
        let value = value.clone();
        workers.push(tokio::spawn(async move {
            loop {
                let Some(i) = queue.lock().unwrap().pop() else { return };
                let body = value(i);
                let mut attempts = 0;
                loop {
                    let context = if overwrite {
                        match client.get(NS, &key(i), GetOptions::default()).await {
                            Ok(GetResult::Value { context, .. }) => Some(context),
                            other => panic!("reading key {i} before overwriting it: {other:?}"),
                        }
                    } else {
                        None
                    };
                    let put = client
                        .put(
                            NS,
                            &key(i),
                            body.clone(),
                            None,
                            context.as_deref(),
                            WriteOptions::default(),
                        )
                        .await;
                    match put {
                        Ok(_) => break,
                        // A write may race a ring change; a retry with no context is the same
                        // blind write, so retrying is safe for this test.
                        Err(e) if attempts < 5 => {
                            attempts += 1;
                            eprintln!("retrying write of key {i}: {e:#}");
                        }
                        Err(e) => panic!("write of key {i} failed: {e:#}"),
                    }
                }
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }
}

#[derive(Debug, Deserialize)]
struct Holding {
    namespace: String,
    partition: u32,
    keys: usize,
    placed: bool,
}

async fn holdings(client: &Client) -> Result<Vec<Holding>, String> {
    let url = format!("{}/v1/admin/holdings", client.endpoint());
    let response = reqwest::get(&url).await.map_err(|e| e.to_string())?;
    response.json().await.map_err(|e| e.to_string())
}

/// Waits until no moves are pending and every running node lists exactly `members`, all up.
async fn settle(cluster: &TestCluster, members: &[&str], what: &str) {
    let expected: BTreeSet<String> = members.iter().map(|m| m.to_string()).collect();
    cluster
        .wait_for(what, Duration::from_secs(180), async || {
            for (i, status) in cluster.statuses().await? {
                let ids: BTreeSet<String> = status.nodes.iter().map(|n| n.id.clone()).collect();
                if ids != expected {
                    return Err(format!("{} lists {ids:?}", cluster.id(i)));
                }
                if status.moves.pending > 0 {
                    return Err(format!("{} pending moves", status.moves.pending));
                }
                if let Some(n) = status.nodes.iter().find(|n| n.state != "up") {
                    return Err(format!("{} sees {} {}", cluster.id(i), n.id, n.state));
                }
            }
            Ok(())
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_survive_join_leave_and_remove_and_live_where_the_ring_says() {
    let keys: usize =
        std::env::var("CONCORD_MOVE_KEYS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let fast_drop = |o: concord_testkit::ServerOptions| {
        o.env("CONCORD_CLUSTER_HANDOFF_DROP_DELAY_MS", "500")
            .env("CONCORD_STORAGE_DURABILITY", "buffered")
    };
    let mut cluster = TestCluster::start(&binary(), 3, |_, o| fast_drop(o)).unwrap();
    settle(&cluster, &["n1", "n2", "n3"], "three nodes up").await;

    let clients: Vec<Client> = (0..3).map(|i| cluster.client(i)).collect();
    println!("writing {keys} keys");
    write_all(&clients, (0..keys).collect(), false, |i| format!("first-{i}")).await;
    // The last acknowledged value of every key.
    let mut last: BTreeMap<usize, String> = (0..keys).map(|i| (i, format!("first-{i}"))).collect();

    println!("joining n4 and n5 while overwriting every tenth key");
    cluster.add(0, fast_drop).unwrap();
    cluster.add(1, fast_drop).unwrap();
    let overwritten: Vec<usize> = (0..keys).step_by(10).collect();
    write_all(&clients, overwritten.clone(), true, |i| format!("second-{i}")).await;
    for i in overwritten {
        last.insert(i, format!("second-{i}"));
    }
    settle(&cluster, &["n1", "n2", "n3", "n4", "n5"], "n4 and n5 joined and moves done").await;

    println!("n4 leaves");
    cluster.client(0).leave("n4").await.unwrap();
    // n4 stops on its own once its partitions have moved away and it is no longer a member.
    let exited = cluster.wait_exit(3, Duration::from_secs(180)).unwrap();
    assert!(exited.status.success(), "n4 exits cleanly once it left: {}", exited.status);
    settle(&cluster, &["n1", "n2", "n3", "n5"], "n4 left").await;

    println!("n2 is killed, then removed once the others see it down");
    cluster.kill9(1);
    cluster
        .wait_for("n2 down everywhere", Duration::from_secs(30), async || {
            cluster.check_state_everywhere("n2", "down").await
        })
        .await
        .unwrap();
    cluster.client(0).remove("n2").await.unwrap();
    settle(&cluster, &["n1", "n3", "n5"], "n2 removed and its replicas rebuilt").await;

    println!("reading every key back");
    let readers = [cluster.client(0), cluster.client(2), cluster.client(4)];
    let mut wrong = Vec::new();
    for (&i, expected) in &last {
        let reader = &readers[i % readers.len()];
        match reader.get(NS, &key(i), GetOptions::default()).await {
            Ok(GetResult::Value { value, .. }) if value == expected.as_bytes() => {}
            other => wrong.push(format!("key {i}: {other:?}")),
        }
        if wrong.len() > 20 {
            break;
        }
    }
    assert!(wrong.is_empty(), "keys lost or wrong after the moves:\n{}", wrong.join("\n"));

    println!("checking where replicas live");
    let ring = cluster.client(0).ring().await.unwrap();
    let placement: BTreeMap<u32, Vec<String>> = ring
        .partitions
        .iter()
        .map(|p| (p.id, p.replicas.iter().take(3).cloned().collect()))
        .collect();
    cluster
        .wait_for(
            "moved-away replicas dropped and placed ones complete",
            Duration::from_secs(60),
            async || {
                let mut counts: BTreeMap<u32, Vec<(String, usize)>> = BTreeMap::new();
                for i in [0, 2, 4] {
                    for h in holdings(&cluster.client(i)).await? {
                        if h.namespace != NS {
                            continue;
                        }
                        let placed = placement[&h.partition].contains(&cluster.id(i).to_string());
                        if placed != h.placed {
                            return Err(format!(
                                "{} disagrees on partition {}",
                                cluster.id(i),
                                h.partition
                            ));
                        }
                        if !placed && h.keys > 0 {
                            return Err(format!(
                                "{} still holds {} keys of partition {}",
                                cluster.id(i),
                                h.keys,
                                h.partition
                            ));
                        }
                        if placed {
                            counts
                                .entry(h.partition)
                                .or_default()
                                .push((cluster.id(i).into(), h.keys));
                        }
                    }
                }
                let total: usize = counts.values().map(|c| c.first().map_or(0, |(_, k)| *k)).sum();
                if total != keys {
                    return Err(format!("primaries hold {total} keys, expected {keys}"));
                }
                for (partition, replicas) in &counts {
                    if replicas.len() != 3 || replicas.iter().any(|(_, k)| *k != replicas[0].1) {
                        return Err(format!("partition {partition} replicas differ: {replicas:?}"));
                    }
                }
                Ok(())
            },
        )
        .await
        .unwrap();
}
