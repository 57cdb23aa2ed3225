//! Spawning a node and waiting for its startup line; signals, pid files and log tails.
//!
//! A node's stdout is either piped to its launcher ([`StdoutTo::Pipe`]: the test kit and the
//! attached demo, which keep reading it so the node never blocks on a full pipe) or appended
//! to `<data dir>.out` ([`StdoutTo::File`]: a node that outlives its launcher, whose pid is
//! then written to `<data dir>.pid`). Either way the startup line is the only thing read.

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use concord_client::startup::Announcement;

use crate::{Error, ServerOptions};

/// How often a file or a process is looked at while waiting.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Where a node's stdout goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdoutTo {
    /// To the launcher, which drains it.
    Pipe,
    /// To `<data dir>.out`, appended; the pid goes to `<data dir>.pid`.
    File,
}

/// A node that printed its startup line.
#[derive(Debug)]
pub struct Started {
    pub child: Child,
    pub announcement: Announcement,
    /// The stdout lines after the startup line, when piped.
    pub lines: Option<mpsc::Receiver<String>>,
}

/// Starts `concord server` with `options` and waits up to `timeout` for its startup line; a
/// node that exits first or misses the deadline is an error carrying its log tail (a node
/// still running at the deadline is killed).
pub fn start(
    binary: &Path,
    options: &ServerOptions,
    stdout: StdoutTo,
    timeout: Duration,
) -> Result<Started, Error> {
    let mut command = options.command(binary)?;
    match stdout {
        StdoutTo::Pipe => {
            command.stdout(Stdio::piped());
            let mut child = spawn(&mut command, options)?;
            let lines = drain_stdout(&mut child);
            let announcement = wait_piped(&mut child, &lines, options, timeout)?;
            Ok(Started { child, announcement, lines: Some(lines) })
        }
        StdoutTo::File => {
            let path = options.stdout_path();
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(Error::io(format!("opening {}", path.display())))?;
            let offset = file.metadata().map(|m| m.len()).unwrap_or(0);
            command.stdout(file);
            let mut child = spawn(&mut command, options)?;
            let pid_path = options.pid_path();
            std::fs::write(&pid_path, format!("{}\n", child.id()))
                .map_err(Error::io(format!("writing {}", pid_path.display())))?;
            let announcement = wait_in_file(&mut child, offset, options, timeout)?;
            Ok(Started { child, announcement, lines: None })
        }
    }
}

fn spawn(command: &mut Command, options: &ServerOptions) -> Result<Child, Error> {
    command.spawn().map_err(Error::io(format!("spawning {}", options.name())))
}

fn wait_piped(
    child: &mut Child,
    lines: &mpsc::Receiver<String>,
    options: &ServerOptions,
    timeout: Duration,
) -> Result<Announcement, Error> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                if let Some(announcement) = Announcement::parse(&line) {
                    return Ok(announcement);
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait().map_err(Error::io("waiting for a node"))?;
                let log_tail = tail(&options.log_path(), LOG_TAIL_LINES);
                return Err(Error::ExitedEarly { node: options.name(), status, log_tail });
            }
            Err(mpsc::RecvTimeoutError::Timeout) => return Err(give_up(child, options, timeout)),
        }
    }
}

fn wait_in_file(
    child: &mut Child,
    offset: u64,
    options: &ServerOptions,
    timeout: Duration,
) -> Result<Announcement, Error> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(announcement) = last_announcement_after(&options.stdout_path(), offset) {
            return Ok(announcement);
        }
        if let Some(status) = child.try_wait().map_err(Error::io("waiting for a node"))? {
            let log_tail = tail(&options.log_path(), LOG_TAIL_LINES);
            return Err(Error::ExitedEarly { node: options.name(), status, log_tail });
        }
        if Instant::now() > deadline {
            return Err(give_up(child, options, timeout));
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

fn give_up(child: &mut Child, options: &ServerOptions, timeout: Duration) -> Error {
    let _ = child.kill();
    let _ = child.wait();
    let log_tail = tail(&options.log_path(), LOG_TAIL_LINES);
    Error::StartTimeout { node: options.name(), timeout, log_tail }
}

/// The last startup line in the file at `path` past its first `offset` bytes.
pub fn last_announcement_after(path: &Path, offset: u64) -> Option<Announcement> {
    let mut file = std::fs::File::open(path).ok()?;
    file.seek(SeekFrom::Start(offset)).ok()?;
    BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| Announcement::parse(&l))
        .last()
}

