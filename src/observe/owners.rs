//! Which processes hold a socket: a socket's inode (from the socket tables,
//! [`super::table`], or socket diagnostics) is a `socket:[INODE]` link in
//! `/proc/PID/fd` of each process that holds it; and which process group a process
//! is in.
//!
//! [`Owners`] reads `/proc` once for every socket at a time (what `tcplab watch`
//! needs each interval); [`holds`], [`holder`] and [`held_by_group`] answer one
//! question about one socket.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::{self, Read};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::procstat;

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

/// Most `/proc/PID/fd` links read in one scan, all processes together.
const MAX_LINKS: usize = 2_000_000;

/// Most bytes of a command line kept: enough to tell programs apart.
const MAX_COMMAND: u64 = 4096;

/// Longest an [`Owners::refresh`] keeps a scan without reading `/proc` again: a
/// socket handed to another process (a server that forks per connection) is seen
/// under its new owner within this.
const MAX_AGE: Duration = Duration::from_secs(5);

/// How old a scan must be before a socket it did not find is looked for again.
const RETRY_MISSING: Duration = Duration::from_secs(1);

/// The process ids in `/proc`, at most [`MAX_PROCESSES`].
pub fn pids() -> impl Iterator<Item = u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .take(MAX_PROCESSES)
}

/// True when process `pid` exists (a zombie too).
pub fn exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// True when process `pid` holds socket `inode` (false when it cannot be looked
/// at: gone, or another user's).
pub fn holds(pid: u32, inode: u64) -> bool {
    if inode == 0 {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten()
        .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| socket_inode(&t) == Some(inode)))
}

/// A process that holds socket `inode`, if this user may see one.
pub fn holder(inode: u64) -> Option<u32> {
    pids().find(|&pid| holds(pid, inode))
}

/// The process group of process `pid` (field 5 of `/proc/PID/stat`).
pub fn process_group(pid: u32) -> Option<u32> {
    procstat::read(pid).map(|s| s.pgrp)
}

/// True when socket `inode` is held by a process of group `pgid`: its leader
/// (looked at first, the usual case) or any other member, such as a server a
/// shell started without `exec`.
pub fn held_by_group(inode: u64, pgid: u32) -> bool {
    holds(pgid, inode)
        || pids().any(|pid| pid != pgid && process_group(pid) == Some(pgid) && holds(pid, inode))
}

/// The inode of a `/proc/PID/fd` link's target `socket:[INODE]`.
fn socket_inode(target: &std::path::Path) -> Option<u64> {
    target
        .to_str()?
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// Why a socket's owner is not known; its words (`Display`) are what `tcplab
/// watch` shows in the owner's place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unknown {
    /// Inode 0: no file refers to the socket any more (its program closed it and
    /// the kernel finishes the connection, as in TIME_WAIT).
    Orphan,
    /// Some processes' descriptors could not be read (another user's, and this
    /// user is not root): one of them may hold it.
    AnotherUser,
    /// Every process was read and none holds it (it exited since the socket was
    /// seen, or it lives in another PID namespace).
    NotFound,
}

impl fmt::Display for Unknown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Unknown::Orphan => "no process holds it: TIME_WAIT",
            Unknown::AnotherUser => "another user's process: run as root",
            Unknown::NotFound => "its process could not be found",
        })
    }
}

/// One process as a scan saw it.
#[derive(Debug, Clone)]
struct Process {
    /// Its parent's pid (0 for the first process).
    parent: u32,
    /// Its socket inodes.
    inodes: Vec<u64>,
    /// Who it is, read only for a process that holds a socket.
    owner: Option<Owner>,
}

/// Every process's sockets, parent and command line, from one pass over `/proc`.
#[derive(Debug, Clone)]
pub struct Owners {
    processes: HashMap<u32, Process>,
    /// Socket inode → the process found holding it (the lowest pid when several
    /// do, usually the one that opened it).
    holders: HashMap<u64, u32>,
    /// Processes whose descriptors could not be read: another user's.
    unreadable: usize,
    /// Inodes asked for at a refresh and not found by the scan after it: not worth
    /// another scan until [`MAX_AGE`].
    missing: HashSet<u64>,
    /// When the scan was made.
    taken: Instant,
}

