//! `concord ns create|list|show|update|delete`: namespaces and their replication settings.

use clap::{Args, Subcommand, ValueEnum};
use concord_client::{
    ConflictPolicy, Consistency, NamespaceConfig, NamespaceDeletion, NamespaceView, Quorum,
};
use serde::Serialize;

use super::ClientArgs;
use super::output::{OutputFormat, Table, note, print_fields, print_json};

/// Flags of `concord ns`.
#[derive(Debug, Args)]
pub struct NsArgs {
    #[command(flatten)]
    client: ClientArgs,

    #[command(subcommand)]
    command: NsCommand,
}

#[derive(Debug, Subcommand)]
enum NsCommand {
    /// Create a namespace; succeeds without change if it exists with the same settings.
    Create(CreateArgs),
    /// List every namespace.
    List,
    /// Show one namespace.
    Show {
        /// Namespace.
        name: String,
    },
    /// Change a namespace's quorums or `strict` (the other settings are fixed at creation).
    Update(UpdateArgs),
    /// Delete a namespace: its name is free at once, and every node drops its data in the
    /// background (`concord cluster status` shows the drop until it is done).
    Delete {
        /// Namespace.
        name: String,
    },
}

/// The settings `ns update` may change; omitted ones stay as they are.
#[derive(Debug, Args)]
struct UpdateArgs {
    /// Namespace.
    name: String,
    /// Read quorum (R): one, quorum, all or a count.
    #[arg(long, value_name = "Q")]
    read_quorum: Option<Quorum>,
    /// Write quorum (W): one, quorum, all or a count.
    #[arg(long, value_name = "Q")]
    write_quorum: Option<Quorum>,
    /// Count only primary replicas toward quorums (no sloppy quorum).
    #[arg(long, value_name = "BOOL")]
    strict: Option<bool>,
}

impl UpdateArgs {
    fn changes(&self) -> NamespaceConfig {
        NamespaceConfig {
            read_quorum: self.read_quorum,
            write_quorum: self.write_quorum,
            strict: self.strict,
            ..NamespaceConfig::default()
        }
    }
}

