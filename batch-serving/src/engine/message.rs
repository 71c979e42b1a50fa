//! The protocol between callers, the scheduler and the partitions: what
//! each sends the other. It lives below all three, so none of them imports
//! another to talk (tower's `buffer` keeps its `Message` the same way).

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{mpsc, oneshot};

use crate::batch::Batch;
use crate::engine::clock::ClockHold;
use crate::engine::delivery::{Answers, Routes};
use crate::key::BatchKey;
use crate::options::Priority;
use crate::policy::StartReason;
use crate::request::Request;

/// Messages the scheduler receives.
#[derive(Debug)]
pub(crate) enum Msg<I, O, E> {
    /// A one-item call.
    One {
        item: I,
        request: Arc<Request<O, E>>,
        key: BatchKey,
        priority: Priority,
    },
    /// A piece of a many-item call, boxed so that the one-item messages,
    /// which are most of the traffic, stay small in the channel.
    Many(Box<Piece<I, O, E>>),
    /// A partition finished its batch and is free. A partition on its own
    /// thread sends its callers' answers along for the scheduler to deliver
    /// (see [`Answers`]); an async partition has answered them itself.
    Done {
        partition: usize,
        answers: Option<Box<Answers<O, E>>>,
        /// What ran, for the adaptive policy's cost model: only adaptive
        /// servings report it, and it is boxed so that this message stays
        /// as small as a one-item call's.
        ran: Option<Box<Ran>>,
    },
    /// A caller abandoned a call; its queued items can be swept out.
    Abandoned,
    /// Stop intake and drain; answer `done` once everything queued has run.
    Close { done: Option<oneshot::Sender<()>> },
    /// A shutdown ran out of time: fail everything still queued.
    Abort,
    /// The precise timer's wake-up: a batch timer is due (see
    /// `precise_timer`). It carries nothing; the scheduler looks at the
    /// clock.
    Tick,
}

/// A batch that ran: its key, weight and items, and how long the function
/// took against what was predicted.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ran {
    pub(crate) key: BatchKey,
    pub(crate) partition: usize,
    pub(crate) weight: u64,
    pub(crate) items: usize,
    pub(crate) took: std::time::Duration,
    pub(crate) predicted: Option<std::time::Duration>,
}

/// A piece of a many-item call: `items[i]` is the call's item `offset + i`.
#[derive(Debug)]
pub(crate) struct Piece<I, O, E> {
    pub(crate) items: Vec<I>,
    /// One key per item, or empty when every item has the default key.
    pub(crate) keys: Vec<BatchKey>,
    pub(crate) request: Arc<Request<O, E>>,
    pub(crate) offset: usize,
    pub(crate) priority: Priority,
}

/// One batch for one partition.
#[derive(Debug)]
pub(crate) struct Job<I, O, E> {
    pub(crate) batch: Batch<I>,
    pub(crate) routes: Routes<O, E>,
    pub(crate) span: tracing::Span,
    /// Holds tokio's paused clock still until dropped (feature `test-util`).
    pub(crate) clock_hold: ClockHold,
    /// For a job handed over while the partition was still busy: the queue
    /// room its items hold until it starts (`None` for a job started at
    /// once). Its items are claimed only when it starts, so calls cancelled
    /// or expired while it waited are dropped from it and never run.
    pub(crate) queued_room: Option<usize>,
    /// The summed weight of the batch's items when it left the queue.
    pub(crate) weight: u64,
    /// Its execution time as the adaptive policy predicted it.
    pub(crate) predicted: Option<std::time::Duration>,
    /// For a job handed over early: why it left the queue and its items'
    /// queue waits, recorded only when it starts (see [`Job::claim`]), so
    /// that a batch whose calls all left before it started is no start and
    /// adds no waits. `None` for a job started at once (recorded then).
    pub(crate) deferred_start: Option<Box<DeferredStart>>,
}

/// What a job handed over early records when it starts.
#[derive(Debug)]
pub(crate) struct DeferredStart {
    pub(crate) reason: StartReason,
    /// One per item, in the batch's order.
    pub(crate) waits: Vec<std::time::Duration>,
}

impl<I, O, E> Job<I, O, E> {
    /// For a job handed over early: claims each item for its call now,
    /// dropping the items of calls that were abandoned meanwhile.
    pub(crate) fn claim(&mut self) {
        let keep: Vec<bool> = self.routes.iter().map(|r| r.request.try_take()).collect();
        if keep.contains(&false) {
            if let Some(start) = &mut self.deferred_start {
                let mut flags = keep.iter();
                start
                    .waits
                    .retain(|_| flags.next().copied().unwrap_or(false));
            }
            // The weight of the dropped items is not known here: scale it.
            let kept = keep.iter().filter(|&&kept| kept).count() as u64;
            self.weight = self.weight * kept / (keep.len() as u64).max(1);
            let mut flags = keep.iter();
            self.routes
                .retain(|_| flags.next().copied().unwrap_or(false));
            self.batch.retain_flagged(&keep);
        }
    }
}

/// What the scheduler sends a partition.
#[derive(Debug)]
pub(crate) enum Work<I, O, E> {
    /// Run this job now (the partition was idle).
    Run(Job<I, O, E>),
    /// Run the job on deck, if it is still there. A job handed over while
    /// the partition is busy waits on deck rather than in the channel, so a
    /// shutdown that runs out of time can take it back and fail its calls
    /// (see [`revoke`]).
    OnDeck,
}

/// The scheduler's end of one partition.
#[derive(Debug)]
pub(crate) struct PartitionLink<I, O, E> {
    pub(crate) work: mpsc::UnboundedSender<Work<I, O, E>>,
    pub(crate) on_deck: OnDeck<I, O, E>,
}

/// Jobs that wait for a busy partition, oldest first. The scheduler keeps
/// at most one waiting per partition, but a partition that just reported
/// `Done` may not have taken its next job yet when the scheduler hands it
/// another, so this is a queue and not a single slot.
pub(crate) type OnDeck<I, O, E> = Arc<Mutex<std::collections::VecDeque<Job<I, O, E>>>>;

/// Takes the oldest job on deck, if any.
pub(crate) fn next_on_deck<I, O, E>(on_deck: &OnDeck<I, O, E>) -> Option<Job<I, O, E>> {
    on_deck
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .pop_front()
}

/// Takes back every job on deck that has not started, so the caller can
/// fail its calls and give back its queue room.
pub(crate) fn revoke<I, O, E>(on_deck: &OnDeck<I, O, E>) -> Vec<Job<I, O, E>> {
    on_deck
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .drain(..)
        .collect()
}
