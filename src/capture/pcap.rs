//! Captured frames as a classic pcap file, the format tcpdump, tshark and
//! Wireshark all read: a 24-byte file header, then a 16-byte header before each
//! frame, microsecond timestamps, Ethernet link type.
//!
//! Written by hand rather than with the pcap-file crate: the format is forty bytes
//! of fixed fields, fewer lines than the crate's setup, and one dependency less.
//! Little-endian throughout (readers tell the order from the magic number).

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use super::socket::Packet;

/// The magic number of a classic pcap file with microsecond timestamps.
const MAGIC_MICROSECONDS: u32 = 0xa1b2_c3d4;

/// `LINKTYPE_ETHERNET`: each frame starts with an Ethernet header.
pub const LINKTYPE_ETHERNET: u32 = 1;

/// The longest frame a record holds; longer ones are cut (and their length on the
/// wire kept). tcpdump's default, above any frame a capture returns (64 KiB).
pub const SNAPLEN: u32 = 262_144;

/// The buffer in front of the file. Small frames (ACKs) gather here; a frame as
/// long as the buffer goes to the file directly, not copied once more (loopback's
/// 64 KiB frames: a third less copying, measured in bench/NOTES.md).
const BUFFER: usize = 64 << 10;

/// A pcap file being written. Call [`PcapWriter::finish`] at the end: it flushes
/// the buffer and reports any error (dropping the writer would lose both).
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    out: BufWriter<W>,
    frames: u64,
}

impl PcapWriter<File> {
    /// Creates (or truncates) the file at `path` and writes its header.
    pub fn create(path: &Path) -> io::Result<PcapWriter<File>> {
        PcapWriter::new(File::create(path)?)
    }
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header to `out` and returns a writer for the frames.
    pub fn new(out: W) -> io::Result<PcapWriter<W>> {
        let mut out = BufWriter::with_capacity(BUFFER, out);
        let mut header = [0u8; 24];
        header[0..4].copy_from_slice(&MAGIC_MICROSECONDS.to_le_bytes());
        header[4..6].copy_from_slice(&2u16.to_le_bytes()); // version 2.4
        header[6..8].copy_from_slice(&4u16.to_le_bytes());
        // 8..16: time zone offset and accuracy, both 0 as everyone writes them.
        header[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
        header[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        out.write_all(&header)?;
        Ok(PcapWriter { out, frames: 0 })
    }

    /// Appends one frame received at `wall`, `wire_len` bytes long on the wire
    /// (`frame.len()` unless the capture cut it).
    pub fn write_frame(
        &mut self,
        wall: SystemTime,
        frame: &[u8],
        wire_len: usize,
    ) -> io::Result<()> {
        let since = wall.duration_since(UNIX_EPOCH).unwrap_or_default();
        let seconds = u32::try_from(since.as_secs()).unwrap_or(u32::MAX);
        let kept = frame.len().min(SNAPLEN as usize);
        let mut header = [0u8; 16];
        header[0..4].copy_from_slice(&seconds.to_le_bytes());
        header[4..8].copy_from_slice(&since.subsec_micros().to_le_bytes());
        header[8..12].copy_from_slice(&(kept as u32).to_le_bytes());
        let on_wire = u32::try_from(wire_len.max(frame.len())).unwrap_or(u32::MAX);
        header[12..16].copy_from_slice(&on_wire.to_le_bytes());
        self.out.write_all(&header)?;
        self.out.write_all(&frame[..kept])?;
        self.frames += 1;
        Ok(())
    }

    /// Appends a captured packet.
    pub fn write(&mut self, packet: &Packet) -> io::Result<()> {
        self.write_frame(packet.wall, &packet.frame, packet.wire_len)
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Pushes what is buffered to the file (say, before a long wait).
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Flushes the last frames and returns the file.
    pub fn finish(self) -> io::Result<W> {
        self.out.into_inner().map_err(|e| e.into_error())
    }
}

/// Fails, before any capture starts, if a pcap file could not be written at
/// `path`: a missing directory, a directory, no permission. An existing file is
/// left as it is; a file the check had to create is removed again.
pub fn check_writable(path: &Path) -> io::Result<()> {
    let existed = path.exists();
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    if !existed {
        std::fs::remove_file(path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_file_header_and_a_record_byte_by_byte() {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        let wall = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        w.write_frame(wall, &[0xaa; 60], 60).unwrap();
        assert_eq!(w.frames(), 1);
        let bytes = w.finish().unwrap();
        assert_eq!(bytes.len(), 24 + 16 + 60);
        assert_eq!(
            bytes[..24],
            [
                0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 1, 0, 0, 0
            ]
        );
        let field = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        assert_eq!(field(24), 1_700_000_000);
        assert_eq!(field(28), 123_456, "microseconds");
        assert_eq!((field(32), field(36)), (60, 60));
        assert!(bytes[40..].iter().all(|&b| b == 0xaa));
    }

    #[test]
    fn a_frame_cut_here_or_by_the_capture_keeps_its_length_on_the_wire() {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        let long = vec![1u8; SNAPLEN as usize + 10];
        w.write_frame(UNIX_EPOCH, &long, long.len()).unwrap();
        w.write_frame(UNIX_EPOCH, &long[..100], 65_000).unwrap();
        let bytes = w.finish().unwrap();
        let field = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        assert_eq!((field(32), field(36)), (SNAPLEN, SNAPLEN + 10));
        let next = 24 + 16 + SNAPLEN as usize;
        assert_eq!(
            (field(next + 8), field(next + 12)),
            (100, 65_000),
            "cut by the capture"
        );
        assert_eq!(bytes.len(), next + 16 + 100);
    }

    #[test]
    fn unwritable_paths_are_refused_and_the_check_leaves_no_file() {
        let dir = std::env::temp_dir().join(format!("tcplab-pcap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fresh = dir.join("new.pcap");
        check_writable(&fresh).unwrap();
        assert!(!fresh.exists(), "the check removed what it created");
        std::fs::write(&fresh, b"keep").unwrap();
        check_writable(&fresh).unwrap();
        assert_eq!(std::fs::read(&fresh).unwrap(), b"keep");
        assert!(check_writable(&dir).is_err(), "a directory");
        assert!(check_writable(&dir.join("no/such/dir.pcap")).is_err());
        assert!(check_writable(Path::new("/proc/tcplab.pcap")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_error_from_the_file_is_reported_at_finish() {
        #[derive(Debug)]
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::other("disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut w = PcapWriter::new(Full).unwrap(); // the header is still buffered
        w.write_frame(UNIX_EPOCH, &[0; 100], 100).unwrap();
        assert_eq!(w.finish().unwrap_err().to_string(), "disk full");
    }
}
