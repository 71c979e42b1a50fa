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

use crate::engine::policy::cost_model::{Line, seconds};
use crate::stats::ModelView;

/// A call is admitted while its predicted finish is within this share of
/// what it is allowed (the target, or its deadline if sooner): the rest is
/// headroom for what the prediction leaves out (the scheduler's own time,
/// a caller's wake-up, an unusually slow batch beyond the tail).
pub(crate) const ADMIT_WITHIN: f64 = 0.9;

/// A partition's `Forecast::free_at` when it is idle.
const IDLE: u64 = 0;
/// A partition's `Forecast::free_at` when it is busy and when it frees up
/// is not known.
const UNKNOWN: u64 = u64::MAX;

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
    /// How many batch keys ran batches recently (at least 1): before each
    /// batch of a call's key, one batch of each other key may run.
    pub(crate) keys: f64,
}

#[derive(Debug)]
pub(crate) struct Forecast {
    /// The latency target a call is admitted against.
    pub(crate) target: Duration,
    partitions: AtomicU64,
    /// Each partition's cost against the line, for `stats()`.
    speeds: Box<[AtomicU64]>,
    known: AtomicBool,
    /// Per partition, when the work handed to it is predicted to end:
    /// [`IDLE`], [`UNKNOWN`], or the nanoseconds after `epoch`, plus one.
    free_at: Box<[AtomicU64]>,
    /// Items handed ahead to busy partitions that have not started: they
    /// still hold room in the queue, but `free_at` already counts them.
    on_deck: AtomicU64,
    epoch: Instant,
    fixed: AtomicU64,
    per_weight: AtomicU64,
    spread: AtomicU64,
    cap_weight: AtomicU64,
    item_weight: AtomicU64,
    arrival_rate: AtomicU64,
    keys: AtomicU64,
}

