//! io_uring behind a safe API, for the `uring` strategy: one ring per thread, with
//! a provided-buffer ring for receives (so a connection waiting for data holds no
//! read buffer: the kernel picks one of the ring's buffers only when bytes come),
//! sends from buffers the ring owns while the kernel may read them, and a send
//! linked to the receive that follows it (`IOSQE_IO_LINK`, the send's completion
//! skipped on success), so that a reply and the wait for the next request go to the
//! kernel in one system call, and the receive's completion says the send is done.
//!
//! Every operation is named by a key (a connection's slot) and an [`Op`]; the ring
//! gives the send buffer back with the completion that ends the kernel's use of it.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use io_uring::types::{BufRingEntry, CancelBuilder, Fd, SubmitArgs, Timespec};
use io_uring::{IoUring, cqueue, opcode, squeue};

/// What an operation was, carried in its user data beside its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Multishot accept: one completion per connection.
    Accept,
    /// A receive into a provided buffer.
    Recv,
    /// A send (linked to a receive or alone).
    Send,
    /// A cancellation request.
    Cancel,
    /// The read of the ring's eventfd: another thread woke the loop.
    Wake,
}

impl Op {
    fn code(self) -> u64 {
        match self {
            Op::Accept => 1,
            Op::Recv => 2,
            Op::Send => 3,
            Op::Cancel => 4,
            Op::Wake => 5,
        }
    }

    fn from_code(code: u64) -> Op {
        match code {
            1 => Op::Accept,
            2 => Op::Recv,
            3 => Op::Send,
            5 => Op::Wake,
            _ => Op::Cancel,
        }
    }
}

fn user_data(key: u32, op: Op) -> u64 {
    (u64::from(key) << 8) | op.code()
}

/// One finished operation.
#[derive(Debug)]
pub struct Completion {
    /// The key it was submitted with.
    pub key: u32,
    /// What it was.
    pub op: Op,
    /// The system call's result: a count, a descriptor, or `-errno`.
    pub result: i32,
    /// A multishot operation goes on (more completions will come).
    pub more: bool,
    /// The provided buffer a receive filled (give it back with [`Ring::recycle`]).
    pub buffer: Option<u16>,
    /// The send buffer, given back when the kernel is done with it: with a send's
    /// own completion, or with the completion of the receive linked after it (the
    /// send then succeeded in full).
    pub sent: Option<Vec<u8>>,
}

/// Figures a driver reports.
#[derive(Debug, Default, Clone, Copy)]
pub struct RingStats {
    /// Times the submission queue was full and had to be submitted before a push.
    pub sq_full: u64,
    /// Times the completion queue had overflowed (the kernel kept the completions,
    /// `IORING_FEAT_NODROP`; they were collected at the next wait).
    pub cq_overflow: u64,
}

/// A send in the kernel's hands.
#[derive(Debug)]
struct InFlightSend {
    data: Vec<u8>,
    /// Linked before a receive: its success is told by the receive's completion.
    linked: bool,
}

/// True if io_uring itself is refused (not built in, disabled by
/// `kernel.io_uring_disabled`, or filtered by seccomp), rather than a ring failing
/// for want of memory or descriptors.
pub fn is_unavailable(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOSYS | libc::EPERM | libc::EACCES)
    )
}

/// Takes ownership of `fd`, a descriptor a completion returned (an accepted
/// connection): nothing else owns it.
pub fn adopt_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: called only with the result of a completed accept, a descriptor the
    // kernel just opened for this process and that no other owner knows.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// A ring with its provided buffers.
