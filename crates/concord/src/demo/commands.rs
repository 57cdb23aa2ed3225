//! What an attached demo reads on its stdin: one command a line, to play a game day without a
//! second terminal (`kill n2`, then `restart n2`).
//!
//! [`parse`] is pure; [`spawn_reader`] reads the lines on a thread of its own (a blocking read
//! of stdin has no place on the demo's async runtime) and hands them over a bounded channel.

use std::io::{BufRead as _, IsTerminal as _};

use tokio::sync::mpsc;

/// The commands, as `help` prints them.
pub const HELP: &str = "commands: `kill nI` (SIGKILL: no flush, no goodbye), `stop nI` (SIGTERM: \
                        a clean stop), `restart nI` (on its data dir and ports), `help`";

/// Lines read but not yet run; a person types far fewer.
const QUEUE_LINES_MAX: usize = 16;

/// One command to the demo. Node ids are as typed (`n2`, or `2` for `n2`); whether such a node
/// exists is the demo's to say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DemoCommand {
    /// SIGKILL the node.
    Kill(String),
    /// SIGTERM the node.
    Stop(String),
    /// Start an exited node again.
    Restart(String),
    Help,
}

/// The command on `line`; `Ok(None)` for a blank line; an error saying what is wrong.
pub fn parse(line: &str) -> Result<Option<DemoCommand>, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let command = match words.as_slice() {
        [] => return Ok(None),
        ["help" | "?"] => DemoCommand::Help,
        ["kill", node] => DemoCommand::Kill(node_id(node)?),
        ["stop", node] => DemoCommand::Stop(node_id(node)?),
        ["restart" | "start", node] => DemoCommand::Restart(node_id(node)?),
        [verb @ ("kill" | "stop" | "restart" | "start"), ..] => {
            return Err(format!("`{verb}` takes one node, for example `{verb} n2`"));
        }
        [other, ..] => return Err(format!("unknown command `{other}`; {HELP}")),
    };
    Ok(Some(command))
}

/// `n2` for `n2` or `2`.
fn node_id(word: &str) -> Result<String, String> {
    let number = word.strip_prefix('n').unwrap_or(word);
    match number.parse::<u16>() {
        Ok(n) if n >= 1 => Ok(format!("n{n}")),
        _ => Err(format!("`{word}` is not a demo node (they are n1, n2, ...)")),
    }
}

/// Starts reading stdin lines on a thread; `None` when stdin is a terminal this process does
/// not own: a background job (`concord demo &`) that reads its terminal is stopped by the
/// kernel (SIGTTIN), which would freeze the demo. A pipe or a file is read to its end.
pub fn spawn_reader() -> Option<mpsc::Receiver<String>> {
    if !stdin_is_ours() {
        return None;
    }
    let (lines_tx, lines_rx) = mpsc::channel(QUEUE_LINES_MAX);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if lines_tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    Some(lines_rx)
}

/// Whether reading stdin is safe: it is not a terminal, or this process's group is the
/// terminal's foreground group.
fn stdin_is_ours() -> bool {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return true;
    }
    rustix::termios::tcgetpgrp(&stdin)
        .is_ok_and(|foreground| foreground == rustix::process::getpgrp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_name_one_node_by_id_or_number() {
        assert_eq!(parse("kill n2"), Ok(Some(DemoCommand::Kill("n2".into()))));
        assert_eq!(parse("  stop 3 "), Ok(Some(DemoCommand::Stop("n3".into()))));
        assert_eq!(parse("restart n2"), Ok(Some(DemoCommand::Restart("n2".into()))));
        assert_eq!(parse("start n2"), Ok(Some(DemoCommand::Restart("n2".into()))));
        assert_eq!(parse("help"), Ok(Some(DemoCommand::Help)));
        assert_eq!(parse(""), Ok(None));
    }

    #[test]
    fn bad_commands_say_what_is_wrong() {
        assert_eq!(parse("kill"), Err("`kill` takes one node, for example `kill n2`".into()));
        assert_eq!(
            parse("kill n1 n2").unwrap_err(),
            "`kill` takes one node, for example `kill n2`"
        );
        assert!(parse("kill n0").unwrap_err().contains("`n0` is not a demo node"));
        assert!(parse("kill x").unwrap_err().contains("`x` is not a demo node"));
        assert!(parse("reboot n2").unwrap_err().starts_with("unknown command `reboot`; commands:"));
    }
}
