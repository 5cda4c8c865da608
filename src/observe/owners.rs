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
