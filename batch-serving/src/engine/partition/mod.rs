//! Partitions: where batch functions run. A synchronous function gets one OS
//! thread per partition (never a tokio worker; `sync_runner`); an
//! asynchronous one gets one tokio task per partition (`async_runner`).
//! What both do around the function (accepting a job, timing it, judging
//! its outputs, answering and freeing the partition) lives here, once.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::batch::Batch;
use crate::engine::clock::ClockHold;
use crate::engine::delivery::{Answers, Routes};
use crate::engine::message::{Job, Msg, OnDeck, Ran, Work, next_on_deck};
use crate::error::{Failure, StartError, panic_message};
use crate::key::BatchKey;
use crate::room::QueueRoom;
use crate::stats::Recorder;

pub(crate) mod async_runner;
pub(crate) mod sync_runner;

/// What a partition needs besides its batch function.
pub(crate) struct PartitionContext<I, O, E> {
    pub(crate) index: usize,
    pub(crate) jobs: mpsc::UnboundedReceiver<Work<I, O, E>>,
    pub(crate) scheduler: mpsc::UnboundedSender<Msg<I, O, E>>,
    pub(crate) recorder: Arc<Recorder>,
    pub(crate) name: Arc<str>,
    /// Queue room, given back here for jobs handed over early.
    pub(crate) room: Arc<QueueRoom>,
    /// Where the scheduler puts a job handed over early (see [`Work`]).
    pub(crate) on_deck: OnDeck<I, O, E>,
    /// Whether to tell the scheduler what each batch cost (the adaptive
    /// policy learns from it; the others do not need it).
    pub(crate) reports_runs: bool,
    /// How long a partition thread polls for its next job before it sleeps
    /// (`Builder::busy_poll`; zero: it sleeps at once).
    pub(crate) spin_for_next: std::time::Duration,
}

impl<I, O, E> PartitionContext<I, O, E> {
    /// The next piece of work for a partition thread, `None` once the
    /// scheduler is gone. Under busy polling it polls first, for up to
    /// `spin_for_next`, so that a job handed over soon after the last batch
    /// wakes no sleeping thread; then it sleeps until one comes.
    pub(crate) fn next_work_blocking(&mut self) -> Option<Work<I, O, E>> {
        if !self.spin_for_next.is_zero() {
            let until = std::time::Instant::now() + self.spin_for_next;
            loop {
                match self.jobs.try_recv() {
                    Ok(work) => return Some(work),
                    Err(mpsc::error::TryRecvError::Disconnected) => return None,
                    Err(mpsc::error::TryRecvError::Empty) => {
                        if std::time::Instant::now() >= until {
                            break;
                        }
                        std::hint::spin_loop();
                    }
                }
            }
        }
        self.jobs.blocking_recv()
    }

    /// The job to run for a piece of work: `None` when a job on deck was
    /// revoked before the partition reached it, or when every call of an
    /// early-handed job was abandoned while it waited (then nothing runs,
    /// and the scheduler is told the partition is free).
    fn accept(&self, work: Work<I, O, E>) -> Option<Job<I, O, E>> {
        let mut job = match work {
            Work::Run(job) => return Some(job),
            Work::OnDeck => next_on_deck(&self.on_deck)?,
        };
        job.claim();
        self.room.give_back(job.queued_room.unwrap_or_default());
        if job.routes.is_empty() {
            let _ = self.scheduler.send(Msg::Done {
                partition: self.index,
                answers: None,
                ran: None,
            });
            return None;
        }
        self.recorder.in_flight.add(job.routes.len() as u64);
        if let Some(start) = job.deferred_start.take() {
            self.recorder
                .record_start(start.reason, start.waits.into_iter(), self.room.used());
        }
        Some(job)
    }

    /// Common bookkeeping after a batch ran: count it, then tell the
    /// scheduler this partition is free. With `hand_off` (a partition on its
    /// own thread) the answers go along for the scheduler to deliver;
    /// otherwise they are delivered here first.
    fn finish(&self, answers: Answers<O, E>, ran: Ran, span: &tracing::Span, hand_off: bool) {
        let (len, took) = (answers.routes.len(), answers.took);
        // An application's tracing layer runs here; its panic must not keep
        // the answers from going out.
        let _ = catch_unwind(AssertUnwindSafe(|| {
            span.record("exec_us", took.as_micros() as u64);
        }));
        match &answers.result {
            Ok(_) => {}
            Err(Failure::Panicked(_)) => Recorder::bump(&self.recorder.panicked),
            Err(_) => Recorder::bump(&self.recorder.failed),
        }
        self.recorder.record_batch(len, took);
        let answers = if hand_off {
            Some(Box::new(answers))
        } else {
            answers.deliver();
            None
        };
        let done = Msg::Done {
            partition: self.index,
            answers,
            ran: self.reports_runs.then(|| Box::new(ran)),
        };
        // After a shutdown the scheduler may be gone: then the answers are
        // delivered here.
        if let Err(mpsc::error::SendError(Msg::Done {
            answers: Some(answers),
            ..
        })) = self.scheduler.send(done)
        {
            answers.deliver();
        }
    }
}

