//! Per-call options: deadline, priority and admission.

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

/// How one call is admitted and run: its deadline, its priority, and
/// whether it waits for queue room. Every call verb has a `_with` form that
/// takes these; the plain form uses the defaults.
///
/// The fields are public to read; set them with the builder methods.
///
/// ```
/// use batch_serving::{CallOptions, Priority};
/// use std::time::Duration;
/// let opts = CallOptions::new()
///     .timeout(Duration::from_millis(50))
///     .priority(Priority::High)
///     .fail_fast();
/// assert_eq!((opts.priority, opts.fail_fast), (Priority::High, true));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CallOptions {
    /// When the call fails with
    /// [`Error::DeadlineExceeded`](crate::Error::DeadlineExceeded) if its
    /// results are not ready. `None`: no deadline.
    pub deadline: Option<Instant>,
    /// Where the call's items queue within their batch key.
    pub priority: Priority,
    /// Fail at once with [`Error::Overloaded`](crate::Error::Overloaded)
    /// when the queue lacks room for the call, instead of waiting for room
    /// (a zero wait, as deadpool's `try_get`). A many-item call larger than
    /// the whole queue is then refused whole, since it could never be
    /// admitted at once.
    pub fail_fast: bool,
}

impl CallOptions {
    /// Default options: no deadline, [`Priority::Normal`], wait for room.
    ///
    /// ```
    /// use batch_serving::{CallOptions, Priority};
    /// let options = CallOptions::new();
    /// assert_eq!((options.deadline, options.priority, options.fail_fast), (None, Priority::Normal, false));
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Fail the call with [`Error::DeadlineExceeded`](crate::Error::DeadlineExceeded)
    /// at `deadline` if its results are not ready by then. Items still queued
    /// at that moment are removed and never run; a batch already running
    /// finishes, and its output for this call is dropped.
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
    #[must_use]
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
    /// assert_eq!(options.deadline, Some(tokio::time::Instant::now() + Duration::from_millis(20)));
    /// # }
    /// ```
    #[must_use]
    pub fn timeout(self, timeout: Duration) -> Self {
        self.deadline(Instant::now() + timeout)
    }

    /// Set the call's priority.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use batch_serving::{Batch, CallOptions, Priority, Serving};
    /// let serving = Serving::new(|b: Batch<u8>| Ok::<_, std::convert::Infallible>(b.to_vec())).start()?;
    /// let urgent = CallOptions::new().priority(Priority::High);
    /// assert_eq!(serving.dispatch_with(7, urgent).await?, 7);
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Fail at once with [`Error::Overloaded`](crate::Error::Overloaded)
    /// instead of waiting when the queue lacks room (see
    /// [`fail_fast`](Self#structfield.fail_fast)).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use batch_serving::{Batch, CallOptions, Error, Serving};
    /// let serving = Serving::new(|b: Batch<u8>| Ok::<_, std::convert::Infallible>(b.to_vec()))
    ///     .queue_capacity(2)
    ///     .start()?;
    /// let too_many = serving.dispatch_many_with(vec![1, 2, 3], CallOptions::new().fail_fast()).await;
    /// assert!(matches!(too_many, Err(Error::Overloaded { requested: 3, capacity: 2 })));
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn fail_fast(mut self) -> Self {
        self.fail_fast = true;
        self
    }
}
