//! Issue 20 items 11 and 13, through the real binary: the CLI passes every query parameter of
//! the API (`--r`, `--w`, `--strict`, `--timeout`; a quorum above a one-node cluster's N is the
//! server's 400, which proves the flag reached it), stores typed text as text, hands a script
//! the context, and documents its environment; the server's log carries no colour codes and no
//! dependency chatter when it is a file, and a misspelt `CONCORD_*` variable stops it at once.

mod common;

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Output, Stdio};

use common::Node;

fn concord() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_concord"));
    command.env_remove("CONCORD_ENDPOINT").env_remove("NO_COLOR");
    command
}

/// Runs `concord ARGS --endpoint E` with stdout piped, as a script would.
fn run(node: &Node, args: &[&str]) -> Output {
    let out = concord()
        .args(args)
        .args(["--endpoint", &node.server.endpoint])
        .output()
        .expect("running concord");
    println!(
        "concord {}: {}\nstdout: {}\nstderr: {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn assert_refused_as_invalid(out: &Output) {
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invalid_argument, HTTP 400"), "{stderr}");
}

#[tokio::test]
async fn kv_flags_reach_the_api_and_typed_text_is_text() {
    let node = Node::start(&[]);

    println!("put typed text: stored as text/plain");
    assert!(run(&node, &["kv", "put", "default", "greeting", "hello"]).status.success());
    let response = node.get("/v1/kv/default/greeting").await;
    assert_eq!(response.headers()["content-type"], "text/plain; charset=utf-8");

    println!("get into a pipe: the exact bytes, no newline added");
    let out = run(&node, &["kv", "get", "default", "greeting", "--r", "one", "--timeout", "2s"]);
    assert!(out.status.success());
    assert_eq!(out.stdout, b"hello");

    println!("a quorum above N=1 is the server's 400: the flags are sent");
    assert_refused_as_invalid(&run(&node, &["kv", "get", "default", "greeting", "--r", "2"]));
    assert_refused_as_invalid(&run(&node, &["kv", "put", "default", "k", "v", "--w", "2"]));
    assert_refused_as_invalid(&run(
        &node,
        &["kv", "delete", "default", "k", "--w", "2", "--strict"],
    ));
    let out =
        run(&node, &["kv", "put", "default", "k", "v", "--w", "1", "--strict", "--timeout", "1s"]);
    assert!(out.status.success());
    let out = run(&node, &["kv", "delete", "default", "k", "--strict=false", "--timeout", "500ms"]);
    assert!(out.status.success());
    let out = run(&node, &["kv", "get", "default", "greeting", "--timeout", "61s"]);
    assert!(!out.status.success(), "a timeout past the API's 60 s is refused by the CLI");

    println!("--print-context gives a token the next write accepts: no sibling");
    let out = run(&node, &["kv", "get", "default", "greeting", "--print-context"]);
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(!token.is_empty());
    let out = run(&node, &["kv", "put", "default", "greeting", "hello again", "--context", &token]);
    assert!(out.status.success());
    let out = run(&node, &["kv", "get", "default", "greeting"]);
    assert_eq!(out.stdout, b"hello again", "the write replaced what was read");
}

/// `--help` does not show an unset variable as set to nothing, and `server --help` lists the
/// variables.
#[test]
fn help_names_the_environment_without_empty_values() {
    let out = concord().args(["kv", "get", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("[env: CONCORD_ENDPOINT]"), "{help}");
    assert!(!help.contains("CONCORD_ENDPOINT="), "{help}");
    let out = concord().args(["server", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for name in ["CONCORD_CONFIG", "CONCORD_LOG", "CONCORD_STORAGE_DURABILITY", "CONCORD_HTTP_ADDR"]
    {
        assert!(help.contains(name), "{name} missing from server --help:\n{help}");
    }
}

/// A misspelt variable stops the server before it does anything, naming the right one.
#[test]
fn a_misspelt_variable_stops_the_server_naming_the_nearest() {
    let dir = tempfile::tempdir().unwrap();
    let out = concord()
        .args(["server", "--data-dir"])
        .arg(dir.path().join("d"))
        .args(["--http-addr", "127.0.0.1:0", "--peer-addr", "127.0.0.1:0"])
        .env("CONCORD_STORAGE_DURABLITY", "buffered")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "unknown environment variable CONCORD_STORAGE_DURABLITY (did you mean \
             CONCORD_STORAGE_DURABILITY?)"
        ),
        "{stderr}"
    );
    assert!(!dir.path().join("d").exists(), "nothing was created");
}

/// With stderr in a pipe and `NO_COLOR` unset, the log has no colour codes, and start-up
/// logs Concord's own lines, not its dependencies' info lines.
#[test]
fn a_piped_log_has_no_colours_and_no_dependency_info() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = concord()
        .args(["server", "--data-dir"])
        .arg(dir.path().join("d"))
        .args(["--http-addr", "127.0.0.1:0", "--peer-addr", "127.0.0.1:0"])
        .env_remove("CONCORD_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kept open to the end: the server prints its goodbye there.
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    println!("startup line: {:?}", stdout.next());
    concord_launch::process::signal(child.id(), concord_launch::process::Signal::Term).unwrap();
    println!("then: {:?}", stdout.collect::<Vec<_>>());
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    println!("log:\n{log}");
    assert!(out.status.success());
    assert!(log.contains(" INFO concord::server: serving"), "Concord's own info lines stay");
    assert!(!log.contains('\u{1b}'), "no escape codes in a piped log");
    for dependency in ["fjall", "lsm_tree", "openraft"] {
        let noise = log.lines().any(|l| l.contains(" INFO ") && l.contains(dependency));
        assert!(!noise, "{dependency} logs at info by default");
    }
}
