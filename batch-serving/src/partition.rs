//! Partitions: where batch functions run. A synchronous function gets one OS
//! thread per partition (never a tokio worker); an asynchronous one gets one
//! tokio task per partition.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, PoisonError};

use futures::FutureExt;
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::batch::Batch;
use crate::delivery::{Answers, Routes};
use crate::error::{Error, Failure, panic_message};
use crate::scheduler::Msg;
use crate::stats::Recorder;

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
    pub(crate) queued_permits: Option<usize>,
}

impl<I, O, E> Job<I, O, E> {
    /// For a job handed over early: claims each item for its call now,
    /// dropping the items of calls that were abandoned meanwhile.
    fn claim(&mut self) {
        let keep: Vec<bool> = self.routes.iter().map(|r| r.request.try_take()).collect();
        if keep.contains(&false) {
            let mut flags = keep.iter();
            self.routes
                .retain(|_| flags.next().copied().unwrap_or(false));
            self.batch.retain_flagged(&keep);
        }
    }
}

/// With feature `test-util`: a blocking task that lives as long as a
/// synchronous batch runs. tokio stops auto-advancing a paused clock while
/// any blocking task runs, which it cannot know about our own threads.
#[cfg(feature = "test-util")]
pub(crate) type ClockHold = Option<std::sync::mpsc::SyncSender<()>>;
#[cfg(not(feature = "test-util"))]
pub(crate) type ClockHold = ();

/// Starts holding the clock (only for batches that run off the runtime).
#[cfg(feature = "test-util")]
pub(crate) fn hold_clock(off_runtime: bool) -> ClockHold {
    off_runtime.then(|| {
        let (hold, released) = std::sync::mpsc::sync_channel::<()>(0);
        tokio::task::spawn_blocking(move || {
            let _ = released.recv();
        });
        hold
    })
}
#[cfg(not(feature = "test-util"))]
pub(crate) fn hold_clock(_off_runtime: bool) -> ClockHold {}

/// What a partition needs besides its batch function.
pub(crate) struct PartitionContext<I, O, E> {
    pub(crate) index: usize,
    pub(crate) jobs: mpsc::UnboundedReceiver<Work<I, O, E>>,
    pub(crate) scheduler: mpsc::UnboundedSender<Msg<I, O, E>>,
    pub(crate) recorder: Arc<Recorder>,
    pub(crate) name: Arc<str>,
    /// Queue room, given back here for jobs handed over early.
    pub(crate) permits: Arc<tokio::sync::Semaphore>,
    /// Where the scheduler puts a job handed over early (see [`Work`]).
    pub(crate) on_deck: OnDeck<I, O, E>,
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

impl<I, O, E> PartitionContext<I, O, E> {
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
        self.permits
            .add_permits(job.queued_permits.unwrap_or_default());
        if job.routes.is_empty() {
            let _ = self.scheduler.send(Msg::Done {
                partition: self.index,
                answers: None,
            });
            return None;
        }
        self.recorder.in_flight.fetch_add(
            job.routes.len() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        Some(job)
    }

