//! `tcplab check ... --each`: a fixture class graded whole — every verdict, the
//! CSV (the same twice apart from times), each results format against its
//! documented names, Ctrl-C, and nothing left running. The hostile submissions and
//! the fork bomb need the real sandbox: those tests say why they skip without it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::check::GRADED;
use crate::util::{Output, run, tcplab};

/// The command every submission is graded with.
const COMMAND: [&str; 3] = ["python3", "{dir}/tcp_simple.py", "{port}"];

/// A fresh directory of its own for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tcplab-batch-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A submission: graded.py and a tcp_simple.py that runs it with `bug`, or, with
/// `body`, a tcp_simple.py of its own (graded.py beside it).
fn submission(class: &Path, name: &str, bug: Option<&str>, body: Option<&str>) -> PathBuf {
    let dir = class.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(GRADED, dir.join("graded.py")).unwrap();
    let bug = bug.map_or(String::new(), |b| format!(", \"--bug\", \"{b}\""));
    let serve = format!(
        "import os, runpy, sys\n\
         sys.argv = [sys.argv[0], \"simple\", sys.argv[1]{bug}]\n\
         runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), \"graded.py\"), run_name=\"__main__\")\n"
    );
    let text = match body {
        Some(body) => format!("{body}\n{serve}"),
        None => serve,
    };
    std::fs::write(dir.join("tcp_simple.py"), text).unwrap();
    dir
}

/// The simple server's bugs in tests/peers/graded.py, each with the probe that
/// must fail for it.
const BUGS: [(&str, &str); 8] = [
    (
        "recv16",
        "16 octets sent in pieces with pauses (receive-all)",
    ),
    (
        "noreuse",
        "restarted on the same port straight after serving clients (SO_REUSEADDR)",
    ),
    (
        "nonames",
        "prints its socket names (where it listens, each connection's peer)",
    ),
    ("noclose", "the exact exchange"),
    ("hangsecond", "two clients in a row"),
    ("flood", "the exact exchange"),
    ("v6only", ""),
    (
        "escapes",
        "prints its socket names (where it listens, each connection's peer)",
    ),
];

/// The fixture class that runs without a sandbox: correct, each bug, a crasher,
/// a hang, a flooder of output, a directory without the program, one too large.
fn class(root: &Path) -> PathBuf {
    let class = root.join("submissions");
    submission(&class, "correct", None, None);
    for (bug, _) in BUGS {
        submission(&class, &format!("bug-{bug}"), Some(bug), None);
    }
    submission(
        &class,
        "crasher",
        None,
        Some("raise RuntimeError('crashed on purpose')"),
    );
    submission(&class, "hang", None, Some("import time\ntime.sleep(3600)"));
    submission(
        &class,
        "flooder",
        None,
        Some(
            "import threading\n\
             def flood():\n    line = 'x' * 65536 + '\\n'\n    while True:\n        sys.stderr.write(line)\n\
             threading.Thread(target=flood, daemon=True).start()",
        ),
    );
    std::fs::create_dir_all(class.join("empty")).unwrap();
    std::fs::write(class.join("empty/README"), "forgot to hand it in\n").unwrap();
    let big = submission(&class, "too-big", None, None);
    std::fs::write(big.join("core"), vec![0u8; 3 << 20]).unwrap();
    class
}

/// `tcplab check simple server --each CLASS/*/ EXTRA -- COMMAND`, its scratch
/// directories under `root`.
fn grade(root: &Path, class: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut cmd = tcplab();
    let glob = format!("{}/*/", class.display());
    cmd.args(["check", "simple", "server", "--each", &glob, "--out"])
        .arg(out)
        .args(["--timeout", "2", "--max-size", "1M", "--jobs", "4"])
        .args(extra)
        .args(match extra.contains(&"--time-limit") {
            true => vec![],
            // Generous, so that a loaded machine times no one out.
            false => vec!["--time-limit", "90"],
        })
        .arg("--")
        .args(COMMAND)
        .env("TMPDIR", root);
    run(cmd)
}

/// A minimal CSV reader: fields, quoted with doubled quotes where needed.
fn csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for line in text.lines() {
        let mut fields = Vec::new();
        let mut field = String::new();
        let (mut quoted, mut chars) = (false, line.chars().peekable());
        while let Some(c) = chars.next() {
            match (c, quoted) {
                ('"', true) if chars.peek() == Some(&'"') => {
                    field.push('"');
                    chars.next();
                }
                ('"', _) => quoted = !quoted,
                (',', false) => fields.push(std::mem::take(&mut field)),
                (c, _) => field.push(c),
            }
        }
        fields.push(field);
        rows.push(fields);
    }
    rows
}

