//! Captures a port's TCP segments to a pcap file until SIGINT or SIGTERM, with the
//! library's capture layer alone (no analysis, no printing per segment): what
//! bench/capture_cost measures against a transfer. Says "capturing" on stderr
//! once the filter is on, and at the end one JSON line of counts on stdout.
//!
//! cargo run --release --example capture_pcap -- PORT FILE [INTERFACE [SNAPLEN]]
//!
//! With SNAPLEN, each frame's first SNAPLEN bytes only (its headers, at 128).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tcplab::capture::{Capture, PcapWriter, pcap};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: capture_pcap PORT FILE [INTERFACE [SNAPLEN]]";
    let port: u16 = args.next().ok_or(usage)?.parse()?;
    let path = PathBuf::from(args.next().ok_or(usage)?);
    let interface = args.next().unwrap_or_else(|| "lo".into());
    let snaplen: Option<usize> = args.next().map(|s| s.parse()).transpose()?;
    pcap::check_writable(&path)?;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    let mut capture = Capture::open(&interface, Some(port))?;
    if let Some(bytes) = snaplen {
        capture.set_snaplen(bytes);
    }
    let mut out = PcapWriter::create(&path)?;
    eprintln!(
        "capturing port {port} on {interface}, receive buffer {} MiB",
        capture.recv_buffer()? >> 20
    );
    let started = Instant::now();
    let (mut segments, mut bytes) = (0u64, 0u64);
    while !stop.load(Ordering::Relaxed) {
        // Interrupted by the signal, `next` returns early; then the flag is set.
        if let Some(packet) = capture.next(Duration::from_millis(100))? {
            segments += 1;
            bytes += u64::from(packet.segment.len);
            out.write(&packet)?;
        }
    }
    // What the kernel queued before the signal is still the capture's.
    while let Some(packet) = capture.next(Duration::ZERO)? {
        segments += 1;
        bytes += u64::from(packet.segment.len);
        out.write(&packet)?;
    }
    out.finish()?;
    let stats = capture.stats()?;
    println!(
        "{{\"segments\":{segments},\"payload_bytes\":{bytes},\"received\":{},\"dropped\":{},\"skipped\":{},\"seconds\":{:.3}}}",
        stats.received,
        stats.dropped,
        stats.skipped,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
