//! Batching policies: when a forming batch is ready to run.

use std::time::Duration;

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
    /// Eager, steered by a latency target: the most throughput while calls
    /// finish within `target`, counted from admission to answer. Set it
    /// with [`Builder::latency_target`](crate::Builder::latency_target).
    ///
    /// The serving learns what its batches cost (a line through execution
    /// time against batch weight, with a tail, updated after every batch;
    /// and each partition's speed against that line) and uses it three
    /// ways:
    /// - it caps each batch at the weight whose predicted time on its
    ///   partition fits twice into the target (a call may wait for one
    ///   batch and run in the next), and cuts a batch shorter when its most
    ///   urgent call would otherwise finish late; `batch_size` stays the
    ///   upper bound;
    /// - with several partitions, a forming batch that is too small to keep
    ///   up with arrivals waits for more while other partitions run;
    /// - a call whose predicted finish is past 90% of the target (or of its
    ///   own deadline, if sooner) is refused at once with
    ///   [`Error::PredictedLate`](crate::Error::PredictedLate), instead of
    ///   queueing only to fail later. The prediction is the rest of the
    ///   running batches, the batches the work ahead fills, and the call's
    ///   own. Nothing is refused until the model is worth trusting: given a
    ///   [`cost_prior`](crate::Builder::cost_prior), from the start;
    ///   otherwise once batches of different sizes have shown what an item
    ///   costs, or after eight batches.
    ///
    /// Within a priority, calls run earliest due first: each is due at its
    /// arrival plus `target`, or at its deadline if sooner. Calls without
    /// a tighter deadline so keep arrival order.
    Adaptive {
        /// The latency each call should stay within.
        target: Duration,
    },
}

/// Why a batch started, recorded on its tracing span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StartReason {
    Full,
    Timeout,
    Eager,
    Drain,
    /// An adaptive hold for more arrivals ended.
    Waited,
    /// The adaptive cap from the latency target ended the batch.
    Capped,
}

impl StartReason {
    /// Every reason, in the order of [`index`](Self::index).
    pub(crate) const ALL: [StartReason; 6] = [
        StartReason::Full,
        StartReason::Timeout,
        StartReason::Eager,
        StartReason::Drain,
        StartReason::Waited,
        StartReason::Capped,
    ];

    pub(crate) fn index(self) -> usize {
        match self {
            StartReason::Full => 0,
            StartReason::Timeout => 1,
            StartReason::Eager => 2,
            StartReason::Drain => 3,
            StartReason::Waited => 4,
            StartReason::Capped => 5,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            StartReason::Full => "full",
            StartReason::Timeout => "timeout",
            StartReason::Eager => "eager",
            StartReason::Drain => "drain",
            StartReason::Waited => "waited",
            StartReason::Capped => "capped",
        }
    }
}
