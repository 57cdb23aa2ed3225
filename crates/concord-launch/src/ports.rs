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
    let taken =
        [&options.http_addr, &options.peer_addr].into_iter().find(|addr| !is_free(addr)).cloned();
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

    /// A port this test listens on is taken, and the node moves to free ports naming it; a
    /// port no one listens on is kept.
    #[test]
    fn a_taken_preferred_port_falls_back_to_free_ports_and_is_named() {
        let held = TcpListener::bind(FREE_PORT).unwrap();
        let held_addr = held.local_addr().unwrap().to_string();
        let released = TcpListener::bind(FREE_PORT).unwrap();
        let released_addr = released.local_addr().unwrap().to_string();
        drop(released);
        assert!(!is_free(&held_addr));

        let options = ServerOptions::new("/tmp/n1").addrs(&released_addr, &held_addr);
        let (moved, taken) = keep_if_free(options);
        assert_eq!(taken.as_deref(), Some(held_addr.as_str()));
        assert_eq!((moved.http_addr.as_str(), moved.peer_addr.as_str()), (FREE_PORT, FREE_PORT));

        drop(held);
        let options = ServerOptions::new("/tmp/n1").addrs(&released_addr, &held_addr);
        let (kept, taken) = keep_if_free(options);
        assert_eq!(taken, None, "both ports are free once released");
        assert_eq!(kept.peer_addr, held_addr);
    }
}