impl Owners {
    /// Reads `/proc` once: each process's socket inodes, parent and (for those
    /// holding a socket) command line, at most [`MAX_PROCESSES`] processes.
    pub fn scan() -> Owners {
        let mut owners = Owners {
            processes: HashMap::new(),
            holders: HashMap::new(),
            unreadable: 0,
            missing: HashSet::new(),
            taken: Instant::now(),
        };
        let mut links = 0;
        let mut pids: Vec<u32> = pids().collect();
        pids.sort_unstable();
        for pid in pids {
            let Some(parent) = procstat::read(pid).map(|s| s.ppid) else {
                continue; // gone since listed
            };
            let inodes = match socket_inodes(pid, MAX_LINKS.saturating_sub(links)) {
                Ok((inodes, read)) => {
                    links += read;
                    inodes
                }
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                    owners.unreadable += 1;
                    Vec::new()
                }
                Err(_) => Vec::new(), // gone, or no descriptors to read
            };
            for &inode in &inodes {
                owners.holders.entry(inode).or_insert(pid);
            }
            let owner = (!inodes.is_empty()).then(|| Owner {
                pid,
                command: command_line(pid),
            });
            owners.processes.insert(
                pid,
                Process {
                    parent,
                    inodes,
                    owner,
                },
            );
        }
        owners
    }

    /// Scans `/proc` again only when needed to know the owners of `wanted`: one of
    /// them is neither known nor was missing at the last scan, or a known owner
    /// has exited, or the scan is older than [`MAX_AGE`]. True when it scanned.
    /// Steady connections then cost a few hash lookups per sample, not a read of
    /// every descriptor.
    pub fn refresh(&mut self, wanted: impl IntoIterator<Item = u64>) -> bool {
        let wanted: Vec<u64> = wanted.into_iter().filter(|&i| i != 0).collect();
        let mut holders = HashSet::new();
        let unknown = wanted.iter().any(|i| match self.holders.get(i) {
            Some(&pid) => {
                holders.insert(pid);
                false
            }
            // A socket found in no process's descriptors (another user's, or caught
            // between its accept and its descriptor) is looked for again once the
            // scan is a second old, not at every sample.
            None => !self.missing.contains(i) || self.taken.elapsed() > RETRY_MISSING,
        });
        // One look per process, not per socket: thousands of sockets have a few owners.
        let stale = unknown
            || self.taken.elapsed() > MAX_AGE
            || holders.into_iter().any(|pid| !exists(pid));
        if !stale {
            return false;
        }
        *self = Owners::scan();
        self.missing = wanted
            .into_iter()
            .filter(|i| !self.holders.contains_key(i))
            .collect();
        true
    }

    /// The process holding socket `inode`, or why it is not known.
    pub fn owner(&self, inode: u64) -> Result<&Owner, Unknown> {
        if inode == 0 {
            return Err(Unknown::Orphan);
        }
        self.holders
            .get(&inode)
            .and_then(|pid| self.processes.get(pid)?.owner.as_ref())
            .ok_or(if self.unreadable > 0 {
                Unknown::AnotherUser
            } else {
                Unknown::NotFound
            })
    }

    /// Process `pid` and all its descendants, as they were at the scan (empty when
    /// it did not exist then).
    pub fn family(&self, pid: u32) -> Vec<u32> {
        if !self.processes.contains_key(&pid) {
            return Vec::new();
        }
        let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
        for (&child, p) in &self.processes {
            children.entry(p.parent).or_default().push(child);
        }
        let mut family = vec![pid];
        let mut seen = HashSet::from([pid]);
        let mut next = 0;
        // Breadth first; `seen` guards against a loop a reused pid could make in a
        // snapshot that is not taken at one instant.
        while next < family.len() {
            for &kid in children.get(&family[next]).into_iter().flatten() {
                if seen.insert(kid) {
                    family.push(kid);
                }
            }
            next += 1;
        }
        family
    }

    /// The socket inodes the processes `pids` hold.
    pub fn inodes_of(&self, pids: &[u32]) -> HashSet<u64> {
        pids.iter()
            .filter_map(|pid| self.processes.get(pid))
            .flat_map(|p| p.inodes.iter().copied())
            .collect()
    }

    /// How many processes' descriptors could not be read (another user's).
    pub fn unreadable(&self) -> usize {
        self.unreadable
    }

    /// How many sockets the scan found held by some process.
    pub fn sockets(&self) -> usize {
        self.holders.len()
    }
}

