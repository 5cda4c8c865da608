//! How a stream was cut into reads: count, smallest, median and largest read. A TCP
//! stream has no message boundaries, and these figures show it. Memory is fixed: a
//! log-linear histogram, exact below 128 bytes and within 1/16 above.

/// Read sizes below this are counted exactly.
const EXACT: usize = 128;
/// Sub-buckets per power of two above [`EXACT`].
const SUB: usize = 16;
/// Powers of two covered above [`EXACT`] (up to 2^40 bytes per read).
const OCTAVES: usize = 33;

/// A fixed-size histogram of read sizes.
#[derive(Debug, Clone)]
pub struct ReadSizes {
    counts: Box<[u32]>,
    reads: u64,
    bytes: u64,
    min: usize,
    max: usize,
}

impl Default for ReadSizes {
    fn default() -> Self {
        ReadSizes {
            counts: vec![0; EXACT + OCTAVES * SUB].into_boxed_slice(),
            reads: 0,
            bytes: 0,
            min: 0,
            max: 0,
        }
    }
}

fn bucket(n: usize) -> usize {
    if n < EXACT {
        return n;
    }
    let octave = (usize::BITS - 1 - n.leading_zeros()) as usize; // >= 7
    let sub = (n >> (octave - 4)) & (SUB - 1);
    (EXACT + (octave - 7) * SUB + sub).min(EXACT + OCTAVES * SUB - 1)
}

fn lower_bound(b: usize) -> usize {
    if b < EXACT {
        return b;
    }
    let octave = (b - EXACT) / SUB + 7;
    let sub = (b - EXACT) % SUB;
    (1 << octave) + (sub << (octave - 4))
}

impl ReadSizes {
    /// Records one read of `n` bytes (n > 0).
    pub fn record(&mut self, n: usize) {
        self.min = if self.reads == 0 { n } else { self.min.min(n) };
        self.max = self.max.max(n);
        self.reads += 1;
        self.bytes += n as u64;
        let b = bucket(n);
        self.counts[b] = self.counts[b].saturating_add(1);
    }

    /// Reads recorded.
    pub fn reads(&self) -> u64 {
        self.reads
    }

    /// Bytes read in all.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The smallest read.
    pub fn min(&self) -> usize {
        self.min
    }

    /// The largest read.
    pub fn max(&self) -> usize {
        self.max
    }

    /// The median read size: exact below 128 bytes, the low end of its 1/16-octave
    /// bucket above (clamped to the observed range).
    pub fn median(&self) -> usize {
        let half = self.reads.div_ceil(2);
        let mut seen = 0u64;
        for (b, count) in self.counts.iter().enumerate() {
            seen += u64::from(*count);
            if seen >= half && seen > 0 {
                return lower_bound(b).clamp(self.min, self.max);
            }
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_sizes_are_exact() {
        let mut r = ReadSizes::default();
        for n in [16, 16, 16, 42, 100] {
            r.record(n);
        }
        assert_eq!((r.reads(), r.min(), r.median(), r.max()), (5, 16, 16, 100));
    }

    #[test]
    fn powers_of_two_are_exact_and_others_close() {
        let mut r = ReadSizes::default();
        for _ in 0..3 {
            r.record(65536);
        }
        r.record(1024);
        assert_eq!(r.median(), 65536);
        let mut r = ReadSizes::default();
        r.record(100_000);
        let m = r.median();
        assert!(m <= 100_000 && m as f64 >= 100_000.0 * 15.0 / 16.0, "{m}");
    }

    #[test]
    fn buckets_are_monotonic() {
        let mut last = 0;
        for n in 1..100_000 {
            let b = bucket(n);
            assert!(b >= last);
            assert!(lower_bound(b) <= n, "{n}");
            last = b;
        }
    }
}
