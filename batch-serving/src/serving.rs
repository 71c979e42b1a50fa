//! The handle: a cheap `Clone + Send + Sync` front for callers, with every
//! call verb. The verbs form a grid: one item, many items, a stream of
//! pieces, or inline on the calling thread; each plain verb has a `_with`
//! form taking [`CallOptions`] (deadline, priority, fail-fast), and the
//! `try_` verbs are the fail-fast forms spelled out.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::time::Duration;

use crate::call::core::Inner;
use crate::call::one::OneCall;
use crate::call::stream::DispatchStream;
use crate::engine::message::Msg;
use crate::engine::policy::forecast::Forecast;
use crate::error::{Error, ShutdownTimedOut};
use crate::options::CallOptions;
use crate::stats::Stats;

/// A running serving. Cloning is cheap (one `Arc`); every clone feeds the
/// same queue.
///
/// Made by [`Serving::new`], [`Serving::with_state`] or
/// [`Serving::new_async`], then [`Builder::start`](crate::Builder::start).
/// It stops when [`shutdown`](Self::shutdown) is called, or once the last
/// clone, stream and reservation are gone (then no call can still be
/// waiting, since every call holds one of them).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use batch_serving::{Batch, Serving};
/// let serving = Serving::new(|b: Batch<u32>| Ok::<_, std::convert::Infallible>(b.iter().map(|x| x * x).collect()))
///     .batch_size(32)
///     .start()?;
/// let (a, b) = tokio::join!(serving.dispatch(3), serving.dispatch(4));
/// assert_eq!((a?, b?), (9, 16));
/// # Ok(()) }
/// ```
pub struct Serving<I, O, E> {
    pub(crate) inner: Arc<Inner<I, O, E>>,
}

impl<I, O, E> Clone for Serving<I, O, E> {
    fn clone(&self) -> Self {
        Serving {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<I, O, E> std::fmt::Debug for Serving<I, O, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Serving")
            .field("batch_size", &self.inner.batch_size)
            .field("partitions", &self.inner.partitions)
            .field("queue_capacity", &self.inner.capacity())
            .finish_non_exhaustive()
    }
}

impl<I, O, E> Serving<I, O, E>
where
    I: Send + 'static,
    O: Send + 'static,
    E: Send + Sync + 'static,
{
    pub(crate) fn from_inner(inner: Inner<I, O, E>) -> Self {
        Serving {
            inner: Arc::new(inner),
        }
    }

    /// Queues one item and waits for its output. Waits for queue room when
    /// the queue is full.
    ///
    /// # Errors
    ///
    /// Any [`Error`] of the batch it ran in ([`Error::Batch`],
    /// [`Error::Panicked`], [`Error::WrongOutputCount`]), or [`Error::Closed`]
    /// after shutdown.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before the item's batch starts removes the item:
    /// it is never run. Dropped later, the output is discarded.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use batch_serving::{Batch, Serving};
    /// let serving = Serving::new(|b: Batch<u32>| Ok::<_, std::convert::Infallible>(b.iter().map(|x| x + 1).collect()))
    ///     .start()?;
    /// assert_eq!(serving.dispatch(1).await?, 2);
    /// # Ok(()) }
    /// ```
    pub fn dispatch(&self, item: I) -> impl Future<Output = Result<O, Error<E>>> + Send + '_ {
        self.dispatch_with(item, CallOptions::default())
    }

