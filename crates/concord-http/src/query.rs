//! Query-string parsing that keeps bytes: `prefix` may be any bytes, so values are
//! percent-decoded to `Vec<u8>` rather than forced into UTF-8. `+` decodes to a space, as in
//! HTML forms. Unknown parameters are refused, so a typo (`?W=2`) is an error, not a default.

use std::time::Duration;

use concord_types::Quorum;
use percent_encoding::percent_decode;

use crate::error::ApiError;

/// Most request-level timeout a client may ask for.
const TIMEOUT_MS_MAX: u64 = 60_000;

/// Decoded query parameters.
pub struct Query {
    pairs: Vec<(String, Vec<u8>)>,
}

impl Query {
    /// Parses `query`, accepting only the parameter names in `allowed`.
    pub fn parse(query: Option<&str>, allowed: &[&str]) -> Result<Self, ApiError> {
        let mut pairs = Vec::new();
        for part in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (name, value) = part.split_once('=').unwrap_or((part, ""));
            let name = decode(name);
            let name = String::from_utf8(name)
                .map_err(|_| ApiError::invalid("query parameter names must be UTF-8"))?;
            if !allowed.contains(&name.as_str()) {
                return Err(ApiError::invalid(format!(
                    "unknown query parameter {name:?}; expected one of {allowed:?}"
                )));
            }
            if pairs.iter().any(|(n, _)| *n == name) {
                return Err(ApiError::invalid(format!("query parameter {name:?} given twice")));
            }
            pairs.push((name, decode(value)));
        }
        Ok(Self { pairs })
    }

    pub fn bytes(&self, name: &str) -> Option<&[u8]> {
        self.pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    }

    pub fn text(&self, name: &str) -> Result<Option<&str>, ApiError> {
        self.bytes(name)
            .map(|v| {
                std::str::from_utf8(v).map_err(|_| {
                    ApiError::invalid(format!("query parameter {name:?} is not UTF-8"))
                })
            })
            .transpose()
    }

    pub fn quorum(&self, name: &str) -> Result<Option<Quorum>, ApiError> {
        self.text(name)?
            .map(|v| v.parse::<Quorum>().map_err(|e| ApiError::invalid(format!("{name}: {e}"))))
            .transpose()
    }

    pub fn flag(&self, name: &str) -> Result<Option<bool>, ApiError> {
        self.text(name)?
            .map(|v| match v {
                "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                _ => Err(ApiError::invalid(format!("{name} must be true or false, got {v:?}"))),
            })
            .transpose()
    }

    pub fn timeout(&self) -> Result<Option<Duration>, ApiError> {
        self.number("timeout_ms", 1, TIMEOUT_MS_MAX).map(|v| v.map(Duration::from_millis))
    }

    /// A whole number in `min..=max`.
    pub fn number(&self, name: &str, min: u64, max: u64) -> Result<Option<u64>, ApiError> {
        self.text(name)?
            .map(|v| match v.parse::<u64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(n),
                _ => Err(ApiError::invalid(format!(
                    "{name} must be a whole number from {min} to {max}, got {v:?}"
                ))),
            })
            .transpose()
    }
}

fn decode(s: &str) -> Vec<u8> {
    let spaced = s.replace('+', " ");
    percent_decode(spaced.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_decode_to_bytes() {
        let q = Query::parse(Some("prefix=a%FF%2Fb+c&limit=10"), &["prefix", "limit"]).unwrap();
        assert_eq!(q.bytes("prefix"), Some(&b"a\xff/b c"[..]));
        assert_eq!(q.number("limit", 1, 1000).unwrap(), Some(10));
        assert!(q.text("prefix").is_err());
    }

    #[test]
    fn bad_parameters_are_refused() {
        assert!(Query::parse(Some("W=2"), &["w"]).is_err());
        assert!(Query::parse(Some("w=1&w=2"), &["w"]).is_err());
        let q =
            Query::parse(Some("w=zero&timeout_ms=0&strict=maybe"), &["w", "timeout_ms", "strict"])
                .unwrap();
        assert!(q.quorum("w").is_err());
        assert!(q.timeout().is_err());
        assert!(q.flag("strict").is_err());
        let q = Query::parse(Some("timeout_ms=60001"), &["timeout_ms"]).unwrap();
        assert!(q.timeout().is_err());
    }
}
