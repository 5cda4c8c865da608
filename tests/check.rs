//! `tcplab check` against servers that are right and servers that each carry one
//! of the lab's bugs: every correct one passes, each buggy one fails on the probe
//! that names its bug and on no unrelated probe.

use std::process::Command;

use crate::util::{Output, Server, tcplab_run};

/// A fixture server from tests/peers/graded.py.
pub(crate) fn graded(args: &[&str]) -> Server {
    let mut cmd = Command::new("python3");
    cmd.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/peers/graded.py"
    ))
    .args(args);
    Server::start(cmd)
}

fn check(service: &str, server: &Server) -> Output {
    tcplab_run(&[
        "check",
        service,
        "server",
        "127.0.0.1",
        &server.addr.port().to_string(),
        "--max-bytes",
        "1M",
    ])
}

/// The names of the probes that failed.
pub(crate) fn failed(out: &Output) -> Vec<String> {
    out.stdout
        .lines()
        .filter_map(|l| l.strip_prefix("✗ "))
        .map(|l| l.split(": ").next().unwrap_or(l).to_string())
        .collect()
}

#[test]
fn tcplabs_own_servers_pass_every_probe_under_each_strategy() {
    for strategy in crate::util::runnable(crate::util::STRATEGIES) {
        for service in ["simple", "uppercase", "lines"] {
            let server = Server::under(strategy, service, &["--quiet"]);
            let out = check(service, &server);
            out.assert_ok();
            assert!(failed(&out).is_empty(), "{strategy} {service}: {out}");
        }
    }
}

#[test]
fn correct_student_servers_pass_every_probe() {
    for service in ["simple", "uppercase"] {
        let server = graded(&[service, "0"]);
        let out = check(service, &server);
        out.assert_ok();
        assert!(failed(&out).is_empty(), "{service}: {out}");
        if service == "uppercase" {
            out.assert_stdout_has("one at a time: a second client waited");
        }
    }
}

#[test]
fn a_simple_server_without_receive_all_fails_on_the_pieces_probe_only() {
    let server = graded(&["simple", "0", "--bug", "recv16"]);
    let out = check("simple", &server);
    out.assert_code(1)
        .assert_stderr_has("3 of 4 probes passed (1 failed)");
    assert_eq!(
        failed(&out),
        ["16 octets sent in pieces with pauses (receive-all)"],
        "{out}"
    );
    out.assert_stdout_has("lesson: TCP is a stream, not messages")
        .assert_stdout_has("fix: receive in a loop until all 16 octets have come");
}

#[test]
fn the_labs_ascii_decoding_server_fails_on_the_byte_values_and_the_client_after() {
    let server = graded(&["uppercase", "0", "--bug", "ascii"]);
    let out = check("uppercase", &server);
    out.assert_code(1);
    assert_eq!(
        failed(&out),
        [
            "every byte value 0-255 (only a-z may change)",
            "a second client after the byte-value probe",
        ],
        "{out}"
    );
    out.assert_stdout_has("decodes each chunk as ASCII");
}

#[test]
fn check_json_is_gradescopes_autograder_format() {
    let server = graded(&["simple", "0", "--bug", "recv16"]);
    let out = tcplab_run(&[
        "check",
        "simple",
        "server",
        "127.0.0.1",
        &server.addr.port().to_string(),
        "--json",
    ]);
    out.assert_code(1);
    let results: serde_json::Value = serde_json::from_str(&out.stdout).expect("one JSON object");
    let keys = |v: &serde_json::Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&results), ["max_score", "score", "tests"]);
    assert_eq!(results["max_score"], 4.0);
    assert_eq!(results["score"], 3.0);
    let tests = results["tests"].as_array().unwrap();
    assert_eq!(tests.len(), 4);
    for test in tests {
        assert_eq!(
            keys(test),
            ["max_score", "name", "output", "score", "status"]
        );
        let status = test["status"].as_str().unwrap();
        assert!(status == "passed" || status == "failed", "{test}");
    }
    assert_eq!(
        tests.iter().filter(|t| t["status"] == "failed").count(),
        1,
        "{results}"
    );
}

#[test]
fn checking_a_port_where_nothing_listens_says_so() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port().to_string()
    };
    tcplab_run(&["check", "simple", "server", "127.0.0.1", &port])
        .assert_code(1)
        .assert_one_error_line()
        .assert_stderr_has("connection refused");
}