pub struct Ring {
    ring: IoUring,
    eventfd: Arc<File>,
    /// Where the eventfd's counter is read to.
    wake_buf: Box<u64>,
    bufs: BufRing,
    sends: HashMap<u32, InFlightSend>,
    /// Operations whose final completion has not come yet.
    in_flight: usize,
    stats: RingStats,
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("in_flight", &self.in_flight)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// `IORING_RECVSEND_POLL_FIRST`.
const POLL_FIRST: u16 = 1;

/// The buffer group of the receive buffers.
const GROUP: u16 = 0;

impl Ring {
    /// A ring of `entries` submissions, with `buffers` receive buffers of
    /// `buffer_size` bytes each (`buffers` a power of two, at most 32768). With
    /// `sqpoll`, a kernel thread polls the submission queue (it costs a core while
    /// busy, and spares the submitting system calls).
    pub fn new(entries: u32, buffers: u16, buffer_size: usize, sqpoll: bool) -> io::Result<Ring> {
        let build = |defer: bool| {
            let mut builder = IoUring::builder();
            builder.setup_cqsize(entries * 4);
            if sqpoll {
                builder.setup_sqpoll(100);
            } else if defer {
                // Completions are run only when this thread waits: no interrupts of
                // the loop by the kernel's task work.
                builder.setup_single_issuer().setup_defer_taskrun();
            }
            builder.build(entries)
        };
        let ring = match build(true) {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => build(false)?,
            other => other?,
        };
        let bufs = BufRing::new(buffers, buffer_size)?;
        // SAFETY: the entries' memory is a mapping owned by `bufs`, which lives as
        // long as the ring (it is dropped after it, or leaked with it: see Drop), and
        // its length is `buffers` entries.
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                bufs.entries as u64,
                bufs.count,
                GROUP,
                0,
            )?;
        }
        // SAFETY: eventfd takes no pointer; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a descriptor just opened and owned by nothing else.
        let eventfd = Arc::new(File::from(unsafe { OwnedFd::from_raw_fd(fd) }));
        let mut ring = Ring {
            ring,
            eventfd,
            wake_buf: Box::new(0),
            bufs,
            sends: HashMap::new(),
            in_flight: 0,
            stats: RingStats::default(),
        };
        for bid in 0..ring.bufs.count {
            ring.bufs.add(bid);
        }
        ring.bufs.publish();
        Ok(ring)
    }

    /// The figures so far.
    pub fn stats(&self) -> RingStats {
        self.stats
    }

    /// A handle that wakes this ring's wait from any thread, once
    /// [`arm_wake`](Self::arm_wake) has been called (and again after each wake).
    pub fn waker(&self) -> RingWaker {
        RingWaker(Arc::clone(&self.eventfd))
    }

    /// Makes the next [`RingWaker::wake`] complete a read here (op [`Op::Wake`]).
    pub fn arm_wake(&mut self) -> io::Result<()> {
        let buf: *mut u64 = &mut *self.wake_buf;
        let entry = opcode::Read::new(Fd(self.eventfd.as_raw_fd()), buf.cast(), 8)
            .build()
            .user_data(user_data(0, Op::Wake));
        self.push(&[entry])?;
        self.in_flight += 1;
        Ok(())
    }

    /// Operations the kernel still holds.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Queues `entries` (pushed together: a link must not be split), submitting the
    /// queue first if they do not fit.
    fn push(&mut self, entries: &[squeue::Entry]) -> io::Result<()> {
        let fits = |ring: &mut IoUring| {
            let sq = ring.submission();
            sq.capacity() - sq.len() >= entries.len()
        };
        if !fits(&mut self.ring) {
            self.stats.sq_full += 1;
            self.ring.submit()?;
            if !fits(&mut self.ring) {
                return Err(io::Error::other("the submission queue stays full"));
            }
        }
        // SAFETY: every entry's memory stays valid while the kernel may use it: the
        // eventfd's read goes to `wake_buf`, boxed and owned by the ring; a
        // receive uses the provided buffers (owned by `self.bufs`, which outlives any
        // operation: see Drop), a send uses a buffer kept in `self.sends` until the
        // completion that ends it, accept and cancel use no memory of ours.
        unsafe { self.ring.submission().push_multiple(entries) }
            .map_err(|_| io::Error::other("the submission queue is full"))
    }

    /// Accepts connections on `listener` until cancelled or failed (multishot):
    /// each completion's result is a new descriptor, close-on-exec.
    pub fn accept(&mut self, listener: RawFd, key: u32) -> io::Result<()> {
        let entry = opcode::AcceptMulti::new(Fd(listener))
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(user_data(key, Op::Accept));
        self.push(&[entry])?;
        self.in_flight += 1;
        Ok(())
    }

    /// A receive; with `poll_first`, it waits for data before trying (the request
    /// after a reply cannot have come yet: a first try would fail).
    fn recv_entry(fd: RawFd, key: u32, poll_first: bool) -> squeue::Entry {
        let ioprio = if poll_first { POLL_FIRST } else { 0 };
        opcode::Recv::new(Fd(fd), std::ptr::null_mut(), 0)
            .buf_group(GROUP)
            .ioprio(ioprio)
            .build()
            .flags(squeue::Flags::BUFFER_SELECT)
            .user_data(user_data(key, Op::Recv))
    }

    /// Receives into one of the provided buffers.
    pub fn recv(&mut self, fd: RawFd, key: u32) -> io::Result<()> {
        self.push(&[Self::recv_entry(fd, key, false)])?;
        self.in_flight += 1;
        Ok(())
    }

    /// Sends `data[start..]` (all of it: `MSG_WAITALL`); with `then_recv`, a receive
    /// linked after it, started once the send is done. One send per key at a time.
    pub fn send(
        &mut self,
        fd: RawFd,
        key: u32,
        data: Vec<u8>,
        start: usize,
        then_recv: bool,
    ) -> io::Result<()> {
        let rest = &data[start.min(data.len())..];
        let len = u32::try_from(rest.len()).unwrap_or(u32::MAX);
        let send = opcode::Send::new(Fd(fd), rest.as_ptr(), len)
            .flags(libc::MSG_WAITALL | libc::MSG_NOSIGNAL)
            .build()
            .user_data(user_data(key, Op::Send));
        // The heap buffer does not move when the Vec moves into the map.
        let pushed = if then_recv {
            let send = send.flags(squeue::Flags::IO_LINK | squeue::Flags::SKIP_SUCCESS);
            self.push(&[send, Self::recv_entry(fd, key, true)])
        } else {
            self.push(&[send])
        };
        pushed?;
        // A linked send's success has no completion of its own: only the receive's.
        self.in_flight += 1;
        let linked = then_recv;
        self.sends.insert(key, InFlightSend { data, linked });
        Ok(())
    }

    /// Cancels the operations on `fd` (all of them); their completions still come.
    pub fn cancel_fd(&mut self, fd: RawFd, key: u32) -> io::Result<()> {
        let entry = opcode::AsyncCancel2::new(CancelBuilder::fd(Fd(fd)).all())
            .build()
            .user_data(user_data(key, Op::Cancel));
        self.push(&[entry])?;
        self.in_flight += 1;
        Ok(())
    }

    /// Cancels the operation `op` of `key`.
    pub fn cancel(&mut self, key: u32, op: Op) -> io::Result<()> {
        let entry = opcode::AsyncCancel2::new(CancelBuilder::user_data(user_data(key, op)))
            .build()
            .user_data(user_data(key, Op::Cancel));
        self.push(&[entry])?;
        self.in_flight += 1;
        Ok(())
    }

    /// Submits what is queued, without waiting.
    pub fn submit(&mut self) -> io::Result<()> {
        self.ring.submit().map(drop)
    }

    /// Submits what is queued and waits for at least one completion, or `timeout`:
    /// one system call. A timeout or a signal is not an error.
    pub fn submit_and_wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        if self.ring.submission().cq_overflow() {
            self.stats.cq_overflow += 1;
        }
        let result = match timeout {
            None => self.ring.submit_and_wait(1),
            Some(t) => {
                let ts = Timespec::new().sec(t.as_secs()).nsec(t.subsec_nanos());
                let args = SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(1, &args)
            }
        };
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Takes the completions that have come, in order, into `out`.
    pub fn reap(&mut self, out: &mut Vec<Completion>) {
        let mut cq = self.ring.completion();
        cq.sync();
        let entries: Vec<cqueue::Entry> = cq.by_ref().collect();
        drop(cq);
        for cqe in entries {
            let ud = cqe.user_data();
            let (key, op) = ((ud >> 8) as u32, Op::from_code(ud & 0xff));
            let (result, flags) = (cqe.result(), cqe.flags());
            let more = cqueue::more(flags);
            let sent = match op {
                Op::Send => self.sends.remove(&key).map(|s| s.data),
                // The linked send succeeded unless the receive was cancelled for it
                // (then the send's own completion, with its error, gives it back).
                Op::Recv if result != -libc::ECANCELED => match self.sends.get(&key) {
                    Some(s) if s.linked => self.sends.remove(&key).map(|s| s.data),
                    _ => None,
                },
                _ => None,
            };
            // A linked send's failure completion was not counted in flight.
            let linked_send = op == Op::Send && sent.is_none();
            if !more && !linked_send {
                self.in_flight = self.in_flight.saturating_sub(1);
            }
            out.push(Completion {
                key,
                op,
                result,
                more,
                buffer: cqueue::buffer_select(flags),
                sent,
            });
        }
    }

    /// The bytes a receive put in buffer `bid`.
    pub fn buffer(&self, bid: u16, len: usize) -> &[u8] {
        let start = usize::from(bid) * self.bufs.size;
        &self.bufs.memory[start..start + len.min(self.bufs.size)]
    }

    /// Gives buffer `bid` back to the kernel.
    pub fn recycle(&mut self, bid: u16) {
        if bid < self.bufs.count {
            self.bufs.add(bid);
            self.bufs.publish();
        }
    }

    /// The receive buffers, and the size of each.
    pub fn buffers(&self) -> (u16, usize) {
        (self.bufs.count, self.bufs.size)
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        if self.in_flight > 0 {
            let any = opcode::AsyncCancel2::new(CancelBuilder::any())
                .build()
                .user_data(user_data(0, Op::Cancel));
            if self.push(&[any]).is_ok() {
                self.in_flight += 1;
                let mut out = Vec::new();
                for _ in 0..100 {
                    if self.in_flight == 0 {
                        break;
                    }
                    let _ = self.submit_and_wait(Some(Duration::from_millis(10)));
                    self.reap(&mut out);
                    out.clear();
                }
            }
        }
        if self.in_flight > 0 {
            // The kernel may still write into the buffers or read the sends after the
            // ring is closed: they are leaked rather than freed under it.
            std::mem::forget(std::mem::take(&mut self.sends));
            std::mem::forget(std::mem::replace(&mut self.wake_buf, Box::new(0)));
            self.bufs.leak();
        }
    }
}

