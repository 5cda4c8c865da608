// STAND-IN (issue 21): replaced by the capture/analysis helper's file at merge
//! Stand-in for the pcap writer: the signatures `tcplab trace` is written against.

use std::io;
use std::path::Path;
use std::time::SystemTime;

/// Fails when `path` cannot be written as a pcap file.
pub fn check_writable(path: &Path) -> io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map(drop)
}

/// A pcap file being written (stand-in: writes nothing).
#[derive(Debug)]
pub struct Writer(());

impl Writer {
    /// Creates the file.
    pub fn create(path: &Path) -> io::Result<Writer> {
        check_writable(path).map(|()| Writer(()))
    }

    /// Adds one frame captured at `wall`.
    pub fn write(&mut self, _frame: &[u8], _wall: SystemTime) -> io::Result<()> {
        Ok(())
    }

    /// Flushes what is buffered.
    pub fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
