//! The probe of a server started from a COMMAND that is stopped while a client is
//! connected and started again on the same port: SO_REUSEADDR.

use std::io::Write;
use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use super::target::Target;
use super::{HOST, listens};
use crate::check::program::Program;
use crate::check::{CheckOptions, PAUSE, Probe, read_bounded};
use crate::human;
use crate::proto::simple::GREETING;
use crate::proto::uppercase::MESSAGE;
use crate::server::Service;

/// The probe's name.
pub(super) const NAME: &str =
    "restarted on the same port straight after serving clients (SO_REUSEADDR)";

/// A connection the server has taken, kept open while the server is stopped (for
/// the simple service, the server closes first anyway).
fn hold_open(service: Service, target: &Target) -> Option<TcpStream> {
    let mut stream = match service {
        Service::Simple => {
            target.exchange(&[GREETING], false);
            return None;
        }
        _ => target.connect().ok()?,
    };
    match service {
        Service::Uppercase => {
            stream.write_all(MESSAGE).ok()?;
            let _ = read_bounded(&mut stream, MESSAGE.len(), target.opts.timeout, &|| false);
        }
        _ => {
            stream
                .write_all(b"held open while the server stops\n")
                .ok()?;
            thread::sleep(PAUSE);
        }
    }
    Some(stream)
}

/// The server started, serving a client, stopped while that client is connected
/// (so that the connection's server end lingers in TIME_WAIT), then started again
/// on the same port.
pub(super) fn probe(command: &[String], opts: &CheckOptions, service: Service) -> Probe {
    let name = NAME;
    let (program, port) = match Program::start_server(command, HOST, 64, opts.timeout) {
        Ok(started) => started,
        Err(e) => {
            return Probe::not_measured(
                name,
                format!("the server did not start for this probe: {e}"),
            );
        }
    };
    let target = Target::new(HOST, port, opts);
    let held = hold_open(service, &target);
    program.stop_gently(Duration::from_secs(1));
    if let Some(mut held) = held {
        let _ = read_bounded(&mut held, 1 << 16, Duration::from_secs(1), &|| false);
    }
    let lingering = crate::observe::table::on_port(port)
        .iter()
        .filter(|row| row.state == "TIME_WAIT")
        .count();
    if lingering == 0 {
        return Probe::not_measured(
            name,
            format!(
                "no connection of the {} server's lingered in TIME_WAIT on port {port}, so a restart would prove nothing",
                service.name()
            ),
        );
    }
    let started = Program::start(command, HOST, port, 64)
        .and_then(|mut p| p.wait_listening(port, opts.timeout).map(|()| p));
    match started {
        Ok(program) => {
            program.stop();
            Probe::pass(
                name,
                format!(
                    "with {} on port {port} in TIME_WAIT, it listened again at once",
                    human::count(lingering as u64, "connection", "connections")
                ),
            )
        }
        // Another program took the port between the stop and the restart: the
        // restart could not be tried there.
        Err(e) if listens(port) => Probe::not_measured(
            name,
            format!("another program listened on port {port} by the time of the restart: {e}"),
        ),
        Err(e) => Probe::fail(
            name,
            e.to_string(),
            "the connections just served linger in TIME_WAIT: without SO_REUSEADDR, bind() fails with 'Address already in use' for a minute or more",
            "set SO_REUSEADDR on the listening socket before bind()",
        ),
    }
}
