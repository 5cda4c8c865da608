//! `tcplab check ... --each GLOB`: grades every submission directory the glob
//! names, each in its own sandbox, `--jobs` at once, with a progress bar; writes a
//! results file per submission and `summary.csv` under `--out`, and prints the
//! class summary. Ctrl-C stops every check running and still writes what finished,
//! the rest "not graded".

use std::path::{Path, PathBuf};
use std::time::Duration;

use tcplab::check::batch::{self, Plan, Row};
use tcplab::check::{CheckOptions, probe_client, probe_server, sandbox};
use tcplab::report::batch::{self as render, Column};
use tcplab::server::Service;
use tcplab::sink::{Counter as _, When};

use super::args::{BatchFormat, CheckArgs, CheckRole};
use super::console::Console;
use super::progress::Counter;
use super::signals;

/// Grades the class; `service` and `role` are the check's.
pub fn run(
    asked: CheckArgs,
    service: Service,
    role: &'static str,
    console: &Console,
) -> tcplab::Result<()> {
    let pattern = asked.each.clone().unwrap_or_default();
    let submissions = batch::files::directories(&pattern);
    if submissions.is_empty() {
        return Err(tcplab::Error::Usage(format!(
            "no directory matches '{pattern}': give a glob of submission directories, e.g. --each 'submissions/*/'"
        )));
    }
    if !asked.command.iter().any(|a| a.contains("{dir}")) {
        return Err(tcplab::Error::Usage(
            "the command never names the submission: put {dir} where its directory goes, e.g. -- python3 {dir}/tcp_simple.py server {host} {port}".into(),
        ));
    }
    let sandboxed = !asked.no_sandbox;
    if sandboxed {
        sandbox::available().map_err(|why| {
            tcplab::Error::Usage(format!(
                "cannot sandbox the submissions: {why} (install bubblewrap, or pass --no-sandbox to run trusted code with your own rights)"
            ))
        })?;
    }
    std::fs::create_dir_all(&asked.out).map_err(|e| {
        tcplab::Error::Usage(format!(
            "cannot create the results directory '{}': {}",
            asked.out.display(),
            tcplab::error::plain_io(&e)
        ))
    })?;
    let exe = std::env::current_exe()
        .map_err(|e| tcplab::Error::io("could not find tcplab's own program", e))?;
    let scratch = std::env::temp_dir().join(format!("tcplab-batch-{}", std::process::id()));
    let opts = CheckOptions {
        timeout: Duration::from_secs_f64(asked.timeout),
        max_bytes: asked.max_bytes,
    };
    let columns = columns(service, asked.role, role, &opts);
    let plan = Plan {
        exe,
        check: vec![
            service.name().into(),
            role.into(),
            "--json".into(),
            "--timeout".into(),
            asked.timeout.to_string(),
            "--max-bytes".into(),
            asked.max_bytes.to_string(),
        ],
        command: asked.command.clone(),
        sandbox: sandboxed,
        limits: asked.limits(),
        limit: Duration::from_secs_f64(asked.time_limit),
        max_size: asked.max_size,
        jobs: asked.jobs.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
        }),
        scratch: scratch.clone(),
    };
    std::fs::create_dir_all(&scratch)
        .map_err(|e| tcplab::Error::io("could not create the scratch directory", e))?;
    let stopped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stopped.clone();
    signals::on_signals(
        move || {
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            batch::stop();
        },
        // A second signal does not wait for the files: every check is killed again
        // (one may have started in between) and tcplab exits.
        || {
            batch::stop();
            std::process::exit(130)
        },
    )?;
    let bar = Counter::new(submissions.len() as u64, "submissions", When::Auto);
    let rows = batch::grade(&plan, &submissions, &mut |row: &Row| {
        bar.inc();
        bar.note(row.name.clone());
    });
    bar.finish();
    let _ = std::fs::remove_dir_all(&scratch);
    write(&asked.out, asked.format, &rows, &columns)?;
    render::summary(&rows, &columns)
        .iter()
        .for_each(|l| console.say(l));
    console.say(format!(
        "results: {} (one per submission) and {}",
        asked
            .out
            .join(format!("NAME/{}", file_name(asked.format)))
            .display(),
        asked.out.join("summary.csv").display()
    ));
    if stopped.load(std::sync::atomic::Ordering::SeqCst) {
        console.warn("interrupted; the checks running were stopped, the rest not graded");
        std::process::exit(130);
    }
    Ok(())
}

/// The plan's probes, named as the check's results name them.
fn columns(service: Service, role: CheckRole, word: &str, opts: &CheckOptions) -> Vec<Column> {
    let named = match role {
        CheckRole::Server => probe_server::plan_graded(service, true, opts),
        CheckRole::Client => probe_client::plan(service, opts)
            .into_iter()
            .map(|n| (n, true))
            .collect(),
    };
    named
        .into_iter()
        .map(|(name, graded)| Column {
            name: format!("{} {word}: {name}", service.name()),
            graded,
        })
        .collect()
}

fn file_name(format: BatchFormat) -> &'static str {
    match format {
        BatchFormat::Gradescope | BatchFormat::Prairielearn => "results.json",
        BatchFormat::Junit => "junit.xml",
    }
}

/// Every submission's results file, then summary.csv.
fn write(out: &Path, format: BatchFormat, rows: &[Row], columns: &[Column]) -> tcplab::Result<()> {
    let failed = |path: &PathBuf, e: std::io::Error| {
        tcplab::Error::io(format!("could not write '{}'", path.display()), e)
    };
    for row in rows {
        let dir = out.join(&row.name);
        std::fs::create_dir_all(&dir).map_err(|e| failed(&dir, e))?;
        let text = match format {
            BatchFormat::Gradescope => {
                tcplab::report::json::pretty(&render::gradescope(row, columns)) + "\n"
            }
            BatchFormat::Prairielearn => {
                tcplab::report::json::pretty(&render::prairielearn(row, columns)) + "\n"
            }
            BatchFormat::Junit => render::junit(row, columns),
        };
        let path = dir.join(file_name(format));
        std::fs::write(&path, text).map_err(|e| failed(&path, e))?;
    }
    let path = out.join("summary.csv");
    std::fs::write(&path, render::csv(rows, columns)).map_err(|e| failed(&path, e))
}
