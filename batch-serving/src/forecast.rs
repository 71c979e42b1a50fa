//! What an adaptive serving predicts about a new call's finish, published
//! by the scheduler after each batch and read by callers at admission.
//!
//! Callers must decide without a round trip to the scheduler (admission is
//! on the caller's path), so the scheduler publishes the few numbers the
//! prediction needs as atomics. A caller may read a mix of two
//! publications; each number is an estimate anyway, and the next batch
//! corrects it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::time::Instant;

use crate::cost_model::{Line, seconds};

/// A call is admitted while its predicted finish is within this share of
/// what it is allowed (the target, or its deadline if sooner): the rest is
/// headroom for what the prediction leaves out (the scheduler's own time,
/// a caller's wake-up, an unusually slow batch beyond the tail).
pub(crate) const ADMIT_WITHIN: f64 = 0.9;

/// `Forecast::busy` when a partition is free.
const FREE: u64 = 0;
/// `Forecast::busy` when none is, and when one frees up is not known.
const BUSY: u64 = u64::MAX;

/// One publication: the cost line and tail of a capped batch, the cap, and
/// the mean weight of an item.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outlook {
    pub(crate) line: Line,
    /// Seconds the tail adds to the line.
    pub(crate) spread: f64,
    /// The weight of a batch at the target's cap.
    pub(crate) cap_weight: f64,
    /// The mean weight of one item, recently.
    pub(crate) item_weight: f64,
    /// Arrivals, in weight per second (for `stats()` only).
    pub(crate) arrival_rate: f64,
    /// How many partitions of the line's speed the serving's partitions
    /// add up to: their count when they are alike, fewer or more when some
    /// are slower or faster than the line (see `Adaptive::speeds`).
    pub(crate) partitions: f64,
}

#[derive(Debug)]
pub(crate) struct Forecast {
    /// The latency target a call is admitted against.
    pub(crate) target: Duration,
    partitions: AtomicU64,
    /// Each partition's cost against the line, for `stats()`.
    speeds: Box<[AtomicU64]>,
    known: AtomicBool,
    /// Whether a new batch must wait for a partition: [`FREE`], [`BUSY`]
    /// with no known end, or the nanoseconds after `epoch`, plus one, at
    /// which the first partition is predicted to free up.
    busy: AtomicU64,
    epoch: Instant,
    fixed: AtomicU64,
    per_weight: AtomicU64,
    spread: AtomicU64,
    cap_weight: AtomicU64,
    item_weight: AtomicU64,
    arrival_rate: AtomicU64,
}

impl Forecast {
    pub(crate) fn new(target: Duration, partitions: usize) -> Self {
        let zero = || AtomicU64::new(0f64.to_bits());
        Forecast {
            target,
            partitions: AtomicU64::new((partitions.max(1) as f64).to_bits()),
            speeds: (0..partitions)
                .map(|_| AtomicU64::new(1f64.to_bits()))
                .collect(),
            known: AtomicBool::new(false),
            busy: AtomicU64::new(FREE),
            epoch: Instant::now(),
            fixed: zero(),
            per_weight: zero(),
            spread: zero(),
            cap_weight: AtomicU64::new(1f64.to_bits()),
            item_weight: AtomicU64::new(1f64.to_bits()),
            arrival_rate: zero(),
        }
    }

    pub(crate) fn publish(&self, outlook: Outlook) {
        let store = |cell: &AtomicU64, value: f64| cell.store(value.to_bits(), Relaxed);
        store(&self.fixed, outlook.line.fixed);
        store(&self.per_weight, outlook.line.per_weight);
        store(&self.spread, outlook.spread);
        store(&self.cap_weight, outlook.cap_weight.max(f64::MIN_POSITIVE));
        store(&self.item_weight, outlook.item_weight);
        store(&self.arrival_rate, outlook.arrival_rate);
        store(&self.partitions, outlook.partitions.max(f64::MIN_POSITIVE));
        self.known.store(true, Relaxed);
    }

    /// Publishes each partition's cost against the line.
    pub(crate) fn publish_speeds(&self, speeds: &[f64]) {
        for (cell, speed) in self.speeds.iter().zip(speeds) {
            cell.store(speed.to_bits(), Relaxed);
        }
    }

    /// Each partition's cost against the line, as last published.
    pub(crate) fn speeds(&self) -> Vec<f64> {
        self.speeds
            .iter()
            .map(|cell| f64::from_bits(cell.load(Relaxed)))
            .collect()
    }

    /// Whether every partition is running a batch now (a new call then
    /// waits for one to finish first): `None` when one is free, else when
    /// the first is predicted to free up, if known.
    pub(crate) fn set_busy(&self, free_at: Option<Option<Instant>>) {
        let busy = match free_at {
            None => FREE,
            Some(None) => BUSY,
            Some(Some(at)) => {
                let after = at.saturating_duration_since(self.epoch).as_nanos();
                u64::try_from(after).map_or(BUSY, |after| after.saturating_add(1).min(BUSY - 1))
            }
        };
        self.busy.store(busy, Relaxed);
    }

