//! The scheduler: one tokio task that owns the queue, forms batches and hands
//! them to free partitions. Callers and partitions talk to it through one
//! unbounded channel (admission is bounded separately by the semaphore).

use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use futures::FutureExt;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Duration, Instant, Sleep};

use crate::engine::message::{Msg, PartitionLink};
use crate::engine::policy::{Batching, Ready};
use crate::engine::precise_timer;
use crate::engine::queue::{Queues, Taken, WeighFn};
use crate::error::panic_message;
use crate::policy::Policy;
use crate::room::QueueRoom;
use crate::stats::Recorder;

mod finish;
mod handle;
mod start;

/// Under the eager policy, after answering callers of a batch that ran at
/// least this long, the scheduler lets them send their next calls before it
/// starts another batch. For a costly function a batch that leaves without
/// them costs a whole run for a few items (S2 at 8 callers: 4 items per batch
/// and half the throughput); for a nearly free one the wait costs more than
/// it saves (S1 at 64 callers: half the throughput). The threshold sits far
/// above the few microseconds the wait takes, and far below a model run.
const WAIT_FOR_ANSWERED_AFTER: Duration = Duration::from_micros(50);

/// The longest that wait lasts. Callers answered on the scheduler's worker
/// send their next calls as soon as it yields; those the other workers
/// took run meanwhile and take a few microseconds each (S2 at 8 callers:
/// without waiting for them, one batch in four left a caller or two
/// behind). Callers that do not call again (open-loop traffic) cost at
/// most this much per batch of at least `WAIT_FOR_ANSWERED_AFTER`, and
/// nothing where a full batch is queued anyway.
const WAIT_FOR_ANSWERED_AT_MOST: std::time::Duration = std::time::Duration::from_micros(20);

/// What the messages just handled answered: the longest run among their
/// batches, and how many items those batches held.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Answered {
    pub(super) longest_run: Duration,
    pub(super) items: usize,
}

/// How far ahead of a batch timer tokio's timer is set: more than the one
/// millisecond its wheel may add, so that it fires before the moment, and
/// the precise timer (see `precise_timer`) then wakes the scheduler at the
/// moment itself. tokio's timer is set for the moment too, as the fallback
/// and for tokio's paused clock in tests, where only it counts.
const LEAD: Duration = Duration::from_millis(2);

pub(crate) struct Scheduler<I, O, E> {
    pub(crate) rx: mpsc::UnboundedReceiver<Msg<I, O, E>>,
    /// Where the precise timer's wake-ups go: weak, so that a pending
    /// wake-up does not keep the channel open.
    pub(crate) tick: mpsc::WeakUnboundedSender<Msg<I, O, E>>,
    pub(crate) partitions: Vec<PartitionLink<I, O, E>>,
    pub(crate) room: Arc<QueueRoom>,
    pub(crate) recorder: Arc<Recorder>,
    pub(crate) name: Arc<str>,
    /// Whether batches run on partition threads (see `hold_clock`).
    pub(crate) off_runtime: bool,
    /// How long to poll for answers instead of sleeping while a batch runs
    /// on a partition thread (see `Builder::busy_poll`).
    pub(crate) busy_poll: Duration,
    /// Each item's weight (see `Builder::weigh_by`).
    pub(crate) weigh: Option<WeighFn<I>>,
    /// The batching policy; moved into the state at start.
    pub(crate) batching: Option<Batching>,
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
    /// The batching policy: when batches are ready and how large.
    batching: Batching,
}

/// The precise timer's alarm for one arming of a scheduler's batch timer:
/// it sends a [`Msg::Tick`], unless the scheduler has re-armed since (the
/// batch filled first) or is gone.
struct TickAlarm<I, O, E> {
    arming: Arc<AtomicU64>,
    this: u64,
    tick: mpsc::WeakUnboundedSender<Msg<I, O, E>>,
}

impl<I: Send, O: Send, E: Send + Sync> precise_timer::Alarm for TickAlarm<I, O, E> {
    fn is_wanted(&self) -> bool {
        self.arming.load(Relaxed) == self.this && self.tick.strong_count() > 0
    }

