//! Counters and latency histograms, and the snapshot `Serving::stats` returns.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::error::Failure;
use crate::meter::{Count, Distributions, Level, describe};
use crate::policy::StartReason;

/// A snapshot of a serving's counters. Counts are totals since start.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use batch_serving::{Batch, Serving};
/// let serving = Serving::new(|b: Batch<u8>| Ok::<_, std::convert::Infallible>(b.to_vec())).start()?;
/// serving.dispatch(7).await?;
/// let stats = serving.stats();
/// assert_eq!((stats.batches, stats.items), (1, 1));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct Stats {
    /// Batches the partitions ran from the queue, whether the batch
    /// function succeeded, failed or panicked. Inline runs are not among
    /// them (see [`inline_batches`](Self::inline_batches)).
    pub batches: u64,
    /// Items in those batches.
    pub items: u64,
    /// `items / batches`, or 0 before the first batch.
    pub mean_batch_size: f64,
    /// `mean_batch_size / batch_size`: how full batches were.
    pub utilisation: f64,
    /// Items holding queue room now: queued, reserved by a
    /// [`Reservation`](crate::Reservation) and not yet dispatched, or in a
    /// batch handed to a busy partition that has not started it. Items of
    /// abandoned calls count until they are swept out.
    pub queue_depth: u64,
    /// Items in batches running now.
    pub in_flight: u64,
    /// Calls that got all their outputs (a stream: all its `Output`
    /// events), from queued batches or inline. A call whose last outputs
    /// arrived is answered even if its caller drops it before reading them.
    pub answered: u64,
    /// Calls that ended with their batch's error: the function's `Err`, or
    /// the wrong number of outputs. A call whose items ran in several
    /// batches counts once, by its first failure.
    pub failed_calls: u64,
    /// Calls that ended because their batch's function panicked.
    pub panicked_calls: u64,
    /// Calls queued and then ended with [`Error::Closed`](crate::Error::Closed):
    /// a shutdown whose time ran out (`shutdown_timeout`, `abort`) before
    /// they ran. Calls refused at admission because the serving had closed
    /// are in [`refused_closed`](Self::refused_closed) instead.
    pub closed: u64,
    /// Calls whose future or stream was dropped before it completed, while
    /// queued, running, or still waiting for queue room.
    pub cancelled: u64,
    /// Calls that ended with [`Error::DeadlineExceeded`](crate::Error::DeadlineExceeded):
    /// at their deadline while waiting for room, queued or running, or at
    /// once because the deadline had passed before anything was queued.
    pub expired: u64,
    /// Calls and reservations refused at admission: with
    /// [`Error::Overloaded`](crate::Error::Overloaded) (fail-fast with a full
    /// queue, larger than the queue where that cannot be split, or more than
    /// `u32::MAX` items), [`Error::Closed`](crate::Error::Closed) (also in
    /// [`refused_closed`](Self::refused_closed)),
    /// [`Error::PredictedLate`](crate::Error::PredictedLate) (also in
    /// [`refused_late`](Self::refused_late)), or
    /// [`Error::InlineUnsupported`](crate::Error::InlineUnsupported).
    ///
    /// Every call ends in exactly one of `answered`, `failed_calls`,
    /// `panicked_calls`, `closed`, `cancelled`, `expired` or `rejected`,
    /// except three that never became calls and count nowhere: a future or
    /// stream dropped before its first poll (nothing was queued), a
    /// reservation dropped unspent (its room goes back), and a mapped call
    /// whose pre-processing failed (the serving never saw it).
    pub rejected: u64,
    /// Calls refused at admission with [`Error::Closed`](crate::Error::Closed):
    /// the serving had shut down (also counted in `rejected`).
    pub refused_closed: u64,
    /// Batches whose function returned `Err` or the wrong number of outputs
    /// (each of their callers got that error, counted in `failed_calls`).
    pub failed: u64,
    /// Batches whose function panicked (their calls are in
    /// `panicked_calls`).
    pub panicked: u64,
    /// Batches run inline (`inline`, `inline_many`) on a caller's thread,
    /// whether the batch function succeeded, failed or panicked.
    pub inline_batches: u64,
    /// With busy polling (`Builder::busy_poll`): waits that ended while the
    /// scheduler polled (a message arrived or a batch timer came due), so
    /// no thread had to be woken.
    pub busy_poll_caught: u64,
    /// With busy polling: batches whose polling budget ran out before they
    /// finished, so the scheduler went to sleep until they did. Many of
    /// these mean the budget is shorter than the batches.
    pub busy_poll_gave_up: u64,
    /// How long items waited in the queue, from the scheduler receiving
    /// them to their batch being taken for a partition.
    pub queue_wait: Percentiles,
    /// How long the batch function ran, per batch.
    pub execution: Percentiles,
    /// Per batch size that ran, smallest first: how many batches, and how
    /// long they ran in all (inline batches are not among them).
    pub batch_sizes: Vec<BatchSizeStats>,
    /// Why batches started.
    pub starts: Starts,
    /// Calls the adaptive policy refused at admission with
    /// [`Error::PredictedLate`](crate::Error::PredictedLate) (also counted
    /// in [`rejected`](Self::rejected)).
    pub refused_late: u64,
    /// What the adaptive policy has learnt and how well it predicts;
    /// `None` under the other policies.
    pub adaptive: Option<AdaptiveStats>,
}

