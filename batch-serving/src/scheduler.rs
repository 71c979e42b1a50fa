//! The scheduler: one tokio task that owns the queue, forms batches and hands
//! them to free partitions. Callers and partitions talk to it through one
//! unbounded channel (admission is bounded separately by the semaphore).

use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;

use futures::FutureExt;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::{Duration, Instant, Sleep};

use crate::batch::Batch;
use crate::delivery::{Answers, Routes, deliver};
use crate::error::{Failure, panic_message};
use crate::key::BatchKey;
use crate::options::Priority;
use crate::partition::{Job, PartitionLink, Work, hold_clock, revoke};
use crate::policy::{Policy, StartReason};
use crate::queue::{Entry, Queues, Readiness, Route, Taken};
use crate::request::Request;
use crate::stats::Recorder;

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
    },
    /// A caller abandoned a call; its queued items can be swept out.
    Abandoned,
    /// Stop intake and drain; answer `done` once everything queued has run.
    Close { done: Option<oneshot::Sender<()>> },
    /// A shutdown ran out of time: fail everything still queued.
    Abort,
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

/// Under the eager policy, after answering callers of a batch that ran at
/// least this long, the scheduler lets them send their next calls before it
/// starts another batch. For a costly function a batch that leaves without
/// them costs a whole run for a few items (S2 at 8 callers: 4 items per batch
/// and half the throughput); for a nearly free one the wait costs more than
/// it saves (S1 at 64 callers: half the throughput). The threshold sits far
/// above the few microseconds the wait takes, and far below a model run.
const WAIT_FOR_ANSWERED_AFTER: Duration = Duration::from_micros(50);

pub(crate) struct Scheduler<I, O, E> {
    pub(crate) rx: mpsc::UnboundedReceiver<Msg<I, O, E>>,
    pub(crate) partitions: Vec<PartitionLink<I, O, E>>,
    pub(crate) rules: Readiness,
    pub(crate) permits: Arc<Semaphore>,
    pub(crate) recorder: Arc<Recorder>,
    pub(crate) name: Arc<str>,
    /// Whether batches run on partition threads (see `hold_clock`).
    pub(crate) off_runtime: bool,
    /// How long to poll for answers instead of sleeping while a batch runs
    /// on a partition thread (see `Builder::busy_poll`).
    pub(crate) busy_poll: Duration,
}

struct State<I, O, E> {
    queues: Queues<I, O, E>,
    /// Partitions with nothing to run, most recently freed last.
    idle: Vec<usize>,
    /// Jobs each partition holds: 0 (idle), 1 (running), or 2 (running,
    /// with a full batch waiting behind it).
    load: Vec<u8>,
    /// Jobs handed out and not yet done.
    running: usize,
    abandoned_hints: usize,
    draining: bool,
    waiters: Vec<oneshot::Sender<()>>,
    /// The queue waits of the batch being taken (kept to reuse its room).
    waits: Vec<Duration>,
    /// With busy polling: until when to poll rather than sleep, counted
    /// from the latest batch to start, so that a long batch is polled for
    /// at most the budget however many calls arrive meanwhile (`None`: the
    /// budget is spent, or polling is off).
    poll_until: Option<std::time::Instant>,
    /// Messages taken from the channel and not yet handled; kept here so
    /// that a panic mid-way still answers their calls (see `run`).
    inbox: Vec<Msg<I, O, E>>,
    /// A batch taken from the queue while its job is made, for the same
    /// reason (see `job`).
    forming: Option<Taken<I, O, E>>,
}