/// Omitted flags take the server's defaults: eventual, 3 replicas, quorum reads and writes,
/// siblings, not strict.
#[derive(Debug, Args)]
struct CreateArgs {
    /// Namespace name: `[a-z0-9][a-z0-9_-]{0,62}`.
    name: String,
    /// Consistency model (only `eventual` is served today).
    #[arg(long, value_enum)]
    consistency: Option<ConsistencyArg>,
    /// Copies of each key (N); capped by the cluster size.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    replicas: Option<u32>,
    /// Read quorum (R): one, quorum, all or a count.
    #[arg(long, value_name = "Q")]
    read_quorum: Option<Quorum>,
    /// Write quorum (W): one, quorum, all or a count.
    #[arg(long, value_name = "Q")]
    write_quorum: Option<Quorum>,
    /// What happens to concurrent writes.
    #[arg(long, value_enum)]
    conflicts: Option<ConflictsArg>,
    /// Count only primary replicas toward quorums (no sloppy quorum).
    #[arg(long)]
    strict: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ConsistencyArg {
    /// N/R/W quorums, siblings, always writable.
    Eventual,
    /// Raft per partition (planned; refused by today's servers).
    Strong,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ConflictsArg {
    /// Keep concurrent values as siblings for clients to resolve.
    Siblings,
    /// Keep the value with the latest timestamp; concurrent writes are lost.
    Lww,
}

impl CreateArgs {
    fn config(&self) -> NamespaceConfig {
        NamespaceConfig {
            consistency: self.consistency.map(|consistency| match consistency {
                ConsistencyArg::Eventual => Consistency::Eventual,
                ConsistencyArg::Strong => Consistency::Strong,
            }),
            replicas: self.replicas,
            read_quorum: self.read_quorum,
            write_quorum: self.write_quorum,
            conflicts: self.conflicts.map(|conflicts| match conflicts {
                ConflictsArg::Siblings => ConflictPolicy::Siblings,
                ConflictsArg::Lww => ConflictPolicy::Lww,
            }),
            strict: self.strict.then_some(true),
        }
    }
}

/// The JSON output of `ns create`.
#[derive(Serialize)]
struct Created<'a> {
    created: bool,
    namespace: &'a NamespaceView,
}

/// Runs `concord ns ...`.
pub fn run(args: NsArgs) -> anyhow::Result<()> {
    let client = args.client.connect()?;
    let output = args.client.output;
    super::block_on(async move {
        match args.command {
            NsCommand::Create(create) => {
                let (created, view) =
                    client.create_namespace(&create.name, &create.config()).await?;
                match output {
                    OutputFormat::Json => print_json(&Created { created, namespace: &view }),
                    OutputFormat::Table => {
                        if created {
                            note(format_args!("created namespace {}", view.name));
                        } else {
                            note(format_args!("namespace {} already exists as asked", view.name));
                        }
                        print_view(&view)
                    }
                }
            }
            NsCommand::List => {
                let views = client.namespaces().await?;
                match output {
                    OutputFormat::Json => print_json(&serde_json::json!({ "namespaces": views })),
                    OutputFormat::Table => print_views(&views),
                }
            }
            NsCommand::Show { name } => {
                let view = client.namespace(&name).await?;
                match output {
                    OutputFormat::Json => print_json(&view),
                    OutputFormat::Table => print_view(&view),
                }
            }
            NsCommand::Update(update) => {
                let view = client.update_namespace(&update.name, &update.changes()).await?;
                match output {
                    OutputFormat::Json => print_json(&view),
                    OutputFormat::Table => print_view(&view),
                }
            }
            NsCommand::Delete { name } => {
                let deletion = client.delete_namespace(&name).await?;
                match output {
                    OutputFormat::Json => print_json(&deletion),
                    OutputFormat::Table => {
                        note(deleted_line(&deletion));
                        Ok(())
                    }
                }
            }
        }
    })
}

/// What `ns delete` did, for people.
fn deleted_line(deletion: &NamespaceDeletion) -> String {
    let nodes = match deletion.nodes_pending.as_slice() {
        [] => "every node has dropped its data".to_owned(),
        nodes => format!(
            "its data is being dropped on {} (see `concord cluster status`)",
            nodes.join(", ")
        ),
    };
    format!("deleted namespace {} (id {}); {nodes}", deletion.name, deletion.id)
}

fn print_view(view: &NamespaceView) -> anyhow::Result<()> {
    Ok(print_fields(&[
        ("name", view.name.clone()),
        ("consistency", view.consistency.to_string()),
        ("replicas", format!("{} (effective {})", view.replicas, view.effective_replicas)),
        ("read_quorum", view.read_quorum.to_string()),
        ("write_quorum", view.write_quorum.to_string()),
        ("conflicts", view.conflicts.to_string()),
        ("strict", view.strict.to_string()),
    ])?)
}

fn print_views(views: &[NamespaceView]) -> anyhow::Result<()> {
    let header = ["NAME", "CONSISTENCY", "REPLICAS", "EFFECTIVE", "R", "W", "CONFLICTS", "STRICT"];
    let mut table = Table::new(&header).numeric(&[2, 3]);
    for view in views {
        table.row(vec![
            view.name.clone(),
            view.consistency.to_string(),
            view.replicas.to_string(),
            view.effective_replicas.to_string(),
            view.read_quorum.to_string(),
            view.write_quorum.to_string(),
            view.conflicts.to_string(),
            view.strict.to_string(),
        ]);
    }
    Ok(table.print()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ns update` sends only the settings given, `--strict false` included.
    #[test]
    fn update_flags_become_a_sparse_patch() {
        let args = UpdateArgs {
            name: "carts".into(),
            read_quorum: None,
            write_quorum: Some(Quorum::One),
            strict: Some(false),
        };
        let json = serde_json::to_value(args.changes()).unwrap();
        assert_eq!(json, serde_json::json!({"write_quorum": "one", "strict": false}));
    }

    /// `ns delete` says which nodes still drop the data.
    #[test]
    fn the_deletion_line_names_the_nodes_still_dropping() {
        let deletion = NamespaceDeletion {
            name: "carts".into(),
            id: 4,
            nodes_pending: vec!["n1".into(), "n2".into()],
        };
        assert_eq!(
            deleted_line(&deletion),
            "deleted namespace carts (id 4); its data is being dropped on n1, n2 (see `concord \
             cluster status`)"
        );
    }

    /// Only the flags given go into the request; `--strict` alone sets `strict`.
    #[test]
    fn create_flags_become_a_sparse_config() {
        let args = CreateArgs {
            name: "carts".into(),
            consistency: None,
            replicas: Some(3),
            read_quorum: None,
            write_quorum: Some(Quorum::All),
            conflicts: Some(ConflictsArg::Lww),
            strict: false,
        };
        let json = serde_json::to_value(args.config()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"replicas": 3, "write_quorum": "all", "conflicts": "lww"})
        );
    }
}