    /// [`dispatch`](Self::dispatch) with a deadline, a priority, or
    /// fail-fast admission.
    ///
    /// # Errors
    ///
    /// As [`dispatch`](Self::dispatch), plus [`Error::DeadlineExceeded`] at
    /// the deadline (not later: a queued item is removed and never runs),
    /// and [`Error::Overloaded`] at once under fail-fast when the queue is
    /// full.
    ///
    /// # Cancel safety
    ///
    /// As [`dispatch`](Self::dispatch).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use batch_serving::{Batch, CallOptions, Priority, Serving};
    /// use std::time::Duration;
    /// # let serving = Serving::new(|b: Batch<u8>| Ok::<_, std::convert::Infallible>(b.to_vec())).start()?;
    /// let opts = CallOptions::new().timeout(Duration::from_secs(1)).priority(Priority::High);
    /// assert_eq!(serving.dispatch_with(1, opts).await?, 1);
    /// # Ok(()) }
    /// ```
    pub fn dispatch_with(
        &self,
        item: I,
        options: CallOptions,
    ) -> impl Future<Output = Result<O, Error<E>>> + Send + '_ {
        OneCall::new(&self.inner, item, options, false)
    }

    /// [`dispatch`](Self::dispatch) with fail-fast admission: fails at once
    /// with [`Error::Overloaded`] instead of waiting when the queue is full.
    /// The same as `dispatch_with(item, CallOptions::new().fail_fast())`.
    ///
    /// # Errors
    ///
    /// As [`dispatch`](Self::dispatch), plus [`Error::Overloaded`].
    ///
    /// # Cancel safety
    ///
    /// As [`dispatch`](Self::dispatch).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use batch_serving::{Batch, Serving};
    /// let serving = Serving::new(|b: Batch<u32>| Ok::<_, std::convert::Infallible>(b.iter().map(|x| x + 1).collect()))
    ///     .start()?;
    /// assert_eq!(serving.try_dispatch(1).await?, 2);
    /// # Ok(()) }
    /// ```
    pub fn try_dispatch(&self, item: I) -> impl Future<Output = Result<O, Error<E>>> + Send + '_ {
        self.dispatch_with(item, CallOptions::new().fail_fast())
    }

    /// Queues several items and returns their outputs in the same order.
    ///
    /// Items join the forming batch; those that do not fit continue in the
    /// following batches, possibly on other partitions, and the outputs are
    /// reassembled by position. `dispatch_many(vec![])` returns `Ok(vec![])`
    /// at once without touching the queue.
    ///
    /// A call no larger than the queue is admitted whole: its items enter
    /// the queue together. A larger call is admitted a batch's worth at a
    /// time as room frees up, so other callers' items may be queued between
    /// its pieces.
    ///
    /// # Errors
    ///
    /// As [`dispatch`](Self::dispatch). If any piece fails, the call gets
    /// that piece's error and its pieces still queued are dropped.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future removes the call's items that have not started.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use batch_serving::{Batch, Serving};
    /// let serving = Serving::new(|b: Batch<u32>| Ok::<_, std::convert::Infallible>(b.iter().map(|x| x + 1).collect()))
    ///     .start()?;
    /// assert_eq!(serving.dispatch_many(vec![1, 2, 3]).await?, vec![2, 3, 4]);
    /// assert_eq!(serving.dispatch_many(vec![]).await?, Vec::<u32>::new());
    /// # Ok(()) }
    /// ```
    pub async fn dispatch_many(&self, items: Vec<I>) -> Result<Vec<O>, Error<E>> {
        self.dispatch_many_with(items, CallOptions::default()).await
    }

    /// [`dispatch_many`](Self::dispatch_many) with a deadline, a priority,
    /// or fail-fast admission. Under fail-fast the whole call must fit in
    /// the queue's free room at once: a call larger than the queue is
    /// refused even by an empty queue.
    ///
    /// # Errors
    ///
    /// As [`dispatch_many`](Self::dispatch_many), plus
    /// [`Error::DeadlineExceeded`] and, under fail-fast,
    /// [`Error::Overloaded`].
    ///
    /// # Cancel safety
    ///
    /// As [`dispatch_many`](Self::dispatch_many).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use batch_serving::{Batch, CallOptions, Priority, Serving};
    /// let serving = Serving::new(|b: Batch<u32>| Ok::<_, std::convert::Infallible>(b.iter().map(|x| x + 1).collect()))
    ///     .start()?;
    /// let background = CallOptions::new().priority(Priority::Low);
    /// assert_eq!(serving.dispatch_many_with(vec![1, 2], background).await?, vec![2, 3]);
    /// # Ok(()) }
    /// ```
    pub async fn dispatch_many_with(
        &self,
        items: Vec<I>,
        options: CallOptions,
    ) -> Result<Vec<O>, Error<E>> {
        self.inner.call_many(items, options, 0).await
    }

    /// [`dispatch_many`](Self::dispatch_many) with fail-fast admission (see
    /// [`dispatch_many_with`](Self::dispatch_many_with)).
    ///
    /// # Errors
    ///
    /// As [`dispatch_many`](Self::dispatch_many), plus [`Error::Overloaded`].
    ///
    /// # Cancel safety
    ///
    /// As [`dispatch_many`](Self::dispatch_many).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use batch_serving::{Batch, Serving};
    /// let serving = Serving::new(|b: Batch<u32>| Ok::<_, std::convert::Infallible>(b.iter().map(|x| x + 1).collect()))
    ///     .start()?;
    /// assert_eq!(serving.try_dispatch_many(vec![5, 6]).await?, vec![6, 7]);
    /// # Ok(()) }
    /// ```
    pub async fn try_dispatch_many(&self, items: Vec<I>) -> Result<Vec<O>, Error<E>> {
        self.dispatch_many_with(items, CallOptions::new().fail_fast())
            .await
    }

    /// Queues `items` like [`dispatch_many`](Self::dispatch_many) and returns
    /// a stream of [`Event`](crate::Event)s: one `Output` per executed
    /// piece, carrying its offset, and the `Hook` events the batch function
    /// emits for this call's items. An empty `items` gives an empty stream.
    ///
    /// # Errors
    ///
    /// The stream yields the call's error (as
    /// [`dispatch_many`](Self::dispatch_many)) once, and ends.
    ///
    /// # Cancel safety
    ///
    /// Dropping the stream before its end removes the items that have not
    /// started.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use batch_serving::{Batch, Event, Serving};
    /// use futures::StreamExt;
    /// let serving = Serving::new(|b: Batch<u32>| {
    ///     b.emit("batch_len", b.len());
    ///     Ok::<_, std::convert::Infallible>(b.iter().map(|x| x * 10).collect())
    /// })
    /// .batch_size(2)
    /// .start()?;
    /// let mut done = vec![None; 5];
    /// let mut events = serving.dispatch_stream(vec![1, 2, 3, 4, 5]);
    /// while let Some(event) = events.next().await {
    ///     match event? {
    ///         Event::Output { offset, outputs } => {
    ///             for (i, y) in outputs.into_iter().enumerate() { done[offset + i] = Some(y); }
    ///         }
    ///         Event::Hook(hook) => assert!(*hook.payload::<usize>().unwrap() <= 2),
    ///     }
    /// }
    /// assert_eq!(done, [Some(10), Some(20), Some(30), Some(40), Some(50)]);
    /// # Ok(()) }
    /// ```
    pub fn dispatch_stream(&self, items: Vec<I>) -> DispatchStream<I, O, E> {
        self.dispatch_stream_with(items, CallOptions::default())
    }

    /// [`dispatch_stream`](Self::dispatch_stream) with a deadline, a
    /// priority, or fail-fast admission. At the deadline the stream yields
    /// [`Error::DeadlineExceeded`] and ends.
    ///
    /// # Errors
    ///
    /// As [`dispatch_stream`](Self::dispatch_stream), plus
    /// [`Error::DeadlineExceeded`] and, under fail-fast,
    /// [`Error::Overloaded`].
    ///
    /// # Cancel safety
    ///
    /// As [`dispatch_stream`](Self::dispatch_stream).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use batch_serving::{Batch, CallOptions, Priority, Serving};
    /// use futures::TryStreamExt;
    /// let serving = Serving::new(|b: Batch<u8>| Ok::<_, std::convert::Infallible>(b.to_vec())).start()?;
    /// let options = CallOptions::new().priority(Priority::High);
    /// let events: Vec<_> = serving.dispatch_stream_with(vec![1], options).try_collect().await?;
    /// assert_eq!(events.len(), 1);
    /// # Ok(()) }
    /// ```
    pub fn dispatch_stream_with(
        &self,
        items: Vec<I>,
        options: CallOptions,
    ) -> DispatchStream<I, O, E> {
        DispatchStream::new(&self.inner, items, options, 0)
    }

    /// Runs the batch function on the calling thread, without the queue,
    /// for one item. See [`inline_many`](Self::inline_many).
    ///
    /// # Errors
    ///
    /// The batch's failure, or [`Error::InlineUnsupported`] for an async
    /// batch function.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use batch_serving::{Batch, Serving};
    /// let serving = Serving::new(|b: Batch<u32>| Ok::<_, std::convert::Infallible>(b.iter().map(|x| x * x).collect())).start()?;
    /// assert_eq!(serving.inline(4)?, 16);
    /// # Ok(()) }
    /// ```
    pub fn inline(&self, item: I) -> Result<O, Error<E>> {
        self.inline_with(item, CallOptions::default())
    }

    /// [`inline`](Self::inline) with a deadline: see
    /// [`inline_many_with`](Self::inline_many_with).
    ///
    /// # Errors
    ///
    /// As [`inline`](Self::inline), plus [`Error::DeadlineExceeded`] when
    /// the deadline has passed before the batch starts.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use batch_serving::{Batch, CallOptions, Error, Serving};
    /// let serving = Serving::new(|b: Batch<u32>| Ok::<_, std::convert::Infallible>(b.to_vec())).start()?;
    /// let past = CallOptions::new().deadline(tokio::time::Instant::now());
    /// assert!(matches!(serving.inline_with(4, past), Err(Error::DeadlineExceeded)));
    /// # Ok(()) }
    /// ```
    pub fn inline_with(&self, item: I, options: CallOptions) -> Result<O, Error<E>> {
        let mut outputs = self.inline_many_with(vec![item], options)?;
        outputs.pop().ok_or(Error::WrongOutputCount {
            expected: 1,
            actual: 0,
        })
    }

    /// Runs the batch function on the calling thread for `items`, split into
    /// batches of at most `batch_size` (and by key), as `Nx.Serving.run` does.
    /// Inline calls share one extra state (see
    /// [`with_state`](Self::with_state)) and run one at a time. They are
    /// counted in [`Stats::inline_batches`], not in the queue's statistics.
    ///
    /// # Errors
    ///
    /// As [`inline`](Self::inline).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use batch_serving::{Batch, Serving};
    /// let serving = Serving::new(|b: Batch<u32>| Ok::<_, std::convert::Infallible>(b.iter().map(|x| x + 1).collect()))
    ///     .start()?;
    /// // Runs on this thread, split by batch_size, without queueing.
    /// assert_eq!(serving.inline_many(vec![1, 2])?, vec![2, 3]);
    /// # Ok(()) }
    /// ```
    pub fn inline_many(&self, items: Vec<I>) -> Result<Vec<O>, Error<E>> {
        self.inline_many_with(items, CallOptions::default())
    }

    /// [`inline_many`](Self::inline_many) with a deadline. The deadline is
    /// checked before each batch: a batch that has started runs to its end
    /// (it is this thread's own work), and no later batch starts once the
    /// deadline has passed. Priority and fail-fast do not apply: nothing is
    /// queued.
    ///
    /// # Errors
    ///
    /// As [`inline_many`](Self::inline_many), plus
    /// [`Error::DeadlineExceeded`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use batch_serving::{Batch, CallOptions, Serving};
    /// use std::time::Duration;
    /// let serving = Serving::new(|b: Batch<u32>| Ok::<_, std::convert::Infallible>(b.to_vec())).start()?;
    /// let soon = CallOptions::new().timeout(Duration::from_secs(1));
    /// assert_eq!(serving.inline_many_with(vec![1, 2], soon)?, vec![1, 2]);
    /// # Ok(()) }
    /// ```
    pub fn inline_many_with(
        &self,
        items: Vec<I>,
        options: CallOptions,
    ) -> Result<Vec<O>, Error<E>> {
        self.inner.run_inline(items, options)
    }

    /// Stops intake, runs everything already queued to completion and waits
    /// for the running batches. New calls get [`Error::Closed`]; so do
    /// callers still waiting for queue room.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future does not undo the shutdown; the drain continues.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use batch_serving::{Batch, Error, Serving};
    /// let serving = Serving::new(|b: Batch<u8>| Ok::<_, std::convert::Infallible>(b.to_vec())).start()?;
    /// serving.shutdown().await;
    /// assert!(matches!(serving.dispatch(1).await, Err(Error::Closed)));
    /// # Ok(()) }
    /// ```
    pub async fn shutdown(&self) {
        if let Some(done) = self.begin_shutdown() {
            let _ = done.await;
        }
    }

    /// [`shutdown`](Self::shutdown) with a limit on how long queued calls
    /// may wait to start. At the limit every call still queued fails with
    /// [`Error::Closed`], and then this waits for the batches already
    /// running: a batch function cannot be interrupted, and its callers
    /// still get their outputs. So it returns after at most `limit` plus
    /// the rest of the longest running batch.
    ///
    /// # Errors
    ///
    /// [`ShutdownTimedOut`] when the limit passed before the queue drained.
    ///
    /// # Cancel safety
    ///
    /// As [`shutdown`](Self::shutdown).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use batch_serving::{Batch, Serving};
    /// use std::time::Duration;
    /// let serving = Serving::new(|b: Batch<u8>| Ok::<_, std::convert::Infallible>(b.to_vec())).start()?;
    /// serving.shutdown_timeout(Duration::from_secs(5)).await?; // nothing queued: drains at once
    /// assert!(serving.is_closed());
    /// # Ok(()) }
    /// ```
    pub async fn shutdown_timeout(&self, limit: Duration) -> Result<(), ShutdownTimedOut> {
        let Some(mut done) = self.begin_shutdown() else {
            return Ok(()); // already stopped
        };
        if tokio::time::timeout(limit, &mut done).await.is_ok() {
            return Ok(());
        }
        let _ = self.inner.tx.send(Msg::Abort);
        let _ = done.await;
        Err(ShutdownTimedOut)
    }

    /// Closes intake and asks the scheduler to drain: the receiver is
    /// answered once everything queued has run (`None`: already stopped).
    fn begin_shutdown(&self) -> Option<oneshot::Receiver<()>> {
        self.inner.room.close();
        let (done_tx, done_rx) = oneshot::channel();
        self.inner
            .tx
            .send(Msg::Close {
                done: Some(done_tx),
            })
            .ok()
            .map(|()| done_rx)
    }

    /// Whether a shutdown has begun (or the serving stopped): new calls
    /// fail with [`Error::Closed`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use batch_serving::{Batch, Serving};
    /// let serving = Serving::new(|b: Batch<u32>| Ok::<_, std::convert::Infallible>(b.iter().map(|x| x + 1).collect()))
    ///     .start()?;
    /// assert!(!serving.is_closed());
    /// serving.shutdown().await;
    /// assert!(serving.is_closed());
    /// # Ok(()) }
    /// ```
    pub fn is_closed(&self) -> bool {
        self.inner.room.is_closed()
    }

    /// A snapshot of the counters and latency percentiles.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use batch_serving::{Batch, Serving};
    /// let serving = Serving::new(|b: Batch<u32>| Ok::<_, std::convert::Infallible>(b.iter().map(|x| x + 1).collect()))
    ///     .start()?;
    /// serving.dispatch_many(vec![1, 2]).await?;
    /// let stats = serving.stats();
    /// assert_eq!((stats.batches, stats.items, stats.queue_depth), (1, 2, 0));
    /// # Ok(()) }
    /// ```
    pub fn stats(&self) -> Stats {
        let inner = &*self.inner;
        inner.recorder.snapshot(
            inner.batch_size,
            inner.room.used() as u64,
            inner.forecast.as_deref().map(Forecast::view),
        )
    }

    /// Items now holding queue room: waiting in the queue, or in a batch
    /// handed ahead to a busy partition, but not yet running (a batch gives
    /// its room back when it starts). One atomic load, unlike
    /// [`stats`](Self::stats), so a router can read it on every call:
    /// `queue_capacity() - queued()` is the room a fail-fast call can still
    /// take.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use batch_serving::{Batch, Serving};
    /// let serving = Serving::new(|b: Batch<u32>| Ok::<_, std::convert::Infallible>(b.to_vec())).start()?;
    /// assert_eq!(serving.queued(), 0);
    /// serving.dispatch(1).await?;
    /// assert_eq!(serving.queued(), 0); // answered calls give their room back
    /// # Ok(()) }
    /// ```
    pub fn queued(&self) -> usize {
        self.inner.room.used()
    }

    /// The configured `batch_size`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use batch_serving::{Batch, Serving};
    /// let serving = Serving::new(|b: Batch<u32>| Ok::<_, std::convert::Infallible>(b.to_vec())).start()?;
    /// assert_eq!(serving.batch_size(), batch_serving::DEFAULT_BATCH_SIZE);
    /// # Ok(()) }
    /// ```
    pub fn batch_size(&self) -> usize {
        self.inner.batch_size
    }

    /// The configured `queue_capacity`, in items.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use batch_serving::{Batch, Serving};
    /// let serving = Serving::new(|b: Batch<u32>| Ok::<_, std::convert::Infallible>(b.to_vec())).start()?;
    /// assert_eq!(serving.queue_capacity(), serving.batch_size() * batch_serving::DEFAULT_QUEUE_BATCHES);
    /// # Ok(()) }
    /// ```
    pub fn queue_capacity(&self) -> usize {
        self.inner.capacity()
    }

    /// The configured number of partitions.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use batch_serving::{Batch, Serving};
    /// let serving = Serving::new(|b: Batch<u32>| Ok::<_, std::convert::Infallible>(b.to_vec())).start()?;
    /// assert_eq!(serving.partitions(), 1);
    /// # Ok(()) }
    /// ```
    pub fn partitions(&self) -> usize {
        self.inner.partitions
    }

    /// The configured batching policy.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use batch_serving::{Batch, Policy, Serving};
    /// let serving = Serving::new(|b: Batch<u32>| Ok::<_, std::convert::Infallible>(b.to_vec()))
    ///     .policy(Policy::Eager)
    ///     .start()?;
    /// assert_eq!(serving.policy(), Policy::Eager);
    /// # Ok(()) }
    /// ```
    pub fn policy(&self) -> crate::Policy {
        self.inner.policy
    }

    /// The configured `batch_timeout`: how long a forming batch waits to
    /// fill under [`Policy::Timeout`](crate::Policy::Timeout).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use batch_serving::{Batch, Serving};
    /// let serving = Serving::new(|b: Batch<u32>| Ok::<_, std::convert::Infallible>(b.to_vec())).start()?;
    /// assert_eq!(serving.batch_timeout(), batch_serving::DEFAULT_BATCH_TIMEOUT);
    /// # Ok(()) }
    /// ```
    pub fn batch_timeout(&self) -> Duration {
        self.inner.batch_timeout
    }
}
