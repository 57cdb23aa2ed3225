//! Contexts are Concord's, not the client's (DESIGN.md §4), on real processes.
//!
//! Before contexts were sealed, one node lost acknowledged writes this way: read a key, send back
//! a `Concord-Context` whose counter for the key's actor is 2^64−1, then make two blind writes;
//! both got 204 and only the second survived (the counter wrapped, both writes minted the same
//! dot). A context read from another key of the same partition collapsed siblings it never saw.
//! Here every such token is refused with 400 and changes nothing, and then concurrent blind
//! writes through every node all survive.
//!
//! A key written through every node across restarts and fallback writes keeps a context of one
//! entry per sibling, however many actors wrote it.

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::eventual::*;
use concord_client::{GetResult, NamespaceConfig, Quorum};

const MAC_BYTES: usize = 16;

/// The entries of a sealed token (format byte, postcard `Vec<(u64, u64)>`, MAC).
fn entries(token: &str) -> Vec<(u64, u64)> {
    let bytes = URL_SAFE_NO_PAD.decode(token).expect("base64url token");
    assert_eq!(bytes[0], 2, "token format");
    postcard::from_bytes(&bytes[1..bytes.len() - MAC_BYTES]).expect("token entries")
}

/// A token with `entries` and the MAC of another token: what a client can forge.
fn forge(entries: &[(u64, u64)], mac_of: &str) -> String {
    let mut bytes = vec![2u8];
    bytes.extend(postcard::to_allocvec(entries).unwrap());
    let real = URL_SAFE_NO_PAD.decode(mac_of).unwrap();
    bytes.extend_from_slice(&real[real.len() - MAC_BYTES..]);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The pre-seal format: a format byte and the entries, no MAC.
fn unsealed(entries: &[(u64, u64)]) -> String {
    let mut bytes = vec![1u8];
    bytes.extend(postcard::to_allocvec(entries).unwrap());
    URL_SAFE_NO_PAD.encode(bytes)
}

fn values(read: &GetResult) -> Vec<String> {
    let mut values: Vec<String> = match read {
        GetResult::NotFound { .. } => Vec::new(),
        GetResult::Value { value, .. } => vec![String::from_utf8_lossy(value).into_owned()],
        GetResult::Siblings { siblings, .. } => {
            siblings.iter().map(|s| String::from_utf8_lossy(&s.value).into_owned()).collect()
        }
    };
    values.sort();
    values
}

/// Forged, overflowing, unsealed, other-key and other-namespace tokens are refused on three
/// nodes and change nothing; then concurrent blind writes through every node all survive.
#[tokio::test]
async fn no_context_a_client_sends_loses_an_acknowledged_write() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let cluster = start_cluster(3).await?;
    let client = cluster.client(0);
    let other_ns = NamespaceConfig { replicas: Some(3), ..Default::default() };
    client.create_namespace("other", &other_ns).await?;
    cluster.wait_for_namespace("other", CLUSTER_UP_TIMEOUT).await?;

    println!("write a, b and other/a; read a's context");
    client.put(NS, b"a", "first", None, None, w(Quorum::All)).await?;
    client.put(NS, b"b", "bee", None, None, w(Quorum::All)).await?;
    client.put("other", b"a", "elsewhere", None, None, w(Quorum::All)).await?;
    let read = client.get(NS, b"a", r(Quorum::All)).await?;
    let token = read.context().expect("a's context").to_string();
    let real = entries(&token);
    assert_eq!(real.len(), 1, "one sibling, one entry: {real:?}");
    let (actor, counter) = real[0];
    let b_token = client.get(NS, b"b", r(Quorum::All)).await?.context().unwrap().to_string();
    let other_token =
        client.get("other", b"a", r(Quorum::All)).await?.context().unwrap().to_string();

    let forged = [
        ("the key's actor at 2^64-1", forge(&[(actor, u64::MAX)], &token)),
        ("another actor far ahead", forge(&[(actor, counter), (actor ^ 1, 1 << 40)], &token)),
        ("unsealed, counter 2^64-1", unsealed(&[(actor, u64::MAX)])),
        ("key b's context", b_token),
        ("namespace other's context for a", other_token),
        ("a random MAC", forge(&real, &URL_SAFE_NO_PAD.encode([7u8; 40]))),
    ];
    let http = reqwest::Client::new();
    for (i, (what, bad)) in forged.iter().enumerate() {
        let node = cluster.client(i % 3);
        let url = format!("{}/v1/kv/{NS}/a", node.endpoint().trim_end_matches('/'));
        println!("PUT a through n{} with {what}", i % 3 + 1);
        let response = http.put(&url).header("concord-context", bad).body("forged").send().await?;
        assert_eq!(response.status(), 400, "{what}");
        let body: serde_json::Value = response.json().await?;
        assert_eq!(body["error"]["code"], "invalid_argument", "{what}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("Concord-Context"), "{what}: {message}");
        let response = http.delete(&url).header("concord-context", bad).send().await?;
        assert_eq!(response.status(), 400, "DELETE with {what}");
    }
    let after = client.get(NS, b"a", r(Quorum::All)).await?;
    assert_eq!(values(&after), vec!["first"], "refused tokens changed nothing");
    assert_eq!(after.context(), Some(token.as_str()));

    println!("concurrent blind writes to a through every node");
    let mut writers = Vec::new();
    for node in 0..3 {
        let client = cluster.client(node);
        writers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            // 13 siblings in all: within the smallest default `limits.siblings_max`.
            for i in 0..4 {
                let value = format!("n{}-{i}", node + 1);
                client.put(NS, b"a", value.clone(), None, None, w(Quorum::Count(2))).await?;
                acked.push(value);
            }
            anyhow::Ok(acked)
        }));
    }
    let mut expected = vec!["first".to_string()];
    for writer in writers {
        expected.extend(writer.await??);
    }
    expected.sort();
    cluster
        .wait_for("every acknowledged write a sibling at R=3", SETTLE_TIMEOUT, async || {
            let read = client.get(NS, b"a", r(Quorum::All)).await.map_err(|e| format!("{e:#}"))?;
            let got = values(&read);
            if got == expected {
                Ok(())
            } else {
                Err(format!("{} of {}", got.len(), expected.len()))
            }
        })
        .await?;

    println!("the context of the siblings resolves them into one value");
    let read = client.get(NS, b"a", r(Quorum::All)).await?;
    assert_eq!(entries(read.context().unwrap()).len(), 3, "one entry per writing actor");
    client.put(NS, b"a", "resolved", None, read.context(), w(Quorum::All)).await?;
    assert_eq!(values(&client.get(NS, b"a", r(Quorum::All)).await?), vec!["resolved"]);
    Ok(())
}