/// The socket inodes in `/proc/PID/fd`, reading at most `budget` links, with how
/// many links were read; the error when the directory cannot be read.
fn socket_inodes(pid: u32, budget: usize) -> io::Result<(Vec<u64>, usize)> {
    let mut inodes = Vec::new();
    let mut read = 0;
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))?.flatten() {
        if read == budget {
            break;
        }
        read += 1;
        if let Some(inode) = std::fs::read_link(fd.path())
            .ok()
            .and_then(|t| socket_inode(&t))
        {
            inodes.push(inode);
        }
    }
    Ok((inodes, read))
}

/// Process `pid`'s command line, arguments joined by spaces; `[NAME]` from
/// `/proc/PID/comm` when it is empty (a kernel thread, a zombie); `[?]` when
/// neither can be read.
fn command_line(pid: u32) -> String {
    let mut raw = Vec::new();
    let _ = std::fs::File::open(format!("/proc/{pid}/cmdline"))
        .and_then(|f| f.take(MAX_COMMAND).read_to_end(&mut raw));
    let command = join_arguments(&raw);
    if !command.is_empty() {
        return command;
    }
    let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    format!(
        "[{}]",
        Some(name.trim()).filter(|n| !n.is_empty()).unwrap_or("?")
    )
}

/// A `/proc/PID/cmdline`'s NUL-separated arguments joined by spaces, trimmed.
fn join_arguments(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw)
        .replace('\0', " ")
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listening_inode(listener: &std::net::TcpListener) -> u64 {
        let port = listener.local_addr().unwrap().port();
        super::super::table::on_port(port)
            .into_iter()
            .find(|r| r.is_listening())
            .unwrap()
            .inode
    }

    #[test]
    fn a_command_line_is_joined_by_spaces() {
        assert_eq!(
            join_arguments(b"python3\0lab.py\0client\0"),
            "python3 lab.py client"
        );
        assert_eq!(join_arguments(b""), "");
        assert_eq!(socket_inode("socket:[1234]".as_ref()), Some(1234));
        assert_eq!(socket_inode("pipe:[1234]".as_ref()), None);
    }

    #[test]
    fn a_listening_socket_of_this_process_is_held_by_it_and_its_group() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let inode = listening_inode(&listener);
        let me = std::process::id();
        assert!(holds(me, inode));
        assert_eq!(holder(inode), Some(me));
        assert!(held_by_group(inode, process_group(me).unwrap()));
        assert!(!held_by_group(inode, u32::MAX));
        drop(listener);
        assert!(!holds(me, inode));
    }

    #[test]
    fn a_scan_finds_this_processs_listening_socket_and_command_line() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let inode = listening_inode(&listener);
        let owners = Owners::scan();
        let owner = owners.owner(inode).unwrap();
        assert_eq!(owner.pid, std::process::id());
        let me = std::env::args().collect::<Vec<_>>().join(" ");
        assert_eq!(owner.command, me.trim());
        assert!(owners.inodes_of(&[owner.pid]).contains(&inode));
        assert!(exists(owner.pid));
    }

    #[test]
    fn a_childs_pid_is_in_this_processs_family() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let owners = Owners::scan();
        let family = owners.family(std::process::id());
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(family[0], std::process::id());
        assert!(family.contains(&child.id()), "{family:?}");
        assert!(owners.family(u32::MAX).is_empty());
    }

    #[test]
    fn inode_zero_is_no_process_and_an_unheld_inode_is_not_found() {
        let owners = Owners::scan();
        assert_eq!(owners.owner(0), Err(Unknown::Orphan));
        assert!(
            owners
                .owner(0)
                .unwrap_err()
                .to_string()
                .contains("TIME_WAIT")
        );
        let expected = if owners.unreadable() > 0 {
            Unknown::AnotherUser
        } else {
            Unknown::NotFound
        };
        assert_eq!(owners.owner(u64::MAX), Err(expected));
    }

    #[test]
    fn a_refresh_scans_only_for_a_socket_it_does_not_know() {
        let first = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut owners = Owners::scan();
        assert!(!owners.refresh([listening_inode(&first), 0]));
        let second = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let inode = listening_inode(&second);
        assert!(owners.owner(inode).is_err());
        assert!(owners.refresh([inode]));
        assert_eq!(owners.owner(inode).unwrap().pid, std::process::id());
        // An inode nobody holds is looked for once, not at every refresh.
        assert!(owners.refresh([inode, u64::MAX]));
        assert!(!owners.refresh([inode, u64::MAX]));
    }
}
