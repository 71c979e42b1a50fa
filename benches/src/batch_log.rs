//! What every contender's batch function reports: how many batches and items
//! it ran, whether any batch was empty or over the limit, and on which kind
//! of thread. A global, because batched-fn's handler lives in a `static`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters for the cell being measured; reset between cells.
#[derive(Debug)]
pub struct BatchLog {
    batches: AtomicU64,
    items: AtomicU64,
    empty: AtomicU64,
    oversized: AtomicU64,
    limit: AtomicU64,
    thread: Mutex<Option<&'static str>>,
}

/// The one log.
pub static LOG: BatchLog = BatchLog {
    batches: AtomicU64::new(0),
    items: AtomicU64::new(0),
    empty: AtomicU64::new(0),
    oversized: AtomicU64::new(0),
    limit: AtomicU64::new(u64::MAX),
    thread: Mutex::new(None),
};

/// A snapshot of the log.
#[derive(Debug, Clone, Copy, Default)]
pub struct BatchCounts {
    /// Batches run.
    pub batches: u64,
    /// Items run.
    pub items: u64,
    /// Batches with no items.
    pub empty: u64,
    /// Batches above the configured size.
    pub oversized: u64,
    /// The kind of thread the function ran on.
    pub thread: Option<&'static str>,
}

impl BatchLog {
    /// Clears the counters and sets the batch size limit to check.
    pub fn reset(&self, limit: usize) {
        self.batches.store(0, Ordering::Relaxed);
        self.items.store(0, Ordering::Relaxed);
        self.empty.store(0, Ordering::Relaxed);
        self.oversized.store(0, Ordering::Relaxed);
        self.limit.store(limit as u64, Ordering::Relaxed);
        *self.thread.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Called by a batch function with its batch's length.
    pub fn record(&self, len: usize) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.items.fetch_add(len as u64, Ordering::Relaxed);
        if len == 0 {
            self.empty.fetch_add(1, Ordering::Relaxed);
        }
        if len as u64 > self.limit.load(Ordering::Relaxed) {
            self.oversized.fetch_add(1, Ordering::Relaxed);
        }
        let mut thread = self.thread.lock().unwrap_or_else(|p| p.into_inner());
        if thread.is_none() {
            *thread = Some(if tokio::runtime::Handle::try_current().is_ok() {
                "tokio worker"
            } else {
                "own thread"
            });
        }
    }

    /// The counters now.
    pub fn snapshot(&self) -> BatchCounts {
        BatchCounts {
            batches: self.batches.load(Ordering::Relaxed),
            items: self.items.load(Ordering::Relaxed),
            empty: self.empty.load(Ordering::Relaxed),
            oversized: self.oversized.load(Ordering::Relaxed),
            thread: *self.thread.lock().unwrap_or_else(|p| p.into_inner()),
        }
    }
}
