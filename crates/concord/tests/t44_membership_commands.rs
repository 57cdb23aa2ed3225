//! Membership commands that behave (issue 20, items 7 to 10), with real processes on loopback:
//! a node that left stops and its data dir is refused at once; a node removed while it was
//! down is refused when it comes back; `remove` refuses a live node unless forced;
//! `cluster verify` names a dead node unreachable instead of reporting disagreements; every
//! node, the largest id included, reports a clean anti-entropy exchange; a fresh cluster's
//! epoch counts changes, not partition moves.
//!
//! Each test starts its own cluster, logs its phases and waits on conditions with deadlines.
//! They run one at a time (two shared cores, and failure detection is timing-sensitive).

use std::path::Path;
use std::time::Duration;

use concord_client::{Quorum, WriteOptions};
use concord_testkit::{ServerOptions, TestCluster, TestServer};
use tokio::sync::Mutex;

/// One cluster test at a time.
static SERIAL: Mutex<()> = Mutex::const_new(());

/// Deadline for a fresh cluster to be up with no move pending, and for changes to settle.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Deadline for SWIM to declare a killed node down everywhere.
const DETECTION_TIMEOUT: Duration = Duration::from_secs(30);
/// Deadline for a refused start to exit. It used to hang 30 s before failing with "never
/// appeared in the metadata"; the refusal's wording is what the tests check.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(25);

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_concord"))
}

/// Starts `n` nodes (anti-entropy every 300 ms) and waits until every one lists all of them up
/// with no partition move pending.
async fn start_settled(n: usize) -> anyhow::Result<TestCluster> {
    let options = |_, o: ServerOptions| o.env("CONCORD_ANTI_ENTROPY_INTERVAL_MS", "300");
    let cluster = TestCluster::start(binary(), n, options)?;
    cluster
        .wait_for("every node up, no move pending", SETTLE_TIMEOUT, async || {
            let all: Vec<usize> = (0..n).collect();
            cluster.check_up(&all).await?;
            for (i, status) in cluster.statuses().await? {
                if status.moves.pending > 0 {
                    return Err(format!(
                        "{} sees {} moves pending",
                        cluster.id(i),
                        status.moves.pending
                    ));
                }
            }
            Ok(())
        })
        .await?;
    Ok(cluster)
}

/// Waits until no running node lists `id` any more.
async fn wait_gone(cluster: &TestCluster, id: &str) -> anyhow::Result<()> {
    cluster
        .wait_for(&format!("{id} gone from every member's view"), SETTLE_TIMEOUT, async || {
            for (i, status) in cluster.statuses().await? {
                if let Some(node) = status.node(id) {
                    return Err(format!("{} lists {id} {}", cluster.id(i), node.state));
                }
            }
            Ok(())
        })
        .await
}

/// A node that left stops serving and exits 0, saying it left; started again on its data dir
/// it is refused at once with the command that runs it again. The fresh cluster's epoch counts
/// changes: at most bootstrap, two joins and two completed transitions.
#[tokio::test]
async fn a_node_that_left_stops_and_its_data_dir_is_refused_at_once() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let mut cluster = start_settled(3).await?;
    let epoch = cluster.client(0).cluster().await?.epoch;
    println!("fresh three-node cluster at epoch {epoch}");
    assert!((4..=5).contains(&epoch), "epoch {epoch}: one bump per partition moved again?");

    println!("n3 leaves");
    cluster.client(0).leave("n3").await?;
    let exited = cluster.wait_exit(2, SETTLE_TIMEOUT)?;
    assert!(exited.status.success(), "n3 exits 0 once it left: {}", exited.status);
    assert!(
        exited.log.contains("n3 left the cluster; it no longer serves"),
        "n3 says it left:\n{}",
        exited.log
    );
    wait_gone(&cluster, "n3").await?;

    println!("start n3 again on its data dir: refused at once");
    let options = cluster.node(2).options.clone();
    let refused = TestServer::run_to_exit(binary(), &options, REFUSAL_TIMEOUT)?;
    assert!(!refused.status.success(), "a departed data dir started");
    let restart = refused.log.rsplit("n3 left the cluster").next().unwrap_or_default();
    assert!(
        refused.log.matches("n3 left the cluster").count() >= 2
            && restart.contains("empty the data dir and start it with --join")
            && restart.contains(&format!("rm -rf {}", options.data_dir.display())),
        "the refusal says how to run n3 again:\n{}",
        refused.log
    );
    Ok(())
}

