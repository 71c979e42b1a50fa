//! Queue room taken before the items exist: a caller admits first, then does
//! its expensive preparation (decoding an image, tokenizing text), then
//! queues. A call that cannot be admitted fails before any of that work, and
//! room that is never used goes back to the queue when the reservation is
//! dropped, so no path can leak it.

use tokio::time::Instant;

use crate::call::gate::{Ask, Pass};
use crate::call::one::OneCall;
use crate::call::stream::DispatchStream;
use crate::error::Error;
use crate::options::CallOptions;
use crate::serving::Serving;

/// Queue room for a number of items, taken by [`Serving::reserve`] or
/// [`Serving::try_reserve`] and spent by one of its `dispatch` methods.
/// Dropping it unspent gives the room back.
///
/// Reserved room counts in [`Stats::queue_depth`](crate::Stats::queue_depth)
/// as if the items were queued: it is what bounds the work in the serving.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use batch_serving::{Batch, Error, Serving};
/// let serving = Serving::new(|b: Batch<u32>| Ok::<_, String>(b.iter().map(|x| x + 1).collect()))
///     .queue_capacity(1)
///     .start()?;
/// let room = serving.try_reserve(1)?;
/// // The queue is full now, so a second call is refused before it does any work.
/// assert!(matches!(serving.try_reserve(1), Err(Error::Overloaded { .. })));
/// let item = "41".parse::<u32>().map_err(|e| Error::Preprocess(e.to_string()))?;
/// assert_eq!(room.dispatch(item).await?, 42);
/// # Ok(()) }
/// ```
#[must_use = "dropping a reservation gives its queue room back"]
pub struct Reservation<I, O, E> {
    serving: Serving<I, O, E>,
    items: usize,
}

impl<I, O, E> std::fmt::Debug for Reservation<I, O, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation")
            .field("items", &self.items)
            .finish_non_exhaustive()
    }
}

impl<I, O, E> Drop for Reservation<I, O, E> {
    fn drop(&mut self) {
        self.serving.inner.room.give_back(self.items);
    }
}

