//! `/v1/cluster`: membership and ring views.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;

#[derive(Serialize, ToSchema)]
pub struct NodeDto {
    pub id: String,
    pub http_addr: String,
    pub peer_addr: String,
    /// `joining`, `up`, `suspect`, `down` or `leaving`.
    pub state: String,
    /// Partitions this node holds a replica of.
    pub partitions: usize,
    pub clock_offset_ms: i64,
    pub hints_pending: u64,
}

#[derive(Serialize, ToSchema)]
pub struct MovesDto {
    pub pending: u64,
    pub active: u64,
    pub bytes_moved: u64,
    pub bytes_total: u64,
}

#[derive(Serialize, ToSchema)]
pub struct ClusterDto {
    pub cluster_id: String,
    pub epoch: u64,
    pub leader: String,
    pub nodes: Vec<NodeDto>,
    pub moves: MovesDto,
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
}

/// Cluster members and data movement.
#[utoipa::path(get, path = "/v1/cluster", tag = "cluster",
    responses((status = 200, body = ClusterDto)))]
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
            hints_pending: n.hints_pending,
        })
        .collect();
    Json(ClusterDto {
        cluster_id: view.cluster_id,
        epoch: view.epoch,
        leader: view.leader,
        nodes,
        moves: MovesDto { pending: 0, active: 0, bytes_moved: 0, bytes_total: 0 },
    })
}

/// The partition table.
#[utoipa::path(get, path = "/v1/cluster/ring", tag = "cluster",
    responses((status = 200, body = RingDto)))]
pub async fn get_ring(State(app): State<Arc<AppState>>) -> Json<RingDto> {
    let partitions =
        app.db.ring().into_iter().map(|(id, replicas)| PartitionDto { id, replicas }).collect();
    Json(RingDto { partitions, epoch: app.db.cluster().epoch })
}
