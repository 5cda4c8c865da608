//! The upper-case service, tcplab against tcplab and against raw sockets.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;

use crate::util::{Server, tcplab_run};

fn round_trip(bytes: &str, extra: &[&str]) -> (crate::util::Output, crate::util::Output) {
    let server = Server::tcplab(&["uppercase", "server", "127.0.0.1", "0", "--once"]);
    let port = server.port_arg();
    let mut args = vec!["uppercase", "client", "127.0.0.1", &port, bytes];
    args.extend_from_slice(extra);
    let client = tcplab_run(&args);
    (client, server.wait())
}

#[test]
fn small_transfer_rounds_up_and_verifies() {
    let (client, server) = round_trip("50", &[]);
    client
        .assert_ok()
        .assert_stdout_has("64 bytes sent")
        .assert_stdout_has("The first data received says b'HELLO FOOBAR BYE")
        .assert_stdout_has("64 bytes received")
        .assert_stdout_has("Verified: all 64 bytes came back upper-cased");
    server.assert_ok().assert_stdout_has("64 bytes capitalized");
}

#[test]
fn ten_megabytes_with_each_strategy_and_the_labs_chunk() {
    for extra in [
        &["--strategy", "threads"][..],
        &["--strategy", "nonblocking"][..],
        &["--strategy", "async"][..],
        &["--strategy", "naive"][..],
        &["--chunk", "16"][..],
        &["--chunk", "16", "--strategy", "threads"][..],
        &["--chunk", "16", "--strategy", "nonblocking"][..],
    ] {
        let size = if extra.contains(&"naive") {
            "64K"
        } else {
            "10M"
        };
        let (client, server) = round_trip(size, extra);
        let n = if size == "10M" { 10 << 20 } else { 64 << 10 };
        client
            .assert_ok()
            .assert_stdout_has(&format!("Verified: all {n} bytes came back upper-cased"));
        server
            .assert_ok()
            .assert_stdout_has(&format!("{n} bytes capitalized"));
    }
}

#[test]
fn verbose_server_prints_the_labs_progress_lines() {
    let server = Server::tcplab(&[
        "uppercase",
        "server",
        "127.0.0.1",
        "0",
        "64",
        "--once",
        "-v",
    ]);
    tcplab_run(&["uppercase", "client", "127.0.0.1", &server.port_arg(), "64"]).assert_ok();
    server
        .wait()
        .assert_ok()
        .assert_stdout_has("64 bytes already capitalized");
}

#[test]
fn every_byte_value_passes_through_and_only_ascii_letters_change() {
    let server = Server::tcplab(&["uppercase", "server", "127.0.0.1", "0", "--once"]);
    let sent: Vec<u8> = (0..=255u8).cycle().take(256 * 64).collect();
    let mut s = TcpStream::connect(server.addr).unwrap();
    let writer = {
        let mut s = s.try_clone().unwrap();
        let sent = sent.clone();
        thread::spawn(move || {
            s.write_all(&sent).unwrap();
            s.shutdown(Shutdown::Write).unwrap();
        })
    };
    let mut back = Vec::new();
    s.read_to_end(&mut back).unwrap();
    writer.join().unwrap();
    let want: Vec<u8> = sent.iter().map(u8::to_ascii_uppercase).collect();
    assert_eq!(back.len(), want.len());
    assert!(back == want, "bytes differ from the ASCII upper case");
    server.wait().assert_ok();
}

#[test]
fn a_server_that_answers_wrong_bytes_fails_verification() {
    // A fake server that echoes without capitalizing.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let fake = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        loop {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            s.write_all(&buf[..n]).unwrap();
        }
    });
    let out = tcplab_run(&["uppercase", "client", "127.0.0.1", &port, "32"]);
    fake.join().unwrap();
    out.assert_code(1)
        .assert_one_error_line()
        .assert_stderr_has("verification failed: 4 of 32 bytes matched")
        .assert_stderr_has("first difference is at byte 0");
}