/// The fixture as a COMMAND for `tcplab check … -- COMMAND`.
fn graded_command(service: &str, bug: Option<&str>) -> Vec<String> {
    let mut args = vec![
        "python3".to_string(),
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/graded.py").to_string(),
        service.to_string(),
        "{port}".to_string(),
    ];
    if let Some(bug) = bug {
        args.extend(["--bug".to_string(), bug.to_string()]);
    }
    args
}

fn check_command(service: &str, command: &[String]) -> Output {
    let mut args = vec![
        "check",
        service,
        "server",
        "--max-bytes",
        "1M",
        "--timeout",
        "10",
        "--",
    ];
    args.extend(command.iter().map(String::as_str));
    tcplab_run(&args)
}

#[test]
fn a_server_started_from_a_command_is_probed_and_restarted_on_its_port() {
    let out = check_command("simple", &graded_command("simple", None));
    out.assert_ok();
    assert!(failed(&out).is_empty(), "{out}");
    out.assert_stdout_has(
        "✓ restarted on the same port straight after serving clients (SO_REUSEADDR)",
    );
}

#[test]
fn a_server_without_so_reuseaddr_fails_on_the_restart_probe_only() {
    let out = check_command("simple", &graded_command("simple", Some("noreuse")));
    out.assert_code(1);
    assert_eq!(
        failed(&out),
        ["restarted on the same port straight after serving clients (SO_REUSEADDR)"],
        "{out}"
    );
    out.assert_stdout_has("Address already in use")
        .assert_stdout_has("fix: set SO_REUSEADDR on the listening socket before bind()");
}

#[test]
fn a_command_that_does_not_start_or_never_listens_is_one_clear_line() {
    for (command, says) in [
        (
            vec!["no-such-program-for-tcplab", "{port}"],
            "could not be started",
        ),
        (
            vec!["sh", "-c", "echo bye; exit 3", "{port}"],
            "exited (exit status: 3) without listening",
        ),
    ] {
        let command: Vec<String> = command.into_iter().map(String::from).collect();
        check_command("simple", &command)
            .assert_code(1)
            .assert_one_error_line()
            .assert_stderr_has(says);
    }
}

#[test]
fn the_program_and_everything_it_started_are_gone_after_the_check() {
    // A child of the server (a marker `sleep`) in its process group.
    let marker = format!("{}.5", 4000 + std::process::id() % 1000);
    let script = format!(
        "sleep {marker} & exec python3 {} simple {{port}}",
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/graded.py")
    );
    let command: Vec<String> = ["sh", "-c", &script]
        .into_iter()
        .map(String::from)
        .collect();
    check_command("simple", &command).assert_ok();
    let left: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.starts_with(&format!("sleep {marker}")))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

pub(crate) const GRADED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/graded.py");
pub(crate) const LAB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/lab.py");
const TCPLAB: &str = env!("CARGO_BIN_EXE_tcplab");

/// `tcplab check SERVICE ROLE --timeout 3 EXTRA... -- COMMAND...`.
pub(crate) fn check_program(service: &str, role: &str, extra: &[&str], command: &[&str]) -> Output {
    let mut args = vec!["check", service, role, "--timeout", "3"];
    args.extend_from_slice(extra);
    args.push("--");
    args.extend_from_slice(command);
    tcplab_run(&args)
}

#[test]
fn correct_simple_clients_pass_and_each_buggy_one_fails_on_its_probe() {
    let correct: [&[&str]; 3] = [
        &["python3", GRADED, "simple-client", "{port}"],
        &["python3", LAB, "simple", "client", "{host}", "{port}"],
        &[TCPLAB, "simple", "client", "{host}", "{port}"],
    ];
    for command in correct {
        let out = check_program("simple", "client", &[], command);
        out.assert_ok();
        assert!(failed(&out).is_empty(), "{command:?}: {out}");
    }
    // One recv(16): the reply in pieces is cut short, and a reply cut short by the
    // server is taken as if it were whole (the same missing loop, both sides of it).
    let out = check_program(
        "simple",
        "client",
        &[],
        &[
            "python3",
            GRADED,
            "simple-client",
            "{port}",
            "--bug",
            "recv16",
        ],
    );
    out.assert_code(1);
    assert_eq!(
        failed(&out),
        [
            "the reply sent in pieces with pauses (receive-all)",
            "a server that closes after 5 of its 16 octets",
        ],
        "{out}"
    );
    out.assert_stdout_has("its last line: The server said b'Goo'");
    // A loop that never checks for b'': it spins for ever once the server closed.
    let out = check_program(
        "simple",
        "client",
        &[],
        &[
            "python3",
            GRADED,
            "simple-client",
            "{port}",
            "--bug",
            "noeof",
        ],
    );
    out.assert_code(1);
    assert_eq!(
        failed(&out),
        ["a server that closes after 5 of its 16 octets"],
        "{out}"
    );
    out.assert_stdout_has("was still running after 3 s and was killed");
}

