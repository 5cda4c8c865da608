//! `tcplab demo CHAPTER`: each chapter runs alone and shows what it claims; the
//! deadlock chapter's figures carry all four queues and the stall.

use crate::util::tcplab_run;

#[test]
fn demo_list_names_every_chapter_and_an_unknown_one_is_a_usage_error() {
    let out = tcplab_run(&["demo", "--list"]);
    out.assert_ok();
    for name in [
        "simple",
        "refused",
        "interfaces",
        "reuseaddr",
        "uppercase",
        "half-close",
        "stream",
        "lines",
        "json",
        "deadlock",
        "watch",
        "many-clients",
        "completion",
        "check",
        "packets-handshake",
        "packets-refused",
        "packets-segments",
        "packets-loss",
        "packets-deadlock",
    ] {
        assert!(
            out.stdout
                .lines()
                .any(|l| l.starts_with(&format!("{name} "))),
            "{name} is not listed:\n{out}"
        );
    }
    tcplab_run(&["demo", "nosuch"])
        .assert_code(2)
        .assert_one_error_line();
    tcplab_run(&["demo", "stream", "--plots", "/tmp"])
        .assert_code(2)
        .assert_stderr_has("--plots writes the deadlock chapter's figures");
}

#[test]
fn refused_chapter_shows_connect_refused_by_the_kernel() {
    tcplab_run(&["demo", "refused"])
        .assert_ok()
        .assert_stdout_has("client │ connection refused: no server listens at 127.0.0.1:")
        .assert_stdout_has("(exit code 1)")
        .assert_stdout_has("(ConnectionRefused)")
        .assert_stdout_has("This step behaved as the lab says");
}

#[test]
fn interfaces_chapter_refuses_the_other_address_and_blank_takes_both() {
    let out = tcplab_run(&["demo", "interfaces"]);
    out.assert_ok()
        .assert_stdout_has("server │ Listening at 127.0.0.2:")
        .assert_stdout_has("server │   Socket name: 127.0.0.2:");
    let refused = out
        .stdout
        .matches("connection refused: no server listens at 127.0.0.1:");
    assert_eq!(refused.count(), 1, "{out}");
    // Bound to "": one connection through each address.
    let (_, blank) = out
        .stdout
        .split_once("Listening at [::]:")
        .expect("a blank-host server");
    assert!(blank.contains("Socket name: 127.0.0.2:"), "{out}");
    assert!(blank.contains("Socket name: 127.0.0.1:"), "{out}");
}

#[test]
fn reuseaddr_chapter_fails_in_use_then_restarts_with_it() {
    let out = tcplab_run(&["demo", "reuseaddr"]);
    out.assert_ok()
        .assert_stdout_has("TIME_WAIT (for another")
        .assert_stdout_has("--no-reuseaddr\n  server │ address 127.0.0.1:")
        .assert_stdout_has("is already in use: without SO_REUSEADDR")
        .assert_stdout_has("The restart on the same port succeeded");
    // The successful restart then served a client.
    let (_, after) = out
        .stdout
        .split_once("The restart on the same port succeeded")
        .unwrap();
    assert!(
        after.contains("The server said b'Goodbye for now!'"),
        "{out}"
    );
}

#[test]
fn half_close_chapter_verifies_then_names_the_stall_without_it() {
    let out = tcplab_run(&["demo", "half-close"]);
    out.assert_ok()
        .assert_stdout_has("Verified: all 65536 bytes came back upper-cased")
        .assert_stdout_has("never shut down its sending side (--no-half-close)")
        .assert_stdout_has("(exit code 3)");
}

#[test]
fn stream_chapter_reads_tcp_in_other_sizes_and_udp_whole() {
    let out = tcplab_run(&["demo", "stream"]);
    out.assert_ok()
        .assert_stdout_has("TCP │ 16 writes of 16 bytes → 1 read of [256] bytes")
        .assert_stdout_has(&format!(
            "UDP │ 16 datagrams of 16 bytes → 16 reads of {:?} bytes",
            [16; 16]
        ))
        // The server's read sizes for the lab's 16-byte messages are not 16.
        .assert_stdout_has("65536 bytes capitalized");
    let reads = out
        .stdout
        .lines()
        .find(|l| l.contains("65536 bytes capitalized"))
        .unwrap();
    assert!(!reads.contains("min/median/max 16/16/16"), "{out}");
}