impl Forecast {
    pub(crate) fn new(target: Duration, partitions: usize) -> Self {
        let zero = || AtomicU64::new(0f64.to_bits());
        let one = || AtomicU64::new(1f64.to_bits());
        Forecast {
            target,
            partitions: AtomicU64::new((partitions.max(1) as f64).to_bits()),
            speeds: (0..partitions).map(|_| one()).collect(),
            known: AtomicBool::new(false),
            free_at: (0..partitions).map(|_| AtomicU64::new(IDLE)).collect(),
            on_deck: AtomicU64::new(0),
            epoch: Instant::now(),
            fixed: zero(),
            per_weight: zero(),
            spread: zero(),
            cap_weight: one(),
            item_weight: one(),
            arrival_rate: zero(),
            keys: one(),
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
        store(&self.keys, outlook.keys.max(1.0));
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

    /// When `partition` is predicted to finish the work handed to it:
    /// `None` when it is idle, `Some(None)` when busy until a time not
    /// known.
    pub(crate) fn set_free_at(&self, partition: usize, free_at: Option<Option<Instant>>) {
        let value = match free_at {
            None => IDLE,
            Some(None) => UNKNOWN,
            Some(Some(at)) => {
                let after = at.saturating_duration_since(self.epoch).as_nanos();
                u64::try_from(after)
                    .map_or(UNKNOWN, |after| after.saturating_add(1).min(UNKNOWN - 1))
            }
        };
        if let Some(cell) = self.free_at.get(partition) {
            cell.store(value, Relaxed);
        }
    }

    /// How many items wait on deck, handed to a busy partition.
    pub(crate) fn set_on_deck(&self, items: usize) {
        self.on_deck.store(items as u64, Relaxed);
    }

    /// The seconds of work handed to the partitions that remain, summed
    /// over them: a partition busy until a time not known counts as a
    /// whole batch of `unknown` seconds.
    fn busy_seconds(&self, unknown: f64) -> (f64, usize) {
        let now = Instant::now();
        let mut busy = (0.0, 0);
        for cell in &self.free_at {
            let left = match cell.load(Relaxed) {
                IDLE => continue,
                UNKNOWN => unknown,
                after => (self.epoch + Duration::from_nanos(after - 1))
                    .saturating_duration_since(now)
                    .as_secs_f64(),
            };
            busy.0 += left;
            busy.1 += 1;
        }
        busy
    }

    /// When a call of `items` items would finish, at the latest, counted
    /// from now, with `queued` items in the queue; `None` before the first
    /// batch (nothing is known yet, so nothing is refused).
    ///
    /// Every batch is counted at the cap, since calls admitted later join
    /// any batch that has not started, up to the cap; except a batch that
    /// starts at once on an idle serving. Ahead of the call run:
    /// - the work handed to the partitions, running and on deck;
    /// - the batches of its key that the items queued ahead of it fill;
    /// - before each of those and before its own, at most one batch of each
    ///   other key (the queue takes the key whose forming batch is oldest,
    ///   and a key's leftovers form a batch that is younger), and never more
    ///   batches than there are queued items, each of which starts one.
    ///
    /// The partitions take batches as they free up, so until the call's
    /// last batch starts all of them are busy with that work: it starts
    /// within the work ahead shared among them. Each batch is at its mean,
    /// plus the spread of their sum.
    pub(crate) fn finish_in(&self, queued: usize, items: usize) -> Option<Duration> {
        if !self.known.load(Relaxed) {
            return None;
        }
        let load = |cell: &AtomicU64| f64::from_bits(cell.load(Relaxed));
        let line = Line {
            fixed: load(&self.fixed),
            per_weight: load(&self.per_weight),
        };
        let cap = load(&self.cap_weight);
        let batch = line.at(cap).max(0.0);
        let (busy, running) = self.busy_seconds(batch);
        let waiting = queued.saturating_sub(self.on_deck.load(Relaxed) as usize);
        let item_weight = load(&self.item_weight);
        let weight = (waiting + items) as f64 * item_weight;
        // The batches of the call's own key up to and including its last.
        let own = (weight / cap).ceil().max(1.0);
        let others = ((load(&self.keys) - 1.0) * own).min(waiting as f64);
        let ahead = own - 1.0 + others;
        let start = (busy + ahead * batch) / load(&self.partitions);
        // With every partition idle, a batch that holds all of it starts
        // now, and nothing can join it.
        let last = if running == 0 && ahead == 0.0 {
            line.at(weight).max(0.0)
        } else {
            batch
        };
        // Batches' slowness is mostly independent: the tail of the sum of k
        // batches is about k means and √k spreads, not k tails.
        let batches = ahead + 1.0 + running as f64;
        let total = start + last + load(&self.spread) * batches.sqrt();
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
            keys: load(&self.keys),
        })
    }

