//! Per-call options: deadline and priority.

use tokio::time::{Duration, Instant};

/// How urgent a call is. Within one batch key, queued items of a higher
/// priority enter the next batch before any item of a lower one.
///
/// Under sustained high-priority load, lower priorities wait: priority is
/// strict, not weighted.
///
/// ```
/// use batch_serving::Priority;
/// assert!(Priority::High > Priority::Normal && Priority::Normal > Priority::Low);
/// assert_eq!(Priority::default(), Priority::Normal);
/// ```
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
    ///
    /// ```
    /// use batch_serving::{CallOptions, Priority};
    /// let options = CallOptions::new();
    /// assert_eq!((options.deadline_at(), options.priority_level()), (None, Priority::Normal));
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Fail the call with [`Error::DeadlineExceeded`](crate::Error::DeadlineExceeded)
    /// at `deadline` if its results are not ready by then. Items still queued
    /// at that moment are removed and never run.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use batch_serving::{Batch, CallOptions, Error, Serving};
    /// use std::time::Duration;
    /// use tokio::time::Instant;
    /// let serving = Serving::new_async(|b: Batch<u8>| async move {
    ///     tokio::time::sleep(Duration::from_secs(1)).await; // a slow batch
    ///     Ok::<_, std::convert::Infallible>(b.to_vec())
    /// })
    /// .start()
    /// .unwrap();
    /// let deadline = Instant::now() + Duration::from_millis(50);
    /// let late = serving.dispatch_with(1, CallOptions::new().deadline(deadline)).await;
    /// assert!(matches!(late, Err(Error::DeadlineExceeded)));
    /// assert_eq!(Instant::now(), deadline); // answered at the deadline, not after the batch
    /// # }
    /// ```
    pub fn deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Like [`deadline`](Self::deadline), counted from now.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use batch_serving::CallOptions;
    /// use std::time::Duration;
    /// let options = CallOptions::new().timeout(Duration::from_millis(20));
    /// assert_eq!(options.deadline_at(), Some(tokio::time::Instant::now() + Duration::from_millis(20)));
    /// # }
    /// ```
    pub fn timeout(self, timeout: Duration) -> Self {
        self.deadline(Instant::now() + timeout)
    }

    /// Set the call's priority.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), batch_serving::Error<std::convert::Infallible>> {
    /// use batch_serving::{Batch, CallOptions, Priority, Serving};
    /// let serving = Serving::new(|b: Batch<u8>| Ok::<_, std::convert::Infallible>(b.to_vec())).start()?;
    /// let urgent = CallOptions::new().priority(Priority::High);
    /// assert_eq!(serving.dispatch_with(7, urgent).await?, 7);
    /// # Ok(()) }
    /// ```
    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// The priority these options carry.
    ///
    /// ```
    /// use batch_serving::{CallOptions, Priority};
    /// assert_eq!(CallOptions::new().priority(Priority::Low).priority_level(), Priority::Low);
    /// ```
    pub fn priority_level(&self) -> Priority {
        self.priority
    }

    /// The deadline these options carry, if any.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use batch_serving::CallOptions;
    /// let at = tokio::time::Instant::now();
    /// assert_eq!(CallOptions::new().deadline(at).deadline_at(), Some(at));
    /// # }
    /// ```
    pub fn deadline_at(&self) -> Option<Instant> {
        self.deadline
    }
}
