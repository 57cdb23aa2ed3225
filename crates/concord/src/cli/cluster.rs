//! `concord cluster status|ring|leave|remove|verify`: members, their health, the partition
//! table, the two membership changes an operator makes, and whether replicas agree.

use clap::{Args, Subcommand};
use concord_client::{
    AntiEntropy, ClusterStatus, MembershipChange, Moves, PartitionReplicas, Ring,
};

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
    /// Members, their state, the leader, alarms and data movement.
    Status,
    /// The partition table: each partition's replicas in preference order, and the target
    /// table while partitions move.
    Ring,
    /// Decommission a node: its partitions move to the others, then it is removed.
    Leave {
        /// Id of the node to decommission.
        node: String,
    },
    /// Remove a dead node at once; its replicas are rebuilt from the others. A node that is up
    /// is refused: decommission it with `leave`.
    Remove {
        /// Id of the node to remove.
        node: String,
        /// Remove it even if it is up: its replicas are thrown away while it may still serve.
        #[arg(long)]
        force: bool,
    },
    /// Compare every partition's replicas by their anti-entropy tree roots. Prints the
    /// partitions whose replicas disagree and a summary line naming the nodes that did not
    /// answer (unreachable); exits 1 unless every replica answered and agreed.
    Verify {
        /// Only this namespace (default: every namespace).
        #[arg(long)]
        ns: Option<String>,
    },
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
            ClusterCommand::Leave { node } => print_change(&client.leave(&node).await?, output),
            ClusterCommand::Remove { node, force: false } => {
                print_change(&client.remove(&node).await?, output)
            }
            ClusterCommand::Remove { node, force: true } => {
                print_change(&client.force_remove(&node).await?, output)
            }
            ClusterCommand::Verify { ns } => super::verify::run(&client, ns, output).await,
        }
    })
}

fn print_status(status: &ClusterStatus) -> anyhow::Result<()> {
    let alarms =
        if status.alarms.is_empty() { "(none)".to_owned() } else { status.alarms.join("; ") };
    let deleting: Vec<String> = status
        .namespaces_deleting
        .iter()
        .map(|d| format!("{} (id {}) on {}", d.name, d.id, d.nodes_pending.join(", ")))
        .collect();
    let mut fields = vec![
        ("cluster", status.cluster_id.clone()),
        ("epoch", format!("{} (changes of members, ring and namespaces)", status.epoch)),
        ("leader", status.leader.clone().unwrap_or_else(|| "(none)".to_owned())),
        ("moves", moves_line(&status.moves)),
        ("anti-entropy", anti_entropy_line(&status.anti_entropy)),
        ("alarms", alarms),
    ];
    if !deleting.is_empty() {
        fields.push(("dropping", format!("deleted namespaces' data: {}", deleting.join("; "))));
    }
    print_fields(&fields)?;
    print_line("")?;
    let header =
        ["ID", "STATE", "PARTITIONS", "CLOCK_OFFSET_MS", "VOTER", "HINTS_PENDING", "HTTP", "PEER"];
    let mut table = Table::new(&header).numeric(&[2, 3, 5]);
    for node in &status.nodes {
        // The alarm mark keeps the column numeric-looking while making the offset stand out.
        let offset_mark = if node.clock_alarm { " !" } else { "" };
        table.row(vec![
            node.id.clone(),
            if node.reachable {
                node.state.clone()
            } else {
                format!("{} (unreachable)", node.state)
            },
            node.partitions.to_string(),
            format!("{}{offset_mark}", node.clock_offset_ms),
            if node.voter { "yes" } else { "no" }.to_owned(),
            node.hints_pending.to_string(),
            node.http_addr.clone(),
            node.peer_addr.clone(),
        ]);
    }
    Ok(table.print()?)
}

/// Data movement as the answering node sees it: cluster-wide pending moves, then this node's
/// own streams, which is all its byte counts cover. `none pending (this node received 3
/// partition replicas, 1.2 MiB, since it started)`, `5 pending cluster-wide; none streaming to
/// this node now`, or while it receives: `2 pending cluster-wide; this node: 1 streaming, 3
/// received, 1.2 MiB of ~4.0 MiB (30%), 800.0 KiB/s`.
fn moves_line(moves: &Moves) -> String {
    let received = match moves.partitions_moved {
        0 => String::new(),
        n => format!(
            " (this node received {n} partition replicas, {}, since it started)",
            human_bytes(moves.bytes_moved)
        ),
    };
    if moves.active == 0 {
        return match moves.pending {
            0 => format!("none pending{received}"),
            pending => {
                format!("{pending} pending cluster-wide; none streaming to this node now{received}")
            }
        };
    }
    let mut line = format!(
        "{} pending cluster-wide; this node: {} streaming, {} received, {} of ~{}",
        moves.pending,
        moves.active,
        moves.partitions_moved,
        human_bytes(moves.bytes_moved),
        human_bytes(moves.bytes_total)
    );
    if let Some(percent) = moves.bytes_moved.saturating_mul(100).checked_div(moves.bytes_total) {
        line.push_str(&format!(" ({percent}%)"));
    }
    line.push_str(&format!(", {}/s", human_bytes(moves.rate_bytes_per_sec)));
    line
}

