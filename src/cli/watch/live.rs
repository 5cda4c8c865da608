//! TEMPORARY (issue 20): replaced by the live-view helper's terminal view.

use std::io;
use std::time::Duration;

use tcplab::watch::model::Frame;

/// The live view.
pub struct Live;

impl Live {
    /// Takes over the terminal.
    pub fn start() -> io::Result<Live> {
        Ok(Live)
    }

    /// Redraws.
    pub fn draw(&mut self, frame: &Frame) -> io::Result<()> {
        let _ = frame;
        Ok(())
    }

    /// Waits for a key; true to quit.
    pub fn wait_key(&mut self, timeout: Duration) -> io::Result<bool> {
        std::thread::sleep(timeout);
        Ok(false)
    }
}

impl Drop for Live {
    fn drop(&mut self) {}
}
