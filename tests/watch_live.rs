//! `tcplab watch`'s live view on a real terminal: tmux runs it in a detached
//! 160×50 session while the lab's Python send-everything client freezes against
//! tcplab's upper-case server; the pane shows the connection, both programs and
//! the diagnosis, and q ends the watch with status 0 on a restored screen.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{Server, python_peer};

/// Longest the view may take to show the diagnosis, and to exit after q.
const WAIT: Duration = Duration::from_secs(10);

/// A tmux server of this test's own (its own socket), ended when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    /// `tmux -L SOCKET ARGS...`, with a terminal type tmux accepts.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("tmux");
        cmd.arg("-L")
            .arg(&self.socket)
            .args(args)
            .env("TERM", "xterm-256color")
            .env_remove("TMUX")
            .stdin(Stdio::null());
        cmd
    }

    #[track_caller]
    fn run(&self, args: &[&str]) -> String {
        let out = self
            .command(args)
            .output()
            .unwrap_or_else(|e| panic!("tmux {args:?}: {e}"));
        assert!(
            out.status.success(),
            "tmux {args:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The pane's text now.
    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "watch"])
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self
            .command(&["kill-server"])
            .stderr(Stdio::null())
            .status();
    }
}

/// A peer process, killed when the test ends however it ends.
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// True when tmux runs here; scripts/test installs it.
fn tmux_available() -> bool {
    Command::new("tmux")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Polls the pane until `done` holds for its text, at most [`WAIT`]; the last text.
#[track_caller]
fn wait_for(tmux: &Tmux, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let screen = tmux.screen();
        if done(&screen) {
            return screen;
        }
        assert!(
            Instant::now() < deadline,
            "the live view never showed {what} in {WAIT:?}; the pane:\n{screen}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_live_view_shows_a_frozen_connection_and_its_programs_and_q_quits() {
    if !tmux_available() {
        eprintln!(
            "skipped: tmux is not installed (scripts/test installs it: apt-get install tmux)"
        );
        return;
    }
    let server = Server::of("uppercase", &[]);
    let port = server.port_arg();
    // The handout's freeze: the Python client sends 64 MiB before reading any.
    let mut client = python_peer();
    client
        .args(["uppercase", "client", "127.0.0.1", &port, "67108864"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _client = Peer(client.spawn().expect("python3 starts"));

    let status: PathBuf = std::env::temp_dir().join(format!(
        "tcplab-watch-live-{}-{port}.status",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&status);
    let tmux = Tmux {
        socket: format!("tcplab-test-{}-{port}", std::process::id()),
    };
    // The shell stays after the watch so the pane shows what it left on the
    // main screen, and writes the watch's exit status for the test.
    let script = format!(
        "'{}' watch {port}; echo $? > '{}'; sleep 60",
        env!("CARGO_BIN_EXE_tcplab"),
        status.display()
    );
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "watch",
        "-x",
        "160",
        "-y",
        "50",
        "sh",
        "-c",
        &script,
    ]);

    let id_line = format!("⇄ 127.0.0.1:{port}");
    let screen = wait_for(&tmux, "the connection's diagnosis and both programs", |s| {
        s.contains(&id_line)
            && s.contains("lab.py uppercase client")
            && s.contains("tcplab uppercase server")
            && s.lines().any(|l| l.starts_with("  → "))
            && s.contains("deadlock")
    });
    assert!(
        screen.starts_with(&format!("tcplab watch {port}")),
        "the header names what is watched:\n{screen}"
    );
    assert!(screen.contains("recv ["), "queue bars:\n{screen}");
    assert!(
        screen.contains(&format!("listening 127.0.0.1:{port}")),
        "{screen}"
    );

    tmux.run(&["send-keys", "-t", "watch", "q"]);
    let deadline = Instant::now() + WAIT;
    let code = loop {
        if let Ok(text) = std::fs::read_to_string(&status)
            && !text.trim().is_empty()
        {
            break text.trim().to_string();
        }
        assert!(
            Instant::now() < deadline,
            "tcplab watch did not exit within {WAIT:?} of q; the pane:\n{}",
            tmux.screen()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = std::fs::remove_file(&status);
    assert_eq!(code, "0", "tcplab watch's exit status after q");
    // Back on the main screen: the view is gone and the summary line is there.
    let after = wait_for(&tmux, "the summary on the main screen", |s| {
        s.contains("watched ")
    });
    assert!(
        !after.contains(&id_line),
        "the live view was left on screen:\n{after}"
    );
    drop(server);
}