    fn ring(self: Box<Self>) {
        if self.is_wanted()
            && let Some(tx) = self.tick.upgrade()
        {
            let _ = tx.send(Msg::Tick);
        }
    }
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
        let batching = self
            .batching
            .take()
            .unwrap_or_else(|| unreachable!("a scheduler runs once"));
        let mut state = State {
            queues: Queues::new(self.weigh.clone(), batching.order()),
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
            batching,
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
        // One timer, re-armed only when the earliest batch deadline changes:
        // first `LEAD` early, then (once that fires) for the moment itself,
        // with the precise timer set for the moment too.
        let mut timer: Pin<Box<Sleep>> = Box::pin(tokio::time::sleep_until(Instant::now()));
        let mut armed: Option<Instant> = None;
        let mut timer_set = false;
        // Which arming a precise wake-up belongs to: one for a deadline that
        // has since changed (the batch filled first) sends nothing, so a
        // busy serving is not woken once a batch for nothing.
        let arming = Arc::new(AtomicU64::new(0));
        loop {
            let wanted = if state.idle.is_empty() {
                None // nothing could start anyway; a Done message wakes us
            } else {
                let now = Instant::now();
                let (batching, running) = (&state.batching, state.running);
                state.queues.earliest(now, |forming| {
                    match batching.ready(forming, now, false, running, None) {
                        Ready::At(at) => Some(at),
                        Ready::Now(_) => None,
                    }
                })
            };
            if wanted != armed {
                armed = wanted;
                timer_set = false;
                arming.fetch_add(1, Relaxed);
                if let Some(at) = wanted {
                    timer_set = true;
                    match at.checked_sub(LEAD) {
                        Some(early) if early > Instant::now() => timer.as_mut().reset(early),
                        _ => self.arm_precisely(timer.as_mut(), at, &arming),
                    }
                }
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
                    () = timer.as_mut(), if timer_set => {
                        timer_set = false;
                        match armed {
                            // The early firing: now the last stretch.
                            Some(at) if Instant::now() < at => {
                                self.arm_precisely(timer.as_mut(), at, &arming);
                                timer_set = true;
                            }
                            _ => armed = None,
                        }
                    }
                }
            }
            let mut now = Instant::now();
            let answered = self.handle_inbox(state, now);
            if answered.longest_run >= WAIT_FOR_ANSWERED_AFTER
                && matches!(
                    state.batching.rules().policy,
                    Policy::Eager | Policy::Adaptive { .. }
                )
                && !state.idle.is_empty()
            {
                // The callers just answered are about to send their next
                // calls: let them run first, so that the eager batch starting
                // now includes them rather than leaving without them.
                self.let_answered_callers_call(state, answered.items).await;
                now = Instant::now();
                self.handle_inbox(state, now);
            }
            self.start_ready(state, now);
            if state.draining && state.queues.len() == 0 && state.running == 0 {
                return;
            }
        }
    }

    /// Yields to the callers just answered until as many calls as they
    /// were (`answered` items) have arrived, a full batch is queued, or
    /// `WAIT_FOR_ANSWERED_AT_MOST` has passed, whichever comes first. The
    /// bound is wall-clock time: with tokio's clock paused (tests) a tokio
    /// deadline would never come while this task keeps running.
    async fn let_answered_callers_call(&mut self, state: &mut State<I, O, E>, answered: usize) {
        let until = std::time::Instant::now() + WAIT_FOR_ANSWERED_AT_MOST;
        let batch_size = state.batching.rules().batch_size;
        let enough = answered.min(batch_size).max(1);
        loop {
            tokio::task::yield_now().await;
            while state.inbox.len() < 256 {
                let Ok(msg) = self.rx.try_recv() else { break };
                state.inbox.push(msg);
            }
            if state.inbox.len() >= enough
                || state.queues.len() + state.inbox.len() >= batch_size
                || std::time::Instant::now() >= until
            {
                return;
            }
        }
    }

    /// Sets tokio's timer for `at`, and the precise timer to send a
    /// [`Msg::Tick`] then, unless `arming` has moved on by then.
    fn arm_precisely(&self, timer: Pin<&mut Sleep>, at: Instant, arming: &Arc<AtomicU64>) {
        timer.reset(at);
        precise_timer::ring_at(
            at.into_std(),
            TickAlarm {
                this: arming.load(Relaxed),
                arming: Arc::clone(arming),
                tick: self.tick.clone(),
            },
        );
    }

    /// Handles the messages in the inbox, oldest first; returns what the
    /// batches whose callers it answered ran and held. Each message
    /// stays in the inbox until it is handled, so that a panic leaves the
    /// rest for `finish` to answer.
    fn handle_inbox(&self, state: &mut State<I, O, E>, now: Instant) -> Answered {
        let mut answered = Answered::default();
        state.inbox.reverse();
        while let Some(msg) = state.inbox.pop() {
            let these = self.handle(state, msg, now);
            answered.longest_run = answered.longest_run.max(these.longest_run);
            answered.items += these.items;
        }
        answered
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
}
