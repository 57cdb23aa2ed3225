//! Whether a node's view of the cluster (`GET /v1/cluster`) shows given nodes up: the one
//! readiness rule of the demo, the scripts (through the demo) and the test kit.

use concord_client::ClusterStatus;

/// `Ok` when `view` lists each of `ids` `up` and reachable (a restarted node is `up` before
/// its peers' connect back-off from its downtime has ended); otherwise the first that is not,
/// as `"<id> <state>"`.
pub fn sees_up(view: &ClusterStatus, ids: &[&str]) -> Result<(), String> {
    for id in ids {
        let (state, reachable) =
            view.node(id).map_or(("absent", false), |n| (n.state.as_str(), n.reachable));
        if state != "up" {
            return Err(format!("{id} {state}"));
        }
        if !reachable {
            return Err(format!("{id} not reachable yet"));
        }
    }
    Ok(())
}

/// [`sees_up`], plus a metadata leader and no partition move pending.
pub fn sees_settled(view: &ClusterStatus, ids: &[&str]) -> Result<(), String> {
    sees_up(view, ids)?;
    if view.leader.is_none() {
        return Err("no metadata leader".to_owned());
    }
    if view.moves.pending > 0 {
        return Err(format!("{} partition moves pending", view.moves.pending));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(nodes: &[(&str, &str, bool)], leader: Option<&str>, pending: u64) -> ClusterStatus {
        let nodes: Vec<serde_json::Value> = nodes
            .iter()
            .map(|(id, state, reachable)| {
                serde_json::json!({"id": id, "http_addr": "", "peer_addr": "", "state": state,
                    "partitions": 0, "clock_offset_ms": 0, "hints_pending": 0,
                    "reachable": reachable})
            })
            .collect();
        serde_json::from_value(serde_json::json!({
            "cluster_id": "c", "epoch": 1, "leader": leader, "nodes": nodes,
            "moves": {"pending": pending, "active": 0, "bytes_moved": 0, "bytes_total": 0}
        }))
        .expect("a cluster view")
    }

    #[test]
    fn up_means_listed_up_and_reachable() {
        let v = view(&[("n1", "up", true), ("n2", "up", false), ("n3", "down", true)], None, 0);
        assert_eq!(sees_up(&v, &["n1"]), Ok(()));
        assert_eq!(sees_up(&v, &["n1", "n2"]), Err("n2 not reachable yet".to_owned()));
        assert_eq!(sees_up(&v, &["n3"]), Err("n3 down".to_owned()));
        assert_eq!(sees_up(&v, &["n4"]), Err("n4 absent".to_owned()));
    }

    #[test]
    fn settled_also_needs_a_leader_and_no_pending_move() {
        let up = [("n1", "up", true)];
        assert_eq!(sees_settled(&view(&up, Some("n1"), 0), &["n1"]), Ok(()));
        assert_eq!(
            sees_settled(&view(&up, None, 0), &["n1"]),
            Err("no metadata leader".to_owned())
        );
        assert_eq!(
            sees_settled(&view(&up, Some("n1"), 3), &["n1"]),
            Err("3 partition moves pending".to_owned())
        );
    }
}