impl<I, O, E> Scheduler<I, O, E>
where
    I: Send + 'static,
    O: Send + 'static,
    E: Send + Sync + 'static,
{
    /// Runs until the serving closes. Should the loop panic (a bug of ours,
    /// or of code that runs inside it, such as a tracing layer), the
    /// serving closes as for a shutdown: every call still in its channel or
    /// queue, or in a batch it was handing over, is answered with `Closed`
    /// instead of waiting for ever, and new calls fail at once.
    pub(crate) async fn run(mut self) {
        let mut state = State {
            queues: Queues::new(),
            idle: (0..self.partitions.len()).rev().collect(),
            load: vec![0; self.partitions.len()],
            running: 0,
            abandoned_hints: 0,
            draining: false,
            waiters: Vec::new(),
            waits: Vec::new(),
            poll_until: None,
            inbox: Vec::with_capacity(256),
            forming: None,
        };
        let serving = AssertUnwindSafe(self.serve(&mut state)).catch_unwind();
        if let Err(payload) = serving.await {
            tracing::error!(
                serving = %self.name,
                panic = %panic_message(payload.as_ref()),
                "the scheduler panicked: the serving is closed and its calls fail with Closed"
            );
        }
        self.finish(state);
    }

    /// The scheduler's loop; returns once the serving has closed and
    /// drained, or every sender is gone.
    async fn serve(&mut self, state: &mut State<I, O, E>) {
        // One timer, re-armed only when the earliest batch deadline changes.
        let mut timer: Pin<Box<Sleep>> = Box::pin(tokio::time::sleep_until(Instant::now()));
        let mut armed: Option<Instant> = None;
        loop {
            let wanted = if state.idle.is_empty() {
                None // nothing could start anyway; a Done message wakes us
            } else {
                state.queues.next_timeout(self.rules)
            };
            if wanted != armed {
                if let Some(at) = wanted {
                    timer.as_mut().reset(at);
                }
                armed = wanted;
            }
            if let (Some(until), true) = (state.poll_until, state.running > 0)
                && !self.poll_busily(&mut state.inbox, armed, until).await
            {
                state.poll_until = None;
            }
            if state.inbox.is_empty() {
                tokio::select! {
                    biased;
                    received = self.rx.recv_many(&mut state.inbox, 256) => {
                        if received == 0 {
                            return; // every sender is gone: nothing can arrive or wait
                        }
                    }
                    () = timer.as_mut(), if armed.is_some() => {
                        armed = None;
                    }
                }
            }
            let mut now = Instant::now();
            let answered_after = self.handle_inbox(state, now);
            if answered_after >= WAIT_FOR_ANSWERED_AFTER
                && self.rules.policy == Policy::Eager
                && !state.idle.is_empty()
            {
                // The callers just answered are about to send their next
                // calls: let them run first, so that the eager batch starting
                // now includes them rather than leaving without them.
                tokio::task::yield_now().await;
                while state.inbox.len() < 256 {
                    let Ok(msg) = self.rx.try_recv() else { break };
                    state.inbox.push(msg);
                }
                now = Instant::now();
                self.handle_inbox(state, now);
            }
            self.start_ready(state, now);
            if state.draining && state.queues.len() == 0 && state.running == 0 {
                return;
            }
        }
    }

    /// Handles the messages in the inbox, oldest first; returns the longest
    /// run time of the batches whose callers it answered. Each message
    /// stays in the inbox until it is handled, so that a panic leaves the
    /// rest for `finish` to answer.
    fn handle_inbox(&self, state: &mut State<I, O, E>, now: Instant) -> Duration {
        let mut answered_after = Duration::ZERO;
        state.inbox.reverse();
        while let Some(msg) = state.inbox.pop() {
            answered_after = answered_after.max(self.handle(state, msg, now));
        }
        answered_after
    }

    /// Busy polling (see `Builder::busy_poll`): takes messages without
    /// registering for a wake-up, yielding to the runtime's other tasks
    /// between tries, until one arrives, the batch timer is `due`, or the
    /// budget is spent. Because the scheduler's worker never sleeps
    /// meanwhile, a partition thread that finishes hands its answers over
    /// with a plain push instead of waking that worker first. Returns false
    /// when it gave up: the budget ran out first.
    ///
    /// The deadline is wall-clock time: with tokio's clock paused (tests) a
    /// tokio deadline would never come while this task keeps running.
    async fn poll_busily(
        &mut self,
        inbox: &mut Vec<Msg<I, O, E>>,
        due: Option<Instant>,
        until: std::time::Instant,
    ) -> bool {
        loop {
            while inbox.len() < 256 {
                let Ok(msg) = self.rx.try_recv() else { break };
                inbox.push(msg);
            }
            if !inbox.is_empty() || due.is_some_and(|at| Instant::now() >= at) {
                Recorder::bump(&self.recorder.busy_poll_caught);
                return true;
            }
            if std::time::Instant::now() >= until {
                Recorder::bump(&self.recorder.busy_poll_gave_up);
                return false;
            }
            tokio::task::yield_now().await;
        }
    }

    /// Where busy polling is on: the polling deadline for a batch starting
    /// now on a partition thread.
    fn poll_deadline(&self) -> Option<std::time::Instant> {
        (self.off_runtime && !self.busy_poll.is_zero())
            .then(|| std::time::Instant::now() + self.busy_poll)
    }

    /// Handles one message; returns how long the batch function ran for
    /// the callers it answered (zero when it answered none).
    fn handle(&self, state: &mut State<I, O, E>, msg: Msg<I, O, E>, now: Instant) -> Duration {
        let mut answered_after = Duration::ZERO;
        match msg {
            Msg::One {
                item,
                request,
                key,
                priority,
            } => {
                state.queues.push(
                    key,
                    priority,
                    Entry {
                        item,
                        request,
                        index: 0,
                        queued_at: state.queues.stamp(now),
                    },
                    now,
                );
            }
            Msg::Many(piece) => {
                let queued_at = state.queues.stamp(now);
                let Piece {
                    items,
                    keys,
                    request,
                    offset,
                    priority,
                } = *piece;
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
            Msg::Done { partition, answers } => {
                if let Some(answers) = answers {
                    answered_after = answers.took;
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
            }
            Msg::Abandoned => {
                state.abandoned_hints += 1;
                // Sweep lazily: only once abandoned calls could be holding a
                // real share of the queue's capacity.
                if state.abandoned_hints * 2 >= state.queues.len().max(1) {
                    let removed = state.queues.purge_abandoned();
                    self.permits.add_permits(removed);
                    state.abandoned_hints = 0;
                }
            }
            Msg::Close { done } => {
                state.draining = true;
                state.waiters.extend(done);
            }
            Msg::Abort => {
                state.draining = true;
                self.revoke_on_deck(state);
                let entries = state.queues.drain_all();
                self.permits.add_permits(entries.len());
                fail_entries(entries, &Failure::Closed);
            }
        }
        answered_after
    }

    /// Starts batches while a partition is free and some key's batch is
    /// ready; then, with every partition busy, hands each a full batch to
    /// start the moment it finishes, so a loaded partition never waits for
    /// the scheduler between batches.
    fn start_ready(&self, state: &mut State<I, O, E>, now: Instant) {
        while let Some(&partition) = state.idle.last() {
            let Some((at, reason)) = state.queues.pick_ready(now, self.rules, state.draining)
            else {
                break;
            };
            state.waits.clear();
            let taken = state.queues.take(
                at,
                self.rules.batch_size,
                reason,
                now,
                true,
                &mut state.waits,
            );
            self.permits.add_permits(taken.removed);
            if taken.items.is_empty() {
                continue; // every item there belonged to an abandoned call
            }
            state.idle.pop();
            let job = self.job(state, taken, partition, false);
            self.hand_over(state, partition, job);
        }
        while self.rules.pipeline && state.idle.is_empty() {
            let Some(partition) = state.load.iter().position(|&load| load == 1) else {
                break;
            };
            let Some(at) = state.queues.pick_full(self.rules.batch_size) else {
                break;
            };
            state.waits.clear();
            let taken = state.queues.take(
                at,
                self.rules.batch_size,
                StartReason::Full,
                now,
                false,
                &mut state.waits,
            );
            if taken.items.is_empty() {
                self.permits.add_permits(taken.removed);
                continue;
            }
            // Its room in the queue is given back when it starts.
            let job = self.job(state, taken, partition, true);
            self.hand_over(state, partition, job);
        }
    }

    fn hand_over(&self, state: &mut State<I, O, E>, partition: usize, job: Job<I, O, E>) {
        let link = &self.partitions[partition];
        let work = if job.queued_permits.is_some() {
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
    }

    /// After a shutdown ran out of time: the jobs waiting on deck count as
    /// queued, so they fail with `Closed` like the rest of the queue.
    fn revoke_on_deck(&self, state: &mut State<I, O, E>) {
        for (partition, link) in self.partitions.iter().enumerate() {
            for job in revoke(&link.on_deck) {
                self.fail_unstarted(job);
                state.load[partition] -= 1;
                state.running -= 1;
            }
        }
    }

    /// Fails a job that never started, giving back what it holds.
    fn fail_unstarted(&self, job: Job<I, O, E>) {
        if let Some(permits) = job.queued_permits {
            self.permits.add_permits(permits);
        } else {
            self.recorder.in_flight.fetch_sub(
                job.routes.len() as u64,
                std::sync::atomic::Ordering::Relaxed,
            );
        }
        deliver(job.routes.into_inner(), Err(Failure::Closed));
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
        if !claim_on_start {
            self.recorder
                .in_flight
                .fetch_add(len as u64, std::sync::atomic::Ordering::Relaxed);
        }
        self.recorder
            .record_queue_waits(state.waits.iter().copied());
        let longest_wait = state.waits.iter().copied().max().unwrap_or_default();
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
            ..
        } = state
            .forming
            .take()
            .unwrap_or_else(|| unreachable!("the batch was put there above"));
        Job {
            batch: Batch::new(items, key, partition, listeners),
            routes: Routes::new(routes),
            span,
            clock_hold: hold_clock(self.off_runtime),
            queued_permits: claim_on_start.then_some(removed),
        }
    }

    /// Stops for good: partitions exit once their channels close, and any call
    /// that raced the close is answered with `Closed` rather than lost.
    fn finish(mut self, mut state: State<I, O, E>) {
        self.permits.close();
        self.partitions.clear();
        self.rx.close();
        let mut leftover = std::mem::take(&mut state.inbox);
        while let Ok(msg) = self.rx.try_recv() {
            leftover.push(msg);
        }
        for msg in leftover {
            match msg {
                Msg::One { request, .. } => request.fail(&Failure::Closed, 1),
                Msg::Many(piece) => piece.request.fail(&Failure::Closed, piece.items.len()),
                Msg::Close { done } => state.waiters.extend(done),
                Msg::Done { answers, .. } => {
                    if let Some(answers) = answers {
                        answers.deliver();
                    }
                }
                Msg::Abandoned | Msg::Abort => {}
            }
        }
        if let Some(forming) = state.forming.take() {
            deliver(forming.routes, Err(Failure::Closed));
        }
        let leftovers = state.queues.drain_all();
        fail_entries(leftovers, &Failure::Closed);
        for waiter in state.waiters {
            let _ = waiter.send(());
        }
        tracing::debug!(serving = %self.name, "serving stopped");
    }
}

fn fail_entries<I, O, E>(entries: Vec<Entry<I, O, E>>, failure: &Failure<E>) {
    let routes = entries
        .into_iter()
        .map(|e| Route {
            request: e.request,
            index: e.index as usize,
        })
        .collect();
    deliver(routes, Err(failure.clone()));
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
