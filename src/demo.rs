//! `tcplab demo`: the lab end to end on the loopback interface. Each step runs the
//! real `tcplab` programs as separate processes, shows their output, and explains it.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use tcplab::report::console::{Console, say};

mod chapters;

/// The demo's address: loopback, so nothing leaves this machine.
const HOST: &str = "127.0.0.1";

/// One lesson of the handout, run and narrated on its own.
pub struct Chapter {
    /// Its name on the command line (`tcplab demo NAME`).
    pub name: &'static str,
    /// Its heading.
    pub title: &'static str,
    /// What it shows, in one line (`tcplab demo --list`).
    pub summary: &'static str,
    run: fn(&Tour) -> Result<()>,
}

/// The chapters, in the order the tour runs them.
pub const CHAPTERS: &[Chapter] = &[
    Chapter {
        name: "simple",
        title: "The simple exchange (tcp_simple.py)",
        summary: "16 octets each way; the listening socket, the connection socket, the client's ephemeral port, receive-all",
        run: Tour::simple,
    },
    Chapter {
        name: "refused",
        title: "Connection refused",
        summary: "a client with no server: connect() fails at once, because the kernel answers the SYN with a RST",
        run: Tour::refused,
    },
    Chapter {
        name: "interfaces",
        title: "One interface, or all of them",
        summary: "a server bound to 127.0.0.2 is refused on 127.0.0.1; bound to \"\" it takes both",
        run: Tour::interfaces,
    },
    Chapter {
        name: "reuseaddr",
        title: "SO_REUSEADDR and TIME_WAIT",
        summary: "a restart without SO_REUSEADDR fails (\"already in use\") while the TIME_WAIT socket holds the port; with it, it succeeds",
        run: Tour::reuseaddr,
    },
    Chapter {
        name: "uppercase",
        title: "The upper-case round trip (tcp_uppercase.py)",
        summary: "1 MiB each way, checked; the server's reads come in other sizes than the client's writes",
        run: Tour::uppercase,
    },
    Chapter {
        name: "half-close",
        title: "Half-close: shutdown(SHUT_WR)",
        summary: "the server reads end of stream and still answers; without the half-close both wait, and the watchdog names it",
        run: Tour::half_close,
    },
    Chapter {
        name: "stream",
        title: "A stream, not messages",
        summary: "sixteen 16-byte writes arrive as reads of other sizes over TCP, as sixteen whole datagrams over UDP",
        run: Tour::stream,
    },
    Chapter {
        name: "lines",
        title: "A stream read like a file (the handout's task)",
        summary: "the lines server reads the connection through a buffered reader, line by line",
        run: Tour::lines,
    },
    Chapter {
        name: "json",
        title: "JSON over a stream",
        summary: "JSON values one per line, one split across segments, one invalid and reported by its line number",
        run: Tour::json,
    },
    Chapter {
        name: "deadlock",
        title: "The deadlock, and three ways out",
        summary: "the lab's client at 1 GiB freezes with four full queues; the watchdog explains; threads, nonblocking, async each fix it",
        run: Tour::deadlock,
    },
    Chapter {
        name: "many-clients",
        title: "One client at a time, or many",
        summary: "a blocking server keeps a second client waiting in the backlog; the async one serves it at once",
        run: Tour::many_clients,
    },
    Chapter {
        name: "check",
        title: "Grading a program: tcplab check",
        summary: "tcplab check runs the lab's send-everything client at rising sizes and reports the deadlock, the lesson and the fix",
        run: Tour::check,
    },
];

/// The chapters' names, for the command line.
pub fn names() -> Vec<&'static str> {
    CHAPTERS.iter().map(|c| c.name).collect()
}

