//! What can fail, by where it fails: [`Error`] for a call, [`StartError`]
//! for starting a serving, [`ShutdownTimedOut`] for a bounded shutdown.

use std::sync::Arc;

/// Everything that can go wrong for one call of a [`Serving`](crate::Serving).
///
/// `E` is the batch function's own error type. A failure that reaches every
/// caller of a batch (an `Err` from the batch function, a panic, a wrong
/// output count) is created once and shared: the batch function's error sits
/// behind an [`Arc`], so it is never cloned or rebuilt per caller.
///
/// ```
/// use batch_serving::Error;
/// let e: Error<std::io::Error> = Error::WrongOutputCount { expected: 4, actual: 3 };
/// assert_eq!(e.to_string(), "batch function returned 3 outputs for 4 inputs");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error<E> {
    /// The batch function returned `Err` for the batch this call's items ran in.
    /// Every caller of that batch gets the same shared error.
    #[error("batch function failed: {0}")]
    Batch(Arc<E>),
    /// The batch function panicked while running this call's batch. The
    /// partition caught the panic and keeps serving other batches.
    #[error("batch function panicked: {message}")]
    Panicked {
        /// The panic payload, when it was a string.
        message: Arc<str>,
    },
    /// The batch function returned a different number of outputs than it was
    /// given inputs, so no output can be matched to its caller.
    #[error("batch function returned {actual} outputs for {expected} inputs")]
    WrongOutputCount {
        /// Items in the batch.
        expected: usize,
        /// Outputs the batch function returned.
        actual: usize,
    },
    /// The serving was shut down before this call was queued, or a
    /// shutdown time limit ran out while it was still queued.
    #[error("serving is closed")]
    Closed,
    /// The queue had no room for this call and it asked not to wait
    /// ([`CallOptions::fail_fast`](crate::CallOptions::fail_fast), or a
    /// `try_` verb); or it cannot ever fit (a fail-fast many-item call or a
    /// reservation larger than the whole queue); or it holds more than
    /// `u32::MAX` items (the most one call may hold).
    #[error("serving is overloaded: {requested} items requested, queue capacity is {capacity}")]
    Overloaded {
        /// Items this call wanted to queue.
        requested: usize,
        /// The serving's `queue_capacity`.
        capacity: usize,
    },
    /// The adaptive policy refused the call at admission: with the work
    /// queued ahead of it, it was predicted to finish after `allowed` (90%
    /// of the latency target, or of the time to its own deadline if that
    /// is sooner). Nothing was queued; retrying later, or elsewhere, may
    /// succeed. See [`Policy::Adaptive`](crate::Policy::Adaptive).
    #[error(
        "refused at admission: predicted to finish in {predicted:?}, past the {allowed:?} it may take"
    )]
    PredictedLate {
        /// When the call was predicted to finish, from admission.
        predicted: std::time::Duration,
        /// What it was allowed.
        allowed: std::time::Duration,
    },
    /// The call's deadline passed before its results were ready. Items of the
    /// call that were still queued were removed and never run.
    #[error("deadline exceeded")]
    DeadlineExceeded,
    /// The client-side pre-processing (`map_inputs`) rejected this caller's
    /// input. Nothing was queued.
    #[error("invalid input: {0}")]
    Preprocess(E),
    /// The client-side post-processing (`map_results`) failed for this caller.
    #[error("post-processing failed: {0}")]
    Postprocess(E),
    /// `inline` was called on a serving whose batch function is asynchronous.
    #[error("inline needs a synchronous batch function; use dispatch for async servings")]
    InlineUnsupported,
}

/// Why [`Builder::start`](crate::Builder::start) could not start a serving.
/// These happen once, at start, never to a call; a call's failures are
/// [`Error`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use batch_serving::{Batch, Serving, StartError};
/// let bad = Serving::new(|b: Batch<u8>| Ok::<_, std::convert::Infallible>(b.to_vec()))
///     .partitions(0)
///     .start();
/// assert!(matches!(bad, Err(StartError::InvalidConfig(_))));
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError<E> {
    /// A setting given to the builder is not usable (a zero `batch_size`,
    /// `partitions` or `queue_capacity`, or a queue too large to count).
    #[error("invalid configuration: {0}")]
    InvalidConfig(&'static str),
    /// `start` was called outside a tokio runtime.
    #[error("start must be called from within a tokio runtime")]
    NoRuntime,
    /// A partition's state factory returned an error. It is shown in the
    /// message rather than as `source()`, so that any `E` (a `String`, say)
    /// makes a `StartError` that is a `std::error::Error`.
    #[error("partition {partition} failed to start: {error}")]
    PartitionStart {
        /// Index of the partition whose factory failed.
        partition: usize,
        /// The factory's error.
        error: E,
    },
    /// A partition's state factory panicked, or its thread ended before
    /// the factory returned.
    #[error("partition {partition} panicked while starting: {message}")]
    PartitionStartPanicked {
        /// Index of the partition whose factory panicked.
        partition: usize,
        /// The panic payload, when it was a string.
        message: Arc<str>,
    },
    /// The operating system refused to spawn a partition thread.
    #[error("could not spawn a partition thread: {0}")]
    Spawn(#[source] std::io::Error),
}

/// [`Serving::shutdown_timeout`](crate::Serving::shutdown_timeout) reached
/// its limit before the queue drained: the calls still queued then got
/// [`Error::Closed`]. The batches that were running still finished (and
/// answered their callers) before it returned.
///
/// ```
/// let e = batch_serving::ShutdownTimedOut;
/// assert_eq!(e.to_string(), "shutdown time limit reached before the queue drained");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("shutdown time limit reached before the queue drained")]
pub struct ShutdownTimedOut;

/// A failure shared by every caller of one batch. Cheap to clone: it holds
/// `Arc`s only, so one failure reaching many callers is never rebuilt.
#[derive(Debug)]
pub(crate) enum Failure<E> {
    Batch(Arc<E>),
    Panicked(Arc<str>),
    WrongOutputCount { expected: usize, actual: usize },
    Closed,
}

impl<E> Clone for Failure<E> {
    fn clone(&self) -> Self {
        match self {
            Failure::Batch(e) => Failure::Batch(Arc::clone(e)),
            Failure::Panicked(m) => Failure::Panicked(Arc::clone(m)),
            Failure::WrongOutputCount { expected, actual } => Failure::WrongOutputCount {
                expected: *expected,
                actual: *actual,
            },
            Failure::Closed => Failure::Closed,
        }
    }
}

impl<E> From<Failure<E>> for Error<E> {
    fn from(failure: Failure<E>) -> Self {
        match failure {
            Failure::Batch(e) => Error::Batch(e),
            Failure::Panicked(message) => Error::Panicked { message },
            Failure::WrongOutputCount { expected, actual } => {
                Error::WrongOutputCount { expected, actual }
            }
            Failure::Closed => Error::Closed,
        }
    }
}

/// Turns a caught panic payload into a message for the callers.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> Arc<str> {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        Arc::from(*s)
    } else if let Some(s) = payload.downcast_ref::<String>() {
        Arc::from(s.as_str())
    } else {
        Arc::from("non-string panic payload")
    }
}
