//! Every console example in README.md and the guide (docs/src) is run, and what it
//! printed is compared with what the page shows, so an example that drifts from
//! the binary fails CI.
//!
//! A console example is a fenced block whose info string starts with `console`:
//!
//! - `$ COMMAND` runs COMMAND with `sh` in a fresh folder, `tcplab` on its PATH,
//!   standard error merged into standard output; the lines up to the next `$ ` are
//!   what it must print. A last line `? N` says it must exit with N (0 otherwise).
//! - `$ COMMAND &` starts a server in the background: the test waits for its first
//!   line, goes on, and at the end of the block interrupts it (SIGINT) and compares
//!   everything it printed. A port number in its command (1024 or more) is swapped
//!   for a free one throughout the block, and swapped back in what was printed.
//! - In what must be printed, `[..]` stands for any text within a line and a line
//!   `...` for any number of lines: ports, times and rates.
//! - `console,root` runs only as root (else it is counted as skipped);
//!   `console,skip=REASON` never runs and is counted with its reason.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// Longest one command of an example may run.
const LIMIT: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Example {
    file: String,
    line: usize,
    attrs: Vec<String>,
    steps: Vec<Step>,
}

#[derive(Debug, Default)]
struct Step {
    command: String,
    background: bool,
    expected: Vec<String>,
    code: i32,
}

/// The console examples of one Markdown text.
fn parse(file: &str, text: &str) -> Vec<Example> {
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        let Some(info) = line.trim_start().strip_prefix("```console") else {
            continue;
        };
        let attrs = info
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(String::from)
            .collect();
        let mut steps: Vec<Step> = Vec::new();
        for (_, line) in lines.by_ref() {
            if line.trim_start().starts_with("```") {
                break;
            }
            if let Some(command) = line.strip_prefix("$ ") {
                let command = command.trim_end();
                let (command, background) = match command.strip_suffix(" &") {
                    Some(c) => (c, true),
                    None => (command, false),
                };
                steps.push(Step {
                    command: command.to_string(),
                    background,
                    ..Step::default()
                });
            } else if let Some(step) = steps.last_mut() {
                match line.strip_prefix("? ").and_then(|c| c.trim().parse().ok()) {
                    Some(code) => step.code = code,
                    None => step.expected.push(line.trim_end().to_string()),
                }
            }
        }
        out.push(Example {
            file: file.to_string(),
            line: n + 1,
            attrs,
            steps,
        });
    }
    out
}

/// Whether `actual` is what `expected` shows, wildcards and all.
fn matches(expected: &[String], actual: &[String]) -> bool {
    match expected.split_first() {
        None => actual.is_empty(),
        Some((first, rest)) if first == "..." => {
            (0..=actual.len()).any(|skip| matches(rest, &actual[skip..]))
        }
        Some((first, rest)) => actual
            .split_first()
            .is_some_and(|(line, more)| line_matches(first, line) && matches(rest, more)),
    }
}

fn line_matches(pattern: &str, line: &str) -> bool {
    let line = line.trim_end();
    let mut parts = pattern.split("[..]");
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = line.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (i, part) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// A background server of an example, its lines read as they come.
struct Background {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Background {
    fn start(command: &str, dir: &Path) -> Result<Background, String> {
        let mut cmd = shell(&format!("exec {command}"), dir);
        cmd.stdout(Stdio::piped()).process_group(0);
        let mut child = cmd.spawn().map_err(|e| format!("could not start: {e}"))?;
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Background {
            child,
            lines,
            seen: Vec::new(),
        };
        match server.lines.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => server.seen.push(line),
            Err(_) => return Err(format!("`{command}` printed nothing in 20 s")),
        }
        Ok(server)
    }

    /// Interrupts it and returns everything it printed.
    fn stop(mut self) -> Vec<String> {
        let _ = tcplab::sys::interrupt_process_group(self.child.id());
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => break,
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.seen
    }
}

fn shell(script: &str, dir: &Path) -> Command {
    let bin = Path::new(env!("CARGO_BIN_EXE_tcplab"))
        .parent()
        .expect("a folder");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("exec 2>&1; {script}"))
        .current_dir(dir)
        .env("PATH", path)
        .stdin(Stdio::null());
    cmd
}