/// Forwards the child's stdout lines to a channel from a thread that keeps draining it, so the
/// server never blocks on a full pipe.
pub fn drain_stdout(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("stdout is piped");
    let (lines_tx, lines_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    lines_rx
}

/// Lines of a log shown in errors.
pub const LOG_TAIL_LINES: usize = 40;

/// The last `lines` lines of the file at `path` (empty if unreadable).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Sends `SIG<name>` to `pid` with `kill(1)`, which saves a dependency on libc bindings.
pub fn signal(pid: u32, name: &str) -> Result<(), Error> {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .map_err(Error::io("running kill"))?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::Io {
            what: format!("kill -{name} {pid}"),
            source: std::io::Error::other("no such process"),
        })
    }
}

/// Whether process `pid` runs: it exists (`kill -0`) and is not a zombie (a node that outlived
/// its launcher is reaped by whoever adopted it, which may be late or never).
pub fn is_alive(pid: u32) -> bool {
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(") ").map(|(_, rest)| rest.starts_with('Z')));
    zombie != Some(true) && signal(pid, "0").is_ok()
}

/// Whether process `pid` runs and is the node of `data_dir` (its command line names the data
/// dir), so that a stale pid file never gets another process signalled. Without `/proc`, only
/// that it runs.
pub fn is_node(pid: u32, data_dir: &Path) -> bool {
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmdline) => {
            let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
            let dir = data_dir.as_os_str().as_encoded_bytes();
            args.contains(&dir)
        }
        Err(_) if Path::new("/proc/self").exists() => false,
        Err(_) => is_alive(pid),
    }
}

/// The pid in a pid file, if it holds one.
pub fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Stops process `pid` that is not our child: SIGTERM, then SIGKILL if it is still there after
/// `timeout`. Returns whether it exited before the SIGKILL.
pub fn stop_pid(pid: u32, timeout: Duration) -> bool {
    if signal(pid, "TERM").is_err() {
        return true;
    }
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if !is_alive(pid) {
            return true;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    let _ = signal(pid, "KILL");
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zombie_is_not_alive() {
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        let deadline = Instant::now() + Duration::from_secs(10);
        // Not reaped yet: it stays a zombie until `wait`.
        while is_alive(pid) {
            assert!(Instant::now() < deadline, "pid {pid} still alive after exiting");
            std::thread::sleep(POLL_INTERVAL);
        }
        child.wait().unwrap();
        assert!(!is_alive(pid));
        assert!(is_alive(std::process::id()), "this test process runs");
    }

    #[test]
    fn the_last_startup_line_after_an_offset_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n1.out");
        let first = Announcement::line("n1", "127.0.0.1:1000", "127.0.0.1:1001", "/d/n1");
        std::fs::write(&path, format!("{first}\nconcord node n1 stopped cleanly\n")).unwrap();
        let offset = std::fs::metadata(&path).unwrap().len();
        assert_eq!(last_announcement_after(&path, 0).unwrap().peer_addr, "127.0.0.1:1001");
        assert!(last_announcement_after(&path, offset).is_none(), "nothing new past the offset");
        let second = Announcement::line("n1", "127.0.0.1:2000", "127.0.0.1:2001", "/d/n1");
        std::fs::write(&path, format!("{first}\n{second}\n")).unwrap();
        assert_eq!(last_announcement_after(&path, 0).unwrap().endpoint, "http://127.0.0.1:2000");
    }
}
