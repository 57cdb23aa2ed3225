//! `/v1/cluster`: membership and ring views.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::query::Query;

#[derive(Serialize, ToSchema)]
pub struct NodeDto {
    pub id: String,
    pub http_addr: String,
    pub peer_addr: String,
    /// `joining`, `up`, `suspect`, `down` or `leaving`.
    pub state: String,
    /// Partitions this node is the primary replica of.
    pub partitions: usize,
    /// Estimated offset of the node's clock from the answering node's, in ms.
    pub clock_offset_ms: i64,
    /// Whether the offset exceeds `cluster.max_clock_offset_ms`.
    pub clock_alarm: bool,
    pub hints_pending: u64,
    /// Whether the node votes in the metadata group (the others are learners).
    pub voter: bool,
    /// Whether the answering node can connect to it now: `false` while its connects to it keep
    /// failing (calls to it then fail at once until the next retry).
    pub reachable: bool,
}

#[derive(Serialize, ToSchema)]
pub struct MovesDto {
    /// Partition replicas still to be streamed, cluster-wide.
    pub pending: u64,
    /// Streams the answering node is running now.
    pub active: u64,
    /// Bytes the answering node has received by handoff since it started.
    pub bytes_moved: u64,
    /// `bytes_moved` plus an estimate of what the answering node still has to receive (its
    /// average per partition so far, times the moves to it still pending).
    pub bytes_total: u64,
    /// Rate of the answering node's last stream, bytes per second.
    pub rate_bytes_per_sec: u64,
    /// Partition replicas the answering node has received by handoff.
    pub partitions_moved: u64,
    /// Moves to the answering node whose last attempt failed; each is retried with a backoff
    /// (1 s doubling to 60 s) and also listed in `alarms`.
    pub failing: Vec<FailingMoveDto>,
}

/// A move to the answering node that keeps failing.
#[derive(Serialize, ToSchema)]
pub struct FailingMoveDto {
    pub partition: u16,
    /// Failed attempts in a row.
    pub attempts: u32,
    /// Why the last attempt failed.
    pub last_error: String,
    /// When the first failure in a row happened, Unix milliseconds.
    pub since_ms: u64,
    /// Time until the next attempt, in ms.
    pub retry_in_ms: u64,
}

#[derive(Serialize, ToSchema)]
pub struct AntiEntropyDto {
    /// Exchanges the answering node started (one partition with one peer).
    pub exchanges: u64,
    /// Objects the answering node's exchanges repaired, both ways.
    pub keys_repaired: u64,
    /// Tombstones the answering node purged after the grace, once every replica held them.
    pub tombstones_purged: u64,
    /// Seconds since the partition replica held here with the oldest clean exchange had one
    /// (an exchange, started by either replica, that found the pair equal). Null until every
    /// partition replica held here that has another replica has had one, and on a node that
    /// holds none (a one-node cluster has nothing to exchange).
    pub oldest_clean_exchange_s: Option<f64>,
}

#[derive(Serialize, ToSchema)]
pub struct ClusterDto {
    pub cluster_id: String,
    /// Counts the changes of members, ring and namespaces: a join, a leave, a removal, a ring
    /// transition that completes, a namespace created. A fresh three-node cluster is at 5.
    pub epoch: u64,
    /// The metadata leader's node id ("" while there is none).
    pub leader: String,
    pub nodes: Vec<NodeDto>,
    pub moves: MovesDto,
    pub anti_entropy: AntiEntropyDto,
    /// Deleted namespaces whose data some nodes still hold (dropped in the background).
    pub namespaces_deleting: Vec<crate::routes::namespaces::DeletionDto>,
    pub alarms: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PartitionDto {
    pub id: u16,
    /// Node ids in preference order.
    pub replicas: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct RingDto {
    pub partitions: Vec<PartitionDto>,
    pub epoch: u64,
    /// The ring being moved to, while a transition is in progress.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<Vec<PartitionDto>>,
}

/// Cluster members and data movement.
#[utoipa::path(get, path = "/v1/cluster", tag = "cluster",
    responses((status = 200, description = "the cluster as this node sees it", body = ClusterDto)))]
pub async fn get_cluster(State(app): State<Arc<AppState>>) -> Json<ClusterDto> {
    let view = app.db.cluster();
    let nodes = view
        .nodes
        .into_iter()
        .map(|n| NodeDto {
            id: n.id,
            http_addr: n.http_addr,
            peer_addr: n.peer_addr,
            state: n.state.to_string(),
            partitions: n.partitions,
            clock_offset_ms: n.clock_offset_ms,
            clock_alarm: n.clock_alarm,
            hints_pending: n.hints_pending,
            voter: n.voter,
            reachable: n.reachable,
        })
        .collect();
    let moves = view.moves;
    Json(ClusterDto {
        cluster_id: view.cluster_id,
        epoch: view.epoch,
        leader: view.leader,
        nodes,
        moves: MovesDto {
            pending: moves.pending,
            active: moves.active,
            bytes_moved: moves.bytes_moved,
            bytes_total: moves.bytes_total,
            rate_bytes_per_sec: moves.rate_bytes,
            partitions_moved: moves.partitions_moved,
            failing: moves
                .failing
                .into_iter()
                .map(|f| FailingMoveDto {
                    partition: f.partition,
                    attempts: f.attempts,
                    last_error: f.last_error,
                    since_ms: f.since_ms,
                    retry_in_ms: f.retry_in_ms,
                })
                .collect(),
        },
        anti_entropy: AntiEntropyDto {
            exchanges: view.anti_entropy.exchanges,
            keys_repaired: view.anti_entropy.keys_repaired,
            tombstones_purged: view.anti_entropy.tombstones_purged,
            oldest_clean_exchange_s: view.anti_entropy.oldest_clean_exchange_s,
        },
        namespaces_deleting: view.deletions.into_iter().map(Into::into).collect(),
        alarms: view.alarms,
    })
}

