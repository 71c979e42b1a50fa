//! One call's shared state: the rendezvous between the caller's future and
//! the partition that runs its items.

use std::sync::PoisonError;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};
use tokio::sync::mpsc;

use crate::error::Failure;
use crate::event::Event;
use crate::hook::{Hook, HookSink};
use crate::stats::Outcome;
use crate::sync::{AtomicU8, AtomicU32, Mutex, MutexGuard};

/// Items are queued and may be taken into a batch.
const LIVE: u8 = 0;
/// At least one item was taken into a batch; the rest may still be taken.
const STARTED: u8 = 1;
/// The caller went away: items still queued are skipped.
const CANCELLED: u8 = 2;
/// The caller's deadline passed: items still queued are skipped.
const EXPIRED: u8 = 3;
/// Every item was answered (with outputs or a failure) while the caller
/// was still there: the call's outcome is counted, and it can no longer be
/// cancelled or expire.
const FINISHED: u8 = 4;

pub(crate) type EventSender<O, E> = mpsc::UnboundedSender<Result<Event<O>, Failure<E>>>;

/// What a non-streaming call has collected. One enum rather than outputs
/// plus an optional failure keeps every call's shared state smaller; a
/// failure replaces whatever outputs had arrived, since the caller gets only
/// the failure. A single-item call needs no vector, which saves an
/// allocation on the hottest path. A many-item call's outputs and a failure
/// sit behind thin pointers so that the slot is one word and a tag for a
/// word-sized output: every queued call holds one, while many-item calls
/// share theirs among all their items and failures are rare.
#[derive(Debug)]
enum Slot<O, E> {
    /// A single-item call still waiting (or whose output was taken).
    Empty,
    /// A single-item call's output.
    One(O),
    /// A many-item call's outputs, by position.
    #[allow(
        clippy::box_collection,
        reason = "one pointer rather than a vector's three keeps every one-item call's slot small"
    )]
    Many(Box<Vec<Option<O>>>),
    /// The first failure of any of the call's batches (a streaming call
    /// keeps it here too, for its outcome, after sending it as an event).
    Failed(Box<Failure<E>>),
}

/// What the caller and the partitions exchange under the call's lock.
///
/// The waker shares the slot's lock rather than having an atomic cell of its
/// own: a partition already holds the lock to store outputs, and taking the
/// waker there costs nothing more, while a separate cell cost every queued
/// call 24 bytes and pushed its shared state into the next allocator size.
#[derive(Debug)]
struct Shared<O, E> {
    slot: Slot<O, E>,
    /// The task to wake when the last item is answered.
    waker: Option<Waker>,
}

/// Shared by the caller (through its future) and every queue entry of the call.
#[derive(Debug)]
pub(crate) struct Request<O, E> {
    state: AtomicU8,
    /// Items not yet answered. The partition that brings it to zero wakes the
    /// caller. 32 bits, beside the state, rather than a word of its own: a
    /// call holds at most `u32::MAX` items (`MAX_CALL_ITEMS`), and every
    /// queued call pays for this struct.
    /// CORRECTNESS: it is only decremented under `shared`'s lock, so a
    /// caller that reads it nonzero under the lock and leaves its waker
    /// there is always found by the partition that brings it to zero.
    remaining: AtomicU32,
    shared: Mutex<Shared<O, E>>,
    /// What only some calls need, boxed so that the others do not pay for
    /// it in every queued call.
    extras: Option<Box<Extras<O, E>>>,
}

/// The parts of a call's state that most calls do not have.
#[derive(Debug)]
struct Extras<O, E> {
    /// Where a streaming call's events go.
    events: Option<EventSender<O, E>>,
    /// The caller's span, kept only when tracing is on for it.
    span: Option<tracing::Span>,
    /// The caller's deadline, kept only where the queue orders by it (see
    /// [`Request::due`]).
    deadline: Option<tokio::time::Instant>,
}

