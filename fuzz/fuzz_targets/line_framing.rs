//! Line framing under any input and any segmentation: never panics, never emits a
//! line longer than the limit or containing a newline, and cuts the stream the same
//! way whatever sizes it arrives in (TCP has no message boundaries).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tcplab::proto::lines::LineFramer;

fn frame(pieces: &[&[u8]], max: usize) -> (Vec<Vec<u8>>, Option<u64>) {
    let mut framer = LineFramer::new(max);
    let mut lines = Vec::new();
    for piece in pieces {
        if let Err(e) = framer.push(piece, |l| lines.push(l.to_vec())) {
            return (lines, Some(e.line));
        }
    }
    match framer.finish(|l| lines.push(l.to_vec())) {
        Ok(()) => (lines, None),
        Err(e) => (lines, Some(e.line)),
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let max = u16::from_le_bytes([data[0], data[1]]) as usize % 512;
    let seed = data[2];
    let stream = &data[3..];
    // Cut the stream at pseudo-random points derived from the seed.
    let mut pieces = Vec::new();
    let mut rest = stream;
    let mut state = seed as usize + 1;
    while !rest.is_empty() {
        state = state.wrapping_mul(1103515245).wrapping_add(12345);
        let n = 1 + (state >> 8) % rest.len().max(1);
        let (head, tail) = rest.split_at(n.min(rest.len()));
        pieces.push(head);
        rest = tail;
    }
    let whole = frame(&[stream], max);
    let pieced = frame(&pieces, max);
    assert_eq!(whole, pieced, "segmentation changed the lines");
    for line in &whole.0 {
        assert!(line.len() <= max, "a line over the limit was emitted");
        assert!(!line.contains(&b'\n'), "a line contains a newline");
    }
});
