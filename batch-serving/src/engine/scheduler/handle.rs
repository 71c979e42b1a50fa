//! The scheduler's handling of each message it receives, one function per
//! message.

use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::engine::delivery::Answers;
use crate::engine::message::{Msg, Piece, Ran};
use crate::engine::queue::Entry;
use crate::engine::scheduler::finish::fail_entries;
use crate::engine::scheduler::{Answered, Scheduler, State};
use crate::error::Failure;
use crate::key::BatchKey;
use crate::options::Priority;
use crate::request::Request;

impl<I, O, E> Scheduler<I, O, E>
where
    I: Send + 'static,
    O: Send + 'static,
    E: Send + Sync + 'static,
{
    /// Handles one message; returns what it answered (nothing but for a
    /// finished batch).
    pub(super) fn handle(
        &self,
        state: &mut State<I, O, E>,
        msg: Msg<I, O, E>,
        now: Instant,
    ) -> Answered {
        match msg {
            Msg::One {
                item,
                request,
                key,
                priority,
            } => queue_one(state, item, request, key, priority, now),
            Msg::Many(piece) => queue_piece(state, *piece, now),
            Msg::Done {
                partition,
                answers,
                ran,
            } => {
                if let Some(ran) = ran {
                    self.learn(state, &ran);
                }
                return self.on_done(state, partition, answers);
            }
            Msg::Abandoned => self.on_abandoned(state),
            Msg::Close { done } => on_close(state, done),
            Msg::Abort => self.on_abort(state),
            Msg::Tick => {}
        }
        Answered::default()
    }

    /// A partition finished: deliver its answers (when it handed them
    /// over) and mark it free, or start the batch waiting on its deck.
    fn on_done(
        &self,
        state: &mut State<I, O, E>,
        partition: usize,
        answers: Option<Box<Answers<O, E>>>,
    ) -> Answered {
        let mut answered = Answered::default();
        if let Some(answers) = answers {
            answered = Answered {
                longest_run: answers.took,
                items: answers.routes.len(),
            };
            answers.deliver();
        }
        state.running -= 1;
        state.load[partition] -= 1;
        if state.load[partition] == 0 {
            state.idle.push(partition);
        } else {
            // Its next batch, handed over early, starts now.
            state.poll_until = self.poll_deadline();
        }
        state.batching.finished(partition, Instant::now());
        answered
    }

    /// The adaptive policy learns what a batch cost: its key's model and
    /// the serving's are updated, and callers get the new outlook.
    fn learn(&self, state: &mut State<I, O, E>, ran: &Ran) {
        if let Some(predicted) = ran.predicted {
            self.recorder.record_prediction(predicted, ran.took);
        }
        state.batching.learn(ran);
    }

    fn on_abandoned(&self, state: &mut State<I, O, E>) {
        state.abandoned_hints += 1;
        // Sweep lazily: only once abandoned calls could be holding a real
        // share of the queue's capacity.
        if state.abandoned_hints * 2 >= state.queues.len().max(1) {
            let removed = state.queues.purge_abandoned();
            self.room.give_back(removed);
            state.abandoned_hints = 0;
        }
    }

    /// A shutdown ran out of time: everything still queued (or on deck)
    /// fails with `Closed`.
    fn on_abort(&self, state: &mut State<I, O, E>) {
        state.draining = true;
        self.revoke_on_deck(state);
        let entries = state.queues.drain_all();
        self.room.give_back(entries.len());
        fail_entries(entries, &Failure::Closed, &self.recorder);
    }
}

fn queue_one<I, O: Send + 'static, E: Send + Sync + 'static>(
    state: &mut State<I, O, E>,
    item: I,
    request: Arc<Request<O, E>>,
    key: BatchKey,
    priority: Priority,
    now: Instant,
) {
    let entry = Entry {
        item,
        request,
        index: 0,
        queued_at: state.queues.stamp(now),
    };
    state.queues.push(key, priority, entry, now);
}

fn queue_piece<I, O: Send + 'static, E: Send + Sync + 'static>(
    state: &mut State<I, O, E>,
    piece: Piece<I, O, E>,
    now: Instant,
) {
    let queued_at = state.queues.stamp(now);
    let Piece {
        items,
        keys,
        request,
        offset,
        priority,
    } = piece;
    for (i, item) in items.into_iter().enumerate() {
        let key = keys.get(i).copied().unwrap_or_default();
        let entry = Entry {
            item,
            request: Arc::clone(&request),
            // In range: a call holds at most u32::MAX items.
            index: u32::try_from(offset + i).unwrap_or(u32::MAX),
            queued_at,
        };
        state.queues.push(key, priority, entry, now);
    }
}

/// Stop intake and drain: `done` is answered once everything has run.
fn on_close<I, O, E>(state: &mut State<I, O, E>, done: Option<oneshot::Sender<()>>) {
    state.draining = true;
    state.waiters.extend(done);
}
