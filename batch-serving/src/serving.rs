//! The handle: a cheap `Clone + Send + Sync` front for callers.

use std::future::{Future, poll_fn};
use std::sync::Arc;

use tokio::sync::{Semaphore, TryAcquireError, mpsc, oneshot};
use tokio::time::{Duration, Instant};

use crate::batch::Batch;
use crate::error::Error;
use crate::key::BatchKey;
use crate::one_call::OneCall;
use crate::options::{CallOptions, Priority};
use crate::partition::Runner;
use crate::request::Request;
use crate::scheduler::{Msg, Piece};
use crate::stats::{Recorder, Stats};

pub(crate) type KeyFn<I> = Arc<dyn Fn(&I) -> BatchKey + Send + Sync>;

/// What one serving shares between its handles, callers and streams.
pub(crate) struct Inner<I, O, E> {
    pub(crate) tx: mpsc::UnboundedSender<Msg<I, O, E>>,
    pub(crate) permits: Arc<Semaphore>,
    pub(crate) capacity: usize,
    pub(crate) batch_size: usize,
    pub(crate) partitions: usize,
    pub(crate) recorder: Arc<Recorder>,
    pub(crate) runner: Arc<dyn Runner<I, O, E>>,
    pub(crate) key_fn: Option<KeyFn<I>>,
}

impl<I, O, E> Drop for Inner<I, O, E> {
    /// The last handle (or stream) is gone: stop intake and drain the queue.
    fn drop(&mut self) {
        self.permits.close();
        let _ = self.tx.send(Msg::Close { done: None });
    }
}

/// The most items one call may hold: a queued item records its position in
/// its call in 32 bits, which keeps every queue entry small. Larger calls
/// fail with `Overloaded` (admission already counted items in 32 bits).
pub(crate) const MAX_CALL_ITEMS: usize = u32::MAX as usize;

/// A completed one-item call's answer.
pub(crate) fn answer_of_one<O, E>(request: &Request<O, E>) -> Result<O, Error<E>> {
    request.take_single()?.ok_or(Error::Closed)
}

/// Whether admission waits for queue room or fails fast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    Wait,
    FailFast,
    /// The caller already holds the room (a [`Reservation`](crate::Reservation)
    /// handed it over). Admitting is then a no-op that never suspends, so a
    /// reserved call queues its items in its first poll, and room cannot be
    /// lost between the reservation and the queue.
    Reserved,
}

/// A running serving. Cloning is cheap (one `Arc`); every clone feeds the
/// same queue. Dropping the last clone drains the queue and stops the
/// partitions once all queued work has run.
///
/// Made by [`Serving::new`], [`Serving::with_state`] or
/// [`Serving::new_async`], then [`Builder::start`](crate::Builder::start).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), batch_serving::Error<std::convert::Infallible>> {
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
            .field("queue_capacity", &self.inner.capacity)
            .finish_non_exhaustive()
    }
}

/// Marks a call abandoned if its future is dropped before it completes.
struct AbandonOnDrop<'a, I, O, E> {
    inner: &'a Inner<I, O, E>,
    request: &'a Request<O, E>,
}

impl<I, O, E> Drop for AbandonOnDrop<'_, I, O, E> {
    fn drop(&mut self) {
        if !self.request.is_complete() {
            self.inner.abandon(self.request, false);
        }
    }
}

impl<I, O, E> Inner<I, O, E> {
    /// Records an abandoned call and tells the scheduler it may sweep.
    pub(crate) fn abandon(&self, request: &Request<O, E>, expired: bool) {
        if request.abandon(expired) {
            Recorder::bump(if expired {
                &self.recorder.expired
            } else {
                &self.recorder.cancelled
            });
            let _ = self.tx.send(Msg::Abandoned);
        }
    }

    fn key_of(&self, item: &I) -> BatchKey {
        self.key_fn
            .as_ref()
            .map_or(BatchKey::DEFAULT, |key_fn| key_fn(item))
    }

