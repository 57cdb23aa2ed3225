//! Spawning a node and waiting for its startup line; signals, pid files and log tails.
//!
//! A node's stdout is either piped to its launcher ([`StdoutTo::Pipe`]: the test kit and the
//! attached demo, which keep reading it so the node never blocks on a full pipe) or appended
//! to `<data dir>.out` ([`StdoutTo::File`]: a node that outlives its launcher, whose pid is
//! then written to `<data dir>.pid`). Either way the startup line is the only thing read.
//!
//! Signals go through `kill(2)` directly ([`signal`], rustix's safe wrapper), not through a
//! `kill` program that may be missing from PATH.

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

/// A signal the launcher sends to a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Stop cleanly: drain, flush, exit 0.
    Term,
    /// Die at once: no flush, no goodbye.
    Kill,
    /// Freeze: the process keeps its sockets but runs nothing.
    Stop,
    /// Resume a frozen process.
    Cont,
}

impl Signal {
    /// `SIGTERM`, `SIGKILL`, ...
    pub fn name(self) -> &'static str {
        match self {
            Signal::Term => "SIGTERM",
            Signal::Kill => "SIGKILL",
            Signal::Stop => "SIGSTOP",
            Signal::Cont => "SIGCONT",
        }
    }

    fn raw(self) -> rustix::process::Signal {
        use rustix::process::Signal as Raw;
        match self {
            Signal::Term => Raw::TERM,
            Signal::Kill => Raw::KILL,
            Signal::Stop => Raw::STOP,
            Signal::Cont => Raw::CONT,
        }
    }
}

/// Sends `signal` to process `pid` through the `kill(2)` system call (rustix's safe wrapper),
/// so stopping nodes does not depend on a `kill` program on PATH.
pub fn signal(pid: u32, signal: Signal) -> Result<(), Error> {
    let what = || format!("sending {} to pid {pid}", signal.name());
    rustix::process::kill_process(raw_pid(pid).map_err(Error::io(what()))?, signal.raw())
        .map_err(|errno| Error::Io { what: what(), source: errno.into() })
}

/// `pid` as a process id `kill(2)` takes as one process: 0 and values past `i32::MAX` would
/// name a process group or every process, so they are refused.
fn raw_pid(pid: u32) -> std::io::Result<rustix::process::Pid> {
    i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(|| std::io::Error::other(format!("{pid} is not a process id")))
}

/// Whether process `pid` runs: it exists (`kill(pid, 0)`) and is not a zombie (a node that
/// outlived its launcher is reaped by whoever adopted it, which may be late or never).
pub fn is_alive(pid: u32) -> bool {
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(") ").map(|(_, rest)| rest.starts_with('Z')));
    let exists = raw_pid(pid).is_ok_and(|pid| rustix::process::test_kill_process(pid).is_ok());
    zombie != Some(true) && exists
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
    if signal(pid, Signal::Term).is_err() {
        return true;
    }
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if !is_alive(pid) {
            return true;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    let _ = signal(pid, Signal::Kill);
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

    /// A signal reaches the process it names; a pid that would name a group is refused.
    #[test]
    fn signals_reach_the_process_and_pid_zero_is_refused() {
        use std::os::unix::process::ExitStatusExt as _;
        let mut child = Command::new("sleep").arg("60").spawn().unwrap();
        signal(child.id(), Signal::Stop).unwrap();
        signal(child.id(), Signal::Cont).unwrap();
        signal(child.id(), Signal::Kill).unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(9), "{status}");
        assert!(signal(0, Signal::Term).is_err(), "pid 0 is this process group");
        assert!(signal(u32::MAX, Signal::Term).is_err(), "-1 is every process");
        assert!(!is_alive(0));
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
