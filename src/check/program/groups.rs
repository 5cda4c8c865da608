//! The process groups of the programs a check has started and not yet stopped:
//! killed together on an interrupt ([`kill_all`]), and by a reaper that outlives
//! tcplab when it is killed outright ([`Reaper`]).

use crate::sync::Locked;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// The process groups of the programs running now, for [`kill_all`], and the
/// reaper told of each.
static RUNNING: Mutex<Registry> = Mutex::new(Registry {
    groups: Vec::new(),
    reaper: None,
});

pub(super) struct Registry {
    pub(super) groups: Vec<u32>,
    /// Started with the first program; `Some(None)` when it could not be.
    reaper: Option<Option<Reaper>>,
}

impl Registry {
    pub(super) fn add(&mut self, pgid: u32) {
        self.groups.push(pgid);
        if let Some(reaper) = self.reaper.get_or_insert_with(Reaper::start) {
            reaper.tell('+', pgid);
        }
    }

    pub(super) fn remove(&mut self, pgid: u32) {
        self.groups.retain(|&p| p != pgid);
        if let Some(Some(reaper)) = &mut self.reaper {
            reaper.tell('-', pgid);
        }
    }
}

pub(super) fn running() -> std::sync::MutexGuard<'static, Registry> {
    RUNNING.locked()
}

/// A shell that outlives tcplab and kills the process groups of the programs
/// still running when tcplab dies, however it dies (SIGKILL included, where no
/// handler of ours runs). It reads `+ PGID` and `- PGID` lines from a pipe whose
/// only writer is tcplab (std opens it close-on-exec, so no program inherits it);
/// the pipe's end of file is tcplab's death. Chosen over PR_SET_PDEATHSIG, which
/// fires when the *thread* that spawned the program ends (a probe's thread would
/// take its program with it) and reaches only the direct child, not what a shell
/// under test started. The one gap: tcplab killed between a program's spawn and
/// the `+ PGID` line written just after it, under the same lock.
struct Reaper {
    pipe: std::process::ChildStdin,
}

impl Reaper {
    const SCRIPT: &str = r#"trap '' INT TERM HUP QUIT
g=' '
while read -r op p; do
  case $op in
    +) g="$g$p " ;;
    -) case $g in *" $p "*) g="${g%% $p *} ${g#* $p }" ;; esac ;;
  esac
done
for p in $g; do kill -KILL -"$p" 2>/dev/null; done"#;

    /// Starts it in a process group of its own (a signal to tcplab's group does
    /// not reach it); `None` when there is no shell to run it.
    fn start() -> Option<Reaper> {
        let mut child = Command::new("sh")
            .args(["-c", Self::SCRIPT])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .ok()?;
        Some(Reaper {
            pipe: child.stdin.take()?,
        })
    }

    /// `+ PGID` (kill it if tcplab dies) or `- PGID` (stopped: forget it).
    /// A reaper that has gone (a write fails) changes nothing else: an interrupt
    /// still stops every program through [`kill_all`].
    fn tell(&mut self, op: char, pgid: u32) {
        let _ = self.pipe.write_all(format!("{op} {pgid}\n").as_bytes());
    }
}

/// Kills every program started by a check and not yet stopped, with everything it
/// started: for `tcplab check` interrupted by a signal.
pub fn kill_all() {
    let mut registry = running();
    STOPPING.store(true, std::sync::atomic::Ordering::SeqCst);
    for pgid in registry.groups.clone() {
        let _ = crate::sys::kill_process_group(pgid);
        registry.remove(pgid);
    }
}

/// Set by [`kill_all`]: no program is started after it.
pub(super) static STOPPING: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);