    /// What a new batch waits for a partition, in seconds, if every
    /// partition is busy.
    fn wait_for_partition(&self, unknown: f64) -> f64 {
        match self.busy.load(Relaxed) {
            FREE => 0.0,
            BUSY => unknown,
            after => {
                let free_at = self.epoch + Duration::from_nanos(after - 1);
                free_at
                    .saturating_duration_since(Instant::now())
                    .as_secs_f64()
            }
        }
    }

    /// When a call of `items` items would finish, counted from now, with
    /// `queued` items ahead of it; `None` before the first batch (nothing
    /// is known yet, so nothing is refused).
    ///
    /// The prediction is the remainder of a running batch when every
    /// partition is busy (to its predicted end, or a whole capped batch
    /// when that is not known), then the capped
    /// batches that the work ahead fills, shared among the partitions,
    /// then the batch that finishes this call: each at its mean, plus the
    /// spread of their sum.
    pub(crate) fn finish_in(&self, queued: usize, items: usize) -> Option<Duration> {
        if !self.known.load(Relaxed) {
            return None;
        }
        let load = |cell: &AtomicU64| f64::from_bits(cell.load(Relaxed));
        let line = Line {
            fixed: load(&self.fixed),
            per_weight: load(&self.per_weight),
        };
        let spread = load(&self.spread);
        let cap = load(&self.cap_weight);
        let mean = |weight: f64| line.at(weight).max(0.0);
        let rest = (queued + items) as f64 * load(&self.item_weight);
        let running = self.wait_for_partition(mean(cap));
        let last = rest.min(cap);
        let ahead = (rest - last) / (cap * load(&self.partitions));
        // Batches' slowness is mostly independent: the tail of the sum of k
        // batches is about k means and √k spreads, not k tails.
        let batches = ahead + 1.0 + f64::from(u8::from(running > 0.0));
        let total = running + ahead * mean(cap) + mean(last) + spread * batches.sqrt();
        Some(seconds(total))
    }

    /// The latest publication, for `stats()`; `None` before the first
    /// batch.
    pub(crate) fn outlook(&self) -> Option<Outlook> {
        if !self.known.load(Relaxed) {
            return None;
        }
        let load = |cell: &AtomicU64| f64::from_bits(cell.load(Relaxed));
        Some(Outlook {
            line: Line {
                fixed: load(&self.fixed),
                per_weight: load(&self.per_weight),
            },
            spread: load(&self.spread),
            cap_weight: load(&self.cap_weight),
            item_weight: load(&self.item_weight),
            arrival_rate: load(&self.arrival_rate),
            partitions: load(&self.partitions),
        })
    }

    /// What a call may take: the target, or less when its deadline is
    /// sooner; then the admission headroom off that.
    pub(crate) fn allowed(&self, until_deadline: Option<Duration>) -> Duration {
        let allowed = until_deadline.map_or(self.target, |left| left.min(self.target));
        allowed.mul_f64(ADMIT_WITHIN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forecast() -> Forecast {
        let forecast = Forecast::new(Duration::from_millis(20), 1);
        forecast.publish(Outlook {
            line: Line {
                fixed: 1e-3,
                per_weight: 60e-6,
            },
            spread: 0.0,
            cap_weight: 32.0,
            item_weight: 1.0,
            arrival_rate: 0.0,
            partitions: 1.0,
        });
        forecast
    }

    fn millis(d: Option<Duration>) -> f64 {
        d.unwrap_or_default().as_secs_f64() * 1e3
    }

    #[test]
    fn admits_everything_before_anything_is_known() {
        let forecast = Forecast::new(Duration::from_millis(1), 1);
        assert_eq!(forecast.finish_in(1_000_000, 1), None);
    }

    #[test]
    fn an_idle_serving_predicts_one_batch_of_the_call() {
        let forecast = forecast();
        assert!((millis(forecast.finish_in(0, 1)) - 1.06).abs() < 1e-6);
    }

    #[test]
    fn work_ahead_adds_whole_batches_and_a_busy_partition_adds_one() {
        let forecast = forecast();
        forecast.set_busy(Some(None));
        // 63 queued ahead plus this one: one full batch before its own.
        let full = 1.0 + 60e-3 * 32.0;
        let predicted = millis(forecast.finish_in(63, 1));
        assert!((predicted - 3.0 * full).abs() < 1e-6, "{predicted}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_partition_counts_until_its_predicted_end() {
        let forecast = forecast();
        forecast.set_busy(Some(Some(Instant::now() + Duration::from_millis(2))));
        tokio::time::advance(Duration::from_micros(1500)).await;
        let predicted = millis(forecast.finish_in(0, 1));
        assert!((predicted - (0.5 + 1.06)).abs() < 1e-6, "{predicted}");
        tokio::time::advance(Duration::from_millis(1)).await;
        let overdue = millis(forecast.finish_in(0, 1));
        assert!(
            (overdue - 1.06).abs() < 1e-6,
            "a late batch adds nothing: {overdue}"
        );
        forecast.set_busy(None);
        assert!((millis(forecast.finish_in(0, 1)) - 1.06).abs() < 1e-6);
    }

    #[test]
    fn a_deadline_sooner_than_the_target_is_what_the_call_may_take() {
        let forecast = forecast();
        assert_eq!(forecast.allowed(None), Duration::from_millis(18));
        assert_eq!(
            forecast.allowed(Some(Duration::from_millis(10))),
            Duration::from_millis(9)
        );
    }
}
