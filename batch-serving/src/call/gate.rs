//! The admission gate: the one place that decides whether a call may enter
//! the queue, and the [`Ticket`] that owns the room it enters with. Every
//! verb goes through [`Inner::gate`]: `dispatch`, `dispatch_many` and
//! `dispatch_stream` with their `try_` and `_with` forms, reservations,
//! the tower service (which reserves in `poll_ready`) and mapped servings
//! (which reserve before they pre-process).
//!
//! The gate asks, in this order, and the first answer that refuses wins:
//! 1. a call larger than one call may be, or larger than the queue under
//!    fail-fast (it could never be admitted at once): `Overloaded`;
//! 2. a deadline already passed: `DeadlineExceeded`, counted as expired;
//! 3. under the adaptive policy, a predicted finish past what the call may
//!    take: `PredictedLate` (room the call already holds is not asked for
//!    again, and is not forecast again either: it was when it was taken);
//! 4. room: taken now; or, when the queue is full, `Overloaded` under
//!    fail-fast, `Closed` after shutdown, and otherwise a wait.
//!
//! **Why no interleaving of waiting calls and reservations deadlocks.**
//! Every unit of room that is taken is, at any moment, in one of three
//! places: in the queue, whence the engine frees it as batches start
//! without waiting for any caller; granted to the first waiter, which the
//! room's semaphore serves in FIFO order; or held by a caller that will
//! queue it without waiting first. A [`Ticket`] is only ever held across a
//! wait by a call that has nothing else to wait for, because a call queues
//! the items it has room for (the room a reservation spent on it) before
//! it waits for more, piece by piece (see `Inner::enqueue_rest`). So the
//! first waiter is always granted room eventually, and then the next.
//! What this cannot cover is a caller who keeps an unspent
//! [`Reservation`](crate::Reservation) while it waits on the same serving
//! for more room: that room is the caller's by contract.

use tokio::sync::TryAcquireError;
use tokio::time::Instant;

use crate::call::core::{Inner, MAX_CALL_ITEMS};
use crate::error::Error;
use crate::options::CallOptions;
use crate::room::QueueRoom;
use crate::stats::Recorder;

/// What a call asks of the gate.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ask {
    /// The items the call queues.
    pub(crate) items: usize,
    /// How many of them already hold room (a reservation spent on the
    /// call): they pass without waiting, and they are queued first.
    pub(crate) held: usize,
    pub(crate) deadline: Option<Instant>,
    /// Refused at once when the queue is full, rather than waiting.
    pub(crate) fail_fast: bool,
}

impl Ask {
    /// A call of `items` items with `options`, holding no room.
    pub(crate) fn new(items: usize, options: &CallOptions) -> Self {
        Ask {
            items,
            held: 0,
            deadline: options.deadline,
            fail_fast: options.fail_fast,
        }
    }

    /// The same call, with room for its first `held` items already taken.
    pub(crate) fn holding(self, held: usize) -> Self {
        Ask {
            held: held.min(self.items),
            ..self
        }
    }
}

/// What the gate lets a call do.
#[derive(Debug)]
pub(crate) enum Pass<'a> {
    /// Queue every item now: the ticket holds room for all of them.
    Now(Ticket<'a>),
    /// Queue the items the ticket holds room for (the held ones, possibly
    /// none) now, then wait for room for the rest: see
    /// [`Inner::wait_for_room`].
    Wait(Ticket<'a>),
}

/// Room in the queue that a call owns and has not queued yet. Whatever is
/// left of it when it drops goes back, so room cannot be lost on any path:
/// a refusal, a send to a closed serving, a dropped call.
#[derive(Debug)]
#[must_use = "dropping a ticket gives its room back"]
pub(crate) struct Ticket<'a> {
    room: &'a QueueRoom,
    items: usize,
}

impl<'a> Ticket<'a> {
    /// Room for `items` items that the caller already took from `room`.
    pub(crate) fn held(room: &'a QueueRoom, items: usize) -> Self {
        Ticket { room, items }
    }

    /// How many items it holds room for.
    pub(crate) fn items(&self) -> usize {
        self.items
    }

    /// Room for `items` more items joins this ticket.
    fn grow(&mut self, items: usize) {
        self.items += items;
    }

