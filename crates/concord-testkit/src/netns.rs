//! Hosts of their own for test nodes: one Linux network namespace per node, each with an address
//! on a private bridge (`10.77.R.i/24`, the bridge `10.77.R.254`), so nodes talk over real
//! interfaces instead of loopback ports. Needs root and `ip`; [`NetnsHosts::available`] probes.
//! Everything created is deleted on drop.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, bail};

/// Runs of this process so far, so concurrent runs get distinct names and subnets.
static RUNS: AtomicU32 = AtomicU32::new(0);

/// A bridge and `nodes` namespaces wired to it.
#[derive(Debug)]
pub struct NetnsHosts {
    run: u32,
    nodes: usize,
    forward_rules: bool,
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new("ip").args(args).output().context("running ip")?;
    if !output.status.success() {
        bail!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(())
}

fn iptables(action: &str, bridge: &str, direction: &str) -> bool {
    Command::new("iptables")
        .args([action, "FORWARD", direction, bridge, "-j", "ACCEPT"])
        .output()
        .is_ok_and(|o| o.status.success())
}

impl NetnsHosts {
    /// Whether namespaces can be made here (root, `ip` present): creates and deletes one.
    pub fn available() -> bool {
        let name = format!("concord-probe-{}", std::process::id());
        let made = ip(&["netns", "add", &name]).is_ok();
        if made {
            let _ = ip(&["netns", "del", &name]);
        }
        made
    }

    /// Creates the bridge and one namespace per node.
    pub fn create(nodes: usize) -> anyhow::Result<NetnsHosts> {
        assert!((1..=200).contains(&nodes));
        let run = (std::process::id() * 7 + RUNS.fetch_add(1, Ordering::Relaxed)) % 250 + 1;
        let mut hosts = NetnsHosts { run, nodes: 0, forward_rules: false };
        let bridge = hosts.bridge();
        // Leftovers of a killed earlier run with the same number go first.
        hosts.remove_leftovers(nodes);
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        hosts.nodes = nodes;
        ip(&["addr", "add", &format!("10.77.{run}.254/24"), "dev", &bridge])?;
        ip(&["link", "set", &bridge, "up"])?;
        // Bridged traffic may pass the FORWARD chain (br_netfilter), whose policy Docker sets to
        // DROP: accept everything on this bridge.
        hosts.forward_rules = iptables("-I", &bridge, "-i") && iptables("-I", &bridge, "-o");
        for i in 0..nodes {
            let (ns, veth) = (hosts.namespace(i), hosts.veth(i));
            ip(&["netns", "add", &ns])?;
            ip(&["link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns])?;
            ip(&["link", "set", &veth, "master", &bridge, "up"])?;
            ip(&["-n", &ns, "addr", "add", &format!("{}/24", hosts.address(i)), "dev", "eth0"])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(hosts)
    }

    /// The namespace of node `i`.
    pub fn namespace(&self, i: usize) -> String {
        format!("concord-{}-n{}", self.run, i + 1)
    }

    /// Node `i`'s address.
    pub fn address(&self, i: usize) -> String {
        format!("10.77.{}.{}", self.run, i + 1)
    }

    fn bridge(&self) -> String {
        format!("ccbr{}", self.run)
    }

    fn veth(&self, i: usize) -> String {
        format!("cc{}v{}", self.run, i + 1)
    }

    fn remove_leftovers(&self, nodes: usize) {
        for i in 0..nodes {
            let _ = ip(&["netns", "del", &self.namespace(i)]);
            let _ = ip(&["link", "del", &self.veth(i)]);
        }
        let _ = ip(&["link", "del", &self.bridge()]);
    }
}

impl Drop for NetnsHosts {
    fn drop(&mut self) {
        let bridge = self.bridge();
        if self.forward_rules {
            iptables("-D", &bridge, "-i");
            iptables("-D", &bridge, "-o");
        }
        self.remove_leftovers(self.nodes);
    }
}