/// The batches of one size that the partitions ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct BatchSizeStats {
    /// Items per batch.
    pub size: usize,
    /// Batches of that size.
    pub batches: u64,
    /// How long they ran, added up.
    pub execution: Duration,
}

/// Batches started, by why they started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Starts {
    /// Full: `batch_size` items, or `max_batch_weight` of weight.
    pub full: u64,
    /// Under [`Policy::Timeout`](crate::Policy::Timeout), at `batch_timeout`.
    pub timeout: u64,
    /// At once on an idle partition (eager and adaptive).
    pub eager: u64,
    /// While the serving drained at shutdown.
    pub drain: u64,
    /// Adaptive: a hold for more arrivals ended.
    pub waited: u64,
    /// Adaptive: ended by the cap that the latency target sets.
    pub capped: u64,
}

/// What the adaptive policy's model shows now, gathered by the policy (see
/// `Forecast::view`), so that the statistics need not know the policy.
#[derive(Debug, Clone)]
pub(crate) struct ModelView {
    pub(crate) target: Duration,
    pub(crate) fixed_cost: Option<Duration>,
    pub(crate) cost_per_weight: Option<f64>,
    pub(crate) spread: Option<Duration>,
    pub(crate) cap: Option<f64>,
    pub(crate) arrival_rate: f64,
    pub(crate) partition_speed: Vec<f64>,
}

/// The adaptive policy's model and how it has done (see
/// [`Policy::Adaptive`](crate::Policy::Adaptive)).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AdaptiveStats {
    /// The latency target.
    pub target: Duration,
    /// The fitted fixed cost of a batch (`None` before the first batch).
    pub fixed_cost: Option<Duration>,
    /// The fitted cost of one unit of weight, in seconds.
    pub cost_per_weight: Option<f64>,
    /// What the model adds for the slow batches (three standard deviations
    /// of its recent misses).
    pub spread: Option<Duration>,
    /// The heaviest batch the target allows now, in weight (items, when
    /// no weight function is set).
    pub cap: Option<f64>,
    /// Recent arrivals, in weight per second.
    pub arrival_rate: f64,
    /// How far each batch's actual execution time was from its predicted
    /// one, either way.
    pub prediction_error: Percentiles,
    /// Per batch, what was left of the target at its start once its
    /// oldest call's wait and its predicted execution are counted; batches
    /// planned late count in [`late_plans`](Self::late_plans) instead.
    pub slack: Percentiles,
    /// Batches that started already predicted to finish their oldest call
    /// past the target.
    pub late_plans: u64,
    /// Each partition's cost against the fitted line, by partition index:
    /// 1.0 for all when they are alike; a partition at 2.0 takes twice as
    /// long as one at 1.0 for the same batch, and is given smaller batches
    /// under the target. Their geometric mean is 1.
    pub partition_speed: Vec<f64>,
}

/// Latency percentiles. Values are bucketed: each is within 1/16 (6.25%) of
/// the true value.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use batch_serving::{Batch, Serving};
/// let serving = Serving::new(|b: Batch<u8>| Ok::<_, std::convert::Infallible>(b.to_vec())).start()?;
/// serving.dispatch(1).await?;
/// let waits = serving.stats().queue_wait;
/// assert_eq!(waits.count, 1);
/// assert!(waits.p50 <= waits.p99 && waits.p99 <= waits.max);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub struct Percentiles {
    /// Samples recorded.
    pub count: u64,
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Largest sample.
    pub max: Duration,
    /// All samples added up (Triton's statistics report totals).
    pub total: Duration,
}

