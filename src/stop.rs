//! The signal that stops a server, passed in by whoever runs it: `main` triggers it
//! on SIGINT or SIGTERM, a test triggers it when it has seen enough. On it a server
//! stops accepting, gives connections in flight `--grace` to finish, then closes the
//! rest.

use crate::sync::Locked;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use tokio::sync::Notify;

/// A one-way switch shared by the server and whoever may stop it. Cloning it gives
/// another handle to the same switch.
#[derive(Debug, Clone, Default)]
pub struct Stop {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    triggered: AtomicBool,
    /// Set by a second request: the grace period ends now.
    hurried: AtomicBool,
    hurry: Notify,
    notify: Notify,
    /// For threads that wait without a runtime.
    flag: Mutex<bool>,
    flipped: Condvar,
    /// Listeners whose blocking `accept()` must be woken.
    listeners: Mutex<Vec<TcpListener>>,
}

impl Stop {
    /// A switch that has not been triggered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stops the server (idempotent).
    pub fn trigger(&self) {
        if self.inner.triggered.swap(true, Ordering::SeqCst) {
            return;
        }
        self.inner.notify.notify_waiters();
        *self.inner.flag.locked() = true;
        self.inner.flipped.notify_all();
        let listeners = self.inner.listeners.locked();
        for listener in listeners.iter() {
            // On Linux, shutting down a listening socket makes a blocked accept()
            // return at once.
            let _ = socket2::SockRef::from(listener).shutdown(std::net::Shutdown::Both);
        }
    }

    /// Ends the grace period now (a second SIGINT): connections still open are
    /// closed at once. Triggers the shutdown too, if it was not yet.
    pub fn hurry(&self) {
        self.inner.hurried.store(true, Ordering::SeqCst);
        self.inner.hurry.notify_waiters();
        self.trigger();
    }

    /// True once [`hurry`](Self::hurry) was called.
    pub fn is_hurried(&self) -> bool {
        self.inner.hurried.load(Ordering::SeqCst)
    }

    /// Completes once [`hurry`](Self::hurry) was called.
    pub async fn hurried(&self) {
        until(&self.inner.hurried, &self.inner.hurry).await
    }

    /// True once triggered.
    pub fn is_triggered(&self) -> bool {
        self.inner.triggered.load(Ordering::SeqCst)
    }

    /// Completes once triggered.
    pub async fn wait(&self) {
        until(&self.inner.triggered, &self.inner.notify).await
    }

    /// Blocks this thread until triggered.
    pub fn wait_blocking(&self) {
        let mut flag = self.inner.flag.locked();
        while !*flag {
            flag = self
                .inner
                .flipped
                .wait(flag)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Makes a trigger wake a thread blocked in `listener.accept()`.
    pub fn wake_accept(&self, listener: &TcpListener) -> std::io::Result<()> {
        let clone = listener.try_clone()?;
        self.inner.listeners.locked().push(clone);
        if self.is_triggered() {
            let _ = socket2::SockRef::from(listener).shutdown(std::net::Shutdown::Both);
        }
        Ok(())
    }
}

/// Completes once `flag` is set; whoever sets it notifies `notify` after.
async fn until(flag: &AtomicBool, notify: &Notify) {
    loop {
        // Created before the check, so a notification in between is not missed.
        let notified = notify.notified();
        if flag.load(Ordering::SeqCst) {
            return;
        }
        notified.await;
    }
}
