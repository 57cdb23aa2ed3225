//! A partition move that keeps failing is never silent: while the joining node cannot reach
//! the only holder of its partitions, `GET /v1/cluster` on it lists the failing moves with
//! their attempts, last error and since when, and raises an alarm; once the link is back the
//! moves finish and the list empties.

mod common;

use std::time::Duration;

use common::eventual::{CLUSTER_UP_TIMEOUT, SERIAL, binary};
use concord_client::{FaultRules, WriteOptions};
use concord_testkit::{ServerOptions, TestCluster};
use serde_json::Value;

/// Slow enough (1 MiB/s, the least allowed) that the joiner is still pulling 24 MiB when the
/// link is cut.
const RATE: (&str, &str) = ("CONCORD_CLUSTER_HANDOFF_RATE_BYTES", "1048576");

async fn cluster_view(cluster: &TestCluster, i: usize) -> Result<Value, String> {
    let url = format!("{}/v1/cluster", cluster.node(i).endpoint);
    let response = reqwest::get(url).await.map_err(|e| e.to_string())?;
    response.json().await.map_err(|e| e.to_string())
}

#[tokio::test]
async fn a_handoff_that_keeps_failing_shows_in_the_cluster_view_until_it_recovers()
-> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let options = |o: ServerOptions| o.fault_injection().env(RATE.0, RATE.1);
    let mut cluster = TestCluster::start(binary(), 1, |_, o| options(o))?;
    cluster
        .wait_for("n1 up", CLUSTER_UP_TIMEOUT, async || {
            cluster.client(0).cluster().await.map(|_| ()).map_err(|e| format!("{e:#}"))
        })
        .await?;
    println!("write 24 values of 1 MiB on n1");
    for i in 0..24 {
        let key = format!("big-{i:02}");
        let value = vec![b'x'; 1 << 20];
        cluster
            .client(0)
            .put("default", key.as_bytes(), value, None, None, WriteOptions::default())
            .await?;
    }

    println!("n2 joins and starts pulling; then its link to n1 is cut");
    let n2 = cluster.add(0, options)?;
    cluster
        .wait_for("n2 pulling partitions", CLUSTER_UP_TIMEOUT, async || {
            let view = cluster_view(&cluster, n2).await?;
            match view["moves"]["active"].as_u64() {
                Some(active) if active > 0 => Ok(()),
                _ => Err(format!("{}", view["moves"])),
            }
        })
        .await?;
    let cut = FaultRules { drop_to: vec![cluster.id(0).to_owned()], ..Default::default() };
    cluster.client(n2).set_faults(&cut).await?;

    cluster
        .wait_for("failing moves in n2's cluster view", Duration::from_secs(60), async || {
            let view = cluster_view(&cluster, n2).await?;
            let failing = view["moves"]["failing"].as_array().cloned().unwrap_or_default();
            // A fetch from n1 that failed (not only a `MoveDone` that could not be reported).
            let fetch = failing.iter().find(|f| {
                f["last_error"].as_str().is_some_and(|e| e.starts_with("n1: "))
                    && f["attempts"].as_u64() >= Some(1)
                    && f["since_ms"].as_u64() > Some(0)
            });
            let alarmed = view["alarms"].to_string().contains("moving partition");
            match (fetch, alarmed) {
                (Some(fetch), true) => {
                    println!("  {} failing, e.g. {fetch}", failing.len());
                    Ok(())
                }
                _ => Err(format!("{view}")),
            }
        })
        .await?;

    println!("the link is back: the moves finish and the failures clear");
    cluster.client(n2).clear_faults().await?;
    cluster
        .wait_for("the moves done, none failing", Duration::from_secs(120), async || {
            let view = cluster_view(&cluster, n2).await?;
            let failing = view["moves"]["failing"].as_array().map_or(usize::MAX, Vec::len);
            match (view["moves"]["pending"].as_u64(), failing) {
                (Some(0), 0) => Ok(()),
                _ => Err(format!("{}", view["moves"])),
            }
        })
        .await?;
    Ok(())
}