/// Runs the tour (or one chapter, or lists them) and fails if any program fails.
pub fn run(args: &crate::cli::DemoArgs) -> Result<()> {
    if args.list {
        for c in CHAPTERS {
            say(format!("{:<13} {}", c.name, c.summary));
        }
        return Ok(());
    }
    if args.plots.is_some() && args.chapter.as_deref().is_some_and(|c| c != "deadlock") {
        return Err(tcplab::Error::Usage(
            "--plots writes the deadlock chapter's figures: run `tcplab demo deadlock --plots DIR`, or the whole tour".into(),
        )
        .into());
    }
    let exe = std::env::current_exe().context("could not find the tcplab program itself")?;
    if let Some(dir) = &args.plots {
        prepare_plots(dir)?;
    }
    let tour = Tour {
        exe,
        plots: args.plots.clone(),
    };
    let chosen: Vec<(usize, &Chapter)> = CHAPTERS
        .iter()
        .enumerate()
        .filter(|(_, c)| args.chapter.as_deref().is_none_or(|name| name == c.name))
        .collect();
    say("tcplab demo: the TCP lab, end to end, on this machine's loopback interface.");
    say("Every step runs real tcplab servers and clients as separate processes. A server");
    say("given port 0 asks the operating system for a free port and prints the one it got.");
    // Each step stops its own servers; between steps, a reader that has gone (the
    // demo piped into `head`) ends the tour.
    for (i, chapter) in &chosen {
        still_printing()?;
        heading(&format!("Step {}. {}", i + 1, chapter.title));
        (chapter.run)(&tour)?;
    }
    heading("Done");
    match chosen.len() {
        1 => say("This step behaved as the lab says. `tcplab demo --list` names the others."),
        _ => say(
            "Every step behaved as the lab says. Try the programs yourself: `tcplab --help` lists them.",
        ),
    }
    Ok(())
}

/// The figures `--plots DIR` holds once the deadlock chapter has run.
const FIGURES: [&str; 2] = ["deadlock.svg", "healthy.svg"];

