//! `concord cluster verify`: every partition's replicas compared by their anti-entropy tree
//! roots. A replica that does not answer (a dead node) is reported as unreachable, apart:
//! whether the replicas agree is judged among those that answered, so one dead node does not
//! turn every partition into a disagreement.

use std::collections::BTreeMap;

use concord_client::{Client, PartitionTrees};
use serde::Serialize;

use super::output::{OutputFormat, note, print_json, print_line};

/// What the comparison found, partition by partition.
#[derive(Debug, Default, Serialize)]
struct Tally {
    /// Partitions compared (every namespace's).
    partitions: usize,
    /// Partitions whose replicas that answered hold one root.
    agree: usize,
    /// Partitions whose replicas that answered hold different roots.
    disagree: Vec<PartitionTrees>,
    /// Per node that did not answer: the partition replicas left unchecked and why.
    unreachable: BTreeMap<String, Unreachable>,
}

#[derive(Debug, Serialize)]
struct Unreachable {
    partitions: usize,
    /// Why it did not answer, the first time.
    error: String,
}

impl Tally {
    fn add(&mut self, trees: PartitionTrees) {
        self.partitions += 1;
        for node in &trees.unreachable {
            let error = trees
                .replicas
                .iter()
                .find(|r| &r.node == node)
                .and_then(|r| r.error.clone())
                .unwrap_or_else(|| "no answer".to_owned());
            self.unreachable
                .entry(node.clone())
                .or_insert(Unreachable { partitions: 0, error })
                .partitions += 1;
        }
        if trees.agree {
            self.agree += 1;
        } else {
            self.disagree.push(trees);
        }
    }

    /// `verified 64 partitions in 1 namespace: 64 agree, 0 disagree`, and the unreachable
    /// nodes when there are some.
    fn summary(&self, namespaces: usize) -> String {
        let among =
            if self.unreachable.is_empty() { "" } else { " among the replicas that answered" };
        let plural = if namespaces == 1 { "" } else { "s" };
        let mut line = format!(
            "verified {} partitions in {namespaces} namespace{plural}: {} agree{among}, {} disagree",
            self.partitions,
            self.agree,
            self.disagree.len()
        );
        if !self.unreachable.is_empty() {
            let nodes: Vec<String> = self
                .unreachable
                .iter()
                .map(|(node, u)| {
                    format!("{node} ({} partition replicas unchecked: {})", u.partitions, u.error)
                })
                .collect();
            line.push_str(&format!("; unreachable: {}", nodes.join(", ")));
        }
        line
    }

    /// Success only when every replica answered and agreed.
    fn outcome(&self) -> anyhow::Result<()> {
        if !self.disagree.is_empty() {
            anyhow::bail!("{} partitions disagree", self.disagree.len());
        }
        if !self.unreachable.is_empty() {
            let nodes: Vec<&str> = self.unreachable.keys().map(String::as_str).collect();
            anyhow::bail!(
                "{} did not answer, so {} replicas are unverified (the replicas that answered \
                 agree)",
                nodes.join(", "),
                if nodes.len() == 1 { "its" } else { "their" }
            );
        }
        Ok(())
    }
}

/// One line for a partition whose answering replicas disagree.
fn disagreement_line(trees: &PartitionTrees) -> String {
    let replicas: Vec<String> = trees
        .replicas
        .iter()
        .map(|r| match (&r.root, r.keys) {
            (Some(root), Some(keys)) => format!("{}={root}/{keys} keys", r.node),
            _ => format!("{}: unreachable", r.node),
        })
        .collect();
    format!("disagree: {} partition {}: {}", trees.namespace, trees.partition, replicas.join(", "))
}

/// Runs `concord cluster verify`: prints the partitions that disagree (or, as JSON, the whole
/// tally) and a summary line on stderr; fails unless every replica answered and agreed.
pub async fn run(client: &Client, ns: Option<String>, output: OutputFormat) -> anyhow::Result<()> {
    let namespaces = match ns {
        Some(ns) => vec![ns],
        None => client.namespaces().await?.into_iter().map(|n| n.name).collect(),
    };
    let partitions = client.ring().await?.partitions.len() as u32;
    let mut tally = Tally::default();
    for ns in &namespaces {
        for p in 0..partitions {
            tally.add(client.partition(p, ns).await?);
        }
    }
    match output {
        OutputFormat::Json => print_json(&tally)?,
        OutputFormat::Table => {
            for trees in &tally.disagree {
                print_line(&disagreement_line(trees))?;
            }
        }
    }
    note(tally.summary(namespaces.len()));
    tally.outcome()
}

#[cfg(test)]
mod tests {
    use concord_client::ReplicaTree;

    use super::*;

    fn trees(partition: u32, roots: &[(&str, Option<&str>)]) -> PartitionTrees {
        let replicas: Vec<ReplicaTree> = roots
            .iter()
            .map(|(node, root)| ReplicaTree {
                node: (*node).to_owned(),
                root: root.map(str::to_owned),
                keys: root.map(|_| 3),
                error: root.is_none().then(|| "down".to_owned()),
            })
            .collect();
        let answered: Vec<&str> = roots.iter().filter_map(|(_, root)| *root).collect();
        PartitionTrees {
            partition,
            namespace: "default".into(),
            agree: answered.windows(2).all(|pair| pair[0] == pair[1]),
            unreachable: roots
                .iter()
                .filter(|(_, root)| root.is_none())
                .map(|(node, _)| (*node).to_owned())
                .collect(),
            replicas,
        }
    }

    /// Regression (issue 20, item 9): with n3 dead, partitions whose live replicas agree are
    /// counted as agreeing, n3 is named unreachable with how many replicas went unchecked, and
    /// the command still fails, since n3's replicas are unverified.
    #[test]
    fn a_dead_node_is_unreachable_not_a_disagreement() {
        let mut tally = Tally::default();
        for p in 0..2 {
            tally.add(trees(p, &[("n1", Some("aa")), ("n2", Some("aa")), ("n3", None)]));
        }
        tally.add(trees(2, &[("n1", Some("aa")), ("n2", Some("aa"))]));
        assert_eq!(
            tally.summary(1),
            "verified 3 partitions in 1 namespace: 3 agree among the replicas that answered, 0 \
             disagree; unreachable: n3 (2 partition replicas unchecked: down)"
        );
        let error = tally.outcome().unwrap_err().to_string();
        assert_eq!(
            error,
            "n3 did not answer, so its replicas are unverified (the replicas that answered agree)"
        );
    }

    /// A disagreement among the replicas that answered is one, and is printed with each
    /// replica's root.
    #[test]
    fn a_disagreement_among_answers_fails() {
        let mut tally = Tally::default();
        tally.add(trees(0, &[("n1", Some("aa")), ("n2", Some("bb")), ("n3", None)]));
        tally.add(trees(1, &[("n1", Some("aa")), ("n2", Some("aa")), ("n3", Some("aa"))]));
        assert_eq!(tally.outcome().unwrap_err().to_string(), "1 partitions disagree");
        assert_eq!(
            disagreement_line(&tally.disagree[0]),
            "disagree: default partition 0: n1=aa/3 keys, n2=bb/3 keys, n3: unreachable"
        );
        let clean = {
            let mut tally = Tally::default();
            tally.add(trees(0, &[("n1", Some("aa")), ("n2", Some("aa"))]));
            tally
        };
        assert_eq!(clean.summary(2), "verified 1 partitions in 2 namespaces: 1 agree, 0 disagree");
        assert!(clean.outcome().is_ok());
    }
}
