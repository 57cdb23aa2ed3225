//! `concord kv get|put|delete|list`: read, write, delete and list keys.
//!
//! Keys and values are bytes end to end: command-line arguments are taken as the raw bytes the
//! shell passed, values can come from a file or stdin, and `kv get` writes the value to stdout
//! untouched (no newline added), with its metadata on stderr.

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

#[derive(Debug, Args)]
struct GetArgs {
    /// Namespace.
    ns: String,
    /// Key (any bytes the shell can pass).
    key: OsString,
    /// Print the JSON envelope (same as --output json).
    #[arg(long)]
    json: bool,
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
    /// Content type stored with the value [server default: application/octet-stream].
    #[arg(long, value_name = "T")]
    content_type: Option<String>,
    #[command(flatten)]
    context: ContextArg,
    /// Write quorum: one, quorum, all or a count [default: the namespace's].
    #[arg(long, value_name = "W")]
    w: Option<Quorum>,
}

#[derive(Debug, Args)]
struct DeleteArgs {
    /// Namespace.
    ns: String,
    /// Key (any bytes the shell can pass).
    key: OsString,
    #[command(flatten)]
    context: ContextArg,
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
    if args.json || output == OutputFormat::Json {
        let envelope = client.get_envelope(&args.ns, &key, GetOptions::default()).await?;
        return print_json(&envelope.ok_or_else(not_found)?);
    }
    match client.get(&args.ns, &key, GetOptions::default()).await? {
        GetResult::NotFound { context } => {
            if let Some(context) = context {
                note(format_args!("context: {context}"));
            }
            Err(not_found())
        }
        GetResult::Value { value, content_type, context } => {
            let mut out = io::stdout().lock();
            out.write_all(&value)?;
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
    let value = read_value(args.value, args.file.as_deref())?;
    let opts = WriteOptions { w: args.w, ..WriteOptions::default() };
    let content_type = args.content_type.as_deref();
    let context = args.context.context.as_deref();
    let result = client.put(&args.ns, &key, value, content_type, context, opts).await?;
    match output {
        OutputFormat::Json => print_json(&result),
        OutputFormat::Table => Ok(output::print_fields(&[
            ("context", result.context),
            ("replicas", result.replicas.to_string()),
        ])?),
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
    let result = client.delete(&args.ns, &key, context, WriteOptions::default()).await?;
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

    /// Non-UTF-8 command-line bytes reach the client unchanged.
    #[cfg(unix)]
    #[test]
    fn binary_arguments_keep_their_bytes() {
        use std::os::unix::ffi::OsStringExt;
        let value = read_value(Some(OsString::from_vec(vec![0xff, 0x00])), None).unwrap();
        assert_eq!(value, [0xff, 0x00]);
    }
}
