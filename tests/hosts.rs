//! Test hosts: two network namespaces joined by a veth pair, with addresses in
//! 10.77.0.0/16 assigned inside them only. They need root (and a kernel that
//! allows them); otherwise the test says it was skipped and why. Torn down on drop,
//! also when the test fails.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::util::{Output, Server, run};

/// Host A's address on the link.
pub const A_ADDR: &str = "10.77.0.1";
/// Host B's address on the link.
pub const B_ADDR: &str = "10.77.0.2";

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Two hosts, A and B, on one link.
pub struct Hosts {
    pub a: String,
    pub b: String,
    veth_a: String,
    veth_b: String,
}

pub fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Hosts {
    /// Creates the two hosts, or says why it cannot (then the test is skipped).
    pub fn create() -> Option<Hosts> {
        if !tcplab::sys::is_root() {
            eprintln!("skipped: test hosts (network namespaces) need root");
            return None;
        }
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let tag = format!("{}{n}", std::process::id() % 100_000);
        let hosts = Hosts {
            a: format!("tcplab-{tag}-a"),
            b: format!("tcplab-{tag}-b"),
            veth_a: format!("tla{tag}"),
            veth_b: format!("tlb{tag}"),
        };
        match hosts.build(&hosts.veth_b) {
            Ok(()) => Some(hosts),
            Err(why) => {
                // On CI (root) the kernel must allow this: fail there, skip elsewhere.
                if std::env::var_os("CI").is_some() {
                    panic!("could not create test hosts on CI: {why}");
                }
                eprintln!("skipped: could not create test hosts: {why}");
                None
            }
        }
    }

    fn build(&self, veth_b: &str) -> Result<(), String> {
        ip(&["netns", "add", &self.a])?;
        ip(&["netns", "add", &self.b])?;
        ip(&[
            "link",
            "add",
            &self.veth_a,
            "type",
            "veth",
            "peer",
            "name",
            veth_b,
        ])?;
        ip(&["link", "set", &self.veth_a, "netns", &self.a])?;
        ip(&["link", "set", veth_b, "netns", &self.b])?;
        for (ns, dev, addr) in [
            (&self.a, &self.veth_a[..], A_ADDR),
            (&self.b, veth_b, B_ADDR),
        ] {
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    /// A command run inside namespace `ns`.
    pub fn command(ns: &str, program: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, program]).args(args);
        cmd
    }

    /// `tcplab ARGS` inside namespace `ns`, to completion.
    pub fn tcplab(ns: &str, args: &[&str]) -> Output {
        run(Self::command(ns, env!("CARGO_BIN_EXE_tcplab"), args))
    }

    /// A tcplab server inside namespace `ns`.
    pub fn server(ns: &str, args: &[&str]) -> Server {
        Server::start(Self::command(ns, env!("CARGO_BIN_EXE_tcplab"), args))
    }

    /// Runs a setup command (iptables, tc) inside `ns`; panics with its error.
    #[track_caller]
    pub fn setup(ns: &str, program: &str, args: &[&str]) {
        let out = run(Self::command(ns, program, args));
        assert!(out.status.success(), "{program} failed in {ns}:\n{out}");
    }

    /// Host A's end of the link, for tc.
    pub fn veth_a(&self) -> &str {
        &self.veth_a
    }

    /// Host B's end of the link.
    pub fn veth_b(&self) -> &str {
        &self.veth_b
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth end inside it, and so the pair.
        let _ = ip(&["netns", "del", &self.a]);
        let _ = ip(&["netns", "del", &self.b]);
    }
}