#[test]
fn a_server_that_closes_early_is_reported_with_what_came_back() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let fake = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        // Read the whole request (closing with unread data would reset the
        // connection), answer only the first message, and close.
        let mut buf = [0u8; 64];
        s.read_exact(&mut buf).unwrap();
        s.write_all(b"HELLO FOOBAR BYE").unwrap();
    });
    let out = tcplab_run(&["uppercase", "client", "127.0.0.1", &port, "64"]);
    fake.join().unwrap();
    out.assert_code(1)
        .assert_one_error_line()
        .assert_stderr_has("the server closed after sending back 16 of 64 bytes (48 missing)");
}

/// A client run watched from outside while it goes: its peak resident memory
/// (VmHWM), whether it ever held a file that is deleted or in the temporary
/// directory open (a spool), and what it printed.
struct Watched {
    output: crate::util::Output,
    peak_rss: u64,
    spool: Option<String>,
}

/// Runs `tcplab ARGS...` with `feed` writing its standard input (an endless feed
/// ends when the client closes the pipe); `stop_when` may end the run early, given
/// the standard error so far (the client is then killed).
fn watch_client(
    args: &[&str],
    feed: impl FnOnce(std::process::ChildStdin) + Send + 'static,
    stop_when: impl Fn(&str) -> bool,
) -> Watched {
    use std::io::BufRead;
    use std::process::Stdio;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    let mut child = crate::util::tcplab()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let stdin = child.stdin.take().unwrap();
    let feeder = thread::spawn(move || feed(stdin));
    let mut stdout = child.stdout.take().unwrap();
    let out = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stdout.read_to_end(&mut s);
        s
    });
    let err_text = Arc::new(Mutex::new(String::new()));
    let err = {
        let text = Arc::clone(&err_text);
        let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                let mut t = text.lock().unwrap();
                t.push_str(&line);
                t.push('\n');
            }
        })
    };
    let temp = std::env::temp_dir();
    let (mut peak_rss, mut spool) = (0, None);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status"))
            && let Some(kb) = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak_rss = peak_rss.max(kb * 1024);
        }
        for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))
            .into_iter()
            .flatten()
        {
            let Ok(target) = std::fs::read_link(fd.unwrap().path()) else {
                continue;
            };
            let shown = target.display().to_string();
            if shown.ends_with("(deleted)") || target.starts_with(&temp) {
                spool.get_or_insert(shown);
            }
        }
        let stop = spool.is_some() || stop_when(&err_text.lock().unwrap());
        if stop || started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        thread::sleep(Duration::from_millis(20));
    };
    let _ = feeder.join();
    let stdout_bytes = out.join().unwrap();
    err.join().unwrap();
    let stderr = err_text.lock().unwrap().clone();
    Watched {
        output: crate::util::Output {
            status,
            stdout: String::from_utf8_lossy(&stdout_bytes).into_owned(),
            stdout_bytes,
            stderr,
            what: format!("tcplab {}", args.join(" ")),
        },
        peak_rss,
        spool,
    }
}

/// Writes letters and other bytes into `pipe` until the reader closes it.
fn endless(mut pipe: std::process::ChildStdin) {
    let block: Vec<u8> = b"hello foobar bye, \x00\xff streamed! "
        .iter()
        .copied()
        .cycle()
        .take(1 << 16)
        .collect();
    while pipe.write_all(&block).is_ok() {}
}

#[test]
fn bytes_bound_an_endless_pipe_which_is_streamed_in_bounded_memory_never_spooled() {
    let server = Server::tcplab(&["uppercase", "server", "127.0.0.1", "0"]);
    let port = server.port_arg();
    let run = watch_client(
        &[
            "uppercase",
            "client",
            "127.0.0.1",
            &port,
            "256M",
            "--input",
            "-",
        ],
        endless,
        |_| false,
    );
    run.output
        .assert_ok()
        .assert_stdout_has("Sending up to 268435456 bytes of standard input")
        .assert_stdout_has("Verified: all 268435456 bytes came back upper-cased");
    assert_eq!(run.spool, None, "the input was spooled\n{}", run.output);
    assert!(
        run.peak_rss < 64 << 20,
        "peak RSS {} MiB while streaming 256 MiB\n{}",
        run.peak_rss >> 20,
        run.output
    );
}