/// Checks the output count and turns the function's outcome into a result
/// for the callers.
pub(crate) fn judge<O, E>(
    expected: usize,
    outcome: Result<Result<Vec<O>, E>, Box<dyn std::any::Any + Send>>,
) -> Result<Vec<O>, Failure<E>> {
    match outcome {
        Ok(Ok(outputs)) if outputs.len() == expected => Ok(outputs),
        Ok(Ok(outputs)) => Err(Failure::WrongOutputCount {
            expected,
            actual: outputs.len(),
        }),
        Ok(Err(error)) => Err(Failure::Batch(Arc::new(error))),
        Err(payload) => Err(Failure::Panicked(panic_message(payload.as_ref()))),
    }
}

/// A batch function in the form the serving runs it.
pub(crate) trait Runner<I, O, E>: Send + Sync + 'static {
    /// Starts partition `ctx.index`. For synchronous functions this returns
    /// once the partition's state factory has run on the partition's thread.
    fn spawn(
        self: Arc<Self>,
        ctx: PartitionContext<I, O, E>,
        runtime: &tokio::runtime::Handle,
    ) -> Result<(), StartError<E>>;

    /// Runs one batch on the calling thread (for `inline`), or `None` when the
    /// function is asynchronous.
    fn run_inline(
        &self,
        batch: Batch<I>,
        inline_index: usize,
    ) -> Option<Result<Vec<O>, Failure<E>>>;

    /// Whether batches run on threads of our own rather than on the runtime.
    fn runs_off_runtime(&self) -> bool;
}

/// What a running batch keeps for [`PartitionContext::complete`] while the
/// batch function holds the batch itself.
pub(crate) struct Started<O, E> {
    routes: Routes<O, E>,
    /// Released once the callers are answered.
    clock_hold: ClockHold,
    len: usize,
    key: BatchKey,
    weight: u64,
    predicted: Option<std::time::Duration>,
    /// On tokio's clock, so that tests on a paused clock see the batch
    /// function's virtual time.
    at: tokio::time::Instant,
}

/// What both runners do around the batch function itself, written once.
impl<I, O, E> PartitionContext<I, O, E> {
    /// Takes a piece of work up to the moment the function runs: the batch,
    /// its span, and what [`complete`](Self::complete) needs afterwards.
    /// `None` when there is nothing to run (see [`accept`](Self::accept)).
    pub(crate) fn begin(
        &self,
        work: Work<I, O, E>,
    ) -> Option<(Batch<I>, tracing::Span, Started<O, E>)> {
        let Job {
            mut batch,
            routes,
            span,
            clock_hold,
            weight,
            predicted,
            ..
        } = self.accept(work)?;
        batch.set_partition(self.index);
        let started = Started {
            routes,
            clock_hold,
            len: batch.len(),
            key: batch.key(),
            weight,
            predicted,
            at: tokio::time::Instant::now(),
        };
        Some((batch, span, started))
    }

    /// Answers the batch's callers with the function's outcome and frees
    /// the partition (see [`finish`](Self::finish) for `hand_off`). The
    /// span is dropped inside a guard: closing it runs an application's
    /// tracing layer once more, and its panic must not end the partition.
    pub(crate) fn complete(
        &self,
        started: Started<O, E>,
        span: tracing::Span,
        outcome: Result<Result<Vec<O>, E>, Box<dyn std::any::Any + Send>>,
        hand_off: bool,
    ) {
        let took = started.at.elapsed();
        let ran = Ran {
            key: started.key,
            partition: self.index,
            weight: started.weight,
            items: started.len,
            took,
            predicted: started.predicted,
        };
        let answers = Answers {
            routes: started.routes,
            result: judge(started.len, outcome),
            took,
            clock_hold: started.clock_hold,
        };
        self.finish(answers, ran, &span, hand_off);
        let _ = catch_unwind(AssertUnwindSafe(move || drop(span)));
    }
}
