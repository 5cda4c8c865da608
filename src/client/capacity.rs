//! Whether a load run can be made at all on this machine, said before it starts
//! instead of failing half-way: the open-files limit of each process, the ephemeral
//! ports each source address has towards one server address, and memory.

use std::net::IpAddr;

use crate::error::{Error, Result};

/// Descriptors a worker needs besides its connections (standard streams, the
/// runtime's, the progress line's).
const SPARE_FILES: u64 = 64;

/// Memory one connection costs on this machine when both ends are on it: the load
/// generator's buffers (two of [`super::many::load::LOAD_IO_SIZE`]), a tcplab server's
/// (under 32 KiB), and the kernel's two idle sockets.
pub const BYTES_PER_CONNECTION: u64 = 96 * 1024;

/// What this machine allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The open-files hard limit of one process.
    pub open_files: u64,
    /// The ephemeral port range, inclusive (`ip_local_port_range`).
    pub ports: (u16, u16),
    /// Memory available (`MemAvailable`), in bytes.
    pub memory: u64,
}

impl Limits {
    /// This machine's limits, read from the kernel; a figure that cannot be read
    /// does not limit.
    pub fn of_this_machine() -> Limits {
        let open_files = crate::sys::open_files_limit().map_or(u64::MAX, |l| l.hard);
        let ports = ephemeral_ports().unwrap_or((1024, u16::MAX));
        let memory = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| {
                let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
                let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
                Some(kib * 1024)
            })
            .unwrap_or(u64::MAX);
        Limits {
            open_files,
            ports,
            memory,
        }
    }

    /// Ports one source address has towards one destination.
    pub fn ports_per_source(&self) -> u64 {
        u64::from(self.ports.1.saturating_sub(self.ports.0)) + 1
    }
}

/// The kernel's ephemeral port range, inclusive (`ip_local_port_range`), when it
/// can be read.
pub fn ephemeral_ports() -> Option<(u16, u16)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut parts = text.split_whitespace().map(|p| p.parse::<u16>().ok());
    Some((parts.next()??, parts.next()??))
}

/// A load run as asked: `connections` at once, over `processes` worker processes,
/// from `sources` local addresses (none: the kernel's choice, one address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Connections open at once.
    pub connections: u64,
    /// Worker processes, each with its own open-files limit.
    pub processes: u64,
    /// Local addresses the connections come from.
    pub sources: u64,
}

/// Fails, with what to change, when the plan cannot be made within `limits`.
pub fn check(plan: Plan, limits: &Limits) -> Result<()> {
    let Plan {
        connections,
        processes,
        sources,
    } = plan;
    let per_process = connections.div_ceil(processes.max(1));
    let usable = limits.open_files.saturating_sub(SPARE_FILES);
    if per_process > usable {
        let needed = connections.div_ceil(usable.max(1));
        return Err(Error::Usage(format!(
            "{connections} connections over {processes} {} need {per_process} open files in each, past this machine's limit of {} per process: use --processes {needed} or more",
            if processes == 1 {
                "process"
            } else {
                "processes"
            },
            limits.open_files
        )));
    }
    let per_source = limits.ports_per_source();
    let sources = sources.max(1);
    if connections > sources * per_source {
        let needed = connections.div_ceil(per_source);
        return Err(Error::Usage(format!(
            "{connections} connections to one server address need more than the {} ephemeral ports ({}–{}) of {sources} source {}: give --source with {needed} addresses or more, e.g. --source 127.0.0.2-127.0.0.{}",
            sources * per_source,
            limits.ports.0,
            limits.ports.1,
            if sources == 1 { "address" } else { "addresses" },
            needed + 1
        )));
    }
    let memory = connections.saturating_mul(BYTES_PER_CONNECTION);
    if memory > limits.memory {
        return Err(Error::Usage(format!(
            "{connections} connections need about {} of memory here ({} KiB each, both ends on this machine), more than the {} available",
            crate::human::bytes(memory),
            BYTES_PER_CONNECTION / 1024,
            crate::human::bytes(limits.memory)
        )));
    }
    Ok(())
}

/// `ADDR` or `FIRST-LAST` (IPv4, e.g. `127.0.0.2-127.0.0.9`): the local addresses
/// to open connections from, at most 65,536.
pub fn parse_sources(text: &str) -> std::result::Result<Vec<IpAddr>, String> {
    let bad = || format!("'{text}' is not an address or a range FIRST-LAST of IPv4 addresses");
    let Some((first, last)) = text.split_once('-') else {
        return text.trim().parse().map(|a| vec![a]).map_err(|_| bad());
    };
    let first: std::net::Ipv4Addr = first.trim().parse().map_err(|_| bad())?;
    let last: std::net::Ipv4Addr = last.trim().parse().map_err(|_| bad())?;
    let (a, b) = (u32::from(first), u32::from(last));
    if b < a {
        return Err(format!("'{text}': the range ends before it starts"));
    }
    if b - a >= 1 << 16 {
        return Err(format!("'{text}': at most 65536 source addresses"));
    }
    Ok((a..=b)
        .map(|n| IpAddr::from(std::net::Ipv4Addr::from(n)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HERE: Limits = Limits {
        open_files: 20_000,
        ports: (32768, 60999),
        memory: 24 << 30,
    };

    fn plan(connections: u64, processes: u64, sources: u64) -> Plan {
        Plan {
            connections,
            processes,
            sources,
        }
    }

    #[test]
    fn fifty_thousand_need_three_processes_and_two_sources_here() {
        let err = check(plan(50_000, 1, 8), &HERE).unwrap_err().to_string();
        assert!(err.contains("use --processes 3 or more"), "{err}");
        let err = check(plan(50_000, 4, 1), &HERE).unwrap_err().to_string();
        assert!(err.contains("28232 ephemeral ports (32768–60999)"), "{err}");
        assert!(err.contains("--source with 2 addresses or more"), "{err}");
        assert!(check(plan(50_000, 4, 8), &HERE).is_ok());
    }

    #[test]
    fn memory_is_said_before_it_runs_out() {
        let small = Limits {
            memory: 1 << 30,
            ..HERE
        };
        let err = check(plan(19_000, 1, 1), &small).unwrap_err().to_string();
        assert!(err.contains("more than the 1.00 GiB available"), "{err}");
    }

    #[test]
    fn sources_are_an_address_or_a_range() {
        assert_eq!(parse_sources("127.0.0.2").unwrap().len(), 1);
        let range = parse_sources("127.0.0.2-127.0.0.9").unwrap();
        assert_eq!(range.len(), 8);
        assert_eq!(range[7], "127.0.0.9".parse::<IpAddr>().unwrap());
        assert!(parse_sources("127.0.0.9-127.0.0.2").is_err());
        assert!(parse_sources("nonsense").is_err());
        assert!(parse_sources("10.0.0.0-10.2.0.0").is_err());
    }
}