const HALF_CLOSE: &str = "half-close (the client shuts down its sending side when done)";

#[test]
fn correct_uppercase_clients_pass_at_every_size_up_to_64_mib() {
    let correct: [&[&str]; 2] = [
        &["python3", GRADED, "uppercase-client", "{port}", "{bytes}"],
        &[TCPLAB, "uppercase", "client", "{host}", "{port}", "{bytes}"],
    ];
    for command in correct {
        let out = check_program("uppercase", "client", &[], command);
        out.assert_ok();
        assert!(failed(&out).is_empty(), "{command:?}: {out}");
        out.assert_stdout_has("right at every size, 64 B … 64.00 MiB");
    }
}

#[test]
fn the_labs_send_everything_client_fails_on_the_deadlock_probe_only() {
    for command in [
        &[
            "python3",
            LAB,
            "uppercase",
            "client",
            "{host}",
            "{port}",
            "{bytes}",
        ][..],
        &[
            TCPLAB,
            "uppercase",
            "client",
            "{host}",
            "{port}",
            "{bytes}",
            "--strategy",
            "naive",
        ],
    ] {
        let out = check_program("uppercase", "client", &[], command);
        out.assert_code(1);
        assert_eq!(
            failed(&out),
            ["no deadlock up to 64.00 MiB (the client reads while it sends)"],
            "{command:?}: {out}"
        );
        out.assert_stdout_has("tcplab's server is blocked sending back")
            .assert_stdout_has("the client's receive queue holds")
            .assert_stdout_has("fix: read while you send");
    }
}

#[test]
fn a_client_that_never_half_closes_fails_on_the_half_close_probe_only() {
    let out = check_program(
        "uppercase",
        "client",
        &["--max-bytes", "1M"],
        &[
            "python3",
            GRADED,
            "uppercase-client",
            "{port}",
            "{bytes}",
            "--bug",
            "nohalfclose",
        ],
    );
    out.assert_code(1);
    assert_eq!(failed(&out), [HALF_CLOSE], "{out}");
    out.assert_stdout_has("froze at 64 B")
        .assert_stdout_has("it never shut down its sending side")
        .assert_stdout_has("fix: call sock.shutdown(socket.SHUT_WR)");
}

#[test]
fn line_servers_must_print_each_line_sent_whatever_the_segments() {
    for command in [
        &["python3", GRADED, "lines", "{port}"][..],
        &[TCPLAB, "lines", "server", "{host}", "{port}"],
    ] {
        let out = check_program("lines", "server", &[], command);
        out.assert_ok();
        assert!(failed(&out).is_empty(), "{command:?}: {out}");
        out.assert_stdout_has("✓ several lines in one segment: 3 lines printed, in order");
    }
    let out = check_program(
        "lines",
        "server",
        &[],
        &["python3", GRADED, "lines", "{port}", "--bug", "recv"],
    );
    out.assert_code(1);
    assert_eq!(
        failed(&out),
        [
            "several lines in one segment",
            "one line split across segments with pauses",
            "a long line (100,000 bytes)",
            "UTF-8 split in the middle of a character",
        ],
        "{out}"
    );
    out.assert_stdout_has("it printed: b'a line split '");
}

#[test]
fn line_clients_must_send_their_input_then_close() {
    for command in [
        &["python3", LAB, "lines", "client", "{host}", "{port}"][..],
        &[TCPLAB, "lines", "client", "{host}", "{port}"],
    ] {
        let out = check_program("lines", "client", &[], command);
        out.assert_ok();
        assert!(failed(&out).is_empty(), "{command:?}: {out}");
    }
    check_program(
        "lines",
        "client",
        &[],
        &["sh", "-c", "echo hello", "{port}"],
    )
    .assert_code(1)
    .assert_one_error_line()
    .assert_stderr_has("(the {host} {port} it was given)");
}

