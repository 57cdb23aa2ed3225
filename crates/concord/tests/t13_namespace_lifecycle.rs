//! Namespaces after creation (issue 20, item 12), on a three-node cluster of real processes:
//! the quorums and `strict` change through `PATCH` or a `PUT` of the new configuration, the
//! fixed settings are refused by name; a deleted namespace's data is dropped on every node in
//! the background, visible in `GET /v1/cluster` until done, while a namespace created again
//! under the same name right away keeps its own data; the CLI's `ns update` and `ns delete`.
//!
//! Each test logs its phases and waits on conditions with deadlines; they run one at a time.

use std::path::Path;
use std::time::Duration;

use concord_client::{Client, GetOptions, GetResult, NamespaceConfig, Quorum, WriteOptions};
use concord_testkit::{ServerOptions, TestCluster};
use serde::Deserialize;
use tokio::sync::Mutex;

/// One cluster test at a time.
static SERIAL: Mutex<()> = Mutex::const_new(());

const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);
const NS: &str = "carts";

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_concord"))
}

/// One entry of `GET /v1/admin/holdings`.
#[derive(Debug, Deserialize)]
struct Holding {
    namespace: String,
    keys: usize,
}

async fn holdings(client: &Client) -> Result<Vec<Holding>, String> {
    let url = format!("{}/v1/admin/holdings", client.endpoint());
    let response = reqwest::get(&url).await.map_err(|e| e.to_string())?;
    response.json().await.map_err(|e| e.to_string())
}

/// Objects node `i` stores of namespace `name` (or of deleted namespaces, with the name
/// `(deleted namespace id N)`).
async fn stored(cluster: &TestCluster, i: usize, name: &str) -> Result<usize, String> {
    let all = holdings(&cluster.client(i)).await?;
    Ok(all.iter().filter(|h| h.namespace == name).map(|h| h.keys).sum())
}

