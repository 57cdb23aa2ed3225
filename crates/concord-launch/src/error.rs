//! The launcher's one error type.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The process ended before printing its startup line.
    #[error("{node} exited with {status} before serving; its log ends with:\n{log_tail}")]
    ExitedEarly { node: String, status: ExitStatus, log_tail: String },
    /// No startup line within the deadline (the process has been killed).
    #[error("{node} did not start within {timeout:?}; its log ends with:\n{log_tail}")]
    StartTimeout { node: String, timeout: Duration, log_tail: String },
    /// A node's files do not say what the launcher needs (a restart without a startup line).
    #[error("{}: {why}", path.display())]
    State { path: PathBuf, why: String },
    #[error("invalid layout: {0}")]
    Layout(String),
}

impl Error {
    /// Whether the node failed to start because one of its ports was taken: it logged the
    /// kernel's "address in use" before exiting.
    pub fn is_port_taken(&self) -> bool {
        match self {
            Error::ExitedEarly { log_tail, .. } => log_tail.contains("Address already in use"),
            _ => false,
        }
    }

    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }
}