    /// `items` of its items were queued: their room now belongs to the
    /// queue, which gives it back as they leave.
    pub(crate) fn queued(&mut self, items: usize) {
        debug_assert!(items <= self.items, "queued more than the ticket holds");
        self.items -= items.min(self.items);
    }

    /// Hands all of its room to the caller, who gives it back itself (a
    /// [`Reservation`](crate::Reservation) keeps a count, not a ticket).
    pub(crate) fn keep(mut self) -> usize {
        std::mem::take(&mut self.items)
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        self.room.give_back(self.items);
    }
}

impl<I, O, E> Inner<I, O, E> {
    /// The admission gate (see the module's documentation for its order).
    /// A refused call's held room goes back.
    pub(crate) fn gate(&self, ask: Ask) -> Result<Pass<'_>, Error<E>> {
        let mut ticket = Ticket::held(&self.room, ask.held.min(ask.items));
        if ask.items > MAX_CALL_ITEMS || (ask.fail_fast && ask.items > self.capacity()) {
            return Err(self.overloaded(ask.items));
        }
        if ask.deadline.is_some_and(|at| at <= Instant::now()) {
            return Err(self.expired_before_queueing());
        }
        let more = ask.items - ticket.items();
        if more == 0 {
            return Ok(Pass::Now(ticket));
        }
        self.refuse_if_late(more, ask.deadline)?;
        if more > self.capacity() {
            // Admitted piece by piece as room frees up.
            return Ok(Pass::Wait(ticket));
        }
        let wanted = u32::try_from(more).map_err(|_| self.overloaded(more))?;
        match self.room.try_take(wanted) {
            Ok(()) => {
                ticket.grow(more);
                Ok(Pass::Now(ticket))
            }
            Err(TryAcquireError::Closed) => Err(self.refused_closed()),
            Err(TryAcquireError::NoPermits) if ask.fail_fast => Err(self.overloaded(more)),
            Err(TryAcquireError::NoPermits) => Ok(Pass::Wait(ticket)),
        }
    }

    /// Waits until room for `items` items is free and takes it, for a call
    /// the gate sent to wait (`items` is at most the capacity). Waiters are
    /// served in FIFO order, so a large call is not starved by small ones.
    pub(crate) async fn wait_for_room(&self, items: usize) -> Result<Ticket<'_>, Error<E>> {
        let wanted = u32::try_from(items).map_err(|_| self.overloaded(items))?;
        match self.room.take(wanted).await {
            Ok(()) => Ok(Ticket::held(&self.room, items)),
            Err(_) => Err(self.refused_closed()),
        }
    }

    /// Under the adaptive policy: refuses a call of `items` items whose
    /// predicted finish is past what it may take (see `Forecast`), with the
    /// work now queued ahead of it. A no-op under the other policies.
    fn refuse_if_late(&self, items: usize, deadline: Option<Instant>) -> Result<(), Error<E>> {
        let Some(forecast) = &self.forecast else {
            return Ok(());
        };
        let Some(predicted) = forecast.finish_in(self.room.used(), items) else {
            return Ok(());
        };
        let allowed =
            forecast.allowed(deadline.map(|at| at.saturating_duration_since(Instant::now())));
        if predicted <= allowed {
            return Ok(());
        }
        Recorder::bump(&self.recorder.refused_late);
        Recorder::bump(&self.recorder.rejected);
        Err(Error::PredictedLate { predicted, allowed })
    }

    /// A call whose deadline had passed before it queued anything: counted
    /// as `expired` (see `Stats::expired`).
    pub(crate) fn expired_before_queueing(&self) -> Error<E> {
        Recorder::bump(&self.recorder.expired);
        Error::DeadlineExceeded
    }

    /// A call refused because the serving has closed: at the gate, while
    /// it waited for room, or as it sent its items to a scheduler that had
    /// gone (see `queue_one`).
    pub(crate) fn refused_closed(&self) -> Error<E> {
        Recorder::bump(&self.recorder.refused_closed);
        Recorder::bump(&self.recorder.rejected);
        Error::Closed
    }

    pub(crate) fn overloaded(&self, requested: usize) -> Error<E> {
        Recorder::bump(&self.recorder.rejected);
        Error::Overloaded {
            requested,
            capacity: self.capacity(),
        }
    }
}
