//! One call's shared state: the rendezvous between the caller's future and
//! the partition that runs its items.

use std::sync::PoisonError;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

use crate::error::Failure;
use crate::hook::{Hook, HookSink};
use crate::stream::Event;
use crate::sync::{AtomicU8, AtomicU32, AtomicWaker, Mutex};

/// Items are queued and may be taken into a batch.
const LIVE: u8 = 0;
/// At least one item was taken into a batch; the rest may still be taken.
const STARTED: u8 = 1;
/// The caller went away: items still queued are skipped.
const CANCELLED: u8 = 2;
/// The caller's deadline passed: items still queued are skipped.
const EXPIRED: u8 = 3;

pub(crate) type EventSender<O, E> = mpsc::UnboundedSender<Result<Event<O>, Failure<E>>>;

/// What a non-streaming call has collected. One enum rather than outputs
/// plus an optional failure keeps every call's shared state smaller; a
/// failure replaces whatever outputs had arrived, since the caller gets only
/// the failure. A single-item call needs no vector, which saves an
/// allocation on the hottest path. The outputs are a boxed slice and the
/// failure is boxed so that the slot is no larger than two words and a tag:
/// every queued call holds one, and failures are rare.
#[derive(Debug)]
enum Slot<O, E> {
    /// A single-item call still waiting (or whose output was taken).
    Empty,
    /// A single-item call's output.
    One(O),
    /// A many-item call's outputs, by position.
    Many(Box<[Option<O>]>),
    /// The first failure of any of the call's batches.
    Failed(Box<Failure<E>>),
}

/// Shared by the caller (through its future) and every queue entry of the call.
#[derive(Debug)]
pub(crate) struct Request<O, E> {
    state: AtomicU8,
    /// Items not yet answered. The partition that brings it to zero wakes the
    /// caller. 32 bits, beside the state, rather than a word of its own: a
    /// call holds at most `u32::MAX` items (`MAX_CALL_ITEMS`), and every
    /// queued call pays for this struct.
    remaining: AtomicU32,
    slot: Mutex<Slot<O, E>>,
    waker: AtomicWaker,
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
}

impl<O, E> Request<O, E> {
    pub(crate) fn new(len: usize, events: Option<EventSender<O, E>>) -> Self {
        let slot = if len == 1 || events.is_some() {
            Slot::Empty
        } else {
            Slot::Many((0..len).map(|_| None).collect())
        };
        let span = tracing::Span::current();
        Request {
            state: AtomicU8::new(LIVE),
            // Saturates only for a call that is refused before it is queued.
            remaining: AtomicU32::new(u32::try_from(len).unwrap_or(u32::MAX)),
            slot: Mutex::new(slot),
            waker: AtomicWaker::new(),
            extras: (events.is_some() || !span.is_none()).then(|| {
                Box::new(Extras {
                    events,
                    span: (!span.is_none()).then_some(span),
                })
            }),
        }
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
        self.state.load(Ordering::Acquire) >= CANCELLED
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

    /// Stores the outputs of `len` consecutive items starting at `offset`.
    pub(crate) fn deliver(&self, offset: usize, outputs: impl Iterator<Item = O>, len: usize) {
        if let Some(events) = self.events() {
            // A closed receiver means the stream was dropped: nothing to do.
            let _ = events.send(Ok(Event::Output {
                offset,
                outputs: outputs.collect(),
            }));
        } else {
            let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
            match &mut *slot {
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
        }
        self.settle(len);
    }

    /// Records that `len` items of this call failed with `failure`.
    pub(crate) fn fail(&self, failure: &Failure<E>, len: usize) {
        if let Some(events) = self.events() {
            let _ = events.send(Err(failure.clone()));
        } else {
            let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
            if !matches!(*slot, Slot::Failed(_)) {
                *slot = Slot::Failed(Box::new(failure.clone()));
            }
        }
        self.settle(len);
    }

    fn settle(&self, len: usize) {
        // CORRECTNESS: the slot was written (under its lock) before this
        // release decrement, and the caller reads `remaining` with acquire
        // before taking the slot, so it always sees complete results.
        // In range: `len` items of this call, which holds at most u32::MAX.
        let len = len as u32;
        if self.remaining.fetch_sub(len, Ordering::AcqRel) == len {
            self.waker.wake();
        }
    }

    /// Polls for completion; on completion takes the outputs in order.
    pub(crate) fn poll_complete(&self, cx: &mut Context<'_>) -> Poll<Result<Vec<O>, Failure<E>>> {
        if !self.is_complete() {
            self.waker.register(cx.waker());
            // Re-check after registering, or a wake between the first check
            // and the registration would be lost.
            if !self.is_complete() {
                return Poll::Pending;
            }
        }
        Poll::Ready(self.take_results())
    }

    fn take_results(&self) -> Result<Vec<O>, Failure<E>> {
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        match std::mem::replace(&mut *slot, Slot::Empty) {
            Slot::Failed(failure) => Err(*failure),
            Slot::Empty => Ok(Vec::new()),
            Slot::One(out) => Ok(vec![out]),
            Slot::Many(outs) => Ok(outs.into_iter().flatten().collect()),
        }
    }

    /// The single output of a one-item call.
    pub(crate) fn take_single(&self) -> Result<Option<O>, Failure<E>> {
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        match std::mem::replace(&mut *slot, Slot::Empty) {
            Slot::Failed(failure) => Err(*failure),
            Slot::Empty => Ok(None),
            Slot::One(out) => Ok(Some(out)),
            Slot::Many(outs) => Ok(outs.into_iter().next().flatten()),
        }
    }

    /// Waits for completion without taking results (for single-item calls).
    pub(crate) fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.is_complete() {
            self.waker.register(cx.waker());
            if !self.is_complete() {
                return Poll::Pending;
            }
        }
        Poll::Ready(())
    }
}

impl<O: Send, E: Send + Sync> HookSink for Request<O, E> {
    fn deliver_hook(&self, hook: Hook) {
        if let Some(events) = self.events() {
            let _ = events.send(Ok(Event::Hook(hook)));
        }
    }
}
