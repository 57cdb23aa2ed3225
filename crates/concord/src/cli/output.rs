//! Printing for the client commands: the `--output` format, aligned tables, key/value field
//! lists, JSON, and a readable rendering of arbitrary bytes.
//!
//! Everything goes through `io::Write` with errors propagated, never `println!`: a closed pipe
//! (`concord kv list NS --all | head`) must end the command quietly, not panic.

use std::borrow::Cow;
use std::fmt::Display;
use std::io::{self, Write};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use clap::ValueEnum;
use serde::Serialize;

/// How a command prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned text for people.
    Table,
    /// One JSON document on stdout, for scripts.
    Json,
}

/// Prints `value` as pretty JSON and a newline on stdout.
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    // Serialized first, so a write failure surfaces as an `io::Error` (a closed pipe is then
    // recognised by `main`) rather than wrapped in a serde error.
    let mut text = serde_json::to_vec_pretty(value)?;
    text.push(b'\n');
    io::stdout().lock().write_all(&text)?;
    Ok(())
}

/// Prints a message on stderr. A failing stderr is ignored: there is nowhere left to report it.
pub fn note(message: impl Display) {
    let _ = writeln!(io::stderr(), "{message}");
}

/// Prints one line on stdout.
pub fn print_line(line: &str) -> io::Result<()> {
    writeln!(io::stdout().lock(), "{line}")
}

/// Prints `name  value` lines with the values aligned.
pub fn print_fields(fields: &[(&str, String)]) -> io::Result<()> {
    let width = fields.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    let mut out = io::stdout().lock();
    for (name, value) in fields {
        writeln!(out, "{name:<width$}  {value}")?;
    }
    Ok(())
}

/// A table printed with aligned columns: text columns to the left, numeric ones to the right.
#[derive(Debug)]
pub struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
    numeric: Vec<bool>,
}

impl Table {
    /// An empty table with these column titles.
    pub fn new(header: &[&'static str]) -> Self {
        Table { header: header.to_vec(), rows: Vec::new(), numeric: vec![false; header.len()] }
    }

    /// Aligns the columns at `columns` (0-based) to the right.
    pub fn numeric(mut self, columns: &[usize]) -> Self {
        for &column in columns {
            self.numeric[column] = true;
        }
        self
    }

    /// Adds a row; it must have one cell per column.
    pub fn row(&mut self, cells: Vec<String>) {
        assert_eq!(cells.len(), self.header.len(), "a table row needs one cell per column");
        self.rows.push(cells);
    }

    /// Prints the table on stdout.
    pub fn print(&self) -> io::Result<()> {
        let mut out = io::stdout().lock();
        self.write(&mut out)
    }

    fn write(&self, out: &mut impl Write) -> io::Result<()> {
        let mut widths: Vec<usize> = self.header.iter().map(|title| title.len()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let header: Vec<String> = self.header.iter().map(|title| (*title).to_owned()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (column, cell) in row.iter().enumerate() {
                let width = widths[column];
                if column > 0 {
                    line.push_str("  ");
                }
                if self.numeric[column] {
                    line.push_str(&format!("{cell:>width$}"));
                } else {
                    line.push_str(&format!("{cell:<width$}"));
                }
            }
            writeln!(out, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

/// Bytes for a terminal: the text itself when it is UTF-8 without control characters, else
/// `b"..."` with escapes (`b"\xff\x00"`), which cannot be mistaken for plain text.
pub fn display_bytes(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) if !text.chars().any(char::is_control) => Cow::Borrowed(text),
        _ => Cow::Owned(format!("b\"{}\"", bytes.escape_ascii())),
    }
}

/// A value for a terminal: UTF-8 text as is, anything else as base64, and which of the two it is.
pub fn display_value(bytes: &[u8]) -> (Cow<'_, str>, &'static str) {
    match std::str::from_utf8(bytes) {
        Ok(text) => (Cow::Borrowed(text), "text"),
        Err(_) => (Cow::Owned(STANDARD.encode(bytes)), "base64"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Numeric columns align right, text columns left, and trailing spaces are trimmed.
    #[test]
    fn table_aligns_columns() {
        let mut table = Table::new(&["NAME", "OPS"]).numeric(&[1]);
        table.row(vec!["get".into(), "5".into()]);
        table.row(vec!["put-long".into(), "12345".into()]);
        let mut out = Vec::new();
        table.write(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text, "NAME        OPS\nget           5\nput-long  12345\n");
    }

    /// Printable text is shown as is; binary and control bytes are escaped visibly.
    #[test]
    fn bytes_display_escapes_only_when_needed() {
        assert_eq!(display_bytes(b"user/42"), "user/42");
        assert_eq!(display_bytes("é".as_bytes()), "é");
        assert_eq!(display_bytes(&[0xff, b'a']), r#"b"\xffa""#);
        assert_eq!(display_bytes(b"a\nb"), r#"b"a\nb""#);
        assert_eq!(display_value(&[0x00, 0xff]), (Cow::Borrowed("AP8="), "base64"));
        assert_eq!(display_value(b"hi"), (Cow::Borrowed("hi"), "text"));
    }
}