/// A free port on loopback (bound, then let go).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Runs one foreground command; its lines and exit code.
fn run_command(command: &str, dir: &Path) -> Result<(Vec<String>, i32), String> {
    let mut child = shell(command, dir)
        .stdout(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("could not start: {e}"))?;
    let stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = tcplab::sys::kill_process_group(child.id());
            let _ = child.wait();
            return Err(format!("still running after {} s", LIMIT.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let lines = reader.join().unwrap_or_default();
    Ok((lines, status.code().unwrap_or(-1)))
}

/// Runs an example; what differs, if anything.
fn run(example: &Example) -> Result<(), String> {
    let dir = tempdir();
    let mut ports: Vec<(String, String)> = Vec::new();
    let mut servers: Vec<(usize, Background)> = Vec::new();
    let mut problems = Vec::new();
    let undo = |lines: Vec<String>, ports: &[(String, String)]| -> Vec<String> {
        lines
            .into_iter()
            .map(|l| {
                ports
                    .iter()
                    .fold(l, |l, (doc, real)| replace_number(&l, real, doc))
            })
            .collect()
    };
    for (i, step) in example.steps.iter().enumerate() {
        if step.background {
            for word in step.command.split_whitespace() {
                // PORT, or the port of HOST:PORT (`--metrics 127.0.0.1:9100`).
                let port = word.rsplit(':').next().unwrap_or(word);
                if port.parse::<u16>().is_ok_and(|p| p >= 1024)
                    && !ports.iter().any(|(d, _)| d == port)
                {
                    ports.push((port.to_string(), free_port().to_string()));
                }
            }
        }
        let command = ports.iter().fold(step.command.clone(), |c, (doc, real)| {
            replace_number(&c, doc, real)
        });
        if step.background {
            servers.push((i, Background::start(&command, &dir)?));
            continue;
        }
        let (lines, code) = run_command(&command, &dir).map_err(|e| format!("`{command}`: {e}"))?;
        let lines = undo(lines, &ports);
        if code != step.code || !matches(&step.expected, &lines) {
            problems.push(difference(step, &lines, code));
        }
    }
    for (i, server) in servers {
        let lines = undo(server.stop(), &ports);
        let step = &example.steps[i];
        if !matches(&step.expected, &lines) {
            problems.push(difference(step, &lines, step.code));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    match problems.is_empty() {
        true => Ok(()),
        false => Err(problems.join("\n")),
    }
}

/// `text` with every `number` that is not part of a longer number replaced by `by`.
fn replace_number(text: &str, number: &str, by: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(number) {
        let before = rest[..at].chars().next_back();
        let after = rest[at + number.len()..].chars().next();
        let digit = |c: Option<char>| c.is_some_and(|c| c.is_ascii_digit());
        out.push_str(&rest[..at]);
        out.push_str(if digit(before) || digit(after) {
            number
        } else {
            by
        });
        rest = &rest[at + number.len()..];
    }
    out.push_str(rest);
    out
}

fn difference(step: &Step, actual: &[String], code: i32) -> String {
    format!(
        "$ {}\n--- the page shows (exit {}):\n{}\n--- it printed (exit {code}):\n{}",
        step.command,
        step.code,
        step.expected.join("\n"),
        actual.join("\n")
    )
}

fn tempdir() -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("tcplab-docs-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    dir
}

/// README.md and every page of the guide.
fn pages() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pages = vec![root.join("README.md")];
    let mut dirs = vec![root.join("docs/src")];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                pages.push(path);
            }
        }
    }
    pages.sort();
    pages
}

#[test]
fn every_console_example_in_the_readme_and_the_guide_prints_what_it_shows() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root_user = tcplab::sys::is_root();
    let mut executed = 0;
    let mut skipped: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).expect("a readable page");
        let name = page
            .strip_prefix(root)
            .unwrap_or(&page)
            .display()
            .to_string();
        for example in parse(&name, &text) {
            if let Some(reason) = example.attrs.iter().find_map(|a| a.strip_prefix("skip=")) {
                *skipped.entry(reason.to_string()).or_default() += 1;
                continue;
            }
            if example.attrs.iter().any(|a| a == "root") && !root_user {
                *skipped.entry("needs root".into()).or_default() += 1;
                continue;
            }
            executed += 1;
            if let Err(e) = run(&example) {
                failures.push(format!("{}:{}:\n{e}", example.file, example.line));
            }
        }
    }
    let skipped_total: usize = skipped.values().sum();
    eprintln!("docs examples: {executed} executed, {skipped_total} skipped {skipped:?}");
    assert!(executed > 0, "no console example found");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn examples_are_read_and_matched_by_the_documented_rules() {
    let text = "text\n```console,root\n$ tcplab simple server 127.0.0.1 1060 &\nListening at 127.0.0.1:1060\n...\n$ false\n? 1\n```\n```sh\n$ not an example\n```\n";
    let examples = parse("x.md", text);
    assert_eq!(examples.len(), 1);
    let e = &examples[0];
    assert_eq!(
        (e.line, e.attrs.as_slice()),
        (2, ["root".to_string()].as_slice())
    );
    assert!(e.steps[0].background);
    assert_eq!(e.steps[0].command, "tcplab simple server 127.0.0.1 1060");
    assert_eq!(e.steps[1].code, 1);
    assert!(e.steps[1].expected.is_empty());
    let s = |v: &[&str]| v.iter().map(|l| l.to_string()).collect::<Vec<_>>();
    assert!(matches(&s(&["a [..] c", "..."]), &s(&["a b c", "d", "e"])));
    assert!(matches(&s(&["...", "e"]), &s(&["a", "e"])));
    assert!(!matches(&s(&["a [..] c"]), &s(&["a b d"])));
    assert!(!matches(&s(&["a"]), &s(&["a", "b"])));
    assert!(line_matches("[..]:[..] ms", "127.0.0.1:42 3 ms"));
    assert!(!line_matches("x[..]", "y"));
    assert_eq!(
        replace_number("x 1060 http://h:1060/m 11060 10601", "1060", "4242"),
        "x 4242 http://h:4242/m 11060 10601"
    );
}
