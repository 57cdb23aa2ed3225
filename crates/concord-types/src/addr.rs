//! A node's network address as members announce it: `host:port`, checked once.
//!
//! Addresses arrive from peers (a `Join`, a forwarded `AddNode`, Raft entries and snapshots),
//! are stored in the metadata, dialed by every member and shown to operators. [`Addr`] is the
//! only way to hold one: it is parsed when made and when decoded, so no code below the edge
//! sees an address it could not dial or print safely.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// `host:port`: a port number, and a host (a name, an IPv4 address or a bracketed IPv6
/// address) of printable ASCII without spaces or URL punctuation, up to
/// [`Addr::BYTES_MAX`] bytes in all.
///
/// Decoding validates it like [`Addr::parse`] (`try_from = "String"`); it encodes as the plain
/// string, so records written before the type existed decode unchanged.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String")]
pub struct Addr(String);

impl Addr {
    /// Longest address, in bytes: a DNS name is at most 253, then `:` and five digits.
    pub const BYTES_MAX: usize = 261;

    /// Parses an address; the error quotes a bounded part of it and says what is wrong.
    pub fn parse(text: impl Into<String>) -> Result<Addr, ValidationError> {
        Addr::parse_field("address", text)
    }

    /// As [`Addr::parse`], naming `field` in the error (`peer_addr "h" is not host:port`).
    pub fn parse_field(
        field: &'static str,
        text: impl Into<String>,
    ) -> Result<Addr, ValidationError> {
        let text = text.into();
        match problem(&text) {
            None => Ok(Addr(text)),
            Some(why) => {
                Err(ValidationError::Addr { field, addr: crate::error::shown(&text), why })
            }
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What is wrong with `text` as an address, if anything.
fn problem(text: &str) -> Option<String> {
    if text.len() > Addr::BYTES_MAX {
        return Some(format!("is longer than {} bytes ({})", Addr::BYTES_MAX, text.len()));
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Some("is not host:port".into());
    };
    if port.parse::<u16>().is_err() {
        return Some("has no valid port number".into());
    }
    let printable = |b: u8| b.is_ascii_graphic() && !b"/@?#\\\"".contains(&b);
    if host.is_empty() || !host.bytes().all(printable) {
        return Some("has no valid host".into());
    }
    None
}

impl TryFrom<String> for Addr {
    type Error = ValidationError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Addr::parse(text)
    }
}

impl std::str::FromStr for Addr {
    type Err = ValidationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Addr::parse(text)
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for Addr {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Addr {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_host_and_port() {
        for good in ["127.0.0.1:7070", "[::1]:7070", "node-3.example.com:1", "h:0"] {
            assert_eq!(Addr::parse(good).map(|a| a.to_string()), Ok(good.to_string()));
        }
        for bad in ["", "h", ":7070", "h:", "h:port", "a b:1", "h/x:1", "u@h:1", "h:70700"] {
            assert!(Addr::parse(bad).is_err(), "{bad}");
        }
        let error = Addr::parse_field("peer_addr", "h:99999").unwrap_err();
        assert_eq!(error.to_string(), "peer_addr \"h:99999\" has no valid port number");
        let error = Addr::parse(format!("{}:1", "x".repeat(100_000))).unwrap_err().to_string();
        assert!(error.contains("is longer than 261 bytes (100002)"), "{error}");
        assert!(error.len() < 200, "the error quotes a bounded part: {error}");
    }

    /// An address decoded from a peer or the disk is checked like one parsed from text, and
    /// encodes as the plain string did before the type existed.
    #[test]
    fn addresses_are_validated_when_decoded() {
        let encoded = |text: &str| postcard::to_allocvec(text).unwrap();
        let decode = |text: &str| postcard::from_bytes::<Addr>(&encoded(text));
        assert_eq!(decode("10.0.0.4:7070").unwrap(), Addr::parse("10.0.0.4:7070").unwrap());
        for bad in ["10.0.0.4", "a b:1", &"a".repeat(300)] {
            assert!(decode(bad).is_err(), "{bad}");
        }
        let addr = Addr::parse("node-7:7070").unwrap();
        assert_eq!(postcard::to_allocvec(&addr).unwrap(), encoded("node-7:7070"));
    }
}
