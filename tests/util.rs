//! Helpers that run the built binary and real peers, with bounded waits.

use std::cell::RefCell;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

/// Longest a test waits for any one program.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// The server strategies, as `--strategy` spells them.
pub const STRATEGIES: [&str; 4] = ["blocking", "threads", "async", "uring"];

/// Whether this kernel lets a program use io_uring (`--strategy uring`): asked once,
/// by making a small ring. Where it is refused (an old kernel,
/// `kernel.io_uring_disabled`, a container's seccomp filter) the uring runs of every
/// test are skipped, and said so once; on CI, which runs where io_uring is allowed,
/// a refusal fails instead, so that the uring tests cannot vanish unseen.
pub fn uring_allowed() -> bool {
    static ALLOWED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    // In a thread of its own: a ring's teardown runs as task work on the thread
    // that made it, and interrupts that thread's next blocking call (EINTR).
    let made = || {
        std::thread::spawn(|| tcplab::sys::uring::Ring::new(8, 2, 4096, false).map(drop))
            .join()
            .expect("the probe thread")
    };
    *ALLOWED.get_or_init(|| match made() {
        Ok(_) => true,
        Err(e) if tcplab::sys::uring::is_unavailable(&e) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "io_uring is refused on CI ({e}): the uring tests would be skipped"
            );
            eprintln!("skipped: the uring runs of every test: io_uring is refused here ({e})");
            false
        }
        Err(e) => panic!("could not make an io_uring: {e}"),
    })
}

/// `all` without its io_uring strategy where this kernel refuses io_uring; the
/// strategies are named as `--strategy` spells them, or as `Strategy`'s variants.
pub fn runnable<T: std::fmt::Debug>(all: impl IntoIterator<Item = T>) -> Vec<T> {
    all.into_iter()
        .filter(|s| uring_allowed() || !format!("{s:?}").to_lowercase().contains("uring"))
        .collect()
}

/// The built `tcplab` binary.
pub fn tcplab() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tcplab"))
}

/// The independent Python peer that follows LAB.md.
pub fn python_peer() -> Command {
    let mut cmd = Command::new("python3");
    cmd.arg("-u")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/lab.py"));
    cmd
}

/// A finished program's status and output.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    /// Standard output as raw bytes (`stdout` is its lossy UTF-8 reading).
    pub stdout_bytes: Vec<u8>,
    pub stderr: String,
    pub what: String,
}

impl Output {
    /// Exit code, or -1 when killed by a signal.
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }

    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code(), code, "unexpected exit code\n{self}");
        self
    }

    #[track_caller]
    pub fn assert_ok(&self) -> &Self {
        self.assert_code(0)
    }

    #[track_caller]
    pub fn assert_stdout_has(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}\n{self}"
        );
        self
    }

    #[track_caller]
    pub fn assert_stderr_has(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}\n{self}"
        );
        self
    }

    /// Bad input must give exactly one line on stderr, and no panic.
    #[track_caller]
    pub fn assert_one_error_line(&self) -> &Self {
        assert_eq!(
            self.stderr.lines().count(),
            1,
            "want one stderr line\n{self}"
        );
        assert!(!self.stderr.contains("panicked"), "panic\n{self}");
        self
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "command: {}\nstatus: {}\n--- stdout\n{}--- stderr\n{}---",
            self.what, self.status, self.stdout, self.stderr
        )
    }
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push_str(&format!(" {:?}", a.to_string_lossy()));
    }
    s
}

fn drain(r: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    let bytes = drain_bytes(r);
    thread::spawn(move || String::from_utf8_lossy(&bytes.join().unwrap()).into_owned())
}

fn drain_bytes(mut r: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

/// Waits for `child` up to `limit`, killing it (and failing the test) past that.
fn wait_bounded(child: &mut Child, limit: Duration, what: &str) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {limit:?}");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Runs a command to completion with `stdin` as its input, bounded by [`TIMEOUT`].
pub fn run_with_input(cmd: Command, stdin: &[u8]) -> Output {
    run_told(cmd, stdin, |_| {})
}

/// Runs a command to completion with empty input, telling `spawned` its process
/// id once it has started (to signal it), bounded by [`TIMEOUT`].
pub fn run_with_spawned(cmd: Command, spawned: impl FnOnce(u32)) -> Output {
    run_told(cmd, b"", spawned)
}

fn run_told(mut cmd: Command, stdin: &[u8], spawned: impl FnOnce(u32)) -> Output {
    let what = describe(&cmd);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("could not start {what}: {e}"));
    spawned(child.id());
    let input = stdin.to_vec();
    let mut pipe = child.stdin.take().unwrap();
    let feeder = thread::spawn(move || {
        use std::io::Write;
        let _ = pipe.write_all(&input);
    });
    let out = drain_bytes(child.stdout.take().unwrap());
    let err = drain(child.stderr.take().unwrap());
    let status = wait_bounded(&mut child, TIMEOUT, &what);
    let _ = feeder.join();
    let stdout_bytes = out.join().unwrap();
    Output {
        status,
        stdout: String::from_utf8_lossy(&stdout_bytes).into_owned(),
        stdout_bytes,
        stderr: err.join().unwrap(),
        what,
    }
}