impl<I, O, E> Serving<I, O, E>
where
    I: Send + 'static,
    O: Send + 'static,
    E: Send + Sync + 'static,
{
    /// Takes queue room for `items` items now, or fails at once: the
    /// admission step of [`try_dispatch`](Self::try_dispatch) on its own, so
    /// that a caller can refuse overload before preparing its input.
    ///
    /// # Errors
    ///
    /// [`Error::Overloaded`] when the queue lacks room (a reservation larger
    /// than the queue capacity never fits), [`Error::Closed`] after shutdown,
    /// [`Error::PredictedLate`] under [`Policy::Adaptive`](crate::Policy::Adaptive)
    /// when calls of that many items would miss the target. Each counts as
    /// `rejected` in [`stats`](Self::stats).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use batch_serving::{Batch, Serving};
    /// let serving = Serving::new(|b: Batch<u32>| Ok::<_, std::convert::Infallible>(b.to_vec()))
    ///     .queue_capacity(4)
    ///     .start()?;
    /// let room = serving.try_reserve(3)?;
    /// assert_eq!(serving.stats().queue_depth, 3);
    /// drop(room); // unused room goes back
    /// assert_eq!(serving.stats().queue_depth, 0);
    /// # Ok(()) }
    /// ```
    pub fn try_reserve(&self, items: usize) -> Result<Reservation<I, O, E>, Error<E>> {
        self.try_reserve_by(items, None)
    }

    /// [`try_reserve`](Self::try_reserve) for calls due by `deadline`.
    fn try_reserve_by(
        &self,
        items: usize,
        deadline: Option<Instant>,
    ) -> Result<Reservation<I, O, E>, Error<E>> {
        self.refuse_oversize(items)?;
        let ask = Ask {
            items,
            held: 0,
            deadline,
            fail_fast: true,
        };
        match self.inner.gate(ask)? {
            Pass::Now(ticket) => Ok(self.reservation(ticket.keep())),
            // Fail-fast is refused rather than sent to wait.
            Pass::Wait(_) => Err(Error::Closed),
        }
    }

    /// Takes queue room for `items` items, waiting while the queue is full:
    /// the admission step of [`dispatch`](Self::dispatch) on its own.
    ///
    /// # Errors
    ///
    /// [`Error::Overloaded`] at once for more items than the queue capacity
    /// (they could never fit), [`Error::Closed`] after shutdown, also for a
    /// caller that was waiting, [`Error::PredictedLate`] at once as for
    /// [`try_reserve`](Self::try_reserve).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future while it waits takes no room.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use batch_serving::{Batch, Serving};
    /// let serving = Serving::new(|b: Batch<u32>| Ok::<_, std::convert::Infallible>(b.to_vec())).start()?;
    /// let room = serving.reserve(2).await?;
    /// assert_eq!(room.dispatch_many(vec![1, 2]).await?, vec![1, 2]);
    /// # Ok(()) }
    /// ```
    pub async fn reserve(&self, items: usize) -> Result<Reservation<I, O, E>, Error<E>> {
        self.reserve_by(items, None).await
    }

    /// [`reserve`](Self::reserve) for calls due by `deadline`.
    async fn reserve_by(
        &self,
        items: usize,
        deadline: Option<Instant>,
    ) -> Result<Reservation<I, O, E>, Error<E>> {
        self.refuse_oversize(items)?;
        let ask = Ask {
            items,
            held: 0,
            deadline,
            fail_fast: false,
        };
        let ticket = match self.inner.gate(ask)? {
            Pass::Now(ticket) => ticket,
            Pass::Wait(_) => self.inner.wait_for_room(items).await?,
        };
        Ok(self.reservation(ticket.keep()))
    }

    /// [`reserve`](Self::reserve) that gives up at `deadline`, with
    /// [`Error::DeadlineExceeded`] (counted as expired, as a call that
    /// waited for room past its deadline is).
    async fn reserve_until(
        &self,
        items: usize,
        deadline: Instant,
    ) -> Result<Reservation<I, O, E>, Error<E>> {
        match tokio::time::timeout_at(deadline, self.reserve_by(items, Some(deadline))).await {
            Ok(reserved) => reserved,
            Err(_) => Err(self.inner.expired_before_queueing()),
        }
    }

    /// Reserves room as a call with `options` would be admitted: at once
    /// or not at all under fail-fast, otherwise waiting, up to the
    /// deadline when there is one.
    pub(crate) async fn reserve_as(
        &self,
        items: usize,
        options: &CallOptions,
    ) -> Result<Reservation<I, O, E>, Error<E>> {
        match (options.fail_fast, options.deadline) {
            (true, deadline) => self.try_reserve_by(items, deadline),
            (false, Some(at)) => self.reserve_until(items, at).await,
            (false, None) => self.reserve(items).await,
        }
    }

    fn refuse_oversize(&self, items: usize) -> Result<(), Error<E>> {
        if items > self.inner.capacity() {
            return Err(self.inner.overloaded(items));
        }
        Ok(())
    }

    fn reservation(&self, items: usize) -> Reservation<I, O, E> {
        Reservation {
            serving: self.clone(),
            items,
        }
    }
}

