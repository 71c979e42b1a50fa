//! Starting batches: taking ready batches off the queue, making their jobs
//! and handing them to partitions (at once to an idle one; on deck behind a
//! busy one when pipelining).

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::batch::Batch;
use crate::engine::clock::hold_clock;
use crate::engine::delivery::{Route, Routes};
use crate::engine::message::{DeferredStart, Job, Work, revoke};
use crate::engine::policy::Ready;
use crate::engine::queue::Taken;
use crate::engine::scheduler::{Scheduler, State};
use crate::request::Request;

impl<I, O, E> Scheduler<I, O, E>
where
    I: Send + 'static,
    O: Send + 'static,
    E: Send + Sync + 'static,
{
    /// Starts batches while a partition is free and some key's batch is
    /// ready; then, with every partition busy and pipelining on, hands the
    /// partition that frees up first a full batch to start the moment it
    /// finishes, so a loaded partition never waits for the scheduler
    /// between batches. One loop for both: only which partition, and which
    /// verdict of the policy, differ.
    pub(super) fn start_ready(&self, state: &mut State<I, O, E>, now: Instant) {
        let queues = &mut state.queues;
        state.batching.note_arrivals(now, || queues.take_arrived());
        loop {
            // An idle partition, or one busy partition with room on deck.
            let (partition, ahead) = match state.idle.last() {
                Some(&partition) => (partition, false),
                None if state.batching.rules().pipeline => {
                    let load = &state.load;
                    let one_ahead = (0..load.len()).filter(|&partition| load[partition] == 1);
                    match state.batching.soonest_free(one_ahead) {
                        Some(partition) => (partition, true),
                        None => break,
                    }
                }
                None => break,
            };
            let (batching, running, draining) = (&state.batching, state.running, state.draining);
            let picked = state.queues.pick(now, |forming| {
                if ahead {
                    batching.is_ready_ahead(forming, partition)
                } else {
                    match batching.ready(forming, now, draining, running, Some(partition)) {
                        Ready::Now(reason) => Some(reason),
                        Ready::At(_) => None,
                    }
                }
            });
            let Some((at, reason)) = picked else {
                break;
            };
            let forming = state.queues.forming(at, now);
            let queues = &state.queues;
            let bound = state.batching.bound(&forming, partition, |budget| {
                queues.most_urgent_left(at, now, budget)
            });
            state.waits.clear();
            // A batch handed ahead claims its items when it starts.
            let mut taken = state
                .queues
                .take(at, bound, reason, now, !ahead, &mut state.waits);
            if taken.cut_by_weight {
                taken.reason = state.batching.reason_when_cut(bound, taken.reason);
            }
            if taken.items.is_empty() {
                // Every item there belonged to an abandoned call.
                self.room.give_back(taken.removed);
                continue;
            }
            if !ahead {
                // A batch handed ahead gives its room back when it starts.
                self.room.give_back(taken.removed);
                state.idle.pop();
            }
            let job = self.job(state, taken, partition, ahead);
            self.hand_over(state, partition, job);
        }
    }

    pub(super) fn hand_over(
        &self,
        state: &mut State<I, O, E>,
        partition: usize,
        job: Job<I, O, E>,
    ) {
        let link = &self.partitions[partition];
        let (weight, items) = (job.weight, job.batch.len());
        let work = if job.queued_room.is_some() {
            link.on_deck
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push_back(job);
            Work::OnDeck
        } else {
            state.poll_until = self.poll_deadline();
            Work::Run(job)
        };
        if let Err(mpsc::error::SendError(work)) = link.work.send(work) {
            // The partition's thread is gone (it cannot be in normal
            // operation): fail its batches rather than lose them.
            if let Work::Run(job) = work {
                self.fail_unstarted(job);
            }
            for job in revoke(&link.on_deck) {
                self.fail_unstarted(job);
            }
            return;
        }
        state.load[partition] += 1;
        state.running += 1;
        state
            .batching
            .handed_over(partition, weight, items, Instant::now());
    }

    /// Makes the job for a batch taken from the queue. The batch waits in
    /// `state.forming` while its span is made, when an application's
    /// tracing layer runs, so that a panic then leaves its calls for
    /// `finish` to answer.
    fn job(
        &self,
        state: &mut State<I, O, E>,
        taken: Taken<I, O, E>,
        partition: usize,
        claim_on_start: bool,
    ) -> Job<I, O, E> {
        let taken = &*state.forming.insert(taken);
        let len = taken.items.len();
        let deferred_start = if claim_on_start {
            Some(Box::new(DeferredStart {
                reason: taken.reason,
                waits: state.waits.clone(),
            }))
        } else {
            self.recorder.in_flight.add(len as u64);
            self.recorder
                .record_start(taken.reason, state.waits.iter().copied(), self.room.used());
            None
        };
        let longest_wait = state.waits.iter().copied().max().unwrap_or_default();
        let plan =
            state
                .batching
                .plan(taken.key, taken.weight, partition)
                .map(|(predicted, target)| Plan {
                    predicted,
                    slack: signed_micros(target, longest_wait + predicted),
                });
        if let Some(plan) = plan {
            self.recorder.record_plan(plan.slack);
        }
        let span = tracing::info_span!(
            parent: None,
            "batch",
            serving = %self.name,
            partition,
            key = taken.key.id(),
            size = len,
            reason = taken.reason.as_str(),
            queue_wait_us = longest_wait.as_micros() as u64,
            exec_us = tracing::field::Empty,
            weight = taken.weight,
            predicted_exec_us = plan.map(|plan| plan.predicted.as_micros() as u64),
            slack_us = plan.map(|plan| plan.slack),
        );
        if !span.is_disabled() {
            link_callers(&span, &taken.routes);
        }
        let Taken {
            key,
            items,
            routes,
            listeners,
            removed,
            weight,
            ..
        } = state
            .forming
            .take()
            .unwrap_or_else(|| unreachable!("the batch was put there above"));
        Job {
            batch: Batch::new(items, key, partition, listeners),
            routes: Routes::new(routes, Arc::clone(&self.recorder)),
            span,
            clock_hold: hold_clock(self.off_runtime),
            queued_room: claim_on_start.then_some(removed),
            weight,
            predicted: plan.map(|plan| plan.predicted),
            deferred_start,
        }
    }
}

/// What the adaptive policy expected of a batch as it left the queue.
#[derive(Debug, Clone, Copy)]
struct Plan {
    predicted: std::time::Duration,
    /// Microseconds left of the target once the oldest call's wait and the
    /// predicted execution are spent; negative when the plan is late.
    slack: i64,
}

/// `budget - spent` in microseconds, negative when overspent.
fn signed_micros(budget: std::time::Duration, spent: std::time::Duration) -> i64 {
    let micros = |d: std::time::Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
    micros(budget) - micros(spent)
}

/// Links the batch span to each distinct caller span (callers' spans travel
/// with their items; a batch serves many callers, so it follows from them).
fn link_callers<O, E>(span: &tracing::Span, routes: &[Route<O, E>]) {
    let mut last: Option<*const Request<O, E>> = None;
    for route in routes {
        let ptr = Arc::as_ptr(&route.request);
        if last == Some(ptr) {
            continue;
        }
        last = Some(ptr);
        if let Some(caller) = route.request.span() {
            span.follows_from(caller);
        }
    }
}