/// Runs a command to completion with empty input.
pub fn run(cmd: Command) -> Output {
    run_with_input(cmd, b"")
}

/// `tcplab ARGS...` to completion.
pub fn tcplab_run(args: &[&str]) -> Output {
    let mut cmd = tcplab();
    cmd.args(args);
    run(cmd)
}

/// A server running in the background, its address read from `Listening at ADDR`.
pub struct Server {
    child: Option<Child>,
    pub addr: SocketAddr,
    lines: Receiver<String>,
    seen: RefCell<Vec<String>>,
    stderr: Option<thread::JoinHandle<String>>,
    what: String,
}

impl Server {
    /// Starts `tcplab ARGS...` and waits for its first line.
    pub fn tcplab(args: &[&str]) -> Server {
        let mut cmd = tcplab();
        cmd.args(args);
        Server::start(cmd)
    }

    /// Starts `tcplab SERVICE server 127.0.0.1 0 EXTRA...`: the default strategy, a
    /// free port.
    pub fn of(service: &str, extra: &[&str]) -> Server {
        let mut args = vec![service, "server", "127.0.0.1", "0"];
        args.extend_from_slice(extra);
        Server::tcplab(&args)
    }

    /// Starts `tcplab SERVICE server 127.0.0.1 0 --strategy STRATEGY EXTRA...`.
    pub fn under(strategy: &str, service: &str, extra: &[&str]) -> Server {
        let mut args = vec!["--strategy", strategy];
        args.extend_from_slice(extra);
        Server::of(service, &args)
    }

    /// Starts any server command that prints `Listening at ADDR` first.
    pub fn start(mut cmd: Command) -> Server {
        let what = describe(&cmd);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {what}: {e}"));
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = drain(child.stderr.take().unwrap());
        let first = match lines.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let err = stderr.join().unwrap();
                panic!("{what} printed no first line; stderr:\n{err}");
            }
        };
        let addr = first
            .strip_prefix("Listening at ")
            .unwrap_or_else(|| panic!("{what}: first line is {first:?}"))
            .parse()
            .unwrap_or_else(|e| panic!("{what}: bad address in {first:?}: {e}"));
        Server {
            child: Some(child),
            addr,
            lines,
            seen: RefCell::new(vec![first]),
            stderr: Some(stderr),
            what,
        }
    }

    /// The port it listens at.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The port as an argument.
    pub fn port_arg(&self) -> String {
        self.port().to_string()
    }

    /// Waits until a line containing `needle` is printed; returns the lines so far.
    #[track_caller]
    pub fn wait_for_line(&self, needle: &str) -> Vec<String> {
        let deadline = Instant::now() + TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100)) {
                let hit = line.contains(needle);
                self.seen.borrow_mut().push(line);
                if hit {
                    return self.seen.borrow().clone();
                }
            }
        }
        panic!(
            "{} never printed {needle:?}; it printed:\n{}",
            self.what,
            self.seen.borrow().join("\n")
        );
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends a signal to the server (SIGTERM, SIGINT).
    pub fn signal(&self, signal: i32) {
        tcplab::sys::signal_process(self.pid(), signal).expect("kill failed");
    }

    /// Peak resident memory so far, in bytes (VmHWM).
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/PID/status");
        kb * 1024
    }

    /// CPU time (user + system) the server has used so far, in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        // Fields after the command name (which is in parentheses): utime is the
        // 12th and stime the 13th of them.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = rest.split(' ').collect();
        let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
        ticks / tcplab::sys::clock_ticks_per_second() as f64
    }

    /// The lines printed so far, without waiting.
    pub fn lines_so_far(&self) -> Vec<String> {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.borrow_mut().push(line);
        }
        self.seen.borrow().clone()
    }

    /// Waits for the server to exit by itself (after `--once`).
    pub fn wait(mut self) -> Output {
        let mut child = self.child.take().unwrap();
        let status = wait_bounded(&mut child, TIMEOUT, &self.what);
        self.collect(status)
    }

    /// Stops the server and returns what it printed.
    pub fn stop(mut self) -> Output {
        let mut child = self.child.take().unwrap();
        let _ = child.kill();
        let status = child.wait().unwrap();
        self.collect(status)
    }

    fn collect(&mut self, status: ExitStatus) -> Output {
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(500)) {
            self.seen.borrow_mut().push(line);
        }
        let stdout: String = self
            .seen
            .borrow()
            .iter()
            .map(|l| format!("{l}\n"))
            .collect();
        Output {
            status,
            stdout_bytes: stdout.clone().into_bytes(),
            stdout,
            stderr: self.stderr.take().unwrap().join().unwrap(),
            what: self.what.clone(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
