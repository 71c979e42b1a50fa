//! Batching policies: when a forming batch is ready to run.

/// When a batch starts.
///
/// ```
/// use batch_serving::Policy;
/// assert_eq!(Policy::default(), Policy::Timeout);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// Nx.Serving's semantics, the default. A batch runs when it is full, or
    /// when `batch_timeout` has passed since its first item arrived, whichever
    /// comes first (and only once a partition is free). Later arrivals never
    /// extend the timer.
    #[default]
    Timeout,
    /// A batch starts as soon as a partition is free, taking whatever is
    /// queued up to `batch_size`. There is never an idle wait: at low load
    /// each call runs at once, at high load batches fill while partitions are
    /// busy.
    Eager,
}

/// Why a batch started, recorded on its tracing span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StartReason {
    Full,
    Timeout,
    Eager,
    Drain,
}

impl StartReason {
    /// Every reason, in the order of [`index`](Self::index).
    pub(crate) const ALL: [StartReason; 4] = [
        StartReason::Full,
        StartReason::Timeout,
        StartReason::Eager,
        StartReason::Drain,
    ];

    pub(crate) fn index(self) -> usize {
        match self {
            StartReason::Full => 0,
            StartReason::Timeout => 1,
            StartReason::Eager => 2,
            StartReason::Drain => 3,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            StartReason::Full => "full",
            StartReason::Timeout => "timeout",
            StartReason::Eager => "eager",
            StartReason::Drain => "drain",
        }
    }
}
