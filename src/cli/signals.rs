//! SIGINT and SIGTERM: a server stops gracefully, then at once; a client stops and
//! reports how far it got, then exits.

use tcplab::stop::Stop;

/// Triggers `shutdown` on SIGINT or SIGTERM (the graceful stop), and hurries it on
/// the next one (connections still open are closed now; the summary follows).
pub fn stop_server(shutdown: &Stop) -> tcplab::Result<()> {
    let (first, second) = (shutdown.clone(), shutdown.clone());
    on_signals(move || first.trigger(), move || second.hurry())
}

/// A client's first SIGINT or SIGTERM stops its run, which then reports how far it
/// got (the JSON object too); a second one exits at once.
pub fn interrupt_client() -> tcplab::Result<Stop> {
    let interrupt = Stop::new();
    let first = interrupt.clone();
    on_signals(move || first.trigger(), || std::process::exit(1))?;
    Ok(interrupt)
}

/// Runs `first` on the first SIGINT or SIGTERM, `second` on the next.
pub fn on_signals(
    first: impl FnOnce() + Send + 'static,
    second: impl FnOnce() + Send + 'static,
) -> tcplab::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .map_err(|e| tcplab::Error::io("could not install the signal handlers", e))?;
    std::thread::spawn(move || {
        let mut signals = signals.forever();
        if signals.next().is_some() {
            first();
        }
        if signals.next().is_some() {
            second();
        }
    });
    Ok(())
}
