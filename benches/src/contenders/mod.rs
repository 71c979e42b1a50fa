//! The contenders: batch-serving (timeout and eager policies) and the
//! batching layers people would otherwise use, behind one calling interface.

mod amate;
mod batch_aint_one;
mod batch_serving;
mod batched_fn;
mod bento_style;
mod dispatch_thread;
mod step_rule;
mod textbook;
mod tower_batch;

pub(crate) use textbook::channel_contender;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::workload::Cost;

/// One call's future: the reply, or an error message. It may borrow the
/// contender, so a contender whose calls take `&self` (as batch-serving's
/// do) is not made to clone its handle per call. Every contender boxes its
/// library's own future with only `map_err` around it (no `async` block,
/// which would keep the item and the handle beside the future), so the
/// memory per queued call counts the library's future and not a wrapper of
/// ours.
pub type CallFuture<'a> = Pin<Box<dyn Future<Output = Result<u64, String>> + Send + 'a>>;

/// A started batching layer.
pub trait Contender: Send + Sync {
    /// Sends `x` and waits for its reply.
    fn call(&self, x: u64) -> CallFuture<'_>;
}

/// S7's batch-serving contender under `policy` (adaptive, eager or a fixed
/// timeout).
///
/// # Errors
///
/// When the serving does not start.
pub fn serving(
    setup: Setup,
    policy: ::batch_serving::Policy,
) -> Result<Arc<dyn Contender>, String> {
    batch_serving::start(setup, policy)
}

/// S7's "±4 rule" dispatcher, steering to `target` (see `step_rule.rs`).
pub fn step_rule(setup: Setup, target: Duration) -> Arc<dyn Contender> {
    step_rule::start(setup, target)
}

/// S7's BentoML-style dispatcher, with `limit` as its latency limit (see
/// `bento_style.rs`).
pub fn bento_style(setup: Setup, limit: Duration) -> Arc<dyn Contender> {
    bento_style::start(setup, limit)
}

/// The settings every contender gets in a scenario.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    /// Most items per batch.
    pub batch_size: usize,
    /// Longest wait for a batch to fill.
    pub max_wait: Duration,
    /// What a batch costs.
    pub cost: Cost,
}

/// Which contender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// batch-serving, `Policy::Timeout`.
    ServingTimeout,
    /// batch-serving, `Policy::Eager`.
    ServingEager,
    /// batch-serving, `Policy::Eager`, with the function declared cheap
    /// (`Serving::new_on_runtime`): partitions are tasks on the runtime, as
    /// for the textbook loop, instead of threads of their own.
    ServingOnRuntime,
    /// batch-serving, `Policy::Eager`, with busy polling
    /// (`Builder::busy_poll`): the scheduler's worker stays awake while a
    /// batch runs, so the partition thread's hand-off wakes no one.
    ServingBusyPoll,
    /// batched-fn 0.2.5.
    BatchedFn,
    /// tower-batch-control 1.1.1.
    TowerBatch,
    /// amate 0.16.2, one worker.
    Amate,
    /// batch-aint-one 0.16.0, Immediate policy.
    BaoImmediate,
    /// batch-aint-one 0.16.0, Duration policy (the scenario's wait).
    BaoDuration,
    /// batch-aint-one 0.16.0, Balanced policy.
    BaoBalanced,
    /// The textbook mpsc + `select!` loop.
    Textbook,
}

impl Kind {
    /// Every contender, in report order.
    pub const ALL: [Kind; 11] = [
        Kind::ServingTimeout,
        Kind::ServingEager,
        Kind::ServingOnRuntime,
        Kind::ServingBusyPoll,
        Kind::BatchedFn,
        Kind::TowerBatch,
        Kind::Amate,
        Kind::BaoImmediate,
        Kind::BaoDuration,
        Kind::BaoBalanced,
        Kind::Textbook,
    ];

    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Kind::ServingTimeout => "batch-serving (timeout)",
            Kind::ServingEager => "batch-serving (eager)",
            Kind::ServingOnRuntime => "batch-serving (eager, on runtime)",
            Kind::ServingBusyPoll => "batch-serving (eager, busy poll)",
            Kind::BatchedFn => "batched-fn 0.2.5",
            Kind::TowerBatch => "tower-batch-control 1.1.1",
            Kind::Amate => "amate 0.16.2 (1 worker)",
            Kind::BaoImmediate => "batch-aint-one 0.16.0 (Immediate)",
            Kind::BaoDuration => "batch-aint-one 0.16.0 (Duration)",
            Kind::BaoBalanced => "batch-aint-one 0.16.0 (Balanced)",
            Kind::Textbook => "textbook mpsc+select! loop",
        }
    }

    /// Whether this is one of ours.
    pub fn is_ours(self) -> bool {
        matches!(
            self,
            Kind::ServingTimeout
                | Kind::ServingEager
                | Kind::ServingOnRuntime
                | Kind::ServingBusyPoll
        )
    }

    /// Whether this is a variant of ours that only the scenarios it is
    /// about run (the default configurations run everywhere).
    pub fn is_variant(self) -> bool {
        matches!(self, Kind::ServingOnRuntime | Kind::ServingBusyPoll)
    }

    /// Starts the contender on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// When it cannot start (a setup batched-fn has no call site for).
    pub fn start(self, setup: Setup) -> Result<Arc<dyn Contender>, String> {
        match self {
            Kind::ServingTimeout => batch_serving::start(setup, ::batch_serving::Policy::Timeout),
            Kind::ServingEager => batch_serving::start(setup, ::batch_serving::Policy::Eager),
            Kind::ServingOnRuntime => batch_serving::start_on_runtime(setup),
            Kind::ServingBusyPoll => batch_serving::start_busy_poll(setup),
            Kind::BatchedFn => batched_fn::start(setup),
            Kind::TowerBatch => Ok(tower_batch::start(setup)),
            Kind::Amate => Ok(amate::start(setup)),
            Kind::BaoImmediate => Ok(batch_aint_one::start(
                setup,
                batch_aint_one::Policy::Immediate,
            )),
            Kind::BaoDuration => Ok(batch_aint_one::start(
                setup,
                batch_aint_one::Policy::Duration,
            )),
            Kind::BaoBalanced => Ok(batch_aint_one::start(
                setup,
                batch_aint_one::Policy::Balanced,
            )),
            Kind::Textbook => Ok(textbook::start(setup)),
        }
    }
}
