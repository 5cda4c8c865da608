//! The uring driver's executor: tasks on one thread, polled when woken, inside a
//! current-thread tokio runtime that has only its timers (as [`BlockOn`] does), so
//! that a handler's `Conn` can time its waits with tokio's `Sleep` unchanged.
//!
//! One round of the loop polls every woken task, then submits what they queued and
//! waits for a completion in the same system call (`io_uring_enter`); then it
//! yields to tokio, which fires the timers that are due. While a timer may be
//! pending (a connection with an idle timeout, a grace period), the wait is cut to
//! [`TICK`], since tokio does not tell when its next timer is due; without one the
//! wait has no timeout. A wake from another thread (the shutdown signal) writes
//! the ring's eventfd.
//!
//! [`BlockOn`]: crate::stream::BlockOn

use std::cell::{Cell, RefCell};
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use crate::sync::Locked;
use crate::sys::uring::RingWaker;

use super::{Driver, with_driver};

/// The longest wait while a tokio timer may be pending.
pub const TICK: Duration = Duration::from_millis(10);

/// The main future's id in the ready queue.
const MAIN: usize = usize::MAX;

type Task = Pin<Box<dyn Future<Output = ()>>>;

/// The ids of woken tasks, filled by wakers on any thread.
#[derive(Debug)]
struct Ready {
    ids: Mutex<Vec<usize>>,
    /// The loop is (about to be) waiting in the kernel: a wake must write the
    /// eventfd.
    sleeping: AtomicBool,
    ring: RingWaker,
}

impl Ready {
    fn push(&self, id: usize) {
        self.ids.locked().push(id);
        if self.sleeping.load(Ordering::SeqCst) {
            self.ring.wake();
        }
    }
}

struct TaskWaker {
    id: usize,
    ready: Arc<Ready>,
    queued: AtomicBool,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            self.ready.push(self.id);
        }
    }
}

struct Slot {
    task: Option<Task>,
    waker: Arc<TaskWaker>,
}

/// The spawned tasks of this thread.
#[derive(Default)]
struct Tasks {
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    live: usize,
    /// Woken whenever a task ends.
    on_end: Vec<Waker>,
}

thread_local! {
    static TASKS: RefCell<Tasks> = RefCell::default();
    static READY: RefCell<Option<Arc<Ready>>> = const { RefCell::new(None) };
    /// Timers that may be pending (see [`TICK`]).
    static TIMERS: Cell<usize> = const { Cell::new(0) };
}

/// Runs `future` as a task of this thread's uring loop. Outside of one, the task is
/// dropped.
pub fn spawn(future: impl Future<Output = ()> + 'static) {
    let Some(ready) = READY.with_borrow(Clone::clone) else {
        return;
    };
    TASKS.with_borrow_mut(|tasks| {
        let id = tasks.free.pop().unwrap_or(tasks.slots.len());
        let waker = Arc::new(TaskWaker {
            id,
            ready: Arc::clone(&ready),
            queued: AtomicBool::new(false),
        });
        let slot = Slot {
            // Out of tokio's cooperative budget: see `run`.
            task: Some(Box::pin(tokio::task::unconstrained(future))),
            waker,
        };
        if id == tasks.slots.len() {
            tasks.slots.push(Some(slot));
        } else {
            tasks.slots[id] = Some(slot);
        }
        tasks.live += 1;
        ready.push(id);
    });
}

/// Tasks spawned and not yet ended.
pub fn live() -> usize {
    TASKS.with_borrow(|t| t.live)
}

/// Completes once no spawned task is left.
pub async fn all_ended() {
    poll_fn(|cx| {
        TASKS.with_borrow_mut(|t| {
            if t.live == 0 {
                Poll::Ready(())
            } else {
                t.on_end.push(cx.waker().clone());
                Poll::Pending
            }
        })
    })
    .await
}

/// Drops every spawned task (their connections close); returns how many there were.
pub fn abort_all() -> usize {
    let taken: Vec<Task> = TASKS.with_borrow_mut(|t| {
        let taken = t
            .slots
            .iter_mut()
            .filter_map(|s| s.take().and_then(|s| s.task))
            .collect();
        t.free.clear();
        t.slots.clear();
        t.live = 0;
        taken
    });
    let n = taken.len();
    // Dropped outside the borrow: a task's drop may touch the driver.
    drop(taken);
    n
}

/// Counts a timer that may be pending while the guard lives.
#[derive(Debug)]
pub struct TimerGuard(());