/// Log-linear histogram over nanoseconds: 16 sub-buckets per power of two.
#[derive(Debug, Clone)]
pub(crate) struct Histogram {
    buckets: Vec<u64>,
    count: u64,
    max: u64,
    total: u128,
}

/// Batch run times, overall and per batch size, under one lock.
#[derive(Debug)]
struct Executions {
    times: Histogram,
    /// Indexed by batch size: batches, and nanoseconds run.
    sizes: Vec<(u64, u128)>,
}

impl Default for Executions {
    fn default() -> Self {
        Executions {
            times: Histogram::new(),
            sizes: Vec::new(),
        }
    }
}

impl Executions {
    fn record(&mut self, len: usize, took: Duration) {
        self.times.record(took);
        if self.sizes.len() <= len {
            self.sizes.resize(len + 1, (0, 0));
        }
        let (batches, nanos) = &mut self.sizes[len];
        *batches += 1;
        *nanos += took.as_nanos();
    }

    fn by_size(&self) -> Vec<BatchSizeStats> {
        self.sizes
            .iter()
            .enumerate()
            .filter(|(_, (batches, _))| *batches > 0)
            .map(|(size, &(batches, nanos))| BatchSizeStats {
                size,
                batches,
                execution: Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX)),
            })
            .collect()
    }
}

const SUB_BITS: u32 = 4;
const SUB: u64 = 1 << SUB_BITS;

impl Histogram {
    pub(crate) fn new() -> Self {
        Histogram {
            buckets: vec![0; (64 * SUB) as usize],
            count: 0,
            max: 0,
            total: 0,
        }
    }

    fn bucket_of(nanos: u64) -> usize {
        if nanos < SUB {
            return nanos as usize;
        }
        let exp = 63 - nanos.leading_zeros(); // >= SUB_BITS
        let shift = exp - SUB_BITS;
        let sub = (nanos >> shift) & (SUB - 1);
        ((u64::from(shift) + 1) * SUB + sub) as usize
    }

    /// Upper edge of a bucket, in nanoseconds.
    fn value_of(bucket: usize) -> u64 {
        let bucket = bucket as u64;
        if bucket < SUB {
            return bucket;
        }
        let shift = bucket / SUB - 1;
        let sub = bucket % SUB;
        ((SUB + sub + 1) << shift).saturating_sub(1)
    }

    pub(crate) fn record(&mut self, value: Duration) {
        let nanos = u64::try_from(value.as_nanos()).unwrap_or(u64::MAX);
        self.buckets[Self::bucket_of(nanos)] += 1;
        self.count += 1;
        self.max = self.max.max(nanos);
        self.total += u128::from(nanos);
    }

    fn quantile(&self, q: f64) -> Duration {
        if self.count == 0 {
            return Duration::ZERO;
        }
        let rank = ((self.count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (bucket, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Duration::from_nanos(Self::value_of(bucket).min(self.max));
            }
        }
        Duration::from_nanos(self.max)
    }

    pub(crate) fn percentiles(&self) -> Percentiles {
        Percentiles {
            count: self.count,
            p50: self.quantile(0.50),
            p90: self.quantile(0.90),
            p99: self.quantile(0.99),
            max: Duration::from_nanos(self.max),
            total: Duration::from_nanos(u64::try_from(self.total).unwrap_or(u64::MAX)),
        }
    }
}

/// How a call that reached the queue ended, when its last item was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Answered,
    Failed,
    Panicked,
    Closed,
}

/// Calls ended, by outcome, counted locally and added to the recorder
/// at once (see [`Recorder::count_all`]).
#[derive(Debug, Default)]
pub(crate) struct Tally([u64; 4]);

impl Tally {
    pub(crate) fn note(&mut self, outcome: Option<Outcome>) {
        if let Some(outcome) = outcome {
            self.0[outcome as usize] += 1;
        }
    }
}

impl Outcome {
    /// The outcome of a call that got `failure`.
    pub(crate) fn of<E>(failure: &Failure<E>) -> Self {
        match failure {
            Failure::Batch(_) | Failure::WrongOutputCount { .. } => Outcome::Failed,
            Failure::Panicked(_) => Outcome::Panicked,
            Failure::Closed => Outcome::Closed,
        }
    }
}

