//! The adaptive policy's decisions: how large a batch may grow under the
//! latency target, whether a forming batch should wait for more arrivals,
//! and what to tell callers at admission. The scheduler's [`Batching`]
//! owns one [`Adaptive`], which owns a [`CostModel`] per batch key.
//!
//! [`Batching`]: crate::engine::policy::Batching
//!
//! The base is eager: a batch starts at once on an idle partition, and
//! grows while every partition is busy. On top of that:
//! - **A cap from the target.** A call that arrives as a batch starts
//!   waits for that batch and then runs in the next, so a batch is capped
//!   at the weight whose predicted tail fits twice into the target. With
//!   several batch keys, one batch of each other key may run between the
//!   two, shared among the partitions: the cap makes room for them too
//!   (see `Forecast::finish_in`, which admits calls by the same count).
//! - **A model per partition and key.** Each key's line is what a batch of
//!   that key costs on a typical partition; each partition has a speed, its
//!   cost against the line (1.0 when all are alike). The line learns from
//!   every partition's batches and the speed from every key's, so neither
//!   waits for data of one pair: a model per pair would learn a GPU and a
//!   CPU partition each from half the batches. A slower partition gets
//!   smaller batches under the same target.
//! - **A cut for the most urgent call.** When the first queued call, by
//!   due time, has so little left that a capped batch would finish it
//!   late, the batch is cut to what still finishes it in time (never below half the cap: past
//!   that the call is lost anyway, and a smaller batch only slows the rest).
//!   Only when no more than one batch is queued: behind a longer queue a
//!   cut would make everyone after it later, and cost throughput when it is
//!   scarcest (S7 at 1.2x capacity lost 5% of its goodput to cuts).
//! - **A hold, with partitions to spare.** With several partitions and
//!   some of them busy, batches of the size queued now may be too small to
//!   keep up with arrivals, since each pays the fixed cost; a forming batch
//!   then waits until it reaches the size that keeps up, as long as the
//!   target still holds. With one partition there is nothing to hold for:
//!   the partition is idle only when the queue has caught up, and while it
//!   runs, the next batch grows by itself.
//! - **Admission.** After each batch the scheduler publishes the cost line,
//!   the cap and the mean item weight to the [`Forecast`] that callers read.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use tokio::time::{Duration, Instant};

use crate::engine::message::Ran;
use crate::engine::policy::cost_model::{CostModel, FORGET, Line, seconds};
use crate::engine::policy::forecast::{ADMIT_WITHIN, Forecast, Outlook};
use crate::key::BatchKey;

/// How quickly the arrival rate estimate follows a change: its time
/// constant.
const RATE_MEMORY: Duration = Duration::from_millis(50);

/// Whether a forming batch waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hold {
    /// It need not wait: start it now.
    No,
    /// It waits until then, or until it grows large enough.
    Until(Instant),
    /// It waited, and its wait is over.
    Over,
}

/// The batches handed to one partition: the running one first.
#[derive(Debug, Clone)]
struct Handed {
    /// When the running one started.
    since: Instant,
    /// Each batch's weight and item count.
    batches: VecDeque<(f64, usize)>,
}