#[test]
fn json_chapter_reports_the_invalid_line_by_number_and_goes_on() {
    let out = tcplab_run(&["demo", "json"]);
    out.assert_ok()
        .assert_stdout_has("server ! 127.0.0.1:")
        .assert_stdout_has(": line 3: invalid JSON (")
        .assert_stdout_has(r#"server │ {"n":[1,2,3],"split":"across two segments"}"#)
        .assert_stdout_has(r#"server │ [4,"after the invalid line: the connection goes on"]"#)
        .assert_stdout_has("4 lines; socket closed");
}

#[test]
fn deadlock_plot_carries_four_queues_the_buffers_and_the_stall() {
    let dir = std::env::temp_dir().join(format!("tcplab-plots-{}", std::process::id()));
    let out = tcplab_run(&["demo", "deadlock", "--plots", dir.to_str().unwrap()]);
    out.assert_ok()
        .assert_stdout_has("Each waits for the other: deadlock");
    let deadlock = std::fs::read_to_string(dir.join("deadlock.svg")).expect("deadlock.svg");
    let healthy = std::fs::read_to_string(dir.join("healthy.svg")).expect("healthy.svg");
    for svg in [&deadlock, &healthy] {
        for series in [
            "client send queue (SIOCOUTQ)",
            "client receive queue (SIOCINQ)",
            "server receive queue (Recv-Q)",
            "server send queue (Send-Q)",
            "client SO_SNDBUF",
            "server SO_RCVBUF",
        ] {
            assert!(svg.contains(series), "no {series} in the plot");
        }
    }
    assert!(deadlock.contains("stall: nothing moved from here on"));
    assert!(!healthy.contains("stall: nothing moved"));
    // Sampling adapts: a gigabyte's round trip (far longer than 50 ms) has at least
    // 200 points per series.
    for svg in [&deadlock, &healthy] {
        let longest = svg
            .split("<polyline")
            .skip(1)
            .filter_map(|p| p.split("points=\"").nth(1)?.split('"').next())
            .map(|points| points.split_whitespace().count())
            .max()
            .unwrap_or(0);
        assert!(longest >= 200, "only {longest} points in a series");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn watch_chapter_names_the_python_programs_deadlock_and_both_processes_in_under_15_s() {
    let started = std::time::Instant::now();
    let out = tcplab_run(&["demo", "watch"]);
    let took = started.elapsed();
    out.assert_ok()
        .assert_stdout_has("tcplab watch 1234")
        .assert_stdout_has("$ python3 lab.py uppercase client 127.0.0.1 ")
        .assert_stdout_has(" 67108864")
        .assert_stdout_has("(exit code 3)")
        .assert_stdout_has("The two frozen scripts are killed");
    // Real Python processes: the client that reads while it sends is healthy...
    let healthy = out
        .stdout
        .lines()
        .find(|l| l.contains("watch │") && l.contains(" healthy "))
        .unwrap_or_else(|| panic!("no healthy line\n{out}"));
    for program in ["lab_uppercase_client.py", "lab.py uppercase server"] {
        assert!(healthy.contains(program), "{program} not named: {healthy}");
    }
    // ...and, frozen, a deadlock naming both, by command line and pid.
    let deadlock = out
        .stdout
        .lines()
        .find(|l| l.contains("watch │") && l.contains(" deadlock "))
        .unwrap_or_else(|| panic!("no deadlock line\n{out}"));
    for program in ["lab.py uppercase client", "lab.py uppercase server"] {
        assert!(
            deadlock.contains(program),
            "{program} not named: {deadlock}"
        );
    }
    assert!(deadlock.matches("(pid ").count() >= 2, "{deadlock}");
    assert!(
        out.stdout.contains("watch │ watched ") && out.stdout.contains("stall (deadlock at"),
        "{out}"
    );
    assert!(took < std::time::Duration::from_secs(15), "took {took:?}");
}

#[test]
fn no_half_close_stalls_under_every_strategy_and_is_named() {
    let server = crate::util::Server::tcplab(&["uppercase", "server", "127.0.0.1", "0"]);
    for strategy in crate::util::runnable(["naive", "threads", "nonblocking", "async", "uring"]) {
        let out = tcplab_run(&[
            "uppercase",
            "client",
            "127.0.0.1",
            &server.port_arg(),
            "64K",
            "--strategy",
            strategy,
            "--no-half-close",
            "--stall-timeout",
            "1",
            "--json",
        ]);
        out.assert_code(3)
            .assert_stderr_has("never shut down its sending side");
        let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(report["diagnosis"]["kind"], "no_end_of_stream", "{out}");
        assert_eq!(report["bytes_received"], 65536, "{out}");
        assert_eq!(report["verified"], false, "{out}");
    }
    // With the half-close, the same server verifies the same bytes.
    tcplab_run(&[
        "uppercase",
        "client",
        "127.0.0.1",
        &server.port_arg(),
        "64K",
    ])
    .assert_ok();
}

/// `--plots DIR` is checked before any step runs: a directory the figures cannot be
/// written into, or something that is not a directory, is one line and exit 2 (the
/// deadlock chapter used to run and then fail with "exited with Some(1)").
#[test]
fn demo_plots_where_figures_cannot_be_written_is_refused_before_any_step() {
    let file = std::env::temp_dir().join(format!("tcplab-plots-file-{}", std::process::id()));
    std::fs::write(&file, b"").unwrap();
    let file_text = file.to_str().unwrap().to_string();
    for (dir, reason) in [
        ("/proc", "the figures cannot be written there"),
        (file_text.as_str(), "it is not a directory"),
    ] {
        for args in [
            &["demo", "deadlock", "--plots", dir][..],
            &["demo", "--plots", dir],
        ] {
            let out = tcplab_run(args);
            out.assert_code(2)
                .assert_one_error_line()
                .assert_stderr_has(&format!("tcplab: --plots '{dir}': {reason}"));
            assert!(!out.stderr.contains("Some("), "{out}");
            assert!(out.stdout.is_empty(), "a step ran:\n{out}");
        }
    }
    let _ = std::fs::remove_file(&file);
}

/// `--plots DIR` creates DIR itself, not a whole missing path: a missing parent (a
/// typo, most likely) is one line, and nothing is created.
#[test]
fn demo_plots_creates_only_the_last_directory() {
    let top = std::env::temp_dir().join(format!("tcplab-plots-typo-{}", std::process::id()));
    let dir = top.join("figures").join("deadlock");
    let out = tcplab_run(&["demo", "deadlock", "--plots", dir.to_str().unwrap()]);
    out.assert_code(2)
        .assert_one_error_line()
        .assert_stderr_has(&format!(
            "there is no directory '{}'",
            top.join("figures").display()
        ));
    assert!(out.stdout.is_empty(), "a step ran:\n{out}");
    assert!(!top.exists(), "{} was created", top.display());
}

/// The system calls a server made per transaction, from the chapter's row for it.
fn syscalls_per_transaction(out: &str, strategy: &str) -> Option<f64> {
    let row = out
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{strategy}: ")))?;
    let before = row.split(" system calls at the server").next()?;
    before.rsplit(' ').next()?.parse().ok()
}

#[test]
fn completion_chapter_counts_each_servers_system_calls_per_transaction() {
    let out = tcplab_run(&["demo", "completion"]);
    out.assert_ok();
    for strategy in ["blocking", "async"] {
        assert!(
            out.stdout.contains(&format!("{strategy}: 16M round trip ")),
            "{strategy}: no row\n{out}"
        );
    }
    if out.stdout.contains("are not counted") {
        eprintln!("skipped: neither perf nor strace is installed");
        return;
    }
    // recv() and send(): the blocking server's two calls per transaction, and the
    // async server's extra epoll_wait().
    let blocking = syscalls_per_transaction(&out.stdout, "blocking").expect("blocking counted");
    let r#async = syscalls_per_transaction(&out.stdout, "async").expect("async counted");
    assert!((1.9..2.3).contains(&blocking), "blocking {blocking}\n{out}");
    assert!(
        r#async > blocking,
        "async {async} vs blocking {blocking}\n{out}"
    );
    if let Some(uring) = syscalls_per_transaction(&out.stdout, "uring") {
        assert!(uring < r#async, "uring {uring} vs async {async}\n{out}");
    }
}