#[test]
fn a_simple_server_must_print_its_socket_names() {
    let out = check_program(
        "simple",
        "server",
        &[],
        &["python3", GRADED, "simple", "{port}", "--bug", "nonames"],
    );
    out.assert_code(1);
    assert_eq!(
        failed(&out),
        ["prints its socket names (where it listens, each connection's peer)"],
        "{out}"
    );
}

#[test]
fn the_labs_simple_server_dies_on_a_client_that_closes_early_and_only_that_probe_fails() {
    let out = check_program(
        "simple",
        "server",
        &[],
        &[
            "python3",
            LAB,
            "simple",
            "server",
            "{host}",
            "{port}",
            "--forever",
        ],
    );
    out.assert_code(1);
    assert_eq!(
        failed(&out),
        ["a client that closes after 5 octets, then a normal client"],
        "{out}"
    );
    out.assert_stdout_has("the server had exited (exit status: 1), its last line: EOFError");
}

#[test]
fn interrupting_a_check_kills_the_program_and_everything_it_started() {
    let marker = format!("{}.25", 5000 + std::process::id() % 1000);
    let script = format!(
        "sleep {marker} & exec python3 {GRADED} uppercase-client {{port}} {{bytes}} --bug nohalfclose"
    );
    let mut child = crate::util::tcplab()
        .args([
            "check",
            "uppercase",
            "client",
            "--timeout",
            "30",
            "--",
            "sh",
            "-c",
            &script,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let leftover = || -> Vec<String> {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            // The sleep itself: tcplab's own command line and sh's hold the words too.
            .filter(|c| c.starts_with(&format!("sleep {marker}")))
            .collect()
    };
    // Until the program is running (bounded).
    for _ in 0..200 {
        if !leftover().is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    assert!(!leftover().is_empty(), "the program never started");
    // kill(1) sends SIGINT, as Ctrl-C would.
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("interrupted"), "{stderr}");
    // SIGKILL is delivered at once, but a process takes a moment to go (bounded).
    for _ in 0..100 {
        if leftover().is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(leftover().is_empty(), "left behind: {:?}", leftover());
}

#[test]
fn a_server_that_keeps_sending_is_read_no_further_than_an_answer() {
    let out = check_program(
        "simple",
        "server",
        &[],
        &["python3", GRADED, "simple", "{port}", "--bug", "flood"],
    );
    out.assert_code(1)
        .assert_stdout_has("it kept sending: tcplab stopped reading after 17 bytes");
}

#[test]
fn servers_of_every_service_without_so_reuseaddr_fail_the_restart() {
    for service in ["uppercase", "lines"] {
        let out = check_program(
            service,
            "server",
            &["--max-bytes", "1M"],
            &["python3", GRADED, service, "{port}", "--bug", "noreuse"],
        );
        out.assert_code(1);
        assert_eq!(
            failed(&out),
            ["restarted on the same port straight after serving clients (SO_REUSEADDR)"],
            "{service}: {out}"
        );
        out.assert_stdout_has("Address already in use");
    }
}

#[test]
fn a_server_that_listens_where_the_probes_cannot_reach_is_one_clear_line() {
    check_program(
        "simple",
        "server",
        &[],
        &["python3", GRADED, "simple", "{port}", "--bug", "v6only"],
    )
    .assert_code(1)
    .assert_one_error_line()
    .assert_stderr_has("only at ::1, where tcplab's probes to 127.0.0.1 cannot reach it");
}

#[test]
fn with_json_a_program_that_cannot_be_checked_still_gets_a_results_file() {
    let out = check_program(
        "simple",
        "server",
        &["--json"],
        &["no-such-program-for-tcplab", "{port}"],
    );
    out.assert_code(1).assert_stderr_has("could not be started");
    let results: serde_json::Value = serde_json::from_str(&out.stdout).expect("one JSON object");
    assert_eq!(results["score"], 0.0);
    assert_eq!(results["max_score"], 1.0);
    assert_eq!(results["tests"][0]["status"], "failed");
    let output = results["tests"][0]["output"].as_str().unwrap();
    assert!(output.contains("could not be started"), "{output}");
}

#[test]
fn probes_that_could_not_be_made_are_not_measured_and_score_nothing() {
    // A client that connects and sends nothing: the later probes cannot be made.
    let silent = [
        "python3",
        "-c",
        "import socket, sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])))",
        "{port}",
    ];
    let out = check_program("simple", "client", &["--json"], &silent);
    out.assert_code(1);
    let results: serde_json::Value = serde_json::from_str(&out.stdout).expect("one JSON object");
    assert_eq!(results["score"], 0.0, "{results}");
    let tests = results["tests"].as_array().unwrap();
    let unmeasured = tests
        .iter()
        .filter(|t| t["output"].as_str().unwrap().starts_with("Not measured: "))
        .count();
    assert_eq!(unmeasured, 2, "{results}");
    let out = check_program("uppercase", "client", &["--max-bytes", "1K"], &silent);
    out.assert_code(1)
        .assert_stdout_has(
            "– no deadlock up to 1.00 KiB (the client reads while it sends): not measured",
        )
        .assert_stderr_has("0 of 3 probes passed (1 failed, 2 not measured)");
}

/// The process group of process `pid` (field 5 of /proc/PID/stat).
fn process_group(pid: &str) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(2).map(String::from)
}

/// The processes of group `pgid`.
fn group_members(pgid: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|pid| pid.parse::<u32>().is_ok() && process_group(pid).as_deref() == Some(pgid))
        .collect()
}

/// Each process's id and arguments.
fn processes() -> Vec<(String, Vec<String>)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let args = String::from_utf8_lossy(&cmdline)
                .split_terminator('\0')
                .map(String::from)
                .collect();
            Some((e.file_name().into_string().ok()?, args))
        })
        .collect()
}

