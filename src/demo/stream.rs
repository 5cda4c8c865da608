//! A stream, not messages: 16-byte writes read in other sizes over TCP, whole
//! datagrams over UDP (a demo-only exchange).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use crate::cli::console::say;
use anyhow::{Context, Result, anyhow};
use tcplab::observe::queues;
use tcplab::proto::uppercase::MESSAGE;

use super::Chapter;
use super::tour::{HOST, PATIENCE, Tour, explain, show};

/// How many 16-byte messages the stream chapter writes, and sends as datagrams.
const MESSAGES: usize = 16;

pub(super) const CHAPTER: Chapter = Chapter {
    name: "stream",
    title: "A stream, not messages",
    summary: "sixteen 16-byte writes arrive as reads of other sizes over TCP, as sixteen whole datagrams over UDP",
    run,
};

fn run(tour: &Tour) -> Result<()> {
    say("The upper-case client with --chunk 16 writes the lab's 16-byte messages; the server");
    say("measures the sizes its reads come in.");
    let server = tour.server(&["uppercase", "server", HOST, "0", "--once"])?;
    let client = tour.client(
        &[
            "uppercase",
            "client",
            HOST,
            &server.port,
            "64K",
            "--chunk",
            "16",
            "--no-progress",
        ],
        b"",
    )?;
    let served = tour.finish(server)?;
    show("client", &client);
    show("server", &served);
    say("");
    say(format!(
        "  Now {MESSAGES} writes of 16 bytes, one system call and one segment each (TCP_NODELAY),"
    ));
    say("  read after they have all arrived, with room for 1024 bytes per read; then the same");
    say("  over UDP, as 16 datagrams:");
    let tcp = tcp_reads()?;
    let udp = udp_reads()?;
    say(format!(
        "  TCP │ {MESSAGES} writes of 16 bytes → {} of {:?} bytes",
        reads(tcp.len()),
        tcp
    ));
    say(format!(
        "  UDP │ {MESSAGES} datagrams of 16 bytes → {} of {:?} bytes",
        reads(udp.len()),
        udp
    ));
    if tcp.iter().sum::<usize>() != MESSAGES * 16 || udp != vec![16; MESSAGES] {
        return Err(anyhow!(
            "the reads did not add up: TCP {tcp:?}, UDP {udp:?}"
        ));
    }
    explain(&[
        "TCP keeps the bytes and their order, not the writes: what has arrived waits in one receive",
        "queue, and a read takes as much of it as fits. A reader that needs messages must find their",
        "ends itself (a length, a fixed size, a newline), and loop: the lab's receive-all.",
        "UDP keeps each datagram whole (or loses it whole): one read, one datagram.",
    ]);
    Ok(())
}

/// "1 read", "3 reads".
fn reads(n: usize) -> String {
    tcplab::human::count(n as u64, "read", "reads")
}

/// Sixteen 16-byte writes on a TCP connection, each sent as its own segment, read
/// once they have all arrived: the sizes of the reads.
fn tcp_reads() -> Result<Vec<usize>> {
    let listener = TcpListener::bind((HOST, 0)).context("could not listen")?;
    let mut writer = TcpStream::connect(listener.local_addr()?).context("could not connect")?;
    let (mut reader, _) = listener.accept().context("could not accept")?;
    writer.set_nodelay(true)?;
    for _ in 0..MESSAGES {
        writer.write_all(MESSAGE)?;
    }
    writer.shutdown(Shutdown::Write)?;
    // Wait until every byte is in the reader's receive queue.
    let deadline = Instant::now() + PATIENCE;
    while queues::read(&reader)?.recv_queue < (MESSAGES * MESSAGE.len()) as u64
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    reader.set_read_timeout(Some(PATIENCE))?;
    let mut sizes = Vec::new();
    let mut buf = [0u8; 1024];
    for _ in 0..=MESSAGES {
        match reader.read(&mut buf)? {
            0 => break,
            n => sizes.push(n),
        }
    }
    Ok(sizes)
}

/// Sixteen 16-byte datagrams, read once they have all been sent: the sizes of the
/// reads.
fn udp_reads() -> Result<Vec<usize>> {
    let receiver = UdpSocket::bind((HOST, 0)).context("could not bind a UDP socket")?;
    let sender = UdpSocket::bind((HOST, 0)).context("could not bind a UDP socket")?;
    for _ in 0..MESSAGES {
        sender.send_to(MESSAGE, receiver.local_addr()?)?;
    }
    receiver.set_read_timeout(Some(PATIENCE))?;
    let mut sizes = Vec::new();
    let mut buf = [0u8; 1024];
    for _ in 0..MESSAGES {
        let (n, _) = receiver.recv_from(&mut buf)?;
        sizes.push(n);
    }
    Ok(sizes)
}