impl TimerGuard {
    /// A timer is now pending.
    pub fn new() -> Self {
        TIMERS.set(TIMERS.get() + 1);
        TimerGuard(())
    }
}

impl Default for TimerGuard {
    fn default() -> Self {
        TimerGuard::new()
    }
}

impl Drop for TimerGuard {
    fn drop(&mut self) {
        TIMERS.set(TIMERS.get().saturating_sub(1));
    }
}

/// A timer may now be pending (a connection with an idle timeout).
pub(super) fn timer_started() {
    TIMERS.set(TIMERS.get() + 1);
}

/// One fewer.
pub(super) fn timer_ended() {
    TIMERS.set(TIMERS.get().saturating_sub(1));
}

/// tokio's sleep, counted so the loop wakes for it.
pub async fn sleep(duration: Duration) {
    let _guard = TimerGuard::new();
    tokio::time::sleep(duration).await;
}

/// Polls task `id` once; drops it if it ended.
fn poll_task(id: usize) {
    let taken = TASKS.with_borrow_mut(|t| {
        let slot = t.slots.get_mut(id)?.as_mut()?;
        slot.waker.queued.store(false, Ordering::Release);
        Some((slot.task.take()?, Arc::clone(&slot.waker)))
    });
    let Some((mut task, waker)) = taken else {
        return;
    };
    let waker = Waker::from(waker);
    let done = task
        .as_mut()
        .poll(&mut Context::from_waker(&waker))
        .is_ready();
    let ended = TASKS.with_borrow_mut(|t| {
        // The slot may have been cleared by `abort_all` during the poll.
        let Some(Some(slot)) = t.slots.get_mut(id) else {
            return None;
        };
        if done {
            t.slots[id] = None;
            t.free.push(id);
            t.live -= 1;
            Some(std::mem::take(&mut t.on_end))
        } else {
            slot.task = Some(task);
            None
        }
    });
    for waker in ended.into_iter().flatten() {
        waker.wake();
    }
}

/// Runs `main` (and the tasks it spawns) to its end on this thread with `driver`.
pub fn run<F: Future>(driver: Driver, main: F) -> std::io::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let ready = Arc::new(Ready {
        ids: Mutex::default(),
        sleeping: AtomicBool::new(false),
        ring: driver.ring.waker(),
    });
    super::install(driver)?;
    READY.set(Some(Arc::clone(&ready)));
    let main_task = Arc::new(TaskWaker {
        id: MAIN,
        ready: Arc::clone(&ready),
        queued: AtomicBool::new(false),
    });
    let main_waker = Waker::from(Arc::clone(&main_task));
    let output = runtime.block_on(async {
        // Every task runs outside tokio's cooperative budget: the loop is one tokio
        // task, so past 128 operations (a burst of accepts) tokio's semaphores and
        // timers would answer Pending and defer the wake to tokio's next park, while
        // the loop waits in the kernel: the accept loop stalled with 4,096
        // connections in the backlog.
        let mut main = std::pin::pin!(tokio::task::unconstrained(main));
        let mut woken = vec![MAIN];
        poll_fn(|cx| {
            loop {
                woken.append(&mut ready.ids.locked());
                if woken.is_empty() {
                    break;
                }
                for id in woken.drain(..) {
                    if id == MAIN {
                        main_task.queued.store(false, Ordering::Release);
                        let polled = main.as_mut().poll(&mut Context::from_waker(&main_waker));
                        if let Poll::Ready(out) = polled {
                            return Poll::Ready(Ok(out));
                        }
                    } else {
                        poll_task(id);
                    }
                    with_driver(Driver::flush_deferred);
                }
            }
            ready.sleeping.store(true, Ordering::SeqCst);
            let timeout = if !ready.ids.locked().is_empty() {
                Some(Duration::ZERO)
            } else if TIMERS.get() > 0 || with_driver(|d| d.wants_tick()).unwrap_or(false) {
                Some(TICK)
            } else {
                None
            };
            let waited = with_driver(|d| d.wait(timeout));
            // Wakes from here on are this thread's own: no eventfd.
            ready.sleeping.store(false, Ordering::SeqCst);
            match waited {
                Some(Ok(())) => {}
                Some(Err(e)) => return Poll::Ready(Err(e)),
                None => return Poll::Ready(Err(std::io::ErrorKind::NotConnected.into())),
            }
            with_driver(Driver::dispatch);
            // tokio fires the timers that are due, then polls this again.
            cx.waker().wake_by_ref();
            Poll::Pending
        })
        .await
    });
    abort_all();
    READY.set(None);
    super::uninstall();
    output
}
