//! The payload's ends: what is sent, what is expected back, and the bounded window
//! of a streamed input.

use super::*;
use crate::client::uppercase::STREAM_WINDOW;

#[test]
fn small_messages_are_gathered_into_one_write() {
    assert_eq!(gather_size(16), 16 * 1024);
    assert_eq!(gather_size(1000), 262_000);
    assert_eq!(gather_size(256 * 1024), 256 * 1024);
    assert_eq!(gather_size(1 << 20), 1 << 20);
    let data: Vec<u8> = (0..100u8).collect();
    let messages = Messages::cut(&data, 16);
    assert_eq!(messages.slices().len(), 7);
    let joined: Vec<u8> = messages
        .slices()
        .iter()
        .flat_map(|s| s.iter().copied())
        .collect();
    assert_eq!(joined, data);
    assert!(messages.slices()[..6].iter().all(|s| s.len() == 16));
}

#[test]
fn an_outbound_hands_out_every_byte_once_and_then_nothing() {
    let (mut out, _) = Source::pattern(64).ends(16, 16, None).unwrap();
    let mut sent = Vec::new();
    let counters = Counters::default();
    loop {
        let messages = out.next_messages(&counters).unwrap();
        if messages.is_empty() {
            break;
        }
        // A short write: the socket takes only part of the first message.
        let first = &messages.slices()[0];
        let taken = first.len().min(5);
        sent.extend_from_slice(&first[..taken]);
        out.consume(taken);
    }
    assert_eq!(out.sent(), 64);
    assert_eq!(sent, b"hello foobar bye".repeat(4));
}

/// Sends what `out` offers now, as one socket taking everything would.
fn send_now(out: &mut Outbound, counters: &Counters) -> usize {
    let mut n = 0;
    loop {
        let messages = out.next_messages(counters).unwrap();
        let len: usize = messages.slices().iter().map(|s| s.len()).sum();
        if len == 0 {
            return n;
        }
        out.consume(len);
        n += len;
    }
}

#[test]
fn a_streamed_input_holds_no_more_than_its_window_and_a_sender_that_never_verifies_is_told() {
    let source = Source::file(Path::new("/dev/zero"), Some(100 << 20)).unwrap();
    assert!(matches!(source, Source::Stream { .. }), "{source:?}");
    let (mut out, mut inbound) = source.ends(1 << 16, 1 << 16, None).unwrap();
    let counters = Counters::default();
    let mut sent = 0;
    // Nothing is verified: the reader stops at the window, and the naive
    // strategy's sender hears that it can never go on.
    loop {
        sent += send_now(&mut out, &counters);
        match out.wait_for_input(false) {
            Ok(()) => {}
            Err(Error::StreamTooLong { window, .. }) => {
                assert_eq!(window, STREAM_WINDOW as u64);
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(sent <= STREAM_WINDOW, "{sent} bytes sent unverified");
    assert!(sent > STREAM_WINDOW - (1 << 20), "only {sent} bytes sent");
    // Verifying what came back frees the window; the rest goes out. Everything
    // sent is verified before the sender waits, as a receiving side running
    // meanwhile would: while the reader keeps filling the window, one `send_now`
    // can send a whole window's worth, and a sender waiting with all of it
    // unverified would wait for ever (the reader waits for room).
    let zeros = vec![0u8; 1 << 20];
    let mut verified = 0;
    let mut verify = |sent: usize| {
        while verified < sent {
            let n = zeros.len().min(sent - verified);
            inbound.accept(&zeros[..n]).unwrap();
            verified += n;
        }
    };
    verify(sent);
    while !out.is_done() {
        sent += send_now(&mut out, &counters);
        verify(sent);
        out.wait_for_input(true).unwrap();
    }
    assert_eq!(sent, 100 << 20);
    assert_eq!(inbound.verdict(), Verdict::Verified { bytes: 100 << 20 });
    assert_eq!(counters.total(), Some(100 << 20));
}

#[test]
fn a_streamed_input_is_verified_against_its_length_once_it_ends() {
    let source = Source::file(Path::new("/dev/zero"), Some(100)).unwrap();
    let (mut out, mut inbound) = source.ends(16, 64, None).unwrap();
    let counters = Counters::default();
    let mut sent = 0;
    while !out.is_done() {
        sent += send_now(&mut out, &counters);
        out.wait_for_input(true).unwrap();
    }
    assert_eq!((sent, out.total()), (100, 100));
    inbound.accept(&[0; 60]).unwrap();
    assert_eq!(
        inbound.verdict(),
        Verdict::Short {
            received: 60,
            expected: 100
        }
    );
    inbound.accept(&[0; 45]).unwrap();
    assert_eq!(
        inbound.verdict(),
        Verdict::Extra {
            received: 105,
            expected: 100
        }
    );
}
