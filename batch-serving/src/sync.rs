//! The primitives of the one hand-written rendezvous in the crate (a call's
//! [`Request`](crate::request)), from `std` and `futures`, or from `loom`
//! when its models run (`RUSTFLAGS="--cfg loom"`), so that loom can explore
//! every interleaving of callers and partitions.

#[cfg(not(loom))]
pub(crate) use std::sync::Mutex;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU8, AtomicU32};

#[cfg(loom)]
pub(crate) use loom::sync::Mutex;
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU8, AtomicU32};

/// A slot for the task to wake, with one API over `futures`' and loom's.
#[derive(Debug, Default)]
pub(crate) struct AtomicWaker {
    #[cfg(not(loom))]
    inner: futures::task::AtomicWaker,
    #[cfg(loom)]
    inner: loom::future::AtomicWaker,
}

impl AtomicWaker {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn register(&self, waker: &std::task::Waker) {
        #[cfg(not(loom))]
        self.inner.register(waker);
        #[cfg(loom)]
        self.inner.register_by_ref(waker);
    }

    pub(crate) fn wake(&self) {
        self.inner.wake();
    }
}