/// A node removed while it was down finds itself a member in its own metadata; started again,
/// it learns of its removal from the others and is refused at once.
#[tokio::test]
async fn a_node_removed_while_down_is_refused_when_it_comes_back() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let mut cluster = start_settled(3).await?;
    println!("kill n3, wait until it is down, remove it");
    cluster.kill9(2);
    cluster
        .wait_for("n3 down everywhere", DETECTION_TIMEOUT, async || {
            cluster.check_state_everywhere("n3", "down").await
        })
        .await?;
    cluster.client(0).remove("n3").await?;
    wait_gone(&cluster, "n3").await?;

    println!("start n3 again on its data dir");
    let options = cluster.node(2).options.clone();
    let refused = TestServer::run_to_exit(binary(), &options, REFUSAL_TIMEOUT)?;
    assert!(!refused.status.success(), "a removed data dir started");
    assert!(
        refused.log.contains("n3 was removed from the cluster")
            && refused.log.contains("start it with --join"),
        "the refusal explains itself:\n{}",
        refused.log
    );
    Ok(())
}

/// `remove` is for dead nodes: a live node (another, or the one answering) is refused with
/// 409 `node_up` pointing at `leave`; forced, the removal happens and the removed node, which
/// still runs, stops on its own.
#[tokio::test]
async fn remove_of_a_live_node_is_refused_unless_forced() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let mut cluster = start_settled(3).await?;
    let client = cluster.client(0);
    for live in ["n2", "n1"] {
        println!("remove {live}, which is up");
        let error = client.remove(live).await.expect_err("a live node was removed");
        assert_eq!((error.status(), error.code()), (Some(409), Some("node_up")), "{error}");
        assert!(error.to_string().contains(&format!("concord cluster leave {live}")), "{error}");
    }
    assert_eq!(client.cluster().await?.nodes.len(), 3, "nothing was removed");

    println!("remove n3 with force");
    let change = client.force_remove("n3").await?;
    assert_eq!(change.state, "removed");
    let exited = cluster.wait_exit(2, SETTLE_TIMEOUT)?;
    assert!(
        exited.log.contains("n3 was removed from the cluster; it no longer serves"),
        "n3 says it was removed:\n{}",
        exited.log
    );
    wait_gone(&cluster, "n3").await?;
    Ok(())
}

/// Every node, n3 included (the largest id, which starts no exchange of its own), reports a
/// clean anti-entropy exchange. Then, with n3 dead, `GET /v1/cluster/partitions/{p}` and
/// `concord cluster verify` name n3 unreachable and find the live replicas in agreement.
#[tokio::test]
async fn verify_names_a_dead_node_unreachable_and_every_node_has_clean_exchanges()
-> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let mut cluster = start_settled(3).await?;
    let client = cluster.client(0);
    let all = WriteOptions { w: Some(Quorum::All), ..Default::default() };
    for i in 0..20 {
        client.put("default", format!("k{i}").as_bytes(), b"v".to_vec(), None, None, all).await?;
    }
    cluster
        .wait_for("a clean exchange reported by every node", SETTLE_TIMEOUT, async || {
            for (i, status) in cluster.statuses().await? {
                if status.anti_entropy.oldest_clean_exchange_s.is_none() {
                    return Err(format!(
                        "{} reports no clean exchange: {:?}",
                        cluster.id(i),
                        status.anti_entropy
                    ));
                }
            }
            Ok(())
        })
        .await?;

    println!("kill n3; verify through n1");
    cluster.kill9(2);
    let partitions = client.ring().await?.partitions.len() as u32;
    for p in 0..partitions {
        let trees = client.partition(p, "default").await?;
        assert!(trees.agree, "partition {p}: the live replicas agree: {trees:?}");
        assert_eq!(trees.unreachable, ["n3"], "partition {p}: {trees:?}");
    }
    let output = std::process::Command::new(binary())
        .args(["cluster", "verify", "--endpoint", client.endpoint()])
        .output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("concord cluster verify:\n{stderr}");
    assert!(!output.status.success(), "n3's replicas are unverified");
    assert!(
        stderr.contains(&format!(
            "verified {partitions} partitions in 1 namespace: {partitions} agree among the \
             replicas that answered, 0 disagree; unreachable: n3 ({partitions} partition \
             replicas unchecked"
        )),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&output.stdout).trim().is_empty(), "no partition disagrees");
    Ok(())
}
