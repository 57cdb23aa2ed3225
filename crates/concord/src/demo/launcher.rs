//! The demo as scripts use it: which options node `i` gets (a restart keeps the ports it last
//! announced), `--only I --exec`, and `--stop` of detached nodes.

use std::path::Path;

use anyhow::{Context as _, bail};
use concord_launch::process::{self, StdoutTo};
use concord_launch::{Layout, Ports, ServerOptions, ports};

use super::NODE_STOP_TIMEOUT;

/// Node `i`'s options, and whether its ports may move to free ones when taken.
pub struct Planned {
    pub options: ServerOptions,
    /// Preferred ports, not yet used by this node: a taken one is no failure.
    pub may_fall_back: bool,
}

/// Node `i`'s options: its layout, on the ports it last announced if it ran before (a restart
/// keeps the ports the others know it by), joining through `seed` (n1's peer address) or else
/// n1's last announced one, unless it is n1.
pub fn plan(layout: &Layout, i: u16, seed: Option<&str>) -> anyhow::Result<Planned> {
    let seed = match (i, seed) {
        (1, _) => None,
        (_, Some(seed)) => Some(seed.to_owned()),
        (_, None) => Some(n1_peer_addr(layout, i)?),
    };
    let mut options = layout.node(i, seed.as_deref());
    let before = process::last_announcement_after(&options.stdout_path(), 0);
    let mut may_fall_back = matches!(layout.ports, Ports::Preferred(_));
    if let (Some(before), false) = (before, matches!(layout.ports, Ports::Fixed(_))) {
        let http = before.endpoint.trim_start_matches("http://").to_owned();
        options = options.addrs(&http, &before.peer_addr);
        may_fall_back = false;
    }
    Ok(Planned { options, may_fall_back })
}

/// n1's peer address for a node started alone (`--only`): the layout's when ports are fixed,
/// else the one n1 last announced.
fn n1_peer_addr(layout: &Layout, i: u16) -> anyhow::Result<String> {
    let n1 = layout.node(1, None);
    match (layout.ports, process::last_announcement_after(&n1.stdout_path(), 0)) {
        (Ports::Fixed(_), _) => Ok(n1.peer_addr),
        (_, Some(announced)) => Ok(announced.peer_addr),
        (_, None) => bail!(
            "--only {i} without --base-port needs n1's address: no startup line in {}",
            n1.stdout_path().display()
        ),
    }
}

/// Replaces this process by node `i`'s server; returns only if that fails. A preferred port
/// that is taken moves the node to free ports, said on stderr (its stdout is the server's).
pub fn exec_node(layout: &Layout, i: u16) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt as _;
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let Planned { mut options, may_fall_back } = plan(layout, i, None)?;
    if may_fall_back {
        let (free, taken) = ports::keep_if_free(options);
        if let Some(taken) = taken {
            eprintln!("!! n{i}: {taken} is taken by another program; n{i} uses free ports instead");
        }
        options = free;
    }
    let mut command = options.command(&exe)?;
    command.stdout(std::process::Stdio::inherit());
    let err = command.exec();
    Err(err).with_context(|| format!("cannot exec {} for n{i}", exe.display()))
}

/// Stops the detached nodes whose pid files are in `root`, or only `n{only}`.
pub fn stop_detached(root: &Path, only: Option<u16>) -> anyhow::Result<()> {
    let layout = Layout::new(root, Ports::Free);
    let mut numbers: Vec<u16> = match only {
        Some(i) => vec![i],
        None => std::fs::read_dir(root)
            .with_context(|| format!("reading {}", root.display()))?
            .filter_map(|entry| {
                let name = entry.ok()?.file_name().into_string().ok()?;
                name.strip_prefix('n')?.strip_suffix(".pid")?.parse().ok()
            })
            .collect(),
    };
    numbers.sort_unstable();
    for i in numbers {
        let options = layout.node(i, None);
        let Some(pid) = process::read_pid(&options.pid_path()) else { continue };
        let id = Layout::id(i);
        if !process::is_node(pid, &options.data_dir) {
            println!("{id} (pid {pid}) is not running");
        } else if process::stop_pid(pid, NODE_STOP_TIMEOUT) {
            println!("{id} stopped (pid {pid})");
        } else {
            println!("{id} did not stop within {NODE_STOP_TIMEOUT:?}; killed it (pid {pid})");
        }
        std::fs::remove_file(options.pid_path()).ok();
    }
    Ok(())
}

/// Where a detached node's stdout goes, or a pipe the demo reads.
pub fn stdout_for(detached: bool) -> StdoutTo {
    if detached { StdoutTo::File } else { StdoutTo::Pipe }
}