    /// Reserves queue room for `n` items (`n` is at most the capacity).
    pub(crate) async fn admit(&self, n: usize, admission: Admission) -> Result<(), Error<E>> {
        if !self.try_admit(n, admission)? {
            // Boxed so that every call's future does not carry the size of
            // the semaphore's wait, which only a full queue needs.
            Box::pin(self.admit_waiting(n)).await?;
        }
        Ok(())
    }

    /// Takes room for `n` items if there is some now: `Ok(false)` when the
    /// caller has to wait for it.
    pub(crate) fn try_admit(&self, n: usize, admission: Admission) -> Result<bool, Error<E>> {
        if admission == Admission::Reserved {
            return Ok(true);
        }
        let wanted = u32::try_from(n).map_err(|_| self.overloaded(n))?;
        match self.permits.try_acquire_many(wanted) {
            Ok(permit) => {
                permit.forget();
                Ok(true)
            }
            Err(TryAcquireError::Closed) => {
                Recorder::bump(&self.recorder.rejected);
                Err(Error::Closed)
            }
            Err(TryAcquireError::NoPermits) if admission == Admission::FailFast => {
                Err(self.overloaded(n))
            }
            Err(TryAcquireError::NoPermits) => Ok(false),
        }
    }

    async fn admit_waiting(&self, n: usize) -> Result<(), Error<E>> {
        let wanted = u32::try_from(n).map_err(|_| self.overloaded(n))?;
        match self.permits.acquire_many(wanted).await {
            Ok(permit) => {
                permit.forget();
                Ok(())
            }
            Err(_) => {
                Recorder::bump(&self.recorder.rejected);
                Err(Error::Closed)
            }
        }
    }

    pub(crate) fn overloaded(&self, requested: usize) -> Error<E> {
        Recorder::bump(&self.recorder.rejected);
        Error::Overloaded {
            requested,
            capacity: self.capacity,
        }
    }

    fn send(&self, msg: Msg<I, O, E>) -> Result<(), Error<E>> {
        self.tx.send(msg).map_err(|_| Error::Closed)
    }

    /// Queues every item of a many-item call. A call larger than the queue
    /// is admitted piece by piece as room frees up.
    pub(crate) async fn enqueue_all(
        &self,
        mut items: Vec<I>,
        request: &Arc<Request<O, E>>,
        priority: Priority,
        admission: Admission,
    ) -> Result<(), Error<E>> {
        let total = items.len();
        if total > MAX_CALL_ITEMS || (admission == Admission::FailFast && total > self.capacity) {
            return Err(self.overloaded(total));
        }
        let piece = if total <= self.capacity {
            total
        } else {
            self.batch_size.min(self.capacity)
        };
        let mut offset = 0;
        while !items.is_empty() {
            let rest = if items.len() > piece {
                items.split_off(piece)
            } else {
                Vec::new()
            };
            let chunk = std::mem::replace(&mut items, rest);
            let len = chunk.len();
            self.admit(len, admission).await?;
            let keys = match &self.key_fn {
                Some(key_fn) => chunk.iter().map(|item| key_fn(item)).collect(),
                None => Vec::new(),
            };
            self.send(Msg::Many(Box::new(Piece {
                items: chunk,
                keys,
                request: Arc::clone(request),
                offset,
                priority,
            })))?;
            offset += len;
        }
        Ok(())
    }

    /// Gives back the room of a reserved call that ends before queueing.
    fn release_reserved(&self, n: usize, admission: Admission) {
        if admission == Admission::Reserved {
            self.permits.add_permits(n);
        }
    }

    /// Runs `work` under the call's deadline, if it has one.
    pub(crate) async fn with_deadline<T>(
        &self,
        deadline: Option<Instant>,
        request: &Request<O, E>,
        work: impl Future<Output = Result<T, Error<E>>>,
    ) -> Result<T, Error<E>> {
        let Some(at) = deadline else {
            return work.await;
        };
        tokio::select! {
            biased;
            result = work => result,
            () = tokio::time::sleep_until(at) => {
                self.abandon(request, true);
                Err(Error::DeadlineExceeded)
            }
        }
    }