/// Live counters, updated with relaxed atomics: a snapshot is a consistent
/// sum once the serving is idle, and close enough while it runs. With the
/// `metrics` feature each is mirrored to the facade under the names
/// `docs/guide.md` lists.
#[derive(Debug)]
pub(crate) struct Recorder {
    pub(crate) batches: Count,
    pub(crate) items: Count,
    pub(crate) in_flight: Level,
    pub(crate) answered: Count,
    pub(crate) failed_calls: Count,
    pub(crate) panicked_calls: Count,
    pub(crate) closed: Count,
    pub(crate) refused_closed: Count,
    pub(crate) cancelled: Count,
    pub(crate) expired: Count,
    pub(crate) rejected: Count,
    pub(crate) failed: Count,
    pub(crate) panicked: Count,
    pub(crate) busy_poll_caught: Count,
    pub(crate) busy_poll_gave_up: Count,
    pub(crate) inline_batches: Count,
    pub(crate) refused_late: Count,
    late_plans: Count,
    /// Batches started, by reason, in [`StartReason::ALL`]'s order.
    started: [Count; 6],
    queue_depth: Level,
    distributions: Distributions,
    queue_wait: Mutex<Histogram>,
    execution: Mutex<Executions>,
    /// Adaptive only: |actual − predicted| execution, and slack at start.
    prediction_error: Mutex<Histogram>,
    slack: Mutex<Histogram>,
}

impl Recorder {
    pub(crate) fn new(serving: &str) -> Self {
        describe();
        let count = |name| Count::new(name, serving);
        Recorder {
            batches: count("batch_serving_batches_total"),
            items: count("batch_serving_items_total"),
            in_flight: Level::new("batch_serving_in_flight", serving),
            answered: count("batch_serving_answered_total"),
            failed_calls: count("batch_serving_failed_calls_total"),
            panicked_calls: count("batch_serving_panicked_calls_total"),
            closed: count("batch_serving_closed_total"),
            refused_closed: count("batch_serving_refused_closed_total"),
            cancelled: count("batch_serving_cancelled_total"),
            expired: count("batch_serving_expired_total"),
            rejected: count("batch_serving_rejected_total"),
            failed: count("batch_serving_failed_batches_total"),
            panicked: count("batch_serving_panicked_batches_total"),
            busy_poll_caught: count("batch_serving_busy_poll_caught_total"),
            busy_poll_gave_up: count("batch_serving_busy_poll_gave_up_total"),
            inline_batches: count("batch_serving_inline_batches_total"),
            refused_late: count("batch_serving_refused_late_total"),
            late_plans: count("batch_serving_late_plans_total"),
            started: StartReason::ALL.map(|reason| {
                Count::labelled(
                    "batch_serving_batch_starts_total",
                    serving,
                    "reason",
                    reason.as_str(),
                )
            }),
            queue_depth: Level::new("batch_serving_queue_depth", serving),
            distributions: Distributions::new(serving),
            queue_wait: Mutex::new(Histogram::new()),
            execution: Mutex::new(Executions::default()),
            prediction_error: Mutex::new(Histogram::new()),
            slack: Mutex::new(Histogram::new()),
        }
    }

    /// Adaptive: a batch started with `slack` microseconds of the target
    /// left (negative: planned late).
    pub(crate) fn record_plan(&self, slack: i64) {
        match u64::try_from(slack) {
            Ok(micros) => lock(&self.slack).record(Duration::from_micros(micros)),
            Err(_) => self.late_plans.add(1),
        }
    }

    /// Adaptive: a batch predicted to take `predicted` took `took`.
    pub(crate) fn record_prediction(&self, predicted: Duration, took: Duration) {
        lock(&self.prediction_error).record(predicted.abs_diff(took));
    }

    fn outcome_counter(&self, outcome: Outcome) -> &Count {
        match outcome {
            Outcome::Answered => &self.answered,
            Outcome::Failed => &self.failed_calls,
            Outcome::Panicked => &self.panicked_calls,
            Outcome::Closed => &self.closed,
        }
    }

    /// Counts a call that ended as `outcome`.
    pub(crate) fn count(&self, outcome: Outcome) {
        Recorder::bump(self.outcome_counter(outcome));
    }

    /// Counts the calls in `tally`.
    pub(crate) fn count_all(&self, tally: &Tally) {
        let outcomes = [
            Outcome::Answered,
            Outcome::Failed,
            Outcome::Panicked,
            Outcome::Closed,
        ];
        for outcome in outcomes {
            let calls = tally.0[outcome as usize];
            if calls > 0 {
                self.outcome_counter(outcome).add(calls);
            }
        }
    }

    pub(crate) fn bump(counter: &Count) {
        counter.add(1);
    }

