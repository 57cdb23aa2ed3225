//! `concord kv get|put|delete|list`: read, write, delete and list keys.
//!
//! Keys and values are bytes end to end: command-line arguments are taken as the raw bytes the
//! shell passed, values can come from a file or stdin, and `kv get` writes the value to stdout
//! untouched, with its metadata on stderr (on a terminal a newline follows a value that lacks
//! one, so the prompt does not glue onto it; a pipe or a file gets the exact bytes). A value
//! given as UTF-8 text on the command line is stored as `text/plain; charset=utf-8` unless
//! `--content-type` says otherwise.
//!
//! Every query parameter of the API has its flag: `--r` on reads, `--w` and `--strict` on
//! writes and deletes, `--timeout` on all three.

use std::ffi::OsString;
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use concord_client::{Client, GetOptions, GetResult, ListPage, Quorum, SiblingValue, WriteOptions};

use super::ClientArgs;
use super::output::{self, OutputFormat, display_bytes, display_value, note, print_json};

/// Flags of `concord kv`.
#[derive(Debug, Args)]
pub struct KvArgs {
    #[command(flatten)]
    client: ClientArgs,

    #[command(subcommand)]
    command: KvCommand,
}

#[derive(Debug, Subcommand)]
enum KvCommand {
    /// Read a key: the raw value on stdout, its context on stderr; siblings are listed.
    Get(GetArgs),
    /// Write a value from the argument, --file, or stdin.
    Put(PutArgs),
    /// Delete a key (writes a tombstone). Deleting an absent key succeeds.
    Delete(DeleteArgs),
    /// List keys in byte order, one page or --all.
    List(ListArgs),
}

/// Content type of a value given as UTF-8 text on the command line.
const TEXT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

#[derive(Debug, Args)]
struct GetArgs {
    /// Namespace.
    ns: String,
    /// Key (any bytes the shell can pass).
    key: OsString,
    /// Print the JSON envelope (same as --output json).
    #[arg(long, conflicts_with = "print_context")]
    json: bool,
    /// Print only the context token on stdout, for a script's next write:
    /// TOKEN=$(concord kv get NS KEY --print-context).
    #[arg(long)]
    print_context: bool,
    /// Read quorum: one, quorum, all or a count [default: the namespace's].
    #[arg(long, value_name = "R")]
    r: Option<Quorum>,
    /// Server-side deadline, e.g. 500ms or 2s, up to 60s [default: the server's].
    #[arg(long, value_name = "TIME", value_parser = parse_timeout)]
    timeout: Option<u32>,
}

/// `--w`, `--strict` and `--timeout`, shared by the writing commands.
#[derive(Debug, Args)]
struct WriteFlags {
    /// Write quorum: one, quorum, all or a count [default: the namespace's].
    #[arg(long, value_name = "W")]
    w: Option<Quorum>,
    /// Count only the key's own replicas toward W, no hinted fallbacks (`--strict=false`
    /// allows them in a strict namespace) [default: the namespace's].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true")]
    strict: Option<bool>,
    /// Server-side deadline, e.g. 500ms or 2s, up to 60s [default: the server's].
    #[arg(long, value_name = "TIME", value_parser = parse_timeout)]
    timeout: Option<u32>,
}

impl WriteFlags {
    fn options(&self) -> WriteOptions {
        WriteOptions { w: self.w, strict: self.strict, timeout_ms: self.timeout }
    }
}

/// A `--timeout` in milliseconds, within the API's 1..=60000.
fn parse_timeout(text: &str) -> Result<u32, String> {
    let duration = crate::bench::parse_duration(text)?;
    match u32::try_from(duration.as_millis()) {
        Ok(ms @ 1..=60_000) => Ok(ms),
        _ => Err(format!("timeout {text:?} must be from 1ms to 60s")),
    }
}

/// `--context`, shared by the writing commands.
#[derive(Debug, Args)]
struct ContextArg {
    /// Context token from the last read, so this write replaces what was read. Without it a put
    /// is blind and adds a sibling in `siblings` namespaces, and a delete removes every version
    /// the server holds.
    #[arg(long, value_name = "TOKEN")]
    context: Option<String>,
}

#[derive(Debug, Args)]
struct PutArgs {
    /// Namespace.
    ns: String,
    /// Key (any bytes the shell can pass).
    key: OsString,
    /// The value. Without it (and without --file) the value is read from stdin.
    #[arg(conflicts_with = "file")]
    value: Option<OsString>,
    /// Read the value from this file; `-` means stdin.
    #[arg(long, value_name = "PATH")]
    file: Option<PathBuf>,
    /// Content type stored with the value [default: text/plain; charset=utf-8 for UTF-8 text
    /// given as an argument, else application/octet-stream].
    #[arg(long, value_name = "T")]
    content_type: Option<String>,
    #[command(flatten)]
    context: ContextArg,
    #[command(flatten)]
    write: WriteFlags,
}