#[test]
fn a_check_killed_with_sigkill_leaves_no_process_of_its_program_behind() {
    // The server under a shell, with a child of its own (a marker `sleep`), all in
    // the program's process group.
    let marker = format!("{}.75", 6000 + std::process::id() % 1000);
    let script = format!("sleep {marker} & exec python3 {GRADED} simple {{port}} {marker}");
    let mut child = crate::util::tcplab()
        .args([
            "check",
            "simple",
            "server",
            "--timeout",
            "10",
            "--",
            "sh",
            "-c",
            &script,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Until the server listens (bounded): its port is in its command line.
    let mut group = None;
    for _ in 0..500 {
        let listening =
            processes()
                .into_iter()
                .find(|(_, args)| match args.iter().position(|a| a == GRADED) {
                    Some(at) => {
                        args[at + 1..].get(2) == Some(&marker)
                            && args[at + 1..]
                                .get(1)
                                .and_then(|p| p.parse().ok())
                                .is_some_and(|port: u16| {
                                    tcplab::observe::table::on_port(port)
                                        .iter()
                                        .any(|row| row.state == "LISTEN")
                                })
                    }
                    None => false,
                });
        if let Some((pid, _)) = listening {
            group = process_group(&pid);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let group = group.expect("the server never listened");
    assert!(
        group_members(&group).len() >= 2,
        "the server and its sleep: {:?}",
        group_members(&group)
    );
    child.kill().unwrap(); // SIGKILL: no handler of tcplab's runs
    child.wait().unwrap();
    // SIGKILL is delivered at once, but a process takes a moment to go (bounded).
    for _ in 0..250 {
        if group_members(&group).is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        group_members(&group).is_empty(),
        "left behind in group {group}: {:?}",
        group_members(&group)
    );
}

/// Kills the processes of `graded.py hold PORT MARKER` left listening by a test.
fn kill_holders(marker: &str) {
    for (pid, args) in processes() {
        if args.iter().any(|a| a == GRADED)
            && args.iter().any(|a| a == "hold")
            && args.last().map(String::as_str) == Some(marker)
        {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
        }
    }
}

#[test]
fn a_server_is_never_graded_against_another_process_on_its_port() {
    // Each time it is started, the program puts another process (a correct
    // server, in a process group of its own) on its port and never listens itself.
    let marker = format!("never-graded-{}", std::process::id());
    let script =
        format!("python3 {GRADED} hold {{port}} {marker}; echo 'no server of mine' >&2; exit 1");
    let out = check_program("simple", "server", &[], &["sh", "-c", &script]);
    kill_holders(&marker);
    out.assert_code(1)
        .assert_one_error_line()
        .assert_stderr_has("never listened on port")
        .assert_stderr_has("another process listens there, and was not probed")
        .assert_stderr_has(": no server of mine");
    assert!(
        !out.stdout.contains('✓') && !out.stdout.contains('✗'),
        "nothing may be graded: {out}"
    );
}

#[test]
fn a_server_whose_port_another_process_took_is_started_again_on_another() {
    // The first time, another process takes its port just before it binds, and it
    // dies with "Address already in use"; then it is a correct server.
    let marker = format!("port-taken-{}", std::process::id());
    let flag = std::env::temp_dir().join(format!("tcplab-check-{marker}"));
    let _ = std::fs::remove_file(&flag);
    let script = format!(
        "test -e {flag} || {{ touch {flag}; python3 {GRADED} hold {{port}} {marker}; }}; exec python3 {GRADED} simple {{port}}",
        flag = flag.display()
    );
    let out = check_program("simple", "server", &[], &["sh", "-c", &script]);
    kill_holders(&marker);
    let _ = std::fs::remove_file(&flag);
    out.assert_ok();
    assert!(failed(&out).is_empty(), "{out}");
    // It printed the probes' own ports: they reached it, not the other process.
    out.assert_stdout_has("✓ prints its socket names");
    assert!(
        !out.stdout.contains("already in use") && !out.stderr.contains("already in use"),
        "the retry is not the user's business: {out}"
    );
}

#[test]
fn six_checks_in_parallel_each_grade_their_own_server_even_on_one_first_port() {
    // As the guide's `xargs -P 6` loop, and every check first given the same port:
    // one program gets it, the five others find it taken and move to free ports.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let checks: Vec<_> = (0..6)
        .map(|_| {
            let port = port.clone();
            std::thread::spawn(move || {
                let mut cmd = crate::util::tcplab();
                cmd.env("TCPLAB_CHECK_PORT", &port).args([
                    "check",
                    "simple",
                    "server",
                    "--timeout",
                    "10",
                    "--",
                    "python3",
                    GRADED,
                    "simple",
                    "{port}",
                ]);
                crate::util::run(cmd)
            })
        })
        .collect();
    for check in checks {
        let out = check.join().unwrap();
        out.assert_ok();
        assert!(failed(&out).is_empty(), "{out}");
        // Only its own program printed the ports of its own probes.
        out.assert_stdout_has("✓ prints its socket names");
    }
}

#[test]
fn the_timeout_bounds_each_connection_attempt_of_a_check() {
    // A listener whose accept queue is full: the kernel drops new handshakes, so a
    // connection attempt gets no answer at all.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    socket.listen(0).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    let _queued = std::net::TcpStream::connect(addr).unwrap();
    tcplab_run(&[
        "check",
        "simple",
        "server",
        "127.0.0.1",
        &addr.port().to_string(),
        "--timeout",
        "1",
    ])
    .assert_code(1)
    .assert_one_error_line()
    .assert_stderr_has(&format!(
        "could not connect to 127.0.0.1:{}: no answer after 1 s",
        addr.port()
    ));
}

#[test]
fn a_command_without_a_port_is_a_usage_error_before_anything_starts() {
    let flag = std::env::temp_dir().join(format!("tcplab-no-port-{}", std::process::id()));
    let touch = format!("touch {}", flag.display());
    for role in ["server", "client"] {
        check_program("simple", role, &[], &["sh", "-c", &touch])
            .assert_code(2)
            .assert_one_error_line()
            .assert_stderr_has(
                "the command never receives a port: put {port} where it takes the port",
            );
        assert!(!flag.exists(), "{role}: the command was run");
    }
}

#[test]
fn a_client_that_never_connects_is_told_the_address_it_was_given() {
    let out = check_program(
        "simple",
        "client",
        &[],
        &["sh", "-c", "echo \"given $0\"", "{port}"],
    );
    out.assert_code(1).assert_one_error_line();
    let port = out
        .stderr
        .split("its last line: given ")
        .nth(1)
        .and_then(|rest| rest.trim().parse::<u16>().ok())
        .unwrap_or_else(|| panic!("the port it was given: {out}"));
    out.assert_stderr_has(&format!(
        "never connected to 127.0.0.1 {port} (the {{host}} {{port}} it was given)"
    ));
}
