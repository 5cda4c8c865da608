//! Which processes hold a socket: a socket's inode (from the socket tables,
//! [`super::table`]) is a `socket:[INODE]` link in `/proc/PID/fd` of each process
//! that holds it; and which process group a process is in.

use serde::Serialize;

/// Who holds a socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Owner {
    /// The process id.
    pub pid: u32,
    /// Its command line, arguments joined by spaces (its name when the command
    /// line is empty, as for a kernel thread).
    pub command: String,
}

/// Most `/proc` entries looked at in one scan: a bound on the work, not a limit
/// any real machine reaches.
const MAX_PROCESSES: usize = 100_000;

/// The process ids in `/proc`, at most [`MAX_PROCESSES`].
pub fn pids() -> impl Iterator<Item = u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .take(MAX_PROCESSES)
}

/// True when process `pid` holds socket `inode` (false when it cannot be looked
/// at: gone, or another user's).
pub fn holds(pid: u32, inode: u64) -> bool {
    if inode == 0 {
        return false;
    }
    let wanted = format!("socket:[{inode}]");
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten()
        .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t.as_os_str() == &*wanted))
}

/// A process that holds socket `inode`, if this user may see one.
pub fn holder(inode: u64) -> Option<u32> {
    pids().find(|&pid| holds(pid, inode))
}

/// The process group of process `pid` (field 5 of `/proc/PID/stat`).
pub fn process_group(pid: u32) -> Option<u32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_process_group(&text)
}

/// The process group in a `/proc/PID/stat` line: the command name may hold
/// spaces and parentheses, so the fields start after the last `)`.
fn parse_process_group(stat: &str) -> Option<u32> {
    // After the name: state (3), ppid (4), pgrp (5).
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .nth(2)?
        .parse()
        .ok()
}

/// True when socket `inode` is held by a process of group `pgid`: its leader
/// (looked at first, the usual case) or any other member, such as a server a
/// shell started without `exec`.
pub fn held_by_group(inode: u64, pgid: u32) -> bool {
    holds(pgid, inode)
        || pids().any(|pid| pid != pgid && process_group(pid) == Some(pgid) && holds(pid, inode))
}

// TEMPORARY (issue 20): the one-pass owner scan, replaced by the helper's version.
use std::collections::{HashMap, HashSet};

/// Why a socket's owner is not known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unknown(pub String);

impl std::fmt::Display for Unknown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Every process's sockets, read from /proc in one pass.
#[derive(Debug, Default)]
pub struct Owners {
    by_inode: HashMap<u64, Owner>,
    parents: HashMap<u32, u32>,
    inodes: HashMap<u32, Vec<u64>>,
    unreadable: usize,
}

impl Owners {
    /// Reads /proc once.
    pub fn scan() -> Owners {
        let mut o = Owners::default();
        for pid in pids() {
            if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                && let Some(ppid) = stat
                    .get(stat.rfind(')').unwrap_or(0) + 1..)
                    .and_then(|r| r.split_whitespace().nth(1))
                    .and_then(|p| p.parse().ok())
            {
                o.parents.insert(pid, ppid);
            }
            let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
                o.unreadable += 1;
                continue;
            };
            let command = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|b| {
                    String::from_utf8_lossy(&b)
                        .replace('\0', " ")
                        .trim()
                        .to_string()
                })
                .unwrap_or_default();
            for fd in fds.flatten() {
                let Ok(t) = std::fs::read_link(fd.path()) else {
                    continue;
                };
                let t = t.to_string_lossy();
                if let Some(i) = t
                    .strip_prefix("socket:[")
                    .and_then(|r| r.strip_suffix(']'))
                    .and_then(|i| i.parse().ok())
                {
                    o.by_inode.entry(i).or_insert(Owner {
                        pid,
                        command: command.clone(),
                    });
                    o.inodes.entry(pid).or_default().push(i);
                }
            }
        }
        o
    }

    /// Who holds socket `inode`.
    pub fn owner(&self, inode: u64) -> Result<&Owner, Unknown> {
        if inode == 0 {
            return Err(Unknown("no process holds it (TIME_WAIT)".into()));
        }
        self.by_inode.get(&inode).ok_or_else(|| {
            Unknown(if self.unreadable > 0 {
                "another user's process: run as root".into()
            } else {
                "its process could not be found".into()
            })
        })
    }

    /// `pid` and its descendants.
    pub fn family(&self, pid: u32) -> Vec<u32> {
        let mut out = vec![pid];
        let mut i = 0;
        while i < out.len() {
            let p = out[i];
            out.extend(
                self.parents
                    .iter()
                    .filter(|&(_, &pp)| pp == p)
                    .map(|(&c, _)| c),
            );
            i += 1;
        }
        out
    }

    /// The sockets those processes hold.
    pub fn inodes_of(&self, pids: &[u32]) -> HashSet<u64> {
        pids.iter()
            .flat_map(|p| self.inodes.get(p).into_iter().flatten().copied())
            .collect()
    }
}

/// True when process `pid` exists.
pub fn exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_group_is_read_after_a_name_with_parentheses() {
        let line = "42 (a (b) c) S 7 40 40 0 -1 4194560 100 0 0 0 10 20 30 40 20 0 1 0 1 1 1";
        assert_eq!(parse_process_group(line), Some(40));
        assert_eq!(parse_process_group("garbage"), None);
    }

    #[test]
    fn a_listening_socket_of_this_process_is_held_by_it_and_its_group() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let row = super::super::table::on_port(port)
            .into_iter()
            .find(|r| r.is_listening())
            .unwrap();
        let me = std::process::id();
        assert!(holds(me, row.inode));
        assert_eq!(holder(row.inode), Some(me));
        assert!(held_by_group(row.inode, process_group(me).unwrap()));
        assert!(!held_by_group(row.inode, u32::MAX));
        drop(listener);
        assert!(!holds(me, row.inode));
    }
}