impl<I, O, E> Reservation<I, O, E>
where
    I: Send + 'static,
    O: Send + 'static,
    E: Send + Sync + 'static,
{
    /// How many items of room it holds.
    pub fn items(&self) -> usize {
        self.items
    }

    /// The serving the room belongs to.
    pub fn serving(&self) -> &Serving<I, O, E> {
        &self.serving
    }

    /// Queues one item in the reserved room and waits for its output; the
    /// rest of the room, if it held more, goes back.
    ///
    /// # Errors
    ///
    /// As [`Serving::dispatch`]. A reservation of no room admits the item as
    /// `dispatch` does, waiting for room.
    ///
    /// # Cancel safety
    ///
    /// As [`Serving::dispatch`]; dropped before its first poll, the room
    /// goes back and nothing is queued.
    pub async fn dispatch(self, item: I) -> Result<O, Error<E>> {
        self.dispatch_with(item, CallOptions::default()).await
    }

    /// [`dispatch`](Self::dispatch) with call options.
    ///
    /// # Errors
    ///
    /// As [`Serving::dispatch_with`].
    ///
    /// # Cancel safety
    ///
    /// As [`dispatch`](Self::dispatch).
    pub async fn dispatch_with(mut self, item: I, options: CallOptions) -> Result<O, Error<E>> {
        if self.items == 0 {
            return self.serving.dispatch_with(item, options).await;
        }
        // The room is the call's from here: the gate takes it (and gives it
        // back on a refusal), and the call queues its item in its first
        // poll, before it can be suspended.
        self.items -= 1;
        let serving = self.serving.clone();
        drop(self);
        OneCall::new(&serving.inner, item, options, true).await
    }

    /// Queues `items` in the reserved room and waits for their outputs, in
    /// order. Room it does not use goes back. Items beyond the reservation
    /// are admitted as [`Serving::dispatch_many`] admits them, after the
    /// reserved ones are queued: a call never waits for more room while its
    /// own room sits unused, so it cannot deadlock with other waiters.
    ///
    /// # Errors
    ///
    /// As [`Serving::dispatch_many`].
    ///
    /// # Cancel safety
    ///
    /// As [`Serving::dispatch_many`].
    pub async fn dispatch_many(self, items: Vec<I>) -> Result<Vec<O>, Error<E>> {
        self.dispatch_many_with(items, CallOptions::default()).await
    }

    /// [`dispatch_many`](Self::dispatch_many) with call options.
    ///
    /// # Errors
    ///
    /// As [`Serving::dispatch_many_with`].
    ///
    /// # Cancel safety
    ///
    /// As [`Serving::dispatch_many`].
    pub async fn dispatch_many_with(
        mut self,
        items: Vec<I>,
        options: CallOptions,
    ) -> Result<Vec<O>, Error<E>> {
        let wanted = items.len();
        let inner = &self.serving.inner;
        if wanted == 0 || self.items == 0 || wanted > inner.capacity() {
            let serving = self.serving.clone();
            drop(self);
            return serving.dispatch_many_with(items, options).await;
        }
        if wanted < self.items {
            inner.room.give_back(self.items - wanted);
        }
        // The call holds this room from here, and queues its items in its
        // first poll, before it waits for room for any more (see
        // `call::gate`): held room is never idle while it waits.
        let held = wanted.min(self.items);
        self.items = 0;
        let serving = self.serving.clone();
        drop(self);
        serving.inner.call_many(items, options, held).await
    }

    /// Whether the call's deadline has already passed; counted as expired,
    /// as a call made that late is.
    /// Queues `items` in this room as a stream, like
    /// [`Serving::dispatch_stream`].
    pub fn dispatch_stream(self, items: Vec<I>) -> DispatchStream<I, O, E> {
        self.dispatch_stream_with(items, CallOptions::default())
    }

    /// Queues `items` in this room as a stream, like
    /// [`Serving::dispatch_stream_with`]. The room is spent only when it
    /// holds exactly `items.len()` items; otherwise it is given back and the
    /// stream is admitted as a new call.
    pub fn dispatch_stream_with(
        mut self,
        items: Vec<I>,
        options: CallOptions,
    ) -> DispatchStream<I, O, E> {
        let serving = self.serving.clone();
        if items.is_empty() || items.len() != self.items {
            drop(self);
            return serving.dispatch_stream_with(items, options);
        }
        // The stream queues its items before it is returned, so the room
        // passes to the queue here and cannot be lost.
        let held = std::mem::take(&mut self.items);
        drop(self);
        DispatchStream::new(&serving.inner, items, options, held)
    }
}
