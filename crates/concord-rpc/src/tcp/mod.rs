//! The TCP implementation: [`TcpTransport`] dials, [`RpcServer`] listens.

mod backoff;
mod client;
mod conn;
mod io;
mod refusals;
mod server;

pub use client::TcpTransport;
pub use server::RpcServer;
