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
    ("recv16", "16 octets sent in pieces with pauses (receive-all)"),
    ("noreuse", "restarted on the same port straight after serving clients (SO_REUSEADDR)"),
    ("nonames", "prints its socket names (where it listens, each connection's peer)"),
    ("noclose", "the exact exchange"),
    ("hangsecond", "two clients in a row"),
    ("flood", "the exact exchange"),
    ("v6only", ""),
    ("escapes", "prints its socket names (where it listens, each connection's peer)"),
];

/// The fixture class that runs without a sandbox: correct, each bug, a crasher,
/// a hang, a flooder of output, a directory without the program, one too large.
fn class(root: &Path) -> PathBuf {
    let class = root.join("submissions");
    submission(&class, "correct", None, None);
    for (bug, _) in BUGS {
        submission(&class, &format!("bug-{bug}"), Some(bug), None);
    }
    submission(&class, "crasher", None, Some("raise RuntimeError('crashed on purpose')"));
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
        .args(["--timeout", "2", "--time-limit", "12", "--max-size", "1M", "--jobs", "4"])
        .args(extra)
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
    let at = |name: &str| header.iter().position(|h| h == name).unwrap_or_else(|| panic!("no column {name}: {header:?}"));
    let row = |name: &str| table.iter().find(|r| r[0] == name).unwrap_or_else(|| panic!("no row {name}: {first}"));
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
            assert_eq!(r[at(&format!("simple server: {probe}"))], "fail", "{bug}: {r:?}");
        }
    }
    assert!(row("bug-v6only")[reason].contains("never listened") || row("bug-v6only")[reason].contains("::1"), "{:?}", row("bug-v6only"));
    assert!(row("crasher")[reason].contains("crashed on purpose"), "{:?}", row("crasher"));
    assert_eq!(row("crasher")[score], "0");
    assert_eq!(row("hang")[reason], "timed out");
    assert_eq!(row("empty")[reason], "program not found: tcp_simple.py");
    assert!(row("too-big")[reason].starts_with("too large to grade"), "{:?}", row("too-big"));
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
            .map(|r| r.iter().enumerate().filter(|(i, _)| *i != seconds).map(|(_, f)| f.clone()).collect())
            .collect()
    };
    assert_eq!(strip(&table), strip(&second));
    let _ = std::fs::remove_dir_all(&root);
}
