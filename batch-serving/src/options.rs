//! Per-call options: deadline and priority.

use tokio::time::{Duration, Instant};

/// How urgent a call is. Within one batch key, queued items of a higher
/// priority enter the next batch before any item of a lower one.
///
/// Under sustained high-priority load, lower priorities wait: priority is
/// strict, not weighted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Priority {
    /// Background work that may wait behind everything else.
    Low,
    /// The default.
    #[default]
    Normal,
    /// Interactive work that should jump the queue.
    High,
}

impl Priority {
    /// Number of priority levels (the queue keeps one lane per level).
    pub(crate) const LEVELS: usize = 3;

    /// Lane index, highest priority first.
    pub(crate) fn lane(self) -> usize {
        match self {
            Priority::High => 0,
            Priority::Normal => 1,
            Priority::Low => 2,
        }
    }
}

/// Options for one call: its deadline and priority.
///
/// ```
/// use batch_serving::{CallOptions, Priority};
/// use std::time::Duration;
/// let opts = CallOptions::new().timeout(Duration::from_millis(50)).priority(Priority::High);
/// assert_eq!(opts.priority_level(), Priority::High);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallOptions {
    pub(crate) deadline: Option<Instant>,
    pub(crate) priority: Priority,
}

impl CallOptions {
    /// Default options: no deadline, [`Priority::Normal`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Fail the call with [`Error::DeadlineExceeded`](crate::Error::DeadlineExceeded)
    /// at `deadline` if its results are not ready by then. Items still queued
    /// at that moment are removed and never run.
    pub fn deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Like [`deadline`](Self::deadline), counted from now.
    pub fn timeout(self, timeout: Duration) -> Self {
        self.deadline(Instant::now() + timeout)
    }

    /// Set the call's priority.
    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// The priority these options carry.
    pub fn priority_level(&self) -> Priority {
        self.priority
    }

    /// The deadline these options carry, if any.
    pub fn deadline_at(&self) -> Option<Instant> {
        self.deadline
    }
}