/// Processes whose command line names `marker` (nothing of a batch may outlive it).
fn running_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(marker) {
                found.push(cmdline);
            }
        }
    }
    found
}

/// Waits up to a few seconds for every process naming `marker` to be gone.
#[track_caller]
fn assert_none_left(marker: &str) {
    let until = Instant::now() + Duration::from_secs(5);
    while !running_with(marker).is_empty() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(running_with(marker), Vec::<String>::new(), "left running");
}

#[test]
fn a_class_gets_every_verdict_right_and_the_same_csv_twice() {
    let root = scratch("class");
    let class = class(&root);
    let out = root.join("results");
    let first = grade(&root, &class, &out, &["--no-sandbox"]);
    first.assert_ok();
    let marker = root.display().to_string();
    assert_none_left(&format!("{marker}/tcplab-batch-"));
    let table = csv(&std::fs::read_to_string(out.join("summary.csv")).unwrap());
    let header = &table[0];
    let at = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name}: {header:?}"))
    };
    let row = |name: &str| {
        table
            .iter()
            .find(|r| r[0] == name)
            .unwrap_or_else(|| panic!("no row {name}: {first}"))
    };
    let (score, max, reason) = (at("score"), at("max_score"), at("reason"));
    // One row per submission, sorted by name.
    let names: Vec<&str> = table[1..].iter().map(|r| r[0].as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert_eq!(names.len(), 14, "{first}");
    assert!(table.iter().all(|r| r.len() == header.len()), "{table:?}");
    let correct = row("correct");
    assert_eq!(correct[score], correct[max], "{correct:?}\n{first}");
    assert_eq!(correct[reason], "");
    for (bug, probe) in BUGS {
        let r = row(&format!("bug-{bug}"));
        assert_ne!(r[score], r[max], "{bug} scored full: {r:?}");
        if !probe.is_empty() {
            assert_eq!(
                r[at(&format!("simple server: {probe}"))],
                "fail",
                "{bug}: {r:?}"
            );
        }
    }
    assert!(
        row("bug-v6only")[reason].contains("never listened")
            || row("bug-v6only")[reason].contains("::1"),
        "{:?}",
        row("bug-v6only")
    );
    assert!(
        row("crasher")[reason].contains("exited (exit status: 1) without listening"),
        "{:?}",
        row("crasher")
    );
    // What it printed is in its results file.
    let crasher = std::fs::read_to_string(out.join("crasher/results.json")).unwrap();
    assert!(crasher.contains("crashed on purpose"), "{crasher}");
    assert_eq!(row("crasher")[score], "0");
    // Never listening, it is given the check's 20 s, then named (the time limit is
    // generous here, so that a loaded machine times no one out: see below).
    assert!(
        row("hang")[reason].contains("never listened"),
        "{:?}",
        row("hang")
    );
    assert_eq!(row("empty")[reason], "program not found: tcp_simple.py");
    assert!(
        row("too-big")[reason].starts_with("too large to grade"),
        "{:?}",
        row("too-big")
    );
    // The flooder's output is cut; its answers are still graded.
    assert_eq!(row("flooder")[reason], "", "{:?}", row("flooder"));
    // The class summary: the histogram and the lessons.
    first.assert_stdout_has("14 submissions, 6 graded probes each");
    first.assert_stdout_has("lesson: TCP is a stream, not messages");
    // Twice: the same CSV apart from the seconds.
    let again = grade(&root, &class, &out, &["--no-sandbox"]);
    again.assert_ok();
    let second = csv(&std::fs::read_to_string(out.join("summary.csv")).unwrap());
    let seconds = at("seconds");
    let strip = |t: &[Vec<String>]| -> Vec<Vec<String>> {
        t.iter()
            .map(|r| {
                r.iter()
                    .enumerate()
                    .filter(|(i, _)| *i != seconds)
                    .map(|(_, f)| f.clone())
                    .collect()
            })
            .collect()
    };
    assert_eq!(strip(&table), strip(&second));
    let _ = std::fs::remove_dir_all(&root);
}

/// A small class: one correct, one with a bug, one without its program.
fn small_class(root: &Path) -> PathBuf {
    let class = root.join("submissions");
    submission(&class, "alice", None, None);
    submission(&class, "bob", Some("recv16"), None);
    std::fs::create_dir_all(class.join("carol")).unwrap();
    class
}

fn json_of(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}: {text}", path.display()))
}

