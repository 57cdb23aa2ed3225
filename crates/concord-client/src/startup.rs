//! The line `concord server` prints once it serves, and which tools that launch it (the demo,
//! the test kit, scripts) read to learn its ports:
//! `concord node <ID> listening on http://<HTTP_ADDR> peer <PEER_ADDR> (data dir <DIR>)`.
//! Written and parsed here only, so the two sides cannot drift apart.

/// The parts of the startup line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    pub node_id: String,
    /// `http://HOST:PORT` of the HTTP API.
    pub endpoint: String,
    /// `HOST:PORT` of the peer listener.
    pub peer_addr: String,
}

impl Announcement {
    /// The startup line of a node serving HTTP on `http_addr` (`HOST:PORT`).
    pub fn line(node_id: &str, http_addr: &str, peer_addr: &str, data_dir: &str) -> String {
        format!(
            "concord node {node_id} listening on http://{http_addr} peer {peer_addr} (data dir {data_dir})"
        )
    }

    /// Parses a startup line; `None` for any other line.
    pub fn parse(line: &str) -> Option<Announcement> {
        let rest = line.strip_prefix("concord node ")?;
        let (node_id, rest) = rest.split_once(" listening on ")?;
        let mut words = rest.split_whitespace();
        let endpoint = words.next()?.to_owned();
        let peer_addr = match (words.next(), words.next()) {
            (Some("peer"), Some(addr)) => addr.to_owned(),
            _ => return None,
        };
        Some(Announcement { node_id: node_id.to_owned(), endpoint, peer_addr })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The startup line yields the id, the endpoint and the peer address.
    #[test]
    fn startup_line_is_parsed() {
        let line = "concord node n2 listening on http://127.0.0.1:4100 peer 127.0.0.1:4101 \
                    (data dir /tmp/x/n2)";
        let announcement = Announcement::parse(line).unwrap();
        assert_eq!(announcement.node_id, "n2");
        assert_eq!(announcement.endpoint, "http://127.0.0.1:4100");
        assert_eq!(announcement.peer_addr, "127.0.0.1:4101");
        assert!(Announcement::parse("concord node n2 stopped cleanly").is_none());
        let written = Announcement::line("n2", "127.0.0.1:4100", "127.0.0.1:4101", "/tmp/x/n2");
        assert_eq!(written, line.split_whitespace().collect::<Vec<_>>().join(" "));
    }
}