impl Default for Handed {
    fn default() -> Self {
        Handed {
            since: Instant::now(),
            batches: VecDeque::new(),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Adaptive {
    target: Duration,
    partitions: usize,
    batch_size: usize,
    max_weight: u64,
    /// The serving's model over every key's batches, for admission and as
    /// the starting point of a new key's model.
    overall: CostModel,
    /// Each key's model, from its first batch on; a key without one is
    /// steered by `overall`. Models of keys that have not run for two
    /// targets are dropped once they outnumber the recent keys, so that a
    /// stream of one-off keys cannot grow memory without bound.
    models: HashMap<BatchKey, CostModel>,
    /// Arrivals, in weight per second.
    rate: f64,
    rate_since: Instant,
    /// The mean weight of an item: the items' and their weights' sums,
    /// exponentially forgotten per batch, so that the first batch gives
    /// the mean at once and a batch of many items counts for more.
    item_weight: f64,
    weight_sum: f64,
    item_sum: f64,
    /// Per partition, the batches handed to it and not yet finished.
    handed: Vec<Handed>,
    /// Per partition, its cost against the models' lines; their geometric
    /// mean is kept at 1, so that the lines are a typical partition's.
    speeds: Vec<f64>,
    /// The keys that ran a batch within the last two targets, with when
    /// each last did, and those batches in the order they ran, to forget
    /// keys in O(1) per batch even when every call has its own key.
    recent_keys: HashMap<BatchKey, Instant>,
    recent_runs: VecDeque<(Instant, BatchKey)>,
    forecast: Arc<Forecast>,
}

impl Adaptive {
    /// The policy for a serving of `partitions` with batches bounded by
    /// `batch_size` items and `max_weight`; with the user's `prior`,
    /// callers are forecast from the start.
    pub(crate) fn new(
        target: Duration,
        partitions: usize,
        (batch_size, max_weight): (usize, u64),
        prior: Option<Line>,
        forecast: Arc<Forecast>,
    ) -> Self {
        let adaptive = Adaptive {
            target,
            partitions,
            batch_size,
            max_weight,
            overall: CostModel::new(prior),
            models: HashMap::new(),
            rate: 0.0,
            rate_since: Instant::now(),
            item_weight: 1.0,
            weight_sum: 0.0,
            item_sum: 0.0,
            handed: vec![Handed::default(); partitions],
            speeds: vec![1.0; partitions],
            recent_keys: HashMap::new(),
            recent_runs: VecDeque::new(),
            forecast,
        };
        adaptive.publish();
        adaptive
    }

    /// What `key`'s batches cost: its own model once it has run, and until
    /// then what the serving has learnt over all keys.
    pub(crate) fn model_for(&self, key: BatchKey) -> &CostModel {
        self.models.get(&key).unwrap_or(&self.overall)
    }

    /// The target less the headroom: what the plans aim at.
    pub(crate) fn aim(&self) -> Duration {
        self.target.mul_f64(ADMIT_WITHIN)
    }

    /// `partition`'s cost against the lines (1.0 for one out of range).
    pub(crate) fn speed(&self, partition: usize) -> f64 {
        self.speeds.get(partition).copied().unwrap_or(1.0)
    }

    /// How many partitions at the lines' speed the partitions add up to.
    fn capacity(&self) -> f64 {
        self.speeds.iter().map(|speed| speed.recip()).sum()
    }

    /// How many keys ran batches recently: at least 1.
    fn keys(&self) -> f64 {
        self.recent_keys.len().max(1) as f64
    }

    /// How many capped batches must fit into the aim: the one running when
    /// a call arrives, its own, and one of each other key between them,
    /// shared among the partitions.
    fn batches_in_aim(&self) -> f64 {
        2.0 + (self.keys() - 1.0) / self.capacity()
    }

    /// The heaviest batch the target allows on a partition of `speed`, at
    /// most `bound`.
    pub(crate) fn cap(&self, model: &CostModel, bound: f64, speed: f64) -> f64 {
        let Some(line) = model.line() else {
            return bound;
        };
        if line.per_weight <= 0.0 {
            return bound;
        }
        let share = self.aim().as_secs_f64() / self.batches_in_aim();
        let fits = (share / speed - line.fixed - model.spread()) / line.per_weight;
        fits.clamp(self.item_weight.min(bound), bound)
    }

    /// The weight to take now onto a partition of `speed`, given the
    /// seconds `left` before the most urgent queued call is due: the cap,
    /// or less to finish that call in time; and whether it was cut.
    pub(crate) fn cut(&self, model: &CostModel, left: f64, cap: f64, speed: f64) -> (f64, bool) {
        let (Some(line), Some(tail)) = (model.line(), model.tail(cap)) else {
            return (cap, false);
        };
        if tail * speed <= left || line.per_weight <= 0.0 {
            return (cap, false);
        }
        let fits = (left / speed - line.fixed - model.spread()) / line.per_weight;
        if fits >= cap / 2.0 && fits >= self.item_weight {
            (fits, true)
        } else {
            (cap, false)
        }
    }

    /// Whether a forming batch of `queued` weight, forming since `since`,
    /// should wait, with `running` batches on the partitions.
    pub(crate) fn hold(
        &self,
        model: &CostModel,
        queued: f64,
        since: Instant,
        now: Instant,
        running: usize,
    ) -> Hold {
        if self.partitions <= 1 || running == 0 || self.rate <= 0.0 {
            return Hold::No;
        }
        let Some(line) = model.line() else {
            return Hold::No;
        };
        let cap = self.cap(model, f64::INFINITY, 1.0);
        // The batch weight at which the partitions keep up with arrivals:
        // P·n / (a + b·n) = r.
        let spare = self.capacity() - self.rate * line.per_weight;
        let keeps_up = if spare > 0.0 {
            (self.rate * line.fixed / spare).min(cap)
        } else {
            cap
        };
        if queued >= keeps_up {
            return Hold::No;
        }
        let fill = keeps_up / self.rate;
        let slack = self.aim().as_secs_f64() - model.tail(keeps_up).unwrap_or_default();
        if slack <= 0.0 {
            return Hold::No;
        }
        let until = since + Duration::from_secs_f64(fill.min(slack));
        if until > now {
            Hold::Until(until)
        } else {
            Hold::Over
        }
    }

    /// Updates the arrival rate at `now` with the weight that `arrived`
    /// reports since the last update (asked only when time has passed).
    pub(crate) fn note_arrivals(&mut self, now: Instant, arrived: impl FnOnce() -> u64) {
        let dt = now.saturating_duration_since(self.rate_since);
        if dt.is_zero() {
            return;
        }
        let instant = arrived() as f64 / dt.as_secs_f64();
        let share = 1.0 - (-dt.as_secs_f64() / RATE_MEMORY.as_secs_f64()).exp();
        self.rate += share * (instant - self.rate);
        self.rate_since = now;
    }

    pub(crate) fn target(&self) -> Duration {
        self.target
    }

    /// A batch ran. Updates the models and publishes the new outlook to
    /// callers, with batches bounded by `batch_size` items and `max_weight`.
    pub(crate) fn observe(&mut self, ran: &Ran) {
        let (weight, items) = (ran.weight as f64, ran.items);
        let expected = Some(self.model_for(ran.key))
            .filter(|model| model.is_trusted())
            .or(Some(&self.overall).filter(|model| model.is_trusted()))
            .and_then(|model| model.mean(weight));
        self.learn_speed(ran.partition, ran.took.as_secs_f64(), expected);
        self.note_key(ran.key, Instant::now());
        // The lines learn a typical partition's cost.
        let took = ran.took.div_f64(self.speed(ran.partition));
        let overall = &self.overall;
        self.models
            .entry(ran.key)
            .or_insert_with(|| overall.clone())
            .observe(weight, took);
        self.overall.observe(weight, took);
        if items > 0 {
            self.weight_sum = FORGET * self.weight_sum + weight;
            self.item_sum = FORGET * self.item_sum + items as f64;
            self.item_weight = self.weight_sum / self.item_sum;
        }
        self.publish();
    }

    /// Remembers that `key` ran a batch `now`, and forgets the keys that
    /// have not for two targets.
    fn note_key(&mut self, key: BatchKey, now: Instant) {
        self.recent_keys.insert(key, now);
        self.recent_runs.push_back((now, key));
        let since = now.checked_sub(self.target * 2).unwrap_or(now);
        while let Some(&(at, old)) = self.recent_runs.front() {
            if at >= since {
                break;
            }
            self.recent_runs.pop_front();
            if self.recent_keys.get(&old) == Some(&at) {
                self.recent_keys.remove(&old);
            }
        }
        if self.models.len() > 2 * self.recent_keys.len() + 64 {
            let recent = &self.recent_keys;
            self.models.retain(|key, _| recent.contains_key(key));
        }
    }

    /// Moves `partition`'s speed toward what its batch showed: `took`
    /// seconds where the line expected `expected`. With one partition there
    /// is nothing to compare, and its speed stays 1.
    fn learn_speed(&mut self, partition: usize, took: f64, expected: Option<f64>) {
        let (Some(expected), Some(&speed)) = (expected, self.speeds.get(partition)) else {
            return;
        };
        if self.speeds.len() < 2 || expected <= 0.0 || !took.is_finite() {
            return;
        }
        // A batch switched out by the OS says little about the partition.
        let seen = (took / expected).clamp(speed / 3.0, speed * 3.0);
        self.speeds[partition] = FORGET * speed + (1.0 - FORGET) * seen;
        let mean_log =
            self.speeds.iter().map(|speed| speed.ln()).sum::<f64>() / self.speeds.len() as f64;
        let scale = mean_log.exp();
        for speed in &mut self.speeds {
            *speed /= scale;
        }
        self.forecast.publish_speeds(&self.speeds);
    }

    /// Publishes the outlook to callers, once the model is worth trusting:
    /// refusing calls on a guessed slope would turn away calls that would
    /// have made it.
    fn publish(&self) {
        let bound = (self.batch_size as f64 * self.item_weight).min(self.max_weight as f64);
        if let Some(line) = self.overall.line().filter(|_| self.overall.is_trusted()) {
            self.forecast.publish(Outlook {
                line,
                spread: self.overall.spread(),
                cap_weight: self.cap(&self.overall, bound, 1.0),
                item_weight: self.item_weight,
                arrival_rate: self.rate,
                partitions: self.capacity(),
                keys: self.keys(),
            });
        }
    }

    /// A batch of `weight` and `items` was handed to `partition`: it runs
    /// now, or after the batch running there (pipelined).
    pub(crate) fn handed_over(
        &mut self,
        partition: usize,
        weight: u64,
        items: usize,
        now: Instant,
    ) {
        if let Some(handed) = self.handed.get_mut(partition) {
            if handed.batches.is_empty() {
                handed.since = now;
            }
            handed.batches.push_back((weight as f64, items));
        }
        self.publish_busy(partition);
    }

    /// `partition` finished its running batch; the next handed to it, if
    /// any, starts now.
    pub(crate) fn finished(&mut self, partition: usize, now: Instant) {
        if let Some(handed) = self.handed.get_mut(partition) {
            handed.batches.pop_front();
            handed.since = now;
        }
        self.publish_busy(partition);
    }

    /// When `partition` is predicted to finish what was handed to it,
    /// costed with the model as it stands now (a batch handed over while
    /// the model was a guess is costed anew once it is not): `None` when
    /// idle, `Some(None)` when busy for a time not known yet.
    fn free_at(&self, partition: usize) -> Option<Option<Instant>> {
        let handed = self.handed.get(partition)?;
        if handed.batches.is_empty() {
            return None;
        }
        let work: Option<f64> = handed
            .batches
            .iter()
            .map(|&(weight, _)| self.overall.mean(weight))
            .sum();
        Some(work.map(|secs| handed.since + seconds(secs * self.speed(partition))))
    }

    /// Among `candidates`, the partition predicted to free up first (the
    /// first one when none is known): a batch handed ahead goes there, so
    /// that it never waits behind a partition while another frees up first.
    pub(crate) fn soonest_free(&self, candidates: impl Iterator<Item = usize>) -> Option<usize> {
        candidates.min_by_key(|&partition| self.free_at(partition).flatten())
    }

    /// Tells callers when `partition` frees up, and how many items wait on
    /// deck over all partitions.
    fn publish_busy(&self, partition: usize) {
        self.forecast
            .set_free_at(partition, self.free_at(partition));
        let on_deck = self
            .handed
            .iter()
            .flat_map(|handed| handed.batches.iter().skip(1))
            .map(|&(_, items)| items)
            .sum();
        self.forecast.set_on_deck(on_deck);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adaptive(partitions: usize) -> Adaptive {
        let target = Duration::from_millis(20);
        Adaptive::new(
            target,
            partitions,
            (32, u64::MAX),
            None,
            Arc::new(Forecast::new(target, partitions)),
        )
    }

    fn fitted() -> CostModel {
        let mut model = CostModel::new(None);
        for round in 0..40u32 {
            let n = f64::from(1 + round % 32);
            model.observe(n, Duration::from_secs_f64(1e-3 + 60e-6 * n));
        }
        model
    }

    #[test]
    fn the_cap_fits_twice_into_the_target() {
        let adaptive = adaptive(1);
        let model = fitted();
        // (18 ms / 2 - 1 ms) / 60 µs = 133 items: the bound of 32 holds.
        assert_eq!(adaptive.cap(&model, 32.0, 1.0), 32.0);
        let tight = Adaptive::new(
            Duration::from_millis(5),
            1,
            (32, u64::MAX),
            None,
            Arc::new(Forecast::new(Duration::from_millis(5), 1)),
        );
        let cap = tight.cap(&model, 32.0, 1.0);
        // (4.5 ms / 2 - 1 ms) / 60 µs ≈ 20.8 items, less the spread.
        assert!((19.0..=20.9).contains(&cap), "{cap}");
        // A partition half as fast: (2.25 ms / 2 - 1 ms) / 60 µs ≈ 2 items.
        let slow = tight.cap(&model, 32.0, 2.0);
        assert!((1.0..=2.1).contains(&slow), "{slow}");
    }

    #[test]
    fn a_batch_is_cut_only_to_save_its_most_urgent_call() {
        let adaptive = adaptive(1);
        let model = fitted();
        assert_eq!(adaptive.cut(&model, 17e-3, 32.0, 1.0), (32.0, false));
        // 2.5 ms left: 32 items (2.92 ms) would end late.
        let (cut, was_cut) = adaptive.cut(&model, 2.5e-3, 32.0, 1.0);
        // (2.5 - 1) ms / 60 µs = 25 items.
        assert!(was_cut && (24.9..25.1).contains(&cut), "{cut}");
        // 0.1 ms left: nothing saves it, so the batch stays whole.
        assert_eq!(adaptive.cut(&model, 0.1e-3, 32.0, 1.0), (32.0, false));
    }

    #[test]
    fn a_partition_slower_than_the_others_learns_its_speed() {
        let mut adaptive = adaptive(2);
        let key = crate::key::BatchKey::DEFAULT;
        adaptive.models.insert(key, fitted());
        let cost = |n: f64, partition: usize| {
            Duration::from_secs_f64((1e-3 + 60e-6 * n) * [1.0, 3.0][partition])
        };
        for round in 0..200u32 {
            let partition = (round % 2) as usize;
            let n = f64::from(1 + round % 31);
            let ran = Ran {
                key,
                partition,
                weight: n as u64,
                items: n as usize,
                took: cost(n, partition),
                predicted: None,
            };
            adaptive.observe(&ran);
        }
        // Three times slower, with a geometric mean of 1: 1/√3 and √3.
        let ratio = adaptive.speed(1) / adaptive.speed(0);
        assert!((2.8..3.2).contains(&ratio), "{ratio}");
        for partition in 0..2 {
            let predicted =
                adaptive.model_for(key).mean(20.0).unwrap_or_default() * adaptive.speed(partition);
            let actual = cost(20.0, partition).as_secs_f64();
            assert!(
                (predicted / actual - 1.0).abs() < 0.1,
                "partition {partition}: {predicted} against {actual}"
            );
        }
        // The two partitions add up to 1 + 1/3 of the fast one.
        let fast_units = adaptive.capacity() * adaptive.speed(0);
        assert!((fast_units - 4.0 / 3.0).abs() < 0.1, "{fast_units}");
    }

    #[test]
    fn one_partition_never_holds_and_several_hold_only_while_others_run() {
        let model = fitted();
        let now = Instant::now();
        let mut one = adaptive(1);
        one.note_arrivals(now + Duration::from_millis(100), || 1000);
        assert_eq!(one.hold(&model, 1.0, now, now, 1), Hold::No);
        let mut four = adaptive(4);
        four.rate = 20_000.0;
        // 20 k/s at 1 ms fixed over 4 partitions: 20/(4 - 1.2) ≈ 7 items.
        let held = four.hold(&model, 1.0, now, now, 3);
        assert!(matches!(held, Hold::Until(_)), "{held:?}");
        assert_eq!(four.hold(&model, 1.0, now, now, 0), Hold::No, "all idle");
        assert_eq!(
            four.hold(&model, 8.0, now, now, 3),
            Hold::No,
            "large enough"
        );
        let Hold::Until(until) = held else {
            unreachable!()
        };
        assert_eq!(four.hold(&model, 1.0, now, until, 3), Hold::Over);
    }
}
