//! Preferred ports ([`crate::Ports::Preferred`]): a node takes its numbered ports when they are
//! free and ports the OS picks when they are not, and the launcher says which.
//!
//! "Free" is judged by binding a listener on the address and closing it at once, as the
//! server will bind it (both set `SO_REUSEADDR`, so a port left in `TIME_WAIT` counts as
//! free). Another program can still take the port between the check and the server's bind:
//! [`crate::Error::is_port_taken`] recognises that start failure, so the launcher can fall back
//! then too.

use std::net::TcpListener;

use crate::ServerOptions;
use crate::options::FREE_PORT;

/// Whether a listener can be bound on `addr` (`host:port`) now.
pub fn is_free(addr: &str) -> bool {
    TcpListener::bind(addr).is_ok()
}

/// `options` unchanged when both its listen addresses are free now; otherwise the same node
/// on ports the OS picks, and the first address that was taken.
pub fn keep_if_free(options: ServerOptions) -> (ServerOptions, Option<String>) {
    keep_if(options, is_free)
}

/// [`keep_if_free`] with the judge of "free" given: the decision alone, which a test can drive
/// without racing other processes for ports.
fn keep_if(options: ServerOptions, free: impl Fn(&str) -> bool) -> (ServerOptions, Option<String>) {
    let taken =
        [&options.http_addr, &options.peer_addr].into_iter().find(|addr| !free(addr)).cloned();
    match taken {
        Some(addr) => (on_free_ports(options), Some(addr)),
        None => (options, None),
    }
}

/// The same node on ports the OS picks.
pub fn on_free_ports(options: ServerOptions) -> ServerOptions {
    options.addrs(FREE_PORT, FREE_PORT)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A port this test listens on is taken, and the node moves to free ports naming it.
    /// (Whether a released port is free is not asserted: any process on the machine may take
    /// it in between, which made an earlier form of this test flaky.)
    #[test]
    fn a_taken_preferred_port_falls_back_to_free_ports_and_is_named() {
        let held = TcpListener::bind(FREE_PORT).unwrap();
        let held_addr = held.local_addr().unwrap().to_string();
        assert!(!is_free(&held_addr));

        let options = ServerOptions::new("/tmp/n1").addrs("127.0.0.1:7700", &held_addr);
        let (moved, taken) = keep_if_free(options);
        assert_eq!(taken.as_deref(), Some(held_addr.as_str()));
        assert_eq!((moved.http_addr.as_str(), moved.peer_addr.as_str()), (FREE_PORT, FREE_PORT));
    }

    /// The decision: the first taken address is named and both ports move; when both are
    /// free the options are kept as they are.
    #[test]
    fn the_first_taken_address_is_named_and_free_ones_are_kept() {
        let options = || ServerOptions::new("/tmp/n1").addrs("127.0.0.1:7700", "127.0.0.1:7701");

        let (kept, taken) = keep_if(options(), |_| true);
        assert_eq!(taken, None);
        assert_eq!(
            (kept.http_addr.as_str(), kept.peer_addr.as_str()),
            ("127.0.0.1:7700", "127.0.0.1:7701")
        );

        let (moved, taken) = keep_if(options(), |addr| addr != "127.0.0.1:7701");
        assert_eq!(taken.as_deref(), Some("127.0.0.1:7701"));
        assert_eq!((moved.http_addr.as_str(), moved.peer_addr.as_str()), (FREE_PORT, FREE_PORT));

        let (_, taken) = keep_if(options(), |_| false);
        assert_eq!(taken.as_deref(), Some("127.0.0.1:7700"), "the first taken one is named");
    }
}