/// Makes `--plots DIR` ready before any step runs, so that a bad DIR is one line
/// (exit 2) rather than a chapter failing halfway: DIR is created when missing, but
/// only DIR itself, as `mkdir` does (a missing parent is most likely a typo), and
/// each figure must be a file that can be written there.
fn prepare_plots(dir: &std::path::Path) -> tcplab::Result<()> {
    let refuse = |why: String| {
        Err(tcplab::Error::Usage(format!(
            "--plots '{}': {why}",
            dir.display()
        )))
    };
    if std::fs::symlink_metadata(dir).is_ok() && !dir.is_dir() {
        return refuse("it is not a directory".into());
    }
    if !dir.is_dir() {
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => std::path::Path::new("."),
        };
        if !parent.is_dir() {
            return refuse(format!(
                "there is no directory '{}' (--plots creates only DIR itself)",
                parent.display()
            ));
        }
        if let Err(e) = std::fs::create_dir(dir) {
            return refuse(format!(
                "could not create it: {}",
                tcplab::error::plain_io(&e)
            ));
        }
    }
    for figure in FIGURES {
        match crate::check_plot(&dir.join(figure)) {
            Ok(()) => {}
            Err(tcplab::Error::Plot { reason, .. }) => {
                return refuse(format!(
                    "the figures cannot be written there ({figure}: {reason})"
                ));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

struct Tour {
    exe: std::path::PathBuf,
    /// Where the deadlock chapter also writes its figures (`--plots DIR`).
    plots: Option<std::path::PathBuf>,
}

/// A server started for one step, with its port read from `Listening at ADDR`.
struct Server {
    child: Child,
    stdout: BufReader<ChildStdout>,
    stderr: std::thread::JoinHandle<String>,
    port: String,
}

impl Server {
    /// Reads the server's output until a line contains `needle`.
    fn read_until(&mut self, needle: &str) -> Result<()> {
        let mut line = String::new();
        loop {
            line.clear();
            let n = self
                .stdout
                .read_line(&mut line)
                .context("could not read the server's output")?;
            if n == 0 {
                return Err(anyhow!("the demo's server ended early"));
            }
            if line.contains(needle) {
                return Ok(());
            }
        }
    }

    /// Stops a server that has no `--once`, and shows what it said on stderr.
    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        show_stderr(self.stderr);
    }
}

fn show_stderr(stderr: std::thread::JoinHandle<String>) {
    let text = stderr.join().unwrap_or_default();
    for line in text.lines() {
        say(format!(
            "  server ! {}",
            line.trim_start_matches("tcplab: ")
        ));
    }
}

/// A finished client: exit code and output.
struct Finished {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Finished {
    /// How it ended, in words: "exit code 1", or "a signal" (for an error line; never
    /// Rust's `Some(1)`).
    fn ended(&self) -> String {
        match self.code {
            Some(code) => format!("exit code {code}"),
            None => "a signal".into(),
        }
    }
}

impl Tour {
    fn simple(&self) -> Result<()> {
        say("The server listens; the client connects, sends 16 octets and reads 16 back.");
        let server = self.server(&["simple", "server", HOST, "0", "--once"])?;
        let client = self.client(&["simple", "client", HOST, &server.port], b"")?;
        let server_out = self.finish(server)?;
        show("client", &client);
        show("server", &server_out);
        let peer = after(&server_out, "Socket peer: ");
        let name = after(&server_out, "Socket name: ");
        explain(&[
            &format!(
                "The connection socket {name} has the listening port: accept() made it for this one client."
            ),
            &format!("Its peer, {peer}, is the client's socket; the client's OS picked that port."),
            "TCP may deliver the 16 octets in pieces, so both sides loop until all have come",
            "(the lab's receive-all): there is no recvall() in the socket API.",
        ]);
        Ok(())
    }

    fn uppercase(&self) -> Result<()> {
        say(
            "The client streams 1 MiB of \"hello foobar bye\"; the server sends it back capitalized.",
        );
        let server = self.server(&["uppercase", "server", HOST, "0", "--once"])?;
        let client = self.client(&["uppercase", "client", HOST, &server.port, "1M"], b"")?;
        let server_out = self.finish(server)?;
        show("client", &client);
        show("server", &server_out);
        explain(&[
            "The client's writes were 256 KiB each, yet the server's reads came in other sizes:",
            "a TCP stream has no message boundaries, only bytes in order.",
            "The client sends and receives at the same time (one async task drives both halves).",
            "The lab's client sends everything first, and at large sizes that deadlocks (`tcplab demo deadlock`).",
        ]);
        Ok(())
    }

    fn lines(&self) -> Result<()> {
        say("The server wraps the connection in a buffered reader and prints each line it reads.");
        let input =
            b"{\"lab\": \"tcp\", \"step\": 3}\na TCP stream reads like a file\nline by line\n";
        let server = self.server(&["lines", "server", HOST, "0", "--once"])?;
        let client = self.client(&["lines", "client", HOST, &server.port], input)?;
        let server_out = self.finish(server)?;
        show("client", &client);
        show("server", &server_out);
        explain(&[
            "The reader splits the stream at newlines, whatever sizes it arrived in, so line-",
            "and JSON-oriented code works on a socket unchanged.",
        ]);
        Ok(())
    }

    fn deadlock(&self) -> Result<()> {
        say("The lab's client sends everything before it reads anything. With 1 GiB to send, the");
        say("buffers fill and both programs freeze. tcplab's watchdog samples the kernel's socket");
        say(
            "queues, notices that nothing moves, and explains (here after 2 s; the default is 5 s).",
        );
        let server = self.server(&["uppercase", "server", HOST, "0"])?;
        let deadlock_svg = self.plot_path("deadlock.svg");
        let mut args = vec![
            "uppercase",
            "client",
            HOST,
            &server.port,
            "1G",
            "--strategy",
            "naive",
            "--stall-timeout",
            "2",
            "--no-progress",
        ];
        if let Some(path) = &deadlock_svg {
            args.extend(["--plot", path]);
        }
        let naive = self.run_client(&args)?;
        show("client", &naive.stdout);
        show("client", naive.stderr.trim_start_matches("tcplab: "));
        if naive.code != Some(3) {
            server.stop();
            return Err(anyhow!(
                "the naive client was expected to stall (exit code 3), but ended with {}",
                naive.ended()
            ));
        }
        say(format!("  (exit code {})", 3));
        explain(&[
            "Four queues are full: the client's send queue and the server's receive queue hold",
            "the request; the server's send queue and the client's receive queue hold the answer",
            "that the client will not read until it has sent everything. Each side waits for the other.",
        ]);
        say("The same gigabyte with each fix:");
        for strategy in ["threads", "nonblocking", "async"] {
            let healthy_svg = self
                .plot_path("healthy.svg")
                .filter(|_| strategy == "async");
            let mut args = vec![
                "uppercase",
                "client",
                HOST,
                &server.port,
                "1G",
                "--strategy",
                strategy,
                "--no-progress",
            ];
            if let Some(path) = &healthy_svg {
                args.extend(["--plot", path]);
            }
            let fixed = self.run_client(&args)?;
            let verified = fixed.stdout.lines().find(|l| l.starts_with("Verified"));
            match (fixed.code, verified) {
                (Some(0), Some(line)) => say(format!("  client │ {strategy:>11}: {line}")),
                _ => {
                    server.stop();
                    return Err(anyhow!(
                        "the {strategy} client failed: {}",
                        fixed.stderr.trim()
                    ));
                }
            }
        }
        server.stop();
        for path in [deadlock_svg, self.plot_path("healthy.svg")]
            .iter()
            .flatten()
        {
            say(format!(
                "  Wrote {path}: bytes sent and received, and all four queues against their buffer sizes."
            ));
        }
        explain(&[
            "The server's complaint above is the naive client hanging up on it mid-answer.",
            "threads: one thread sends while another receives (the handout's fix 2).",
            "nonblocking: neither call ever blocks; one poll loop serves both directions (fix 1).",
            "async: tokio drives the sending and receiving halves concurrently.",
        ]);
        Ok(())
    }

    fn many_clients(&self) -> Result<()> {
        say("The lab's server accepts one connection and serves it to the end before it accepts");
        say(
            "the next. Client A connects and keeps its connection open; client B then sends a line.",
        );
        for strategy in ["blocking", "async"] {
            say("");
            let mut server =
                self.server(&["lines", "server", HOST, "0", "--strategy", strategy])?;
            say("  # client A, which keeps its standard input (and so its connection) open:");
            let (mut a, a_input) =
                self.lines_client(&server.port, b"A: connected first, and still connected\n")?;
            server.read_until("A: connected first")?;
            let started = std::time::Instant::now();
            say("  # client B, with one line to send:");
            let (mut b, b_input) = self.lines_client(&server.port, b"B: hello\n")?;
            drop(b_input);
            let waited = wait_up_to(&mut b, Duration::from_secs(2))?;
            match waited {
                Some(_) => say(format!(
                    "  {strategy}: client B was served at once ({} ms), while A was still connected.",
                    started.elapsed().as_millis()
                )),
                None => {
                    say(format!(
                        "  {strategy}: after 2 s client B is still waiting: its connection sits in the listening socket's backlog."
                    ));
                    say("  Client A hangs up now.");
                }
            }
            drop(a_input);
            let _ = a.wait();
            let _ = b.wait();
            if waited.is_none() {
                say(format!(
                    "  {strategy}: client B was served {} ms after it connected, once A was gone.",
                    started.elapsed().as_millis()
                ));
            }
            server.stop();
        }
        explain(&[
            "A blocking server serves one client at a time. The async server (the default) serves",
            "thousands at once on one thread; `--strategy threads` gives each client a thread.",
            "Try the load generator: tcplab simple client 127.0.0.1 PORT --connections 64 --duration 5",
        ]);
        Ok(())
    }

    fn check(&self) -> Result<()> {
        say(
            "`tcplab check` runs someone else's server or client against tcplab and says, for each",
        );
        say("probe, what it saw, the lesson of the lab it breaks, and the fix. Here it grades a");
        say("deliberately buggy client: the lab's own, which sends everything before it reads.");
        let exe = self.exe.to_string_lossy();
        let graded = [
            &exe,
            "uppercase",
            "client",
            "{host}",
            "{port}",
            "{bytes}",
            "--strategy",
            "naive",
        ];
        let mut args = vec!["check", "uppercase", "client", "--timeout", "2", "--"];
        args.extend(graded);
        let checked = self.run_client(&args)?;
        show("check", &checked.stdout);
        if checked.code != Some(1) || !checked.stdout.contains("✗ no deadlock") {
            return Err(anyhow!(
                "tcplab check did not find the deadlock ({}): {}",
                checked.ended(),
                checked.stderr.trim()
            ));
        }
        explain(&[
            "It ran the client at sizes rising ×16 from 64 bytes and saw it freeze at the size",
            "where the kernel's buffers fill, from both ends' queues. Exit status 1: a probe failed.",
            "Grade a student's program: tcplab check uppercase client -- python3 tcp_uppercase.py client {host} {port} {bytes}",
        ]);
        Ok(())
    }

    /// Where `--plots DIR` puts the figure `name`, when it was given.
    fn plot_path(&self, name: &str) -> Option<String> {
        let dir = self.plots.as_ref()?;
        Some(dir.join(name).to_string_lossy().into_owned())
    }

    /// Starts a lines client that has sent `line` and keeps its input open.
    fn lines_client(&self, port: &str, line: &[u8]) -> Result<(Child, std::process::ChildStdin)> {
        let mut child = self
            .command(&["lines", "client", HOST, port])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .context("could not start a lines client")?;
        let mut input = child.stdin.take().expect("stdin is piped");
        input
            .write_all(line)
            .context("could not feed a lines client")?;
        input.flush().context("could not feed a lines client")?;
        Ok((child, input))
    }

    fn command(&self, args: &[&str]) -> Command {
        let shown: Vec<&str> = args
            .iter()
            .map(|a| if a.trim().is_empty() { "\"\"" } else { a })
            .collect();
        say(format!("  $ tcplab {}", shown.join(" ")));
        let mut cmd = Command::new(&self.exe);
        cmd.args(args).stderr(Stdio::inherit());
        cmd
    }

    fn server(&self, args: &[&str]) -> Result<Server> {
        let mut child = self
            .command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("could not start the server")?;
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let mut errors = child.stderr.take().expect("stderr is piped");
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut errors, &mut text);
            text
        });
        let mut first = String::new();
        stdout
            .read_line(&mut first)
            .context("could not read the server's output")?;
        let port = first
            .trim()
            .strip_prefix("Listening at ")
            .and_then(|a| a.rsplit(':').next())
            .map(str::to_string)
            .ok_or_else(|| anyhow!("the demo's server did not start"))?;
        say(format!("  server │ {}", first.trim_end()));
        Ok(Server {
            child,
            stdout,
            stderr,
            port,
        })
    }

    /// Runs a client that may fail, and returns what it did.
    fn run_client(&self, args: &[&str]) -> Result<Finished> {
        let out = self
            .command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .context("could not run the client")?;
        Ok(Finished {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    fn client(&self, args: &[&str], input: &[u8]) -> Result<String> {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("could not start the client")?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        stdin
            .write_all(input)
            .context("could not feed the client")?;
        drop(stdin);
        let out = child
            .wait_with_output()
            .context("could not wait for the client")?;
        if !out.status.success() {
            return Err(anyhow!("the demo's client failed ({})", out.status));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn finish(&self, mut server: Server) -> Result<String> {
        let mut rest = String::new();
        for line in (&mut server.stdout).lines() {
            rest.push_str(&line.context("could not read the server's output")?);
            rest.push('\n');
        }
        let status = server
            .child
            .wait()
            .context("could not wait for the server")?;
        show_stderr(server.stderr);
        if !status.success() {
            return Err(anyhow!("the demo's server failed ({status})"));
        }
        Ok(rest)
    }
}

/// Waits for a child up to `limit`; its status, or None if it is still running.
fn wait_up_to(child: &mut Child, limit: Duration) -> Result<Option<std::process::ExitStatus>> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().context("could not wait for a client")? {
            return Ok(Some(status));
        }
        if std::time::Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Fails once standard output could not be written.
fn still_printing() -> Result<()> {
    match Console::stdio().failure() {
        Some(failed) => Err(tcplab::Error::Output {
            reason: failed.reason,
        }
        .into()),
        None => Ok(()),
    }
}

fn heading(title: &str) {
    say("");
    say(title);
    say("-".repeat(title.chars().count()));
}

fn show(who: &str, output: &str) {
    for line in output.lines() {
        say(format!("  {who} │ {line}"));
    }
}

fn explain(lines: &[&str]) {
    for line in lines {
        say(format!("  » {line}"));
    }
}

/// The rest of the first line containing `label`, or "?" when absent.
fn after<'a>(output: &'a str, label: &str) -> &'a str {
    output
        .lines()
        .find_map(|l| l.split_once(label).map(|(_, rest)| rest.trim()))
        .unwrap_or("?")
}