#[test]
fn each_format_has_its_documented_names() {
    let root = scratch("formats");
    let class = small_class(&root);
    // Gradescope: score, execution_time, tests[].{name,score,max_score,status,output,visibility}, leaderboard.
    let out = root.join("gradescope");
    grade(&root, &class, &out, &["--no-sandbox"]).assert_ok();
    for name in ["alice", "bob", "carol"] {
        let r = json_of(&out.join(name).join("results.json"));
        assert!(
            r["score"].is_number() && r["execution_time"].is_number(),
            "{r}"
        );
        assert!(r["leaderboard"].is_array(), "{r}");
        for t in r["tests"].as_array().unwrap() {
            for key in [
                "name",
                "score",
                "max_score",
                "status",
                "output",
                "visibility",
            ] {
                assert!(!t[key].is_null(), "{key} missing: {t}");
            }
            assert!(
                ["passed", "failed"].contains(&t["status"].as_str().unwrap()),
                "{t}"
            );
        }
    }
    assert_eq!(json_of(&out.join("alice/results.json"))["score"], 6.0);
    assert_eq!(json_of(&out.join("bob/results.json"))["score"], 5.0);
    // PrairieLearn: score 0..1, gradable, tests[].{name,points,max_points,message,output}.
    let out = root.join("prairielearn");
    grade(
        &root,
        &class,
        &out,
        &["--no-sandbox", "--format", "prairielearn"],
    )
    .assert_ok();
    let bob = json_of(&out.join("bob/results.json"));
    assert_eq!(bob["gradable"], true, "{bob}");
    let score = bob["score"].as_f64().unwrap();
    assert!((score - 5.0 / 6.0).abs() < 1e-9, "{bob}");
    for t in bob["tests"].as_array().unwrap() {
        for key in ["name", "points", "max_points", "message", "output"] {
            assert!(!t[key].is_null(), "{key} missing: {t}");
        }
    }
    assert_eq!(json_of(&out.join("carol/results.json"))["score"], 0.0);
    // JUnit: Python's own parser reads it; one failure for bob.
    let out = root.join("junit");
    grade(&root, &class, &out, &["--no-sandbox", "--format", "junit"]).assert_ok();
    for name in ["alice", "bob", "carol"] {
        let path = out.join(name).join("junit.xml");
        let mut py = Command::new("python3");
        py.args([
            "-c",
            "import sys, xml.etree.ElementTree as E; s = E.parse(sys.argv[1]).getroot(); print(s.tag, s.get('tests'), s.get('failures'), len(s.findall('testcase')))",
        ])
        .arg(&path);
        let parsed = run(py);
        parsed.assert_ok();
        let want = match name {
            "alice" => "testsuite 6 0 6",
            "bob" => "testsuite 6 1 6",
            _ => "testsuite 6 6 6",
        };
        assert_eq!(parsed.stdout.trim(), want, "{name}: {parsed}");
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_submission_over_its_time_limit_is_timed_out_and_keeps_nothing_running() {
    let root = scratch("limit");
    let class = root.join("submissions");
    submission(&class, "hang", None, Some("import time\ntime.sleep(3600)"));
    let out = root.join("out");
    grade(&root, &class, &out, &["--no-sandbox", "--time-limit", "2"]).assert_ok();
    let table = csv(&std::fs::read_to_string(out.join("summary.csv")).unwrap());
    let reason = table[0].iter().position(|h| h == "reason").unwrap();
    assert_eq!(table[1][reason], "timed out", "{table:?}");
    assert_none_left(&format!("{}/tcplab-batch-", root.display()));
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn an_empty_glob_is_a_usage_error() {
    let root = scratch("empty");
    let out = grade(
        &root,
        &root.join("nothing-here"),
        &root.join("out"),
        &["--no-sandbox"],
    );
    out.assert_code(2);
    out.assert_stderr_has("no directory matches");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn ctrl_c_stops_every_check_and_still_writes_the_csv() {
    let root = scratch("interrupt");
    let class = root.join("submissions");
    submission(&class, "a-correct", None, None);
    for n in 0..3 {
        submission(
            &class,
            &format!("hang-{n}"),
            None,
            Some("import time\ntime.sleep(3600)"),
        );
    }
    let out = root.join("out");
    let mut cmd = tcplab();
    cmd.args([
        "check",
        "simple",
        "server",
        "--no-sandbox",
        "--jobs",
        "2",
        "--each",
    ])
    .arg(format!("{}/*/", class.display()))
    .arg("--out")
    .arg(&out)
    .arg("--")
    .args(COMMAND)
    .env("TMPDIR", &root)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    // Once the correct one is graded (its private copy gone), while a hang is
    // still waited for.
    let copy = root
        .join(format!("tcplab-batch-{}", child.id()))
        .join("0-a-correct");
    let until = Instant::now() + Duration::from_secs(30);
    let mut seen = false;
    while Instant::now() < until {
        match (seen, copy.exists()) {
            (false, true) => seen = true,
            (true, false) => break,
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let until = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < until, "the batch did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130));
    let table = csv(&std::fs::read_to_string(out.join("summary.csv")).unwrap());
    let reason = table[0].iter().position(|h| h == "reason").unwrap();
    assert_eq!(table[1][0], "a-correct");
    assert_eq!(table[1][reason], "", "{table:?}");
    for row in &table[2..] {
        assert_eq!(
            row[reason], "not graded: the batch was stopped",
            "{table:?}"
        );
    }
    assert_none_left(&format!("{}/tcplab-batch-", root.display()));
    let _ = std::fs::remove_dir_all(&root);
}

/// The batch with its sandbox, or `None` (the reason printed) when this machine
/// cannot run one (no bubblewrap, user namespaces disabled, or the sandbox not
/// built in).
fn sandboxed(root: &Path, class: &Path, out: &Path) -> Option<Output> {
    let graded = grade(root, class, out, &[]);
    if graded.code() == 2 && graded.stderr.contains("cannot sandbox") {
        eprintln!("skipped: {}", graded.stderr.trim());
        return None;
    }
    Some(graded)
}

#[test]
fn no_hostile_submission_succeeds_in_its_sandbox() {
    let root = scratch("hostile");
    let class = root.join("submissions");
    let secret = root.join("secret.txt");
    std::fs::write(&secret, "THE-ANSWERS\n").unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    submission(&class, "correct", None, None);
    let sibling = class.join("correct").join("pwned");
    // Each tries its action; when it succeeds it says so and never serves.
    submission(
        &class,
        "reads-outside",
        None,
        Some(&format!(
            "try:\n    print('LEAKED', open({:?}).read(), flush=True)\n    sys.exit(3)\nexcept OSError:\n    pass",
            secret.display().to_string()
        )),
    );
    submission(
        &class,
        "connects-to-host",
        None,
        Some(&format!(
            "import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'pwned')\n    sys.exit(3)\nexcept OSError:\n    pass"
        )),
    );
    submission(
        &class,
        "writes-sibling",
        None,
        Some(&format!(
            "try:\n    open({:?}, 'w').write('pwned')\n    sys.exit(3)\nexcept OSError:\n    pass",
            sibling.display().to_string()
        )),
    );
    // Bounded at 1,000 children all the same, so that a sandbox whose process limit
    // is missing cannot take the test machine down.
    submission(
        &class,
        "fork-bomb",
        None,
        Some(
            "import os, time\nkids = 0\nwhile kids < 1000:\n    try:\n        if os.fork() == 0:\n            time.sleep(30)\n            os._exit(0)\n        kids += 1\n    except OSError:\n        break\nprint('forked', kids, flush=True)",
        ),
    );
    let out = root.join("out");
    let Some(graded) = sandboxed(&root, &class, &out) else {
        let _ = std::fs::remove_dir_all(&root);
        return;
    };
    graded.assert_ok();
    let table = csv(&std::fs::read_to_string(out.join("summary.csv")).unwrap());
    let at = |name: &str| table[0].iter().position(|h| h == name).unwrap();
    for row in &table[1..] {
        // Every hostile action failed: each served as the correct one does.
        if row[0] != "fork-bomb" {
            assert_eq!(row[at("score")], row[at("max_score")], "{row:?}\n{graded}");
        }
    }
    assert!(
        !sibling.exists(),
        "a submission wrote into its sibling's directory"
    );
    assert!(
        listener.accept().is_err(),
        "a submission reached the host's loopback"
    );
    for entry in std::fs::read_dir(&out).unwrap().flatten() {
        let results = entry.path().join("results.json");
        if let Ok(text) = std::fs::read_to_string(results) {
            assert!(
                !text.contains("THE-ANSWERS"),
                "a submission read outside: {text}"
            );
        }
    }
    // The fork bomb was stopped by the process limit, and nothing of it is left.
    assert_none_left("/submission/tcp_simple.py");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn batch_grading_never_falls_back_to_running_unsandboxed() {
    let root = scratch("nosandbox");
    let class = small_class(&root);
    let graded = grade(&root, &class, &root.join("out"), &[]);
    match graded.code() {
        // No sandbox here: one line, exit 2, nothing graded.
        2 => {
            graded.assert_stderr_has("cannot sandbox the submissions");
            assert!(!root.join("out").join("summary.csv").exists());
        }
        _ => {
            graded.assert_ok();
        }
    }
    let _ = std::fs::remove_dir_all(&root);
}