    pub(crate) async fn call_one(
        &self,
        item: I,
        options: CallOptions,
        admission: Admission,
    ) -> Result<O, Error<E>> {
        if options.deadline.is_some_and(|at| at <= Instant::now()) {
            self.release_reserved(1, admission);
            Recorder::bump(&self.recorder.expired);
            return Err(Error::DeadlineExceeded);
        }
        let request = Arc::new(Request::new(1, None));
        let guard = AbandonOnDrop {
            inner: self,
            request: &request,
        };
        let work = self.enqueue_one_and_wait(item, &request, options.priority, admission);
        // Only `OneCall`'s general path comes here, already boxed.
        let result = self.with_deadline(options.deadline, &request, work).await;
        std::mem::forget(guard);
        result
    }

    async fn enqueue_one_and_wait(
        &self,
        item: I,
        request: &Arc<Request<O, E>>,
        priority: Priority,
        admission: Admission,
    ) -> Result<O, Error<E>> {
        if !self.try_admit(1, admission)? {
            Box::pin(self.admit_waiting(1)).await?;
        }
        self.queue_one(item, request, priority)?;
        poll_fn(|cx| request.poll_ready(cx)).await;
        answer_of_one(request)
    }

    /// Sends a one-item call's item to the scheduler (room already taken).
    pub(crate) fn queue_one(
        &self,
        item: I,
        request: &Arc<Request<O, E>>,
        priority: Priority,
    ) -> Result<(), Error<E>> {
        let key = self.key_of(&item);
        self.send(Msg::One {
            item,
            request: Arc::clone(request),
            key,
            priority,
        })
    }

