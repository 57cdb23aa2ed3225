//! `concord cluster status|ring|leave|remove|verify`: members, their health, the partition
//! table, the two membership changes an operator makes, and whether replicas agree.

use clap::{Args, Subcommand};
use concord_client::{ClusterStatus, MembershipChange, Moves, PartitionReplicas, Ring};

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
    /// Remove a dead node at once; its replicas are rebuilt from the others.
    Remove {
        /// Id of the node to remove.
        node: String,
    },
    /// Compare every partition's replicas by their anti-entropy tree roots. Prints the
    /// partitions that disagree and a summary line; exits 1 if any disagree or cannot answer.
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
            ClusterCommand::Remove { node } => print_change(&client.remove(&node).await?, output),
            ClusterCommand::Verify { ns } => verify(&client, ns, output).await,
        }
    })
}

/// `concord cluster verify`.
async fn verify(
    client: &concord_client::Client,
    ns: Option<String>,
    output: OutputFormat,
) -> anyhow::Result<()> {
    let namespaces = match ns {
        Some(ns) => vec![ns],
        None => client.namespaces().await?.into_iter().map(|n| n.name).collect(),
    };
    let partitions = client.ring().await?.partitions.len() as u32;
    let (mut agree, mut disagree) = (0usize, Vec::new());
    for ns in &namespaces {
        for p in 0..partitions {
            let trees = client.partition(p, ns).await?;
            if trees.agree {
                agree += 1;
            } else {
                disagree.push(trees);
            }
        }
    }
    match output {
        OutputFormat::Json => print_json(&disagree)?,
        OutputFormat::Table => {
            for trees in &disagree {
                let replicas: Vec<String> = trees
                    .replicas
                    .iter()
                    .map(|r| match (&r.root, r.keys, &r.error) {
                        (Some(root), Some(keys), _) => format!("{}={root}/{keys} keys", r.node),
                        (_, _, error) => {
                            format!("{}: {}", r.node, error.as_deref().unwrap_or("no answer"))
                        }
                    })
                    .collect();
                print_line(&format!(
                    "disagree: {} partition {}: {}",
                    trees.namespace,
                    trees.partition,
                    replicas.join(", ")
                ))?;
            }
        }
    }
    let summary = format!(
        "verified {} partitions in {} namespaces: {agree} agree, {} disagree",
        agree + disagree.len(),
        namespaces.len(),
        disagree.len()
    );
    eprintln!("{summary}");
    if !disagree.is_empty() {
        anyhow::bail!("{} partitions disagree", disagree.len());
    }
    Ok(())
}

fn print_status(status: &ClusterStatus) -> anyhow::Result<()> {
    let alarms =
        if status.alarms.is_empty() { "(none)".to_owned() } else { status.alarms.join("; ") };
    print_fields(&[
        ("cluster", status.cluster_id.clone()),
        ("epoch", status.epoch.to_string()),
        ("leader", status.leader.clone().unwrap_or_else(|| "(none)".to_owned())),
        ("moves", moves_line(&status.moves)),
        ("alarms", alarms),
    ])?;
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

/// `2 pending, 1 active, 3 received, 1.2 MiB of 4.0 MiB moved (35%), 800.0 KiB/s`.
fn moves_line(moves: &Moves) -> String {
    let mut line = format!(
        "{} pending, {} active, {} received, {} of {} moved",
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

    /// The moves line shows progress and rate.
    #[test]
    fn moves_line_shows_progress() {
        let moves = Moves {
            pending: 2,
            active: 1,
            bytes_moved: 1 << 20,
            bytes_total: 4 << 20,
            rate_bytes_per_sec: 800 << 10,
            partitions_moved: 3,
        };
        assert_eq!(
            moves_line(&moves),
            "2 pending, 1 active, 3 received, 1.0 MiB of 4.0 MiB moved (25%), 800.0 KiB/s"
        );
        assert_eq!(
            moves_line(&Moves::default()),
            "0 pending, 0 active, 0 received, 0 B of 0 B moved, 0 B/s"
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