/// The partition table.
#[utoipa::path(get, path = "/v1/cluster/ring", tag = "cluster",
    responses((status = 200, description = "the current ring, and the target ring during a transition", body = RingDto)))]
pub async fn get_ring(State(app): State<Arc<AppState>>) -> Json<RingDto> {
    let ring = app.db.ring();
    let table = |rows: Vec<(u16, Vec<String>)>| -> Vec<PartitionDto> {
        rows.into_iter().map(|(id, replicas)| PartitionDto { id, replicas }).collect()
    };
    Json(RingDto {
        partitions: table(ring.partitions),
        epoch: ring.epoch,
        target: ring.target.map(table),
    })
}

/// The answer to a membership change.
#[derive(Serialize, ToSchema)]
pub struct ChangeDto {
    pub node: String,
    /// `leaving` (partitions are moving away) or `removed`.
    pub state: String,
}

/// Decommission a node: its partitions move to the others, then it is removed.
#[utoipa::path(post, path = "/v1/cluster/nodes/{id}/leave", tag = "cluster",
    params(("id" = String, Path, description = "Node id")),
    responses((status = 202, description = "leaving: its partitions move away, then it is removed", body = ChangeDto),
        (status = 404, description = "`node_not_found`: not a member", body = ErrorBody),
        (status = 400, description = "`invalid_argument`: not a node name, or refused (the last member)", body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn leave_node(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<ChangeDto>), ApiError> {
    app.db.leave(&id).await?;
    Ok((StatusCode::ACCEPTED, Json(ChangeDto { node: id, state: "leaving".into() })))
}

/// Remove a dead node at once; its replicas are rebuilt from the others. A node that is not
/// down (as SWIM sees it) is refused with 409 `node_up` unless `force=true`: use `leave` for a
/// live node.
#[utoipa::path(post, path = "/v1/cluster/nodes/{id}/remove", tag = "cluster",
    params(("id" = String, Path, description = "Node id"),
        ("force" = Option<bool>, Query, description = "remove the node even if it is up")),
    responses((status = 202, description = "removed", body = ChangeDto),
        (status = 404, description = "`node_not_found`: not a member", body = ErrorBody),
        (status = 400, description = "`invalid_argument`: not a node name, or refused (the last member)", body = ErrorBody),
        (status = 409, description = "`node_up`: the node is not down; `leave` it, or remove it with `force=true`", body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn remove_node(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<(StatusCode, Json<ChangeDto>), ApiError> {
    let query = Query::parse(uri.query(), &["force"])?;
    let force = query.flag("force")?.unwrap_or(false);
    app.db.remove(&id, force).await?;
    Ok((StatusCode::ACCEPTED, Json(ChangeDto { node: id, state: "removed".into() })))
}

/// One replica's anti-entropy tree of a partition.
#[derive(Serialize, ToSchema)]
pub struct ReplicaTreeDto {
    pub node: String,
    /// The tree's root hash (16 hex digits); absent if the replica did not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
    /// Keys in the replica's tree, tombstones included.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keys: Option<u64>,
    /// Why the replica did not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PartitionTreesDto {
    pub partition: u16,
    pub namespace: String,
    pub replicas: Vec<ReplicaTreeDto>,
    /// Every replica that answered holds the same root (true when fewer than two answered).
    pub agree: bool,
    /// The replicas that did not answer (each with an `error` in `replicas`): whether they
    /// agree is unknown, and they do not make the others disagree.
    pub unreachable: Vec<String>,
}

/// Every replica's anti-entropy root for one partition of a namespace, whether those that
/// answered agree, and which did not answer.
#[utoipa::path(get, path = "/v1/cluster/partitions/{p}", tag = "cluster",
    params(("p" = u16, Path, description = "Partition"),
        ("ns" = Option<String>, Query, description = "namespace, default `default`")),
    responses((status = 200, description = "every current replica's tree root", body = PartitionTreesDto),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn get_partition(
    State(app): State<Arc<AppState>>,
    Path(p): Path<String>,
    uri: Uri,
) -> Result<Json<PartitionTreesDto>, ApiError> {
    let partition: u16 =
        p.parse().map_err(|_| ApiError::invalid(format!("partition {p:?} is not a number")))?;
    let query = Query::parse(uri.query(), &["ns"])?;
    let ns = query.text("ns")?.unwrap_or("default").to_string();
    let view = app.db.partition(&ns, partition).await?;
    let replicas = view
        .replicas
        .into_iter()
        .map(|r| match r.tree {
            Ok((root, keys)) => {
                ReplicaTreeDto { node: r.node, root: Some(root), keys: Some(keys), error: None }
            }
            Err(e) => ReplicaTreeDto { node: r.node, root: None, keys: None, error: Some(e) },
        })
        .collect();
    Ok(Json(PartitionTreesDto {
        partition: view.partition,
        namespace: view.namespace,
        replicas,
        agree: view.agree,
        unreachable: view.unreachable,
    }))
}
