//! When each batch started and ended, for S3 only: it splits a burst's time
//! into the wait for its first batch, the batches themselves, the gaps
//! between them and the wait for the last reply. Off by default, so the
//! other scenarios do not pay for the lock.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// The start and end of every batch run while recording.
#[derive(Debug)]
pub struct BatchTimes {
    on: AtomicBool,
    spans: Mutex<Vec<(Instant, Instant)>>,
}

/// The one recorder (batched-fn's handler lives in a `static`, so the
/// functions cannot be handed one).
pub static TIMES: BatchTimes = BatchTimes {
    on: AtomicBool::new(false),
    spans: Mutex::new(Vec::new()),
};

impl BatchTimes {
    /// Clears what was recorded and starts recording.
    pub fn start(&self) {
        self.lock().clear();
        self.on.store(true, Ordering::Relaxed);
    }

    /// Stops recording and returns the batches, in order of their start.
    pub fn stop(&self) -> Vec<(Instant, Instant)> {
        self.on.store(false, Ordering::Relaxed);
        let mut spans = std::mem::take(&mut *self.lock());
        spans.sort();
        spans
    }

    /// Called by the batch functions: one relaxed load when not recording.
    pub fn record(&self, started: Instant, ended: Instant) {
        if self.on.load(Ordering::Relaxed) {
            self.lock().push((started, ended));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Instant, Instant)>> {
        self.spans.lock().unwrap_or_else(|p| p.into_inner())
    }
}