/// A key written through every node, with the context of the last read, across restarts of
/// every node (each draws fresh actors) and writes taken as a fallback: every write lands,
/// the key never has siblings, and its context stays one entry.
#[tokio::test]
async fn a_key_written_across_restarts_and_fallbacks_keeps_a_small_context() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let mut cluster = start_cluster(3).await?;
    // N=1: a key lives on one node, so a write through another node while it is down is taken
    // as a fallback (held as a hint and delivered once it is back).
    let single = NamespaceConfig { replicas: Some(1), ..Default::default() };
    cluster.client(0).create_namespace("single", &single).await?;
    cluster.wait_for_namespace("single", CLUSTER_UP_TIMEOUT).await?;
    let k = b"long-lived";
    let mut written = 0;
    for round in 0..6 {
        for node in 0..3 {
            let client = cluster.client(node);
            for ns in [NS, "single"] {
                let read = client.get(ns, k, r(Quorum::All)).await?;
                let value = format!("round {round} node {node}");
                client.put(ns, k, value, None, read.context(), w(Quorum::All)).await?;
                written += 1;
            }
        }
        let owner = owner_of(&cluster, "single", k).await?;
        let taker = (owner + 1) % 3;
        println!("round {round}: kill n{}; a fallback write through n{}", owner + 1, taker + 1);
        cluster.kill9(owner);
        let client = cluster.client(taker);
        let value = format!("fallback {round}");
        // A call on a connection the kill closed is not known to be undelivered, so it is a
        // 503 rather than a fallback write; the next attempt finds the owner unreachable.
        cluster
            .wait_for("a write taken as a fallback", SETTLE_TIMEOUT, async || {
                let put = client.put("single", k, value.clone(), None, None, w(Quorum::One)).await;
                put.map(|_| ()).map_err(|e| format!("{e:#}"))
            })
            .await?;
        cluster.restart(owner)?;
        cluster.wait_for("all up", CLUSTER_UP_TIMEOUT, async || all_up(&cluster).await).await?;
        cluster
            .wait_for("the fallback write delivered", SETTLE_TIMEOUT, async || {
                let read = cluster.client(0).get("single", k, r(Quorum::One)).await;
                let read = read.map_err(|e| format!("{e:#}"))?;
                let got = values(&read);
                if got.contains(&format!("fallback {round}")) {
                    Ok(())
                } else {
                    Err(format!("{got:?}"))
                }
            })
            .await?;
        // The blind fallback write is a sibling of the last value: resolve it.
        let client = cluster.client(0);
        let read = client.get("single", k, r(Quorum::One)).await?;
        let got = values(&read);
        let last = format!("round {round} node 2");
        assert!(got.len() >= 2, "the fallback write is concurrent with the last one: {got:?}");
        assert!(got.contains(&last), "{last:?} kept: {got:?}");
        client
            .put("single", k, format!("resolved {round}"), None, read.context(), w(Quorum::One))
            .await?;

        let restart = round % 3;
        println!("round {round}: restart n{} (fresh actors)", restart + 1);
        cluster.kill9(restart);
        cluster.restart(restart)?;
        cluster.wait_for("all up", CLUSTER_UP_TIMEOUT, async || all_up(&cluster).await).await?;
    }
    println!("{written} writes with contexts through every node");
    for ns in [NS, "single"] {
        let read = cluster.client(1).get(ns, k, r(Quorum::All)).await?;
        assert_eq!(values(&read).len(), 1, "{ns}: no sibling left: {read:?}");
        let context = entries(read.context().unwrap());
        assert_eq!(context.len(), 1, "{ns}: one sibling, one entry: {context:?}");
    }
    Ok(())
}

/// The node that holds `key` of namespace `ns` (of one replica): the one that can still read it
/// when cut off from the others.
async fn owner_of(
    cluster: &concord_testkit::TestCluster,
    ns: &str,
    k: &[u8],
) -> anyhow::Result<usize> {
    for i in 0..cluster.len() {
        isolate(cluster, i).await?;
        let read = cluster.client(i).get(ns, k, r(Quorum::One)).await;
        heal(cluster).await?;
        if read.is_ok() {
            return Ok(i);
        }
    }
    anyhow::bail!("no node holds {ns}/{}", String::from_utf8_lossy(k))
}