/// Three nodes that drop deleted data half a second after they learn of the deletion.
async fn start_cluster() -> anyhow::Result<TestCluster> {
    let options = |_, o: ServerOptions| o.env("CONCORD_CLUSTER_HANDOFF_DROP_DELAY_MS", "500");
    let cluster = TestCluster::start(binary(), 3, options)?;
    cluster
        .wait_for("every node up, no move pending", SETTLE_TIMEOUT, async || {
            cluster.check_up(&[0, 1, 2]).await?;
            for (i, status) in cluster.statuses().await? {
                if status.moves.pending > 0 {
                    return Err(format!(
                        "{}: {} moves pending",
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

fn all() -> WriteOptions {
    WriteOptions { w: Some(Quorum::All), ..Default::default() }
}

fn key(i: usize) -> Vec<u8> {
    format!("key-{i}").into_bytes()
}

/// A deleted namespace's data is dropped by every node, by id: a namespace created again under
/// the name at once keeps its own keys, never sees the old ones, and the deletion shows in
/// `GET /v1/cluster` until every node has dropped its copy. Settings change as they may.
#[tokio::test]
async fn a_deleted_namespace_is_dropped_everywhere_and_its_name_reused() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let cluster = start_cluster().await?;
    let client = cluster.client(0);
    let config = NamespaceConfig { replicas: Some(3), ..Default::default() };
    client.create_namespace(NS, &config).await?;
    cluster.wait_for_namespace(NS, SETTLE_TIMEOUT).await?;
    println!("write 50 keys at W=all");
    for i in 0..50 {
        client.put(NS, &key(i), b"old".to_vec(), None, None, all()).await?;
    }
    for i in 0..3 {
        assert_eq!(stored(&cluster, i, NS).await.map_err(anyhow::Error::msg)?, 50);
    }

    println!("change settings: quorums and strict change, replicas and conflicts are refused");
    let patch = NamespaceConfig {
        write_quorum: Some(Quorum::All),
        strict: Some(true),
        ..Default::default()
    };
    let view = client.update_namespace(NS, &patch).await?;
    assert_eq!((view.write_quorum, view.strict, view.replicas), (Quorum::All, true, 3));
    cluster
        .wait_for("every node has the new settings", SETTLE_TIMEOUT, async || {
            for i in 0..3 {
                let seen = cluster.client(i).namespace(NS).await.map_err(|e| e.to_string())?;
                if (seen.write_quorum, seen.strict) != (Quorum::All, true) {
                    return Err(format!("{} shows {seen:?}", cluster.id(i)));
                }
            }
            Ok(())
        })
        .await?;
    for (changes, field) in [
        (NamespaceConfig { replicas: Some(2), ..Default::default() }, "replicas"),
        (
            NamespaceConfig {
                conflicts: Some(concord_client::ConflictPolicy::Lww),
                ..Default::default()
            },
            "conflicts",
        ),
    ] {
        let error = client.update_namespace(NS, &changes).await.expect_err("a fixed field");
        assert_eq!((error.status(), error.code()), (Some(409), Some("conflict")), "{error}");
        let concord_client::Error::Api { details, message, .. } = &error else { unreachable!() };
        assert_eq!(details["field"], field, "{error}");
        assert!(message.contains(&format!("{field} is fixed at creation")), "{message}");
    }
    let put =
        NamespaceConfig { replicas: Some(3), read_quorum: Some(Quorum::One), ..Default::default() };
    let (created, view) = client.create_namespace(NS, &put).await?;
    assert!(!created);
    assert_eq!(
        (view.read_quorum, view.write_quorum, view.strict),
        (Quorum::One, Quorum::Quorum, false)
    );

    println!("delete {NS} through n2, create it again at once, write 5 new keys");
    let deletion = cluster.client(1).delete_namespace(NS).await?;
    assert_eq!(deletion.name, NS);
    let old_id = deletion.id;
    let missing = cluster.client(1).namespace(NS).await.expect_err("deleted");
    assert_eq!(missing.code(), Some("namespace_not_found"));
    client.create_namespace(NS, &config).await?;
    cluster.wait_for_namespace(NS, SETTLE_TIMEOUT).await?;
    for i in 0..5 {
        client.put(NS, &key(i), b"new".to_vec(), None, None, all()).await?;
    }

    println!("wait until every node dropped namespace id {old_id}");
    let deleted_name = format!("(deleted namespace id {old_id})");
    cluster
        .wait_for("the old data dropped on every node", SETTLE_TIMEOUT, async || {
            for (i, status) in cluster.statuses().await? {
                if let Some(d) = status.namespaces_deleting.iter().find(|d| d.id == old_id) {
                    return Err(format!("{} shows {d:?}", cluster.id(i)));
                }
                let left = stored(&cluster, i, &deleted_name).await?;
                if left > 0 {
                    return Err(format!("{} still stores {left} objects of it", cluster.id(i)));
                }
            }
            Ok(())
        })
        .await?;
    for i in 0..3 {
        assert_eq!(stored(&cluster, i, NS).await.map_err(anyhow::Error::msg)?, 5, "n{}", i + 1);
    }
    for i in 0..50 {
        let options = GetOptions { r: Some(Quorum::All), ..Default::default() };
        match (i < 5, client.get(NS, &key(i), options).await?) {
            (true, GetResult::Value { value, .. }) => assert_eq!(value, b"new", "key {i}"),
            (false, GetResult::NotFound { .. }) => {}
            (_, other) => panic!("key {i}: {other:?}"),
        }
    }
    Ok(())
}

/// `concord ns update` changes a setting, `concord ns delete` deletes and says where the data
/// is being dropped; both exit 0. A `PATCH` with a `null` body changes nothing and is a 200.
#[tokio::test]
async fn the_cli_updates_and_deletes_namespaces() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let cluster = start_cluster().await?;
    let endpoint = cluster.client(0).endpoint().to_owned();
    let concord = |args: &[&str]| {
        let output = std::process::Command::new(binary())
            .args(args)
            .args(["--endpoint", &endpoint])
            .output()
            .expect("running concord");
        let (out, err) =
            (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        println!("concord {}: {}\n{out}{err}", args.join(" "), output.status);
        (output.status.success(), format!("{out}{err}"))
    };
    assert!(concord(&["ns", "create", "sessions"]).0);
    // Found by schemathesis: the document allows a `null` body, which sets nothing.
    let patch_null = reqwest::Client::new()
        .patch(format!("{endpoint}/v1/namespaces/sessions"))
        .header("content-type", "application/json")
        .body("null")
        .send()
        .await?;
    assert_eq!(patch_null.status().as_u16(), 200, "{:?}", patch_null.text().await);
    let (ok, out) =
        concord(&["ns", "update", "sessions", "--write-quorum", "one", "--strict", "true"]);
    assert!(ok && out.contains("write_quorum  one") && out.contains("strict        true"), "{out}");
    let (ok, out) = concord(&["ns", "delete", "sessions"]);
    assert!(ok && out.contains("deleted namespace sessions (id "), "{out}");
    let (ok, out) = concord(&["ns", "show", "sessions"]);
    assert!(!ok && out.contains("namespace_not_found"), "{out}");
    let (ok, out) = concord(&["ns", "delete", "sessions"]);
    assert!(!ok && out.contains("namespace_not_found"), "a second delete finds nothing: {out}");
    Ok(())
}