/// Wakes a [`Ring`]'s wait from any thread.
#[derive(Debug, Clone)]
pub struct RingWaker(Arc<File>);

impl RingWaker {
    /// Completes the ring's armed eventfd read (best effort: a full counter is
    /// already a pending wake).
    pub fn wake(&self) {
        let _ = (&*self.0).write(&1u64.to_ne_bytes());
    }
}

/// The provided buffers and the ring that hands them to the kernel.
struct BufRing {
    /// The mapped ring of entries (page aligned, as the kernel wants it).
    entries: *mut BufRingEntry,
    map_len: usize,
    count: u16,
    size: usize,
    memory: Vec<u8>,
    tail: u16,
    leaked: bool,
}

impl BufRing {
    fn new(count: u16, size: usize) -> io::Result<BufRing> {
        if !count.is_power_of_two() || count > 32768 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the buffer count must be a power of two up to 32768",
            ));
        }
        let map_len = usize::from(count) * std::mem::size_of::<BufRingEntry>();
        // SAFETY: an anonymous private mapping, no address hint; the result is
        // checked before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_ANONYMOUS | libc::MAP_PRIVATE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(BufRing {
            entries: ptr.cast(),
            map_len,
            count,
            size,
            memory: vec![0; usize::from(count) * size],
            tail: 0,
            leaked: false,
        })
    }

    /// Puts buffer `bid` at the ring's tail (seen by the kernel after `publish`).
    fn add(&mut self, bid: u16) {
        let slot = usize::from(self.tail & (self.count - 1));
        let addr = self.memory.as_ptr() as u64 + u64::from(bid) * self.size as u64;
        // SAFETY: `slot` < count, inside the mapping; the kernel reads entries only
        // between the head and the published tail, and this one is past the tail.
        let entry = unsafe { &mut *self.entries.add(slot) };
        entry.set_addr(addr);
        entry.set_len(self.size as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes the entries added so far visible to the kernel.
    fn publish(&self) {
        // SAFETY: the ring's tail is the u16 at byte 14 of the mapping (struct
        // io_uring_buf_ring), aligned to 2, shared with the kernel: written atomically.
        let tail = unsafe { &*(self.entries.cast::<u8>().add(14).cast::<AtomicU16>()) };
        tail.store(self.tail, Ordering::Release);
    }

    fn leak(&mut self) {
        std::mem::forget(std::mem::take(&mut self.memory));
        self.leaked = true;
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        if !self.leaked {
            // SAFETY: the mapping made in `new`, with its length, unmapped once; the
            // ring that used it is closed (Ring's fields drop in order: the ring first).
            unsafe { libc::munmap(self.entries.cast(), self.map_len) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_that_mean_unavailable() {
        for errno in [libc::ENOSYS, libc::EPERM, libc::EACCES] {
            assert!(is_unavailable(&io::Error::from_raw_os_error(errno)));
        }
        for errno in [libc::ENOMEM, libc::EMFILE, libc::EINVAL] {
            assert!(!is_unavailable(&io::Error::from_raw_os_error(errno)));
        }
    }
}