    /// Common bookkeeping after a batch ran: count it, then tell the
    /// scheduler this partition is free. With `hand_off` (a partition on its
    /// own thread) the answers go along for the scheduler to deliver;
    /// otherwise they are delivered here first.
    fn finish(&self, answers: Answers<O, E>, span: &tracing::Span, hand_off: bool) {
        use std::sync::atomic::Ordering::Relaxed;
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
        self.recorder.record_execution(took);
        self.recorder.batches.fetch_add(1, Relaxed);
        self.recorder.items.fetch_add(len as u64, Relaxed);
        self.recorder.in_flight.fetch_sub(len as u64, Relaxed);
        let answers = if hand_off {
            Some(Box::new(answers))
        } else {
            answers.deliver();
            None
        };
        let done = Msg::Done {
            partition: self.index,
            answers,
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
fn judge<O, E>(
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
    ) -> Result<(), Error<E>>;

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

/// A synchronous batch function with per-partition state `S`.
pub(crate) struct SyncRunner<S, Fac, F> {
    pub(crate) factory: Fac,
    pub(crate) function: F,
    /// State for `inline` calls, made on first use by the factory.
    pub(crate) inline_state: Mutex<Option<S>>,
}

impl<I, O, E, S, Fac, F> Runner<I, O, E> for SyncRunner<S, Fac, F>
where
    I: Send + 'static,
    O: Send + 'static,
    E: Send + Sync + 'static,
    S: Send + 'static,
    Fac: Fn(usize) -> Result<S, E> + Send + Sync + 'static,
    F: Fn(&mut S, Batch<I>) -> Result<Vec<O>, E> + Send + Sync + 'static,
{
    fn spawn(
        self: Arc<Self>,
        ctx: PartitionContext<I, O, E>,
        _runtime: &tokio::runtime::Handle,
    ) -> Result<(), Error<E>> {
        let index = ctx.index;
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel::<Result<(), Error<E>>>(1);
        let span = tracing::info_span!("partition", serving = %ctx.name, partition = index);
        std::thread::Builder::new()
            .name(format!("{}-p{index}", ctx.name))
            .spawn(move || {
                let _entered = span.enter();
                let made = catch_unwind(AssertUnwindSafe(|| (self.factory)(index)));
                let mut state = match made {
                    Ok(Ok(state)) => {
                        let _ = ready_tx.send(Ok(()));
                        state
                    }
                    Ok(Err(error)) => {
                        let _ = ready_tx.send(Err(Error::PartitionStart {
                            partition: index,
                            source: Arc::new(error),
                        }));
                        return;
                    }
                    Err(payload) => {
                        let message = panic_message(payload.as_ref());
                        let _ = ready_tx.send(Err(Error::PartitionStartPanicked {
                            partition: index,
                            message,
                        }));
                        return;
                    }
                };
                let mut ctx = ctx;
                while let Some(work) = ctx.jobs.blocking_recv() {
                    let Some(Job {
                        mut batch,
                        routes,
                        span,
                        // Released once the callers are answered.
                        clock_hold,
                        ..
                    }) = ctx.accept(work)
                    else {
                        continue;
                    };
                    batch.set_partition(index);
                    let len = batch.len();
                    let started = std::time::Instant::now();
                    // The span is entered and left inside the outer guard: an
                    // application's tracing layer runs there, and its panic
                    // fails this batch like the function's own would, rather
                    // than ending the partition.
                    let outcome = catch_unwind(AssertUnwindSafe(|| {
                        let _in_batch = span.enter();
                        catch_unwind(AssertUnwindSafe(|| (self.function)(&mut state, batch)))
                    }))
                    .unwrap_or_else(Err);
                    let answers = Answers {
                        routes,
                        result: judge(len, outcome),
                        took: started.elapsed(),
                        clock_hold,
                    };
                    ctx.finish(answers, &span, true);
                    // Closing the span runs the layer once more.
                    let _ = catch_unwind(AssertUnwindSafe(move || drop(span)));
                }
            })
            .map_err(|e| Error::Spawn(Arc::new(e)))?;
        ready_rx.recv().unwrap_or(Err(Error::Closed))
    }

    fn run_inline(
        &self,
        batch: Batch<I>,
        inline_index: usize,
    ) -> Option<Result<Vec<O>, Failure<E>>> {
        let len = batch.len();
        let mut guard = self
            .inline_state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if guard.is_none() {
            match catch_unwind(AssertUnwindSafe(|| (self.factory)(inline_index))) {
                Ok(Ok(state)) => *guard = Some(state),
                Ok(Err(error)) => return Some(Err(Failure::Batch(Arc::new(error)))),
                Err(payload) => {
                    return Some(Err(Failure::Panicked(panic_message(payload.as_ref()))));
                }
            }
        }
        let state = guard.as_mut()?;
        let outcome = catch_unwind(AssertUnwindSafe(|| (self.function)(state, batch)));
        Some(judge(len, outcome))
    }

    fn runs_off_runtime(&self) -> bool {
        true
    }
}

/// An asynchronous batch function (for I/O-bound work such as batched
/// database look-ups): each partition is a tokio task.
pub(crate) struct AsyncRunner<F> {
    pub(crate) function: F,
}

impl<I, O, E, F, Fut> Runner<I, O, E> for AsyncRunner<F>
where
    I: Send + 'static,
    O: Send + 'static,
    E: Send + Sync + 'static,
    F: Fn(Batch<I>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<O>, E>> + Send + 'static,
{
    fn spawn(
        self: Arc<Self>,
        mut ctx: PartitionContext<I, O, E>,
        runtime: &tokio::runtime::Handle,
    ) -> Result<(), Error<E>> {
        let span = tracing::info_span!("partition", serving = %ctx.name, partition = ctx.index);
        runtime.spawn(
            async move {
                while let Some(work) = ctx.jobs.recv().await {
                    let Some(Job {
                        mut batch,
                        routes,
                        span,
                        clock_hold,
                        ..
                    }) = ctx.accept(work)
                    else {
                        continue;
                    };
                    batch.set_partition(ctx.index);
                    let len = batch.len();
                    let started = std::time::Instant::now();
                    // The call itself sits inside the async block, so a panic
                    // before the function's first await is caught too.
                    // Instrumented inside the guard, so that a panic of a
                    // tracing layer entering the span fails this batch; and
                    // dropped inside one, as dropping it enters the span too.
                    let mut guarded = Box::pin(
                        AssertUnwindSafe(
                            async { (self.function)(batch).await }.instrument(span.clone()),
                        )
                        .catch_unwind(),
                    );
                    let outcome = (&mut guarded).await;
                    let _ = catch_unwind(AssertUnwindSafe(move || drop(guarded)));
                    let answers = Answers {
                        routes,
                        result: judge(len, outcome),
                        took: started.elapsed(),
                        clock_hold,
                    };
                    // Already on a runtime worker: answering here is as
                    // cheap as anywhere.
                    ctx.finish(answers, &span, false);
                    let _ = catch_unwind(AssertUnwindSafe(move || drop(span)));
                }
            }
            .instrument(span),
        );
        Ok(())
    }

    fn run_inline(
        &self,
        _batch: Batch<I>,
        _inline_index: usize,
    ) -> Option<Result<Vec<O>, Failure<E>>> {
        None
    }

    fn runs_off_runtime(&self) -> bool {
        false
    }
}