#[derive(Debug, Args)]
struct DeleteArgs {
    /// Namespace.
    ns: String,
    /// Key (any bytes the shell can pass).
    key: OsString,
    #[command(flatten)]
    context: ContextArg,
    #[command(flatten)]
    write: WriteFlags,
}

#[derive(Debug, Args)]
struct ListArgs {
    /// Namespace.
    ns: String,
    /// Only keys starting with these bytes.
    #[arg(long, value_name = "P")]
    prefix: Option<OsString>,
    /// Start after this token (the `next` of the previous page).
    #[arg(long, value_name = "TOKEN")]
    after: Option<String>,
    /// Keys per page, 1..=1000 [server default: 100].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    limit: Option<u32>,
    /// Follow `next` until the last page.
    #[arg(long)]
    all: bool,
}

/// Runs `concord kv ...`.
pub fn run(args: KvArgs) -> anyhow::Result<()> {
    let client = args.client.connect()?;
    let output = args.client.output;
    super::block_on(async move {
        match args.command {
            KvCommand::Get(get_args) => get(&client, get_args, output).await,
            KvCommand::Put(put_args) => put(&client, put_args, output).await,
            KvCommand::Delete(delete_args) => delete(&client, delete_args, output).await,
            KvCommand::List(list_args) => list(&client, list_args, output).await,
        }
    })
}

async fn get(client: &Client, args: GetArgs, output: OutputFormat) -> anyhow::Result<()> {
    let key = args.key.into_encoded_bytes();
    let not_found =
        || anyhow::anyhow!("not found: key {} in namespace {}", display_bytes(&key), args.ns);
    let options = GetOptions { r: args.r, timeout_ms: args.timeout };
    if args.print_context {
        return print_context(client.get(&args.ns, &key, options).await?.context());
    }
    if args.json || output == OutputFormat::Json {
        let envelope = client.get_envelope(&args.ns, &key, options).await?;
        return print_json(&envelope.ok_or_else(not_found)?);
    }
    match client.get(&args.ns, &key, options).await? {
        GetResult::NotFound { context } => {
            if let Some(context) = context {
                note(format_args!("context: {context}"));
            }
            Err(not_found())
        }
        GetResult::Value { value, content_type, context } => {
            let mut out = io::stdout().lock();
            out.write_all(&value)?;
            if out.is_terminal() && !value.ends_with(b"\n") {
                out.write_all(b"\n")?;
            }
            out.flush()?;
            note(format_args!("content-type: {content_type}"));
            note(format_args!("context: {context}"));
            Ok(())
        }
        GetResult::Siblings { siblings, context } => {
            print_siblings(&siblings)?;
            note(format_args!(
                "warning: {} concurrent siblings; write with --context {context} to resolve them",
                siblings.len()
            ));
            note(format_args!("context: {context}"));
            Ok(())
        }
    }
}

/// The context alone on stdout; a key never written has none, which is no error: a write
/// without a context is right for it.
fn print_context(context: Option<&str>) -> anyhow::Result<()> {
    match context {
        Some(context) => Ok(output::print_line(context)?),
        None => {
            note("no context: the key was never written (write it without --context)");
            Ok(())
        }
    }
}

/// `N siblings:`, then each one numbered with its type and size, and its value (base64 when it
/// is not UTF-8) on the following lines.
fn print_siblings(siblings: &[SiblingValue]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "{} siblings:", siblings.len())?;
    for (index, sibling) in siblings.iter().enumerate() {
        let (value, encoding) = display_value(&sibling.value);
        let timestamp = match sibling.timestamp_ms {
            Some(timestamp_ms) => format!(", timestamp_ms {timestamp_ms}"),
            None => String::new(),
        };
        writeln!(
            out,
            "[{}] {}, {} bytes, {encoding}{timestamp}:",
            index + 1,
            sibling.content_type,
            sibling.value.len()
        )?;
        writeln!(out, "{}", value.strip_suffix('\n').unwrap_or(&value))?;
    }
    Ok(())
}

async fn put(client: &Client, args: PutArgs, output: OutputFormat) -> anyhow::Result<()> {
    let key = args.key.into_encoded_bytes();
    let typed = args.value.is_some();
    let value = read_value(args.value, args.file.as_deref())?;
    let content_type = content_type(args.content_type.as_deref(), typed, &value);
    let context = args.context.context.as_deref();
    let opts = args.write.options();
    let result = client.put(&args.ns, &key, value, content_type, context, opts).await?;
    match output {
        OutputFormat::Json => print_json(&result),
        OutputFormat::Table => Ok(output::print_fields(&[
            ("context", result.context),
            ("replicas", result.replicas.to_string()),
        ])?),
    }
}

