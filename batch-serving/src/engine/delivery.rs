//! Routing a batch's outputs (or its failure) back to the calls it came from.

use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use crate::engine::clock::ClockHold;
use crate::error::Failure;
use crate::request::Request;
use crate::stats::{Recorder, Tally};

/// Where an item's output goes once its batch has run.
#[derive(Debug)]
pub(crate) struct Route<O, E> {
    pub(crate) request: Arc<Request<O, E>>,
    pub(crate) index: usize,
}

/// A finished batch's answers, handed from a partition's own thread to the
/// scheduler task, which delivers them on a runtime worker.
///
/// Why: waking a caller's task from a thread outside the runtime goes
/// through tokio's shared inject queue and often has to unpark a worker, and
/// on a small machine the woken worker competes with the partition thread
/// for a core. A batch of 32 callers cost the partition 6 to 53 µs between
/// batches that way (measured in the S3 bursts); handing the answers over is
/// one channel send, so the partition starts its next batch at once, and the
/// scheduler's wakes land in its worker's local run queue.
#[derive(Debug)]
pub(crate) struct Answers<O, E> {
    pub(crate) routes: Routes<O, E>,
    pub(crate) result: Result<Vec<O>, Failure<E>>,
    /// How long the batch function ran.
    pub(crate) took: std::time::Duration,
    /// Holds tokio's paused clock until the callers are answered.
    pub(crate) clock_hold: ClockHold,
}

impl<O, E> Answers<O, E> {
    /// Answers the callers, then lets the paused clock (in tests) move on.
    pub(crate) fn deliver(self) {
        let Answers {
            routes,
            result,
            took: _,
            // Dropped at the end of this function, after the answers.
            clock_hold: _clock_hold,
        } = self;
        routes.answer(result);
    }
}

/// A batch's routes from the moment it leaves the scheduler until its calls
/// are answered. Dropped with calls still in it, it answers them: a panic
/// outside the batch function's own guard (an application's tracing layer,
/// run as a partition enters or records the batch's span) unwinds through
/// whatever holds the routes, and without this their callers would wait
/// forever.
///
/// It carries the serving's recorder, so that whoever answers the calls
/// counts how each ended.
#[derive(Debug)]
pub(crate) struct Routes<O, E>(Vec<Route<O, E>>, Arc<Recorder>);

impl<O, E> Routes<O, E> {
    pub(crate) fn new(routes: Vec<Route<O, E>>, recorder: Arc<Recorder>) -> Self {
        Routes(routes, recorder)
    }

    /// Answers the calls with the batch's `result`.
    pub(crate) fn answer(mut self, result: Result<Vec<O>, Failure<E>>) {
        deliver(std::mem::take(&mut self.0), result, &self.1);
    }
}

impl<O, E> Deref for Routes<O, E> {
    type Target = Vec<Route<O, E>>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<O, E> DerefMut for Routes<O, E> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl<O, E> Drop for Routes<O, E> {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let failure = if std::thread::panicking() {
            Failure::Panicked(Arc::from(
                "a panic outside the batch function (in a tracing layer?) unwound the partition \
                 running this batch",
            ))
        } else {
            Failure::Closed
        };
        deliver(std::mem::take(&mut self.0), Err(failure), &self.1);
    }
}

/// Hands each call its own outputs, one lock and at most one wake-up per call
/// per batch: consecutive items of the same call are delivered as one run.
/// Each call that this ends is counted in `recorder` by how it ended, once
/// per batch rather than once per call: the counters are shared by every
/// thread that answers calls.
pub(crate) fn deliver<O, E>(
    routes: Vec<Route<O, E>>,
    result: Result<Vec<O>, Failure<E>>,
    recorder: &Recorder,
) {
    let mut ended = Tally::default();
    match result {
        Ok(outputs) => {
            // Each run's outputs are drained off the front, so the next run
            // starts at its own outputs even when a call does not use its
            // run's (a call that already failed drops them).
            let mut outputs = VecDeque::from(outputs);
            for_each_run(&routes, |route, len| {
                let outcome = route
                    .request
                    .deliver(route.index, outputs.drain(..len), len);
                ended.note(outcome);
            });
        }
        Err(failure) => {
            for_each_run(&routes, |route, len| {
                ended.note(route.request.fail(&failure, len));
            });
        }
    }
    recorder.count_all(&ended);
}

/// Calls `f(first_route, run_length)` for each maximal run of routes that
/// belong to the same call and carry consecutive indices.
fn for_each_run<O, E>(routes: &[Route<O, E>], mut f: impl FnMut(&Route<O, E>, usize)) {
    let mut start = 0;
    while start < routes.len() {
        let first = &routes[start];
        let mut end = start + 1;
        while end < routes.len()
            && std::sync::Arc::ptr_eq(&routes[end].request, &first.request)
            && routes[end].index == first.index + (end - start)
        {
            end += 1;
        }
        f(first, end - start);
        start = end;
    }
}
