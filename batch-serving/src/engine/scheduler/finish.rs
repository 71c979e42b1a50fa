//! How the scheduler stops: after a shutdown runs out of time, and for
//! good. Every call it still holds is answered, never dropped.

use crate::engine::delivery::{Route, deliver};
use crate::engine::message::{Job, Msg, revoke};
use crate::engine::queue::Entry;
use crate::engine::scheduler::{Scheduler, State};
use crate::error::Failure;
use crate::stats::Recorder;

impl<I, O, E> Scheduler<I, O, E>
where
    I: Send + 'static,
    O: Send + 'static,
    E: Send + Sync + 'static,
{
    /// After a shutdown ran out of time: the jobs waiting on deck count as
    /// queued, so they fail with `Closed` like the rest of the queue.
    pub(super) fn revoke_on_deck(&self, state: &mut State<I, O, E>) {
        for (partition, link) in self.partitions.iter().enumerate() {
            for job in revoke(&link.on_deck) {
                self.fail_unstarted(job);
                state.load[partition] -= 1;
                state.running -= 1;
            }
        }
    }

    /// Fails a job that never started, giving back what it holds.
    pub(super) fn fail_unstarted(&self, job: Job<I, O, E>) {
        if let Some(room) = job.queued_room {
            self.room.give_back(room);
        } else {
            self.recorder.in_flight.sub(job.routes.len() as u64);
        }
        job.routes.answer(Err(Failure::Closed));
    }

    /// Stops for good: partitions exit once their channels close, and any call
    /// that raced the close is answered with `Closed` rather than lost.
    pub(super) fn finish(mut self, mut state: State<I, O, E>) {
        self.room.close();
        self.partitions.clear();
        self.rx.close();
        let mut leftover = std::mem::take(&mut state.inbox);
        while let Ok(msg) = self.rx.try_recv() {
            leftover.push(msg);
        }
        for msg in leftover {
            match msg {
                // Queued calls hold room: it goes back with them.
                Msg::One { request, .. } => {
                    self.room.give_back(1);
                    if let Some(outcome) = request.fail(&Failure::Closed, 1) {
                        self.recorder.count(outcome);
                    }
                }
                Msg::Many(piece) => {
                    self.room.give_back(piece.items.len());
                    let len = piece.items.len();
                    if let Some(outcome) = piece.request.fail(&Failure::Closed, len) {
                        self.recorder.count(outcome);
                    }
                }
                Msg::Close { done } => state.waiters.extend(done),
                Msg::Done { answers, .. } => {
                    if let Some(answers) = answers {
                        answers.deliver();
                    }
                }
                Msg::Abandoned | Msg::Abort | Msg::Tick => {}
            }
        }
        if let Some(forming) = state.forming.take() {
            deliver(forming.routes, Err(Failure::Closed), &self.recorder);
        }
        let leftovers = state.queues.drain_all();
        self.room.give_back(leftovers.len());
        fail_entries(leftovers, &Failure::Closed, &self.recorder);
        for waiter in state.waiters {
            let _ = waiter.send(());
        }
        tracing::debug!(serving = %self.name, "serving stopped");
    }
}

pub(super) fn fail_entries<I, O, E>(
    entries: Vec<Entry<I, O, E>>,
    failure: &Failure<E>,
    recorder: &Recorder,
) {
    let routes = entries
        .into_iter()
        .map(|e| Route {
            request: e.request,
            index: e.index as usize,
        })
        .collect();
    deliver(routes, Err(failure.clone()), recorder);
}
