//! `concord cluster status|ring`: members, their health, and the partition table.

use clap::{Args, Subcommand};
use concord_client::{ClusterStatus, Ring};

use super::ClientArgs;
use super::output::{OutputFormat, Table, print_fields, print_json, print_line};

/// Flags of `concord cluster`.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    #[command(flatten)]
    client: ClientArgs,

    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Members, their state, the leader and data movement.
    Status,
    /// The partition table: each partition's replicas in preference order.
    Ring,
}

/// Runs `concord cluster ...`.
pub fn run(args: ClusterArgs) -> anyhow::Result<()> {
    let client = args.client.connect()?;
    let output = args.client.output;
    super::block_on(async move {
        match args.command {
            ClusterCommand::Status => {
                let status = client.cluster().await?;
                match output {
                    OutputFormat::Json => print_json(&status),
                    OutputFormat::Table => print_status(&status),
                }
            }
            ClusterCommand::Ring => {
                let ring = client.ring().await?;
                match output {
                    OutputFormat::Json => print_json(&ring),
                    OutputFormat::Table => print_ring(&ring),
                }
            }
        }
    })
}

fn print_status(status: &ClusterStatus) -> anyhow::Result<()> {
    let moves = &status.moves;
    print_fields(&[
        ("cluster", status.cluster_id.clone()),
        ("epoch", status.epoch.to_string()),
        ("leader", status.leader.clone().unwrap_or_else(|| "(none)".to_owned())),
        (
            "moves",
            format!(
                "{} pending, {} active, {} of {} bytes moved",
                moves.pending, moves.active, moves.bytes_moved, moves.bytes_total
            ),
        ),
    ])?;
    print_line("")?;
    let header = ["ID", "STATE", "HTTP", "PEER", "PARTITIONS", "CLOCK_OFFSET_MS", "HINTS_PENDING"];
    let mut table = Table::new(&header).numeric(&[4, 5, 6]);
    for node in &status.nodes {
        table.row(vec![
            node.id.clone(),
            node.state.clone(),
            node.http_addr.clone(),
            node.peer_addr.clone(),
            node.partitions.to_string(),
            node.clock_offset_ms.to_string(),
            node.hints_pending.to_string(),
        ]);
    }
    Ok(table.print()?)
}

fn print_ring(ring: &Ring) -> anyhow::Result<()> {
    print_fields(&[
        ("epoch", ring.epoch.to_string()),
        ("partitions", ring.partitions.len().to_string()),
    ])?;
    print_line("")?;
    let mut table = Table::new(&["PARTITION", "REPLICAS"]).numeric(&[0]);
    for partition in &ring.partitions {
        table.row(vec![partition.id.to_string(), partition.replicas.join(", ")]);
    }
    Ok(table.print()?)
}