impl<O, E> Request<O, E> {
    pub(crate) fn new(len: usize, events: Option<EventSender<O, E>>) -> Self {
        let slot = if len == 1 || events.is_some() {
            Slot::Empty
        } else {
            Slot::Many(Box::new((0..len).map(|_| None).collect()))
        };
        let span = tracing::Span::current();
        Request {
            state: AtomicU8::new(LIVE),
            // Saturates only for a call that is refused before it is queued.
            remaining: AtomicU32::new(u32::try_from(len).unwrap_or(u32::MAX)),
            shared: Mutex::new(Shared { slot, waker: None }),
            extras: (events.is_some() || !span.is_none()).then(|| {
                Box::new(Extras {
                    events,
                    span: (!span.is_none()).then_some(span),
                    deadline: None,
                })
            }),
        }
    }

    /// The same call, carrying its deadline for a queue that orders by
    /// deadline (the adaptive policy's): boxed with the other extras, so
    /// that calls without one pay nothing for it.
    pub(crate) fn due(mut self, deadline: Option<tokio::time::Instant>) -> Self {
        if deadline.is_some() {
            self.extras
                .get_or_insert_with(|| {
                    Box::new(Extras {
                        events: None,
                        span: None,
                        deadline: None,
                    })
                })
                .deadline = deadline;
        }
        self
    }

    /// The caller's deadline, where the serving keeps it (see [`due`](Self::due)).
    pub(crate) fn deadline(&self) -> Option<tokio::time::Instant> {
        self.extras.as_ref()?.deadline
    }

    fn events(&self) -> Option<&EventSender<O, E>> {
        self.extras.as_ref()?.events.as_ref()
    }

    /// The caller's span, when tracing is on for it.
    pub(crate) fn span(&self) -> Option<&tracing::Span> {
        self.extras.as_ref()?.span.as_ref()
    }

    pub(crate) fn is_streaming(&self) -> bool {
        self.events().is_some()
    }

    /// Whether the caller gave up (cancelled or expired).
    pub(crate) fn is_abandoned(&self) -> bool {
        matches!(self.state.load(Ordering::Acquire), CANCELLED | EXPIRED)
    }

    /// Called by the scheduler when it takes one of this call's items into a
    /// batch. Returns false when the caller has gone, so the item is skipped.
    ///
    /// CORRECTNESS: an item is taken only if this atomic read (or exchange)
    /// of the state comes before the caller's `abandon` in the state's
    /// modification order; so no item is taken into a batch after the caller
    /// observed its cancellation or expiry.
    pub(crate) fn try_take(&self) -> bool {
        match self
            .state
            .compare_exchange(LIVE, STARTED, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => true,
            // Already started: the failed exchange read the state, and it was
            // not abandoned then, which is all a second atomic step could say.
            Err(STARTED) => true,
            Err(_) => false,
        }
    }