    pub(crate) async fn call_many(
        &self,
        items: Vec<I>,
        options: CallOptions,
        admission: Admission,
    ) -> Result<Vec<O>, Error<E>> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        if items.len() > MAX_CALL_ITEMS {
            // Before the reply slots are allocated.
            return Err(self.overloaded(items.len()));
        }
        if options.deadline.is_some_and(|at| at <= Instant::now()) {
            self.release_reserved(items.len(), admission);
            Recorder::bump(&self.recorder.expired);
            return Err(Error::DeadlineExceeded);
        }
        let request = Arc::new(Request::new(items.len(), None));
        let guard = AbandonOnDrop {
            inner: self,
            request: &request,
        };
        let work = async {
            self.enqueue_all(items, &request, options.priority, admission)
                .await?;
            Ok(poll_fn(|cx| request.poll_complete(cx)).await?)
        };
        let result = match options.deadline {
            Some(at) => Box::pin(self.with_deadline(Some(at), &request, work)).await,
            None => work.await,
        };
        if result.is_err() {
            // Pieces of a failed call that are still queued need not run.
            request.abandon(false);
        }
        std::mem::forget(guard);
        result
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
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), batch_serving::Error<std::convert::Infallible>> {
    /// use batch_serving::{Batch, Serving};
    /// let serving = Serving::new(|b: Batch<u32>| Ok::<_, std::convert::Infallible>(b.iter().map(|x| x + 1).collect()))
    ///     .start()?;
    /// assert_eq!(serving.dispatch(1).await?, 2);
    /// # Ok(()) }
    /// ```
    pub fn dispatch(&self, item: I) -> impl Future<Output = Result<O, Error<E>>> + Send + '_ {
        OneCall::new(&self.inner, item, CallOptions::default(), Admission::Wait)
    }

    /// [`dispatch`](Self::dispatch) with a deadline and priority.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), batch_serving::Error<std::convert::Infallible>> {
    /// use batch_serving::{Batch, CallOptions, Priority, Serving};
    /// use std::time::Duration;
    /// # let serving = Serving::new(|b: Batch<u8>| Ok::<_, std::convert::Infallible>(b.to_vec())).start()?;
    /// let opts = CallOptions::new().timeout(Duration::from_secs(1)).priority(Priority::High);
    /// assert_eq!(serving.dispatch_with(1, opts).await?, 1);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`dispatch`](Self::dispatch), plus [`Error::DeadlineExceeded`] at
    /// the deadline (not later): queued items are removed and never run.
    ///
    /// # Cancel safety
    ///
    /// As [`dispatch`](Self::dispatch).
    pub fn dispatch_with(
        &self,
        item: I,
        options: CallOptions,
    ) -> impl Future<Output = Result<O, Error<E>>> + Send + '_ {
        OneCall::new(&self.inner, item, options, Admission::Wait)
    }

    /// Like [`dispatch`](Self::dispatch), but fails at once with
    /// [`Error::Overloaded`] instead of waiting when the queue is full.
    ///
    /// # Errors
    ///
    /// As [`dispatch`](Self::dispatch), plus [`Error::Overloaded`].
    ///
    /// # Cancel safety
    ///
    /// As [`dispatch`](Self::dispatch).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), batch_serving::Error<std::convert::Infallible>> {
    /// use batch_serving::{Batch, Serving};
    /// let serving = Serving::new(|b: Batch<u32>| Ok::<_, std::convert::Infallible>(b.iter().map(|x| x + 1).collect()))
    ///     .start()?;
    /// // Fails fast with Error::Overloaded instead of waiting when the queue is full.
    /// assert_eq!(serving.try_dispatch(1).await?, 2);
    /// # Ok(()) }
    /// ```
    pub fn try_dispatch(&self, item: I) -> impl Future<Output = Result<O, Error<E>>> + Send + '_ {
        OneCall::new(
            &self.inner,
            item,
            CallOptions::default(),
            Admission::FailFast,
        )
    }

    /// Queues several items and returns their outputs in the same order.
    ///
    /// Items join the forming batch; those that do not fit continue in the
    /// following batches, possibly on other partitions, and the outputs are
    /// reassembled by position. `dispatch_many(vec![])` returns `Ok(vec![])`
    /// at once without touching the queue. A call larger than the queue
    /// capacity is admitted in pieces as room frees up.
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
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), batch_serving::Error<std::convert::Infallible>> {
    /// use batch_serving::{Batch, Serving};
    /// let serving = Serving::new(|b: Batch<u32>| Ok::<_, std::convert::Infallible>(b.iter().map(|x| x + 1).collect()))
    ///     .start()?;
    /// assert_eq!(serving.dispatch_many(vec![1, 2, 3]).await?, vec![2, 3, 4]);
    /// assert_eq!(serving.dispatch_many(vec![]).await?, Vec::<u32>::new());
    /// # Ok(()) }
    /// ```
    pub async fn dispatch_many(&self, items: Vec<I>) -> Result<Vec<O>, Error<E>> {
        self.inner
            .call_many(items, CallOptions::default(), Admission::Wait)
            .await
    }

    /// [`dispatch_many`](Self::dispatch_many) with a deadline and priority.
    ///
    /// # Errors
    ///
    /// As [`dispatch_many`](Self::dispatch_many), plus
    /// [`Error::DeadlineExceeded`].
    ///
    /// # Cancel safety
    ///
    /// As [`dispatch_many`](Self::dispatch_many).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), batch_serving::Error<std::convert::Infallible>> {
    /// use batch_serving::{Batch, Serving};
    /// let serving = Serving::new(|b: Batch<u32>| Ok::<_, std::convert::Infallible>(b.iter().map(|x| x + 1).collect()))
    ///     .start()?;
    /// use batch_serving::{CallOptions, Priority};
    /// let background = CallOptions::new().priority(Priority::Low);
    /// assert_eq!(serving.dispatch_many_with(vec![1, 2], background).await?, vec![2, 3]);
    /// # Ok(()) }
    /// ```
    pub async fn dispatch_many_with(
        &self,
        items: Vec<I>,
        options: CallOptions,
    ) -> Result<Vec<O>, Error<E>> {
        self.inner.call_many(items, options, Admission::Wait).await
    }

    /// Like [`dispatch_many`](Self::dispatch_many), but fails at once with
    /// [`Error::Overloaded`] when the queue lacks room for all the items.
    ///
    /// # Errors
    ///
    /// As [`dispatch_many`](Self::dispatch_many), plus [`Error::Overloaded`].
    ///
    /// # Cancel safety
    ///
    /// As [`dispatch_many`](Self::dispatch_many).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), batch_serving::Error<std::convert::Infallible>> {
    /// use batch_serving::{Batch, Serving};
    /// let serving = Serving::new(|b: Batch<u32>| Ok::<_, std::convert::Infallible>(b.iter().map(|x| x + 1).collect()))
    ///     .start()?;
    /// assert_eq!(serving.try_dispatch_many(vec![5, 6]).await?, vec![6, 7]);
    /// # Ok(()) }
    /// ```
    pub async fn try_dispatch_many(&self, items: Vec<I>) -> Result<Vec<O>, Error<E>> {
        self.inner
            .call_many(items, CallOptions::default(), Admission::FailFast)
            .await
    }

    /// Runs the batch function on the calling thread, without the queue,
    /// for one item. See [`inline_many`](Self::inline_many).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), batch_serving::Error<std::convert::Infallible>> {
    /// # use batch_serving::{Batch, Serving};
    /// let serving = Serving::new(|b: Batch<u32>| Ok::<_, std::convert::Infallible>(b.iter().map(|x| x * x).collect())).start()?;
    /// assert_eq!(serving.inline(4)?, 16);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// The batch's failure, or [`Error::InlineUnsupported`] for an async
    /// batch function.
    pub fn inline(&self, item: I) -> Result<O, Error<E>> {
        let mut outputs = self.inline_many(vec![item])?;
        outputs.pop().ok_or(Error::WrongOutputCount {
            expected: 1,
            actual: 0,
        })
    }

    /// Runs the batch function on the calling thread for `items`, split into
    /// batches of at most `batch_size` (and by key), as `Nx.Serving.run` does.
    /// Inline calls share one extra state (see
    /// [`with_state`](Self::with_state)) and run one at a time.
    ///
    /// # Errors
    ///
    /// As [`inline`](Self::inline).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), batch_serving::Error<std::convert::Infallible>> {
    /// use batch_serving::{Batch, Serving};
    /// let serving = Serving::new(|b: Batch<u32>| Ok::<_, std::convert::Infallible>(b.iter().map(|x| x + 1).collect()))
    ///     .start()?;
    /// // Runs on this thread, split by batch_size, without queueing.
    /// assert_eq!(serving.inline_many(vec![1, 2])?, vec![2, 3]);
    /// # Ok(()) }
    /// ```
    pub fn inline_many(&self, items: Vec<I>) -> Result<Vec<O>, Error<E>> {
        let inner = &*self.inner;
        let total = items.len();
        let mut groups: Vec<(BatchKey, Vec<(usize, I)>)> = Vec::new();
        for (position, item) in items.into_iter().enumerate() {
            let key = inner.key_of(&item);
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, group)) => group.push((position, item)),
                None => groups.push((key, vec![(position, item)])),
            }
        }
        let mut placed: Vec<Option<O>> = (0..total).map(|_| None).collect();
        for (key, group) in groups {
            let mut group = group.into_iter();
            loop {
                let (positions, chunk): (Vec<usize>, Vec<I>) =
                    group.by_ref().take(inner.batch_size).unzip();
                if chunk.is_empty() {
                    break;
                }
                let batch = Batch::new(chunk, key, inner.partitions, Vec::new());
                let outputs = inner
                    .runner
                    .run_inline(batch, inner.partitions)
                    .ok_or(Error::InlineUnsupported)??;
                for (position, output) in positions.into_iter().zip(outputs) {
                    placed[position] = Some(output);
                }
            }
        }
        Ok(placed.into_iter().flatten().collect())
    }

    /// Stops intake, runs everything already queued to completion and waits
    /// for running batches. New calls get [`Error::Closed`]; so do callers
    /// still waiting for queue room.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), batch_serving::Error<std::convert::Infallible>> {
    /// # use batch_serving::{Batch, Error, Serving};
    /// let serving = Serving::new(|b: Batch<u8>| Ok::<_, std::convert::Infallible>(b.to_vec())).start()?;
    /// serving.shutdown(None).await?;
    /// assert!(matches!(serving.dispatch(1).await, Err(Error::Closed)));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::ShutdownTimedOut`] when `limit` passed first: calls still
    /// queued then got [`Error::Closed`]; running batches were still awaited.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future does not undo the shutdown; the drain continues.
    pub async fn shutdown(&self, limit: Option<Duration>) -> Result<(), Error<E>> {
        self.inner.permits.close();
        let (done_tx, mut done_rx) = oneshot::channel();
        if self
            .inner
            .tx
            .send(Msg::Close {
                done: Some(done_tx),
            })
            .is_err()
        {
            return Ok(()); // already stopped
        }
        let Some(limit) = limit else {
            let _ = done_rx.await;
            return Ok(());
        };
        if tokio::time::timeout(limit, &mut done_rx).await.is_ok() {
            return Ok(());
        }
        let _ = self.inner.tx.send(Msg::Abort);
        let _ = done_rx.await;
        Err(Error::ShutdownTimedOut)
    }

    /// Whether [`shutdown`](Self::shutdown) was called (or the serving
    /// stopped): new calls fail with [`Error::Closed`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), batch_serving::Error<std::convert::Infallible>> {
    /// use batch_serving::{Batch, Serving};
    /// let serving = Serving::new(|b: Batch<u32>| Ok::<_, std::convert::Infallible>(b.iter().map(|x| x + 1).collect()))
    ///     .start()?;
    /// assert!(!serving.is_closed());
    /// serving.shutdown(None).await?;
    /// assert!(serving.is_closed());
    /// assert!(matches!(serving.dispatch(1).await, Err(batch_serving::Error::Closed)));
    /// # Ok(()) }
    /// ```
    pub fn is_closed(&self) -> bool {
        self.inner.permits.is_closed()
    }

    /// A snapshot of the counters and latency percentiles.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), batch_serving::Error<std::convert::Infallible>> {
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
        let free = inner.permits.available_permits();
        let depth = inner.capacity.saturating_sub(free) as u64;
        inner.recorder.snapshot(inner.batch_size, depth)
    }

    /// The configured `batch_size`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), batch_serving::Error<std::convert::Infallible>> {
    /// use batch_serving::{Batch, Serving};
    /// let serving = Serving::new(|b: Batch<u32>| Ok::<_, std::convert::Infallible>(b.iter().map(|x| x + 1).collect()))
    ///     .start()?;
    /// assert_eq!(serving.batch_size(), batch_serving::DEFAULT_BATCH_SIZE);
    /// # Ok(()) }
    /// ```
    pub fn batch_size(&self) -> usize {
        self.inner.batch_size
    }

    /// The configured `queue_capacity`, in items.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), batch_serving::Error<std::convert::Infallible>> {
    /// use batch_serving::{Batch, Serving};
    /// let serving = Serving::new(|b: Batch<u32>| Ok::<_, std::convert::Infallible>(b.iter().map(|x| x + 1).collect()))
    ///     .start()?;
    /// assert_eq!(serving.queue_capacity(), serving.batch_size() * batch_serving::DEFAULT_QUEUE_BATCHES);
    /// # Ok(()) }
    /// ```
    pub fn queue_capacity(&self) -> usize {
        self.inner.capacity
    }

    /// The configured number of partitions.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), batch_serving::Error<std::convert::Infallible>> {
    /// use batch_serving::{Batch, Serving};
    /// let serving = Serving::new(|b: Batch<u32>| Ok::<_, std::convert::Infallible>(b.iter().map(|x| x + 1).collect()))
    ///     .start()?;
    /// assert_eq!(serving.partitions(), 1);
    /// # Ok(()) }
    /// ```
    pub fn partitions(&self) -> usize {
        self.inner.partitions
    }
}