/// The content type to store: the one asked for; text typed as an argument is text; anything
/// else is left to the client's default (`application/octet-stream`).
fn content_type<'a>(asked: Option<&'a str>, typed: bool, value: &[u8]) -> Option<&'a str> {
    match asked {
        Some(asked) => Some(asked),
        None if typed && std::str::from_utf8(value).is_ok() => Some(TEXT_CONTENT_TYPE),
        None => None,
    }
}

/// The value to write: the argument's bytes, the file, or stdin (`--file -` or nothing given).
fn read_value(value: Option<OsString>, file: Option<&Path>) -> anyhow::Result<Vec<u8>> {
    match (value, file) {
        (Some(value), _) => Ok(value.into_encoded_bytes()),
        (None, Some(path)) if path != Path::new("-") => {
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
        }
        (None, _) => {
            let mut stdin = io::stdin().lock();
            if stdin.is_terminal() {
                note("reading the value from stdin (end it with Ctrl-D)");
            }
            let mut value = Vec::new();
            stdin.read_to_end(&mut value).context("cannot read the value from stdin")?;
            Ok(value)
        }
    }
}

async fn delete(client: &Client, args: DeleteArgs, output: OutputFormat) -> anyhow::Result<()> {
    let key = args.key.into_encoded_bytes();
    let context = args.context.context.as_deref();
    let result = client.delete(&args.ns, &key, context, args.write.options()).await?;
    match output {
        OutputFormat::Json => print_json(&result),
        OutputFormat::Table => Ok(output::print_fields(&[
            ("deleted", display_bytes(&key).into_owned()),
            ("context", result.context),
            ("replicas", result.replicas.to_string()),
        ])?),
    }
}

async fn list(client: &Client, args: ListArgs, output: OutputFormat) -> anyhow::Result<()> {
    let prefix = args.prefix.map(OsString::into_encoded_bytes);
    let mut after = args.after;
    let mut all_keys = Vec::new();
    loop {
        let page = client.list(&args.ns, prefix.as_deref(), after.as_deref(), args.limit).await?;
        let next = page.next.clone();
        match output {
            // One JSON document: pages are gathered when following them.
            OutputFormat::Json if args.all => all_keys.extend(page.keys),
            OutputFormat::Json => return print_json(&page),
            OutputFormat::Table => print_keys(&page.keys)?,
        }
        match next {
            Some(token) if args.all => after = Some(token),
            Some(token) => {
                note(format_args!("more keys: continue with --after {token}"));
                return Ok(());
            }
            None => break,
        }
    }
    if output == OutputFormat::Json {
        print_json(&ListPage { keys: all_keys, next: None })?;
    }
    Ok(())
}

fn print_keys(keys: &[Vec<u8>]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    for key in keys {
        writeln!(out, "{}", display_bytes(key))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The argument wins; a file is read; nothing given would read stdin.
    #[test]
    fn value_comes_from_argument_or_file() {
        let value = read_value(Some(OsString::from("v")), None).unwrap();
        assert_eq!(value, b"v");
        let dir = std::env::temp_dir().join(format!("concord-kv-test-{}", std::process::id()));
        std::fs::write(&dir, [0u8, 0xff, b'\n']).unwrap();
        let value = read_value(None, Some(&dir)).unwrap();
        std::fs::remove_file(&dir).unwrap();
        assert_eq!(value, [0u8, 0xff, b'\n']);
        assert!(read_value(None, Some(Path::new("/nonexistent/concord"))).is_err());
    }

    /// Text typed on the command line is stored as text; bytes that are not UTF-8, files and
    /// stdin keep the client's default; `--content-type` always wins.
    #[test]
    fn typed_text_is_stored_as_text_plain() {
        assert_eq!(content_type(None, true, b"hello"), Some(TEXT_CONTENT_TYPE));
        assert_eq!(content_type(None, true, &[0xff]), None);
        assert_eq!(content_type(None, false, b"hello"), None);
        assert_eq!(content_type(Some("image/jpeg"), true, b"hi"), Some("image/jpeg"));
    }

    /// `--timeout` takes a duration within the API's bounds.
    #[test]
    fn timeouts_are_durations_up_to_a_minute() {
        assert_eq!(parse_timeout("500ms"), Ok(500));
        assert_eq!(parse_timeout("2s"), Ok(2000));
        assert_eq!(parse_timeout("60s"), Ok(60_000));
        assert!(parse_timeout("61s").is_err());
        assert!(parse_timeout("0.1ms").is_err());
    }

    /// Non-UTF-8 command-line bytes reach the client unchanged.
    #[cfg(unix)]
    #[test]
    fn binary_arguments_keep_their_bytes() {
        use std::os::unix::ffi::OsStringExt;
        let value = read_value(Some(OsString::from_vec(vec![0xff, 0x00])), None).unwrap();
        assert_eq!(value, [0xff, 0x00]);
    }
}
