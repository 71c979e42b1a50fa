//! The batch functions of the scenarios: every call's reply is `x + 1`, so a
//! reply can be checked against its own caller's input.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::batch_log::LOG;
use crate::batch_times::TIMES;

/// Holds every batch function at its start while closed, so items pile up
/// in the queue for the memory measurement. Open by default; the check is
/// one relaxed load per batch.
#[derive(Debug)]
pub struct Gate {
    closed: AtomicBool,
    lock: Mutex<()>,
    opened: Condvar,
}

/// The one gate.
pub static GATE: Gate = Gate {
    closed: AtomicBool::new(false),
    lock: Mutex::new(()),
    opened: Condvar::new(),
};

impl Gate {
    /// Makes batch functions wait.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    /// Releases waiting batch functions.
    pub fn open(&self) {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.closed.store(false, Ordering::SeqCst);
        self.opened.notify_all();
    }

    fn pass(&self) {
        if !self.closed.load(Ordering::Relaxed) {
            return;
        }
        let mut guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        while self.closed.load(Ordering::SeqCst) {
            guard = self.opened.wait(guard).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// What a batch costs to run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cost {
    /// Nothing beyond the mapping (S1).
    Free,
    /// A busy spin of `fixed + per_item × len` (S2, S3): the CPU is used,
    /// not slept away.
    Spin {
        /// Cost per batch.
        fixed: Duration,
        /// Cost per item.
        per_item: Duration,
    },
}

impl Cost {
    /// How long one batch of `items` takes to run.
    pub fn batch_time(self, items: usize) -> Duration {
        match self {
            Cost::Free => Duration::ZERO,
            Cost::Spin { fixed, per_item } => fixed + per_item * items as u32,
        }
    }

    /// The S2 function: 300 µs + 4 µs per item.
    pub const S2: Cost = Cost::Spin {
        fixed: Duration::from_micros(300),
        per_item: Duration::from_micros(4),
    };
}

/// Runs one batch: records it, pays its cost, answers `x + 1` per item.
pub fn run_batch(cost: Cost, items: impl ExactSizeIterator<Item = u64>) -> Vec<u64> {
    let len = items.len();
    LOG.record(len);
    GATE.pass();
    if let Cost::Spin { fixed, per_item } = cost {
        let started = Instant::now();
        let until = started + fixed + per_item * len as u32;
        let mut now = started;
        while now < until {
            std::hint::spin_loop();
            now = Instant::now();
        }
        TIMES.record(started, now);
    }
    items.map(|x| x.wrapping_add(1)).collect()
}
