//! Properties of the protocol cores: TCP has no message boundaries, so however the
//! stream is cut into reads, the output must be the same.

use proptest::prelude::*;

use tcplab::proto::lines::LineFramer;
use tcplab::proto::simple::{GREETING, RecvAll};
use tcplab::proto::uppercase::{Incoming, Outgoing, capitalize, round_up};

/// Cuts `data` at the given points (taken modulo its length).
fn split<'a>(data: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    points.push(0);
    points.push(data.len());
    points.sort_unstable();
    points.windows(2).map(|w| &data[w[0]..w[1]]).collect()
}

fn frame_all(pieces: &[&[u8]], max: usize) -> Result<Vec<Vec<u8>>, u64> {
    let mut framer = LineFramer::new(max);
    let mut out = Vec::new();
    for p in pieces {
        framer
            .push(p, |l| out.push(l.to_vec()))
            .map_err(|e| e.line)?;
    }
    framer
        .finish(|l| out.push(l.to_vec()))
        .map_err(|e| e.line)?;
    Ok(out)
}

proptest! {
    #[test]
    fn capitalizing_pieces_equals_capitalizing_the_stream(
        data in proptest::collection::vec(any::<u8>(), 0..4096),
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
    ) {
        let mut whole = data.clone();
        capitalize(&mut whole);
        let mut pieced = Vec::new();
        for p in split(&data, &cuts) {
            let mut p = p.to_vec();
            capitalize(&mut p);
            pieced.extend(p);
        }
        prop_assert_eq!(&pieced, &whole);
        let want: Vec<u8> = data.iter().map(u8::to_ascii_uppercase).collect();
        prop_assert_eq!(whole, want);
    }

    #[test]
    fn lines_are_the_same_however_the_stream_is_cut(
        text in "[a-z\r\n]{0,300}",
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
        max in 0usize..40,
    ) {
        let data = text.as_bytes();
        let whole = frame_all(&[data], max);
        let pieced = frame_all(&split(data, &cuts), max);
        prop_assert_eq!(&pieced, &whole);
        // And against a plain reference: split on '\n', drop one trailing '\r'.
        let mut reference: Vec<Vec<u8>> = data
            .split(|b| *b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l).to_vec())
            .collect();
        if data.is_empty() || data.ends_with(b"\n") {
            reference.pop();
        }
        if reference.iter().all(|l| l.len() <= max) {
            prop_assert_eq!(whole, Ok(reference));
        } else {
            prop_assert!(whole.is_err());
        }
    }

    #[test]
    fn the_returned_stream_verifies_however_it_is_cut(
        messages in 0u64..200,
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
        window in 1usize..100,
        chunk in 1usize..100,
    ) {
        let total = round_up(messages * 16);
        let mut out = Outgoing::new(total, chunk);
        let mut sent = Vec::new();
        while !out.is_done() {
            let c = out.next_chunk().to_vec();
            out.advance(c.len());
            sent.extend(c);
        }
        prop_assert_eq!(sent.len() as u64, total);
        let mut back = sent.clone();
        capitalize(&mut back);
        let mut incoming = Incoming::new(total, window);
        for p in split(&back, &cuts) {
            incoming.accept(p).unwrap();
        }
        prop_assert!(incoming.verdict().is_verified(), "{:?}", incoming.verdict());
        // One flipped byte anywhere is caught.
        if !back.is_empty() {
            let at = cuts.first().copied().unwrap_or(0) % back.len();
            back[at] ^= 0x01;
            let mut incoming = Incoming::new(total, window);
            for p in split(&back, &cuts) {
                incoming.accept(p).unwrap();
            }
            prop_assert!(!incoming.verdict().is_verified());
        }
    }

    #[test]
    fn receive_all_completes_however_the_sixteen_octets_are_cut(
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
    ) {
        let mut r = RecvAll::new();
        for p in split(GREETING, &cuts) {
            prop_assert_eq!(r.push(p), p.len());
        }
        prop_assert_eq!(r.message(), Some(GREETING));
    }
}
