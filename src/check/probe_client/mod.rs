//! Probes of someone else's client, started from a COMMAND: for each probe tcplab
//! listens on a free loopback port as the lab's server (misbehaving on purpose where
//! the probe says so), runs the client against it, and judges what reached the
//! server, what the client printed and how it exited. This file is the harness that
//! runs the client; each service's probes, with their lessons, are in a file of
//! their own. Every wait is bounded by the timeout; a client still running then is
//! killed with its whole process group.

mod lines;
mod simple;
mod uppercase;

use std::io;
use std::net::{TcpListener, TcpStream};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::program::Program;
use super::{CheckOptions, CheckReport, Probe, last_line, read_bounded, shorten};
use crate::error::{Error, Result};
use crate::server::Service;

const HOST: &str = "127.0.0.1";

/// The names of the probes a check of a `service` client makes, in order.
pub fn plan(service: Service, opts: &CheckOptions) -> Vec<String> {
    match service {
        Service::Simple => simple::names(),
        Service::Uppercase => uppercase::names(opts),
        Service::Lines => lines::names(),
    }
}

/// Runs every probe for a `service` client started from `command`, handing each to
/// `sink` as it is decided. Fails when the command cannot be started, or when it
/// never connects in the first probe (it is not a client of this address).
pub fn check(
    service: Service,
    command: &[String],
    opts: &CheckOptions,
    sink: &mut dyn FnMut(&Probe),
) -> Result<CheckReport> {
    let probes = match service {
        Service::Simple => simple::probes(command, opts, sink)?,
        Service::Uppercase => uppercase::probes(command, opts, sink)?,
        Service::Lines => lines::probes(command, opts, sink)?,
    };
    Ok(CheckReport {
        service: service.name(),
        role: "client",
        target: command.join(" "),
        probes,
    })
}

/// How one run of the client ended.
struct Run<T> {
    /// Its exit status; `None` when it was still running at the deadline and was killed.
    exit: Option<ExitStatus>,
    /// What it printed, standard output and error together.
    printed: String,
    /// What tcplab's end saw; `None` when the client never connected.
    served: Option<T>,
    /// The port it was given.
    port: u16,
}

impl<T> Run<T> {
    /// "exited 0", "exited with status 1", "was still running after 10 s and was killed".
    fn ending(&self, opts: &CheckOptions) -> String {
        let how = match self.exit {
            Some(status) if status.success() => "it exited 0".to_string(),
            Some(status) => match status.code() {
                Some(code) => format!("it exited with status {code}"),
                None => format!("it ended ({status})"),
            },
            None => format!(
                "it was still running after {} s and was killed",
                opts.timeout.as_secs_f64()
            ),
        };
        match last_line(&self.printed) {
            Some(line) => format!("{how}; its last line: {}", shorten(line)),
            None => format!("{how}; it printed nothing"),
        }
    }

    fn exited_0(&self) -> bool {
        self.exit.is_some_and(|s| s.success())
    }
}

/// The probe server's stop signal: set once the client has exited or been killed.
#[derive(Default)]
struct Ended(AtomicBool);

impl Ended {
    fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Listens on a free loopback port, starts the client against it (with `input` on
/// its standard input) and serves its one connection with `serve` on a thread of
/// its own, while `watch` waits for the client (it returns the exit status, `None`
/// once it gave up). The client is killed with its process group before this returns.
fn run<T: Send>(
    command: &[String],
    bytes: u64,
    input: Option<Vec<u8>>,
    opts: &CheckOptions,
    serve: impl FnOnce(TcpStream, &Ended) -> T + Send,
    watch: impl FnOnce(&mut Program) -> Option<ExitStatus>,
) -> Result<Run<T>> {
    let listener = TcpListener::bind((HOST, 0))
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| Error::io("could not listen on 127.0.0.1", e))?;
    let port = listener
        .local_addr()
        .map_err(|e| Error::io("could not listen on 127.0.0.1", e))?
        .port();
    let mut program = Program::start_with_input(command, HOST, port, bytes, input)?;
    let ended = Ended::default();
    let (exit, served) = thread::scope(|scope| {
        let server = scope.spawn(|| {
            let stream = accept(&listener, opts.timeout, &ended)?;
            let _ = stream.set_nonblocking(false);
            let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
            let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
            Some(serve(stream, &ended))
        });
        let exit = watch(&mut program);
        ended.0.store(true, Ordering::Relaxed);
        (exit, server.join().ok().flatten())
    });
    // Still running: kill it and everything it started, which also ends its sockets.
    let printed = program.stop();
    Ok(Run {
        exit,
        printed,
        served,
        port,
    })
}

/// The client's connection, waiting at most `timeout`, and no longer once it ended.
fn accept(listener: &TcpListener, timeout: Duration, ended: &Ended) -> Option<TcpStream> {
    let deadline = Instant::now() + timeout;
    loop {
        match listener.accept() {
            Ok((stream, _)) => return Some(stream),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if ended.is_set() || Instant::now() >= deadline {
                    return None;
                }
                thread::sleep(Duration::from_millis(5));
            }
            Err(_) => return None,
        }
    }
}

/// Reads exactly `want` bytes, or what came before end of stream, an error, the
/// end of the client or `timeout`.
fn read_up_to(stream: &mut TcpStream, want: usize, timeout: Duration, ended: &Ended) -> Vec<u8> {
    read_bounded(stream, want, timeout, &|| ended.is_set()).0
}

/// The usual watch: the client's exit, within the timeout.
fn exit_within(opts: &CheckOptions) -> impl FnOnce(&mut Program) -> Option<ExitStatus> + '_ {
    |program| program.wait_exit(opts.timeout)
}

/// One clear line for a client that never connected in its first run.
fn never_connected<T>(run: &Run<T>, command: &[String], opts: &CheckOptions) -> Error {
    Error::ProgramFailed {
        command: command.join(" "),
        why: format!(
            "never connected to {HOST} {} (the {{host}} {{port}} it was given); {}",
            run.port,
            run.ending(opts)
        ),
    }
}