    /// What `stats()` shows of the model.
    pub(crate) fn view(&self) -> ModelView {
        let outlook = self.outlook();
        ModelView {
            target: self.target,
            fixed_cost: outlook.map(|o| seconds(o.line.fixed)),
            cost_per_weight: outlook.map(|o| o.line.per_weight),
            spread: outlook.map(|o| seconds(o.spread)),
            cap: outlook.map(|o| o.cap_weight),
            arrival_rate: outlook.map_or(0.0, |o| o.arrival_rate),
            partition_speed: self.speeds(),
        }
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

    /// A full batch of 32 costs 1 + 0.06 × 32 = 2.92 ms.
    const FULL: f64 = 1.0 + 60e-3 * 32.0;

    fn forecast(partitions: usize, keys: f64) -> Forecast {
        let forecast = Forecast::new(Duration::from_millis(20), partitions);
        forecast.publish(Outlook {
            line: Line {
                fixed: 1e-3,
                per_weight: 60e-6,
            },
            spread: 0.0,
            cap_weight: 32.0,
            item_weight: 1.0,
            arrival_rate: 0.0,
            partitions: partitions as f64,
            keys,
        });
        forecast
    }

    fn millis(d: Option<Duration>) -> f64 {
        d.unwrap_or_default().as_secs_f64() * 1e3
    }

    fn close(predicted: f64, expected: f64) {
        assert!(
            (predicted - expected).abs() < 1e-6,
            "{predicted} against {expected}"
        );
    }

    #[test]
    fn admits_everything_before_anything_is_known() {
        let forecast = Forecast::new(Duration::from_millis(1), 1);
        assert_eq!(forecast.finish_in(1_000_000, 1), None);
    }

    #[test]
    fn a_call_is_costed_in_a_full_batch_since_later_calls_may_join_it() {
        let forecast = forecast(1, 1.0);
        forecast.set_free_at(0, Some(None));
        close(millis(forecast.finish_in(0, 1)), 2.0 * FULL);
        close(millis(forecast.finish_in(31, 1)), 2.0 * FULL);
    }

    #[test]
    fn on_an_idle_serving_a_call_starts_at_once_in_a_batch_of_what_is_queued() {
        let forecast = forecast(1, 1.0);
        close(millis(forecast.finish_in(0, 1)), 1.06);
        close(millis(forecast.finish_in(9, 1)), 1.6);
        close(millis(forecast.finish_in(40, 1)), 2.0 * FULL);
    }

    #[test]
    fn work_ahead_adds_whole_batches_and_a_busy_partition_adds_one() {
        let forecast = forecast(1, 1.0);
        forecast.set_free_at(0, Some(None));
        // 32 queued ahead plus this one: one full batch before its own.
        close(millis(forecast.finish_in(32, 1)), 3.0 * FULL);
    }

    #[test]
    fn batches_on_deck_are_counted_once() {
        let forecast = forecast(1, 1.0);
        forecast.set_free_at(0, Some(None));
        forecast.set_on_deck(32);
        // The 32 queued are on deck: the partition's work counts them.
        close(millis(forecast.finish_in(32, 1)), 2.0 * FULL);
    }

    #[test]
    fn each_other_key_may_run_a_batch_before_each_of_the_calls_own() {
        let forecast = forecast(1, 3.0);
        forecast.set_free_at(0, Some(None));
        // Nothing queued: no other key's batch can be older than this call.
        close(millis(forecast.finish_in(0, 1)), 2.0 * FULL);
        // One queued item: at most one batch goes first, whatever its key.
        close(millis(forecast.finish_in(1, 1)), 3.0 * FULL);
        // 40 queued: two batches of the call's key (one ahead, its own),
        // each after one batch of each of the two other keys.
        close(millis(forecast.finish_in(40, 1)), 7.0 * FULL);
    }

    #[test]
    fn partitions_share_the_work_ahead() {
        let forecast = forecast(2, 1.0);
        forecast.set_free_at(0, Some(None));
        forecast.set_free_at(1, Some(None));
        // Two running batches and one queued ahead, over two partitions.
        close(millis(forecast.finish_in(32, 1)), 1.5 * FULL + FULL);
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_partition_counts_until_its_predicted_end() {
        let forecast = forecast(1, 1.0);
        forecast.set_free_at(0, Some(Some(Instant::now() + Duration::from_millis(2))));
        tokio::time::advance(Duration::from_micros(1500)).await;
        close(millis(forecast.finish_in(0, 1)), 0.5 + FULL);
        tokio::time::advance(Duration::from_millis(1)).await;
        // A late batch adds nothing.
        close(millis(forecast.finish_in(0, 1)), FULL);
        forecast.set_free_at(0, None);
        close(millis(forecast.finish_in(0, 1)), 1.06);
    }

    #[test]
    fn a_deadline_sooner_than_the_target_is_what_the_call_may_take() {
        let forecast = forecast(1, 1.0);
        assert_eq!(forecast.allowed(None), Duration::from_millis(18));
        assert_eq!(
            forecast.allowed(Some(Duration::from_millis(10))),
            Duration::from_millis(9)
        );
    }
}
