//! A listing never walks an unbounded run of tombstones: on a node with one partition holding
//! 1,500 tombstones between two live keys, a page stops after a bounded number of stored keys
//! looked at and hands back a cursor, and following the cursors finds every live key once.

mod common;

use common::{Node, key_path, listed_key_bytes, unbase64};

/// Fewest stored keys a partition page may look at (`concord_replica::list::EXAMINE_MIN`).
const EXAMINE_MIN: usize = 1024;

#[tokio::test]
async fn a_listing_stops_in_a_run_of_tombstones_with_a_cursor_and_finds_every_live_key() {
    let node = Node::start(&[("CONCORD_CLUSTER_PARTITIONS", "1")]);
    let tombstones = EXAMINE_MIN + 476;
    println!("write a-live, z-live and {tombstones} keys m-NNNN, then delete the m-NNNN keys");
    for key in [&b"a-live"[..], b"z-live"] {
        assert_eq!(node.put(&key_path("default", key), "v").await.status().as_u16(), 204);
    }
    let names: Vec<Vec<u8>> = (0..tombstones).map(|i| format!("m-{i:04}").into_bytes()).collect();
    for chunk in names.chunks(64) {
        let mut writes = tokio::task::JoinSet::new();
        for key in chunk {
            let path = node.url(&key_path("default", key));
            let (put, delete) = (node.http.put(&path).body("v"), node.http.delete(&path));
            writes.spawn(async move {
                let put = put.send().await.map(|r| r.status().as_u16());
                let delete = delete.send().await.map(|r| r.status().as_u16());
                (put.expect("PUT"), delete.expect("DELETE"))
            });
        }
        while let Some(statuses) = writes.join_next().await {
            assert_eq!(statuses.expect("task"), (204, 204));
        }
    }

    println!("the first page stops in the tombstones: a-live and a cursor past it");
    let first = node.get_json("/v1/kv/default?limit=5", 200).await;
    let keys: Vec<Vec<u8>> =
        first["keys"].as_array().unwrap().iter().map(listed_key_bytes).collect();
    assert_eq!(keys, [b"a-live".to_vec()], "{first}");
    let cursor = unbase64(first["next"].as_str().expect("a cursor after a stopped page"));
    assert!(cursor.starts_with(b"m-"), "the cursor is the last tombstone looked at: {cursor:?}");
    assert!(cursor < format!("m-{:04}", tombstones - 1).into_bytes(), "the page looked at all");

    println!("following the cursors finds every live key once");
    let listed = node.list_all("default", b"", 5).await;
    assert_eq!(listed, [b"a-live".to_vec(), b"z-live".to_vec()]);
}