    /// Records the queue waits of one batch's items under one lock, why
    /// the batch started, and the queue's depth then.
    pub(crate) fn record_start(
        &self,
        reason: StartReason,
        waits: impl Iterator<Item = Duration>,
        queue_depth: usize,
    ) {
        let mut histogram = self
            .queue_wait
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for wait in waits {
            histogram.record(wait);
            self.distributions.queue_wait(wait);
        }
        drop(histogram);
        self.started[reason.index()].add(1);
        self.queue_depth.set(queue_depth as u64);
    }

    /// Records a batch of `len` items that ran for `took`.
    pub(crate) fn record_batch(&self, len: usize, took: Duration) {
        self.execution
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .record(len, took);
        self.distributions.batch(len, took);
        self.batches.add(1);
        self.items.add(len as u64);
        self.in_flight.sub(len as u64);
    }

    pub(crate) fn snapshot(
        &self,
        batch_size: usize,
        queue_depth: u64,
        model: Option<ModelView>,
    ) -> Stats {
        let batches = self.batches.get();
        let items = self.items.get();
        // One lock for both, taken and released here: a temporary guard in
        // the struct below would live to its end.
        let (execution, batch_sizes) = {
            let executions = self
                .execution
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            (executions.times.percentiles(), executions.by_size())
        };
        let mean_batch_size = if batches == 0 {
            0.0
        } else {
            items as f64 / batches as f64
        };
        Stats {
            batches,
            items,
            mean_batch_size,
            utilisation: mean_batch_size / batch_size as f64,
            queue_depth,
            in_flight: self.in_flight.get(),
            answered: self.answered.get(),
            failed_calls: self.failed_calls.get(),
            panicked_calls: self.panicked_calls.get(),
            closed: self.closed.get(),
            refused_closed: self.refused_closed.get(),
            cancelled: self.cancelled.get(),
            expired: self.expired.get(),
            rejected: self.rejected.get(),
            failed: self.failed.get(),
            panicked: self.panicked.get(),
            inline_batches: self.inline_batches.get(),
            busy_poll_caught: self.busy_poll_caught.get(),
            busy_poll_gave_up: self.busy_poll_gave_up.get(),
            queue_wait: self
                .queue_wait
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .percentiles(),
            execution,
            batch_sizes,
            starts: self.starts(),
            refused_late: self.refused_late.get(),
            adaptive: model.map(|model| self.adaptive(model)),
        }
    }

    fn starts(&self) -> Starts {
        let of = |reason: StartReason| self.started[reason.index()].get();
        Starts {
            full: of(StartReason::Full),
            timeout: of(StartReason::Timeout),
            eager: of(StartReason::Eager),
            drain: of(StartReason::Drain),
            waited: of(StartReason::Waited),
            capped: of(StartReason::Capped),
        }
    }

    fn adaptive(&self, model: ModelView) -> AdaptiveStats {
        AdaptiveStats {
            target: model.target,
            fixed_cost: model.fixed_cost,
            cost_per_weight: model.cost_per_weight,
            spread: model.spread,
            cap: model.cap,
            arrival_rate: model.arrival_rate,
            prediction_error: lock(&self.prediction_error).percentiles(),
            slack: lock(&self.slack).percentiles(),
            late_plans: self.late_plans.get(),
            partition_speed: model.partition_speed,
        }
    }
}

fn lock(histogram: &Mutex<Histogram>) -> std::sync::MutexGuard<'_, Histogram> {
    histogram.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_percentiles_are_within_one_sixteenth() {
        let mut h = Histogram::new();
        for micros in 1..=1000u64 {
            h.record(Duration::from_micros(micros));
        }
        let p = h.percentiles();
        let close = |got: Duration, want: u64| {
            let got = got.as_nanos() as f64;
            let want = (want * 1000) as f64;
            (got - want).abs() / want <= 1.0 / 16.0
        };
        assert_eq!(p.count, 1000);
        assert!(close(p.p50, 500), "p50 {:?}", p.p50);
        assert!(close(p.p99, 990), "p99 {:?}", p.p99);
        assert_eq!(p.max, Duration::from_micros(1000));
    }

    #[test]
    fn bucket_edges_cover_their_values() {
        for nanos in [0u64, 1, 15, 16, 17, 31, 32, 1000, 123_456_789, u64::MAX / 2] {
            let bucket = Histogram::bucket_of(nanos);
            assert!(Histogram::value_of(bucket) >= nanos, "{nanos}");
        }
    }
}