/// `438 exchanges, 2 keys repaired, oldest clean exchange 4.9 s ago` (this node's).
fn anti_entropy_line(ae: &AntiEntropy) -> String {
    let oldest = match ae.oldest_clean_exchange_s {
        Some(seconds) => format!("oldest clean exchange {seconds:.1} s ago"),
        None => "not every partition replica here has had a clean exchange yet".to_owned(),
    };
    format!("{} exchanges, {} keys repaired, {oldest}", ae.exchanges, ae.keys_repaired)
}

/// Bytes in binary units with one decimal: `512 B`, `1.5 KiB`, `3.0 GiB`.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

fn print_ring(ring: &Ring) -> anyhow::Result<()> {
    let mut fields =
        vec![("epoch", ring.epoch.to_string()), ("partitions", ring.partitions.len().to_string())];
    if let Some(target) = &ring.target {
        let moving = moving_partitions(&ring.partitions, target);
        fields.push(("moving", format!("{moving} partitions change replicas")));
    }
    print_fields(&fields)?;
    print_line("")?;
    match &ring.target {
        None => {
            let mut table = Table::new(&["PARTITION", "REPLICAS"]).numeric(&[0]);
            for partition in &ring.partitions {
                table.row(vec![partition.id.to_string(), partition.replicas.join(", ")]);
            }
            Ok(table.print()?)
        }
        Some(target) => print_ring_with_target(&ring.partitions, target),
    }
}

/// The current and target replicas side by side; `*` marks partitions whose replicas change.
fn print_ring_with_target(
    current: &[PartitionReplicas],
    target: &[PartitionReplicas],
) -> anyhow::Result<()> {
    let mut table = Table::new(&["PARTITION", "REPLICAS", "TARGET", "MOVING"]).numeric(&[0]);
    for partition in current {
        let next = target.iter().find(|t| t.id == partition.id);
        let next_replicas = next.map_or_else(|| "(none)".to_owned(), |t| t.replicas.join(", "));
        let moving = next.is_none_or(|t| t.replicas != partition.replicas);
        table.row(vec![
            partition.id.to_string(),
            partition.replicas.join(", "),
            next_replicas,
            if moving { "*" } else { "" }.to_owned(),
        ]);
    }
    Ok(table.print()?)
}

/// How many partitions have different replicas in `target` than in `current`.
fn moving_partitions(current: &[PartitionReplicas], target: &[PartitionReplicas]) -> usize {
    current
        .iter()
        .filter(|p| target.iter().find(|t| t.id == p.id).is_none_or(|t| t.replicas != p.replicas))
        .count()
}

fn print_change(change: &MembershipChange, output: OutputFormat) -> anyhow::Result<()> {
    match output {
        OutputFormat::Json => print_json(change),
        OutputFormat::Table => {
            let next = match change.state.as_str() {
                "leaving" => "; its partitions are moving away (see `concord cluster status`)",
                _ => "",
            };
            Ok(print_line(&format!("{}: {}{next}", change.node, change.state))?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Byte counts read as binary units.
    #[test]
    fn bytes_are_shown_in_binary_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }

    /// The moves line shows progress and rate during a transition, and says plainly when
    /// nothing is pending (regression, issue 20 item 10: after a leave it read "0 B of 0 B
    /// moved", the answering node's own counters, which had nothing to count).
    #[test]
    fn moves_line_shows_progress() {
        let moves = Moves {
            pending: 2,
            active: 1,
            bytes_moved: 1 << 20,
            bytes_total: 4 << 20,
            rate_bytes_per_sec: 800 << 10,
            partitions_moved: 3,
            failing: Vec::new(),
        };
        assert_eq!(
            moves_line(&moves),
            "2 pending cluster-wide; this node: 1 streaming, 3 received, 1.0 MiB of ~4.0 MiB \
             (25%), 800.0 KiB/s"
        );
        let elsewhere = Moves { pending: 5, ..Moves::default() };
        assert_eq!(
            moves_line(&elsewhere),
            "5 pending cluster-wide; none streaming to this node now"
        );
        assert_eq!(moves_line(&Moves::default()), "none pending");
        let settled = Moves { partitions_moved: 64, bytes_moved: 1536, ..Moves::default() };
        assert_eq!(
            moves_line(&settled),
            "none pending (this node received 64 partition replicas, 1.5 KiB, since it started)"
        );
    }

    /// A partition moves when its replica list changes, order included.
    #[test]
    fn moving_partitions_compare_replica_lists() {
        let p = |id, replicas: &[&str]| PartitionReplicas {
            id,
            replicas: replicas.iter().map(|r| (*r).to_owned()).collect(),
        };
        let current = [p(0, &["n1", "n2"]), p(1, &["n2", "n1"]), p(2, &["n1", "n2"])];
        let target = [p(0, &["n1", "n2"]), p(1, &["n1", "n2"]), p(2, &["n3", "n2"])];
        assert_eq!(moving_partitions(&current, &target), 2);
    }
}
