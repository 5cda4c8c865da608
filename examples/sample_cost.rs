//! What one watchdog sample costs: the client's queues (SIOCINQ/SIOCOUTQ and the
//! buffer sizes) and the server end's (one socket-diagnostics lookup), timed over
//! many samples of a real loopback connection. bench/NOTES.md turns it into the
//! share of a transfer's time.
//!
//! cargo run --release --example sample_cost

use std::net::{TcpListener, TcpStream};
use std::time::Instant;

use tcplab::observe::{queues, sockdiag};

const SAMPLES: u32 = 20_000;

fn main() -> std::io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let client = TcpStream::connect(listener.local_addr()?)?;
    let (_server, _) = listener.accept()?;
    let (local, peer) = (client.local_addr()?, client.peer_addr()?);
    let started = Instant::now();
    for _ in 0..SAMPLES {
        std::hint::black_box(queues::read(&client)?);
    }
    let client_only = started.elapsed() / SAMPLES;
    let diag = sockdiag::Diag::new()?;
    let started = Instant::now();
    for _ in 0..SAMPLES {
        std::hint::black_box(queues::read(&client)?);
        std::hint::black_box(diag.lookup(peer, local)?);
    }
    let both = started.elapsed() / SAMPLES;
    println!("one sample: client queues {client_only:?}; with the server end's {both:?}");
    Ok(())
}