#[test]
fn bytes_bound_a_device_exactly_with_each_strategy() {
    let server = Server::tcplab(&["uppercase", "server", "127.0.0.1", "0"]);
    for strategy in crate::util::runnable(["naive", "threads", "nonblocking", "async", "uring"]) {
        // 1M + 5 is not a multiple of 16: with --input, BYTES is exact.
        tcplab_run(&[
            "uppercase",
            "client",
            "127.0.0.1",
            &server.port_arg(),
            "1048581",
            "--input",
            "/dev/zero",
            "--strategy",
            strategy,
        ])
        .assert_ok()
        .assert_stdout_has("Sending up to 1048581 bytes of '/dev/zero'")
        .assert_stdout_has("Verified: all 1048581 bytes");
    }
}

#[test]
fn bytes_bound_a_regular_file_exactly_and_a_shorter_file_is_sent_whole() {
    let dir = std::env::temp_dir().join(format!("tcplab-upper-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("twenty.txt");
    std::fs::write(&input, b"twenty bytes of text").unwrap();
    let server = Server::tcplab(&["uppercase", "server", "127.0.0.1", "0"]);
    let port = server.port_arg();
    let path = input.to_str().unwrap();
    tcplab_run(&[
        "uppercase",
        "client",
        "127.0.0.1",
        &port,
        "5",
        "--input",
        path,
    ])
    .assert_ok()
    .assert_stdout_has(&format!("Sending 5 bytes of '{path}'"))
    .assert_stdout_has("The first data received says b'TWENT'")
    .assert_stdout_has("Verified: all 5 bytes");
    tcplab_run(&[
        "uppercase",
        "client",
        "127.0.0.1",
        &port,
        "1M",
        "--input",
        path,
    ])
    .assert_ok()
    .assert_stdout_has("Verified: all 20 bytes");
}

#[test]
fn an_endless_input_without_bytes_streams_with_progress_until_interrupted() {
    let server = Server::tcplab(&["uppercase", "server", "127.0.0.1", "0"]);
    let port = server.port_arg();
    let run = watch_client(
        &[
            "uppercase",
            "client",
            "127.0.0.1",
            &port,
            "--input",
            "/dev/zero",
            "--progress",
        ],
        drop,
        |stderr| stderr.matches("progress:").count() >= 2,
    );
    assert_eq!(run.spool, None, "the input was spooled\n{}", run.output);
    run.output
        .assert_stdout_has("Sending '/dev/zero' until it ends")
        .assert_stderr_has("progress: 2 s: sent ");
    assert!(
        run.peak_rss < 64 << 20,
        "peak RSS {} MiB\n{}",
        run.peak_rss >> 20,
        run.output
    );
}

#[test]
fn a_trickling_pipe_is_sent_as_it_comes_and_waiting_for_it_is_not_a_stall() {
    let server = Server::tcplab(&["uppercase", "server", "127.0.0.1", "0"]);
    let port = server.port_arg();
    for strategy in crate::util::runnable(["threads", "nonblocking", "async", "uring"]) {
        let run = watch_client(
            &[
                "uppercase",
                "client",
                "127.0.0.1",
                &port,
                "--input",
                "-",
                "--stall-timeout",
                "1",
                "--strategy",
                strategy,
            ],
            |mut pipe| {
                let _ = pipe.write_all(b"first line\n");
                thread::sleep(std::time::Duration::from_millis(2500));
                let _ = pipe.write_all(b"second line\n");
            },
            |_| false,
        );
        run.output
            .assert_ok()
            .assert_stdout_has("Sending standard input until it ends")
            .assert_stdout_has("The first data received says b'FIRST LINE\\n'")
            .assert_stdout_has("Verified: all 23 bytes");
    }
}