    /// Marks the call cancelled (`expired == false`) or expired. Returns
    /// true when this changed the state, false when it had already finished
    /// or been abandoned.
    pub(crate) fn abandon(&self, expired: bool) -> bool {
        let to = if expired { EXPIRED } else { CANCELLED };
        let mut current = self.state.load(Ordering::Acquire);
        while current < CANCELLED {
            match self
                .state
                .compare_exchange(current, to, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
        false
    }

    pub(crate) fn is_complete(&self) -> bool {
        self.remaining.load(Ordering::Acquire) == 0
    }

    fn lock(&self) -> MutexGuard<'_, Shared<O, E>> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores the outputs of `len` consecutive items starting at `offset`.
    /// Returns the call's outcome when they were its last items (see
    /// [`settle`](Self::settle)).
    pub(crate) fn deliver(
        &self,
        offset: usize,
        outputs: impl Iterator<Item = O>,
        len: usize,
    ) -> Option<Outcome> {
        if let Some(events) = self.events() {
            // A closed receiver means the stream was dropped: nothing to do.
            let _ = events.send(Ok(Event::Output {
                offset,
                outputs: outputs.collect(),
            }));
            return self.settle(self.lock(), len);
        }
        let mut shared = self.lock();
        match &mut shared.slot {
            Slot::Many(outs) => {
                for (place, output) in outs[offset..offset + len].iter_mut().zip(outputs) {
                    *place = Some(output);
                }
            }
            // A failed call keeps its failure; outputs of its other
            // batches are dropped.
            Slot::Failed(_) => {}
            one => {
                if let Some(output) = outputs.into_iter().next() {
                    *one = Slot::One(output);
                }
            }
        }
        self.settle(shared, len)
    }

    /// Records that `len` items of this call failed with `failure`.
    /// Returns the call's outcome when they were its last items.
    pub(crate) fn fail(&self, failure: &Failure<E>, len: usize) -> Option<Outcome> {
        if let Some(events) = self.events() {
            let _ = events.send(Err(failure.clone()));
        }
        let mut shared = self.lock();
        if !matches!(shared.slot, Slot::Failed(_)) {
            shared.slot = Slot::Failed(Box::new(failure.clone()));
        }
        self.settle(shared, len)
    }

    /// Counts `len` items answered, under the lock that stored their
    /// outputs, and wakes the caller when they were the last. Then the call
    /// has ended, and its outcome is returned for the statistics: once, and
    /// only if its caller had not given up first (that was counted as a
    /// cancellation or an expiry when it happened).
    fn settle(&self, mut shared: MutexGuard<'_, Shared<O, E>>, len: usize) -> Option<Outcome> {
        // CORRECTNESS: the slot was written before this release decrement,
        // and the caller reads `remaining` with acquire before taking the
        // slot, so it always sees complete results. In range: `len` items of
        // this call, which holds at most u32::MAX.
        let len = len as u32;
        if self.remaining.fetch_sub(len, Ordering::AcqRel) != len {
            return None;
        }
        let waker = shared.waker.take();
        let outcome = match &shared.slot {
            Slot::Failed(failure) => Outcome::of(failure),
            _ => Outcome::Answered,
        };
        // Woken outside the lock: the caller's task may run at once on
        // another thread and lock it to take its outputs.
        drop(shared);
        let finished = self.finish();
        if let Some(waker) = waker {
            waker.wake();
        }
        finished.then_some(outcome)
    }

    /// Marks the call finished unless its caller gave up first; whichever
    /// comes first decides how the call is counted.
    fn finish(&self) -> bool {
        let mut current = self.state.load(Ordering::Acquire);
        while current < CANCELLED {
            match self.state.compare_exchange(
                current,
                FINISHED,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
        false
    }

    /// Whether the call is complete; if not, leaves `cx`'s waker for the
    /// partition that completes it.
    fn register_unless_complete(&self, cx: &Context<'_>) -> bool {
        if self.is_complete() {
            return true;
        }
        let mut shared = self.lock();
        // Checked again under the lock, where the last decrement happens, so
        // the waker cannot be left after the partition has looked for it.
        if self.is_complete() {
            return true;
        }
        match &mut shared.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            place => *place = Some(cx.waker().clone()),
        }
        false
    }

    /// Polls for completion; on completion takes the outputs in order.
    pub(crate) fn poll_complete(&self, cx: &mut Context<'_>) -> Poll<Result<Vec<O>, Failure<E>>> {
        if !self.register_unless_complete(cx) {
            return Poll::Pending;
        }
        Poll::Ready(
            match std::mem::replace(&mut self.lock().slot, Slot::Empty) {
                Slot::Failed(failure) => Err(*failure),
                Slot::Empty => Ok(Vec::new()),
                Slot::One(out) => Ok(vec![out]),
                Slot::Many(outs) => Ok((*outs).into_iter().flatten().collect()),
            },
        )
    }

    /// The single output of a one-item call.
    pub(crate) fn take_single(&self) -> Result<Option<O>, Failure<E>> {
        match std::mem::replace(&mut self.lock().slot, Slot::Empty) {
            Slot::Failed(failure) => Err(*failure),
            Slot::Empty => Ok(None),
            Slot::One(out) => Ok(Some(out)),
            Slot::Many(outs) => Ok((*outs).into_iter().next().flatten()),
        }
    }

    /// Waits for completion without taking results (for single-item calls).
    pub(crate) fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.register_unless_complete(cx) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl<O: Send, E: Send + Sync> HookSink for Request<O, E> {
    fn deliver_hook(&self, hook: Hook) {
        if let Some(events) = self.events() {
            let _ = events.send(Ok(Event::Hook(hook)));
        }
    }
}
