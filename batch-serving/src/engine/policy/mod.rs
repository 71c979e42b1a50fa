//! The batching policy, behind one seam. The scheduler asks [`Batching`]
//! when a key's forming batch is ready (and when it next will be), whether
//! a batch may be handed ahead to a busy partition, how large the next
//! batch may be by count and by weight, and how calls are ordered within a
//! lane; it tells it about each batch handed over, finished and run.
//! Callers ask its [`Forecast`](forecast::Forecast) whether to refuse a call
//! at admission. The queue only stores calls.
//!
//! Under it: the fixed rules (timeout and eager, [`fixed`]) and the
//! adaptive policy ([`adaptive`]) with its cost model and forecast.

pub(crate) mod adaptive;
pub(crate) mod cost_model;
mod fixed;
pub(crate) mod forecast;
mod terms;

pub(crate) use self::terms::{Bound, Forming, Order, Ready, Rules};

use std::sync::Arc;

use tokio::time::{Duration, Instant};

use crate::engine::message::Ran;
use crate::key::BatchKey;
use crate::policy::{Policy, StartReason};

use self::adaptive::{Adaptive, Hold};
use self::cost_model::Line;
use self::forecast::Forecast;

/// The serving's batching policy at run time: its rules, and under the
/// adaptive policy the controller that steers them.
#[derive(Debug)]
pub(crate) struct Batching {
    rules: Rules,
    adaptive: Option<Adaptive>,
}

impl Batching {
    /// The policy for `rules` over `partitions`; under the adaptive policy,
    /// with the user's cost `prior`, and the forecast that callers read.
    pub(crate) fn new(
        rules: Rules,
        partitions: usize,
        prior: Option<Line>,
    ) -> (Self, Option<Arc<Forecast>>) {
        let Policy::Adaptive { target } = rules.policy else {
            return (
                Batching {
                    rules,
                    adaptive: None,
                },
                None,
            );
        };
        let forecast = Arc::new(Forecast::new(target, partitions));
        let adaptive = Adaptive::new(
            target,
            partitions,
            (rules.batch_size, rules.max_weight),
            prior,
            Arc::clone(&forecast),
        );
        let batching = Batching {
            rules,
            adaptive: Some(adaptive),
        };
        (batching, Some(forecast))
    }

    pub(crate) fn rules(&self) -> &Rules {
        &self.rules
    }

    /// How calls are ordered within a lane. The fixed policies keep FIFO:
    /// there a call without a deadline has no due time to order by, and
    /// putting every deadline ahead of it could starve it.
    pub(crate) fn order(&self) -> Order {
        match &self.adaptive {
            Some(adaptive) => Order::EarliestDue {
                budget: adaptive.target(),
            },
            None => Order::Fifo,
        }
    }

    /// Whether a batch's worth is queued, by count or by weight.
    fn is_full(&self, forming: &Forming) -> bool {
        forming.len >= self.rules.batch_size || forming.weight >= self.rules.max_weight
    }

    /// Whether `forming` may start now on idle `partition` (`None`: not yet
    /// known which), with `running` batches on the partitions; or when it
    /// may, unless it fills first.
    pub(crate) fn ready(
        &self,
        forming: &Forming,
        now: Instant,
        draining: bool,
        running: usize,
        partition: Option<usize>,
    ) -> Ready {
        if self.is_full(forming) {
            return Ready::Now(StartReason::Full);
        }
        if draining {
            return Ready::Now(StartReason::Drain);
        }
        let Some(adaptive) = &self.adaptive else {
            return fixed::ready(&self.rules, forming.since, now);
        };
        if forming.weight >= self.cap(adaptive, forming.key, partition) {
            return Ready::Now(StartReason::Capped);
        }
        let model = adaptive.model_for(forming.key);
        match adaptive.hold(model, forming.weight as f64, forming.since, now, running) {
            Hold::No => Ready::Now(StartReason::Eager),
            Hold::Over => Ready::Now(StartReason::Waited),
            Hold::Until(at) => Ready::At(at),
        }
    }

    /// Whether `forming` is full enough, by count or by the adaptive cap, to
    /// be handed ahead to busy `partition`, and why.
    pub(crate) fn is_ready_ahead(
        &self,
        forming: &Forming,
        partition: usize,
    ) -> Option<StartReason> {
        if self.is_full(forming) {
            return Some(StartReason::Full);
        }
        let adaptive = self.adaptive.as_ref()?;
        (forming.weight >= self.cap(adaptive, forming.key, Some(partition)))
            .then_some(StartReason::Capped)
    }

    /// The adaptive cap for `key`'s batches on `partition`, in whole units
    /// (a cap of 20.8 items is 20).
    fn cap(&self, adaptive: &Adaptive, key: BatchKey, partition: Option<usize>) -> u64 {
        let bound = self.rules.max_weight.min(u64::MAX / 2) as f64;
        let speed = partition.map_or(1.0, |partition| adaptive.speed(partition));
        (adaptive.cap(adaptive.model_for(key), bound, speed).floor() as u64).max(1)
    }

    /// What the next batch from `forming` may hold on `partition`: the
    /// serving's bounds, or under the adaptive policy the target's cap, cut
    /// shorter when its most urgent call needs it. `urgent_left` gives the
    /// microseconds before that call is due, against a budget.
    pub(crate) fn bound(
        &self,
        forming: &Forming,
        partition: usize,
        urgent_left: impl FnOnce(Duration) -> Option<i64>,
    ) -> Bound {
        let items = self.rules.batch_size;
        let Some(adaptive) = &self.adaptive else {
            return Bound {
                items,
                weight: self.rules.max_weight,
            };
        };
        let cap = self.cap(adaptive, forming.key, Some(partition));
        // With more than a batch queued, a cut would only push everyone
        // behind later and lower throughput when it is scarcest.
        if forming.weight > cap || forming.len > items {
            return Bound { items, weight: cap };
        }
        let Some(left) = urgent_left(adaptive.aim()) else {
            return Bound { items, weight: cap };
        };
        let model = adaptive.model_for(forming.key);
        let (cut, _) = adaptive.cut(
            model,
            left as f64 / 1e6,
            cap as f64,
            adaptive.speed(partition),
        );
        Bound {
            items,
            weight: (cut.floor() as u64).clamp(1, cap),
        }
    }

    /// Why a batch that `bound` ended by weight, with items left queued,
    /// started: the cap's doing when the bound was below the user's.
    pub(crate) fn reason_when_cut(&self, bound: Bound, reason: StartReason) -> StartReason {
        if bound.weight < self.rules.max_weight {
            StartReason::Capped
        } else {
            reason
        }
    }

    /// Under the adaptive policy, among `candidates` the busy partition
    /// predicted to free up first; otherwise the first.
    pub(crate) fn soonest_free(
        &self,
        mut candidates: impl Iterator<Item = usize>,
    ) -> Option<usize> {
        match &self.adaptive {
            Some(adaptive) => adaptive.soonest_free(candidates),
            None => candidates.next(),
        }
    }

    /// Arrivals since the last call weighed `arrived` (asked only when
    /// time has passed), at `now`.
    pub(crate) fn note_arrivals(&mut self, now: Instant, arrived: impl FnOnce() -> u64) {
        if let Some(adaptive) = &mut self.adaptive {
            adaptive.note_arrivals(now, arrived);
        }
    }

    /// What a batch of `key` and `weight` is predicted to take on
    /// `partition`, and the target it is planned against.
    pub(crate) fn plan(
        &self,
        key: BatchKey,
        weight: u64,
        partition: usize,
    ) -> Option<(std::time::Duration, Duration)> {
        let adaptive = self.adaptive.as_ref()?;
        let predicted = adaptive
            .model_for(key)
            .predict(weight as f64)?
            .mul_f64(adaptive.speed(partition));
        Some((predicted, adaptive.target()))
    }

    /// A batch of `weight` and `items` was handed to `partition`.
    pub(crate) fn handed_over(
        &mut self,
        partition: usize,
        weight: u64,
        items: usize,
        now: Instant,
    ) {
        if let Some(adaptive) = &mut self.adaptive {
            adaptive.handed_over(partition, weight, items, now);
        }
    }

    /// `partition` finished its running batch.
    pub(crate) fn finished(&mut self, partition: usize, now: Instant) {
        if let Some(adaptive) = &mut self.adaptive {
            adaptive.finished(partition, now);
        }
    }

    /// A batch ran: the adaptive policy learns what it cost.
    pub(crate) fn learn(&mut self, ran: &Ran) {
        if let Some(adaptive) = &mut self.adaptive {
            adaptive.observe(ran);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batching(policy: Policy) -> Batching {
        let rules = Rules {
            policy,
            batch_size: 4,
            batch_timeout: Duration::from_millis(10),
            pipeline: true,
            max_weight: u64::MAX,
        };
        Batching::new(
            rules,
            1,
            Some(Line {
                fixed: 1e-3,
                per_weight: 1e-3,
            }),
        )
        .0
    }

    fn forming(len: usize, since: Instant) -> Forming {
        Forming {
            key: BatchKey::DEFAULT,
            len,
            weight: len as u64,
            since,
        }
    }

    #[test]
    fn a_timeout_batch_is_ready_when_full_at_its_timeout_or_when_draining() {
        let timeout = batching(Policy::Timeout);
        let start = Instant::now();
        let later = start + Duration::from_millis(3);
        let due = start + Duration::from_millis(10);
        let two = forming(2, start);
        // The timer runs from the first item, not the latest.
        assert_eq!(timeout.ready(&two, later, false, 0, None), Ready::At(due));
        assert_eq!(
            timeout.ready(&two, later, true, 0, None),
            Ready::Now(StartReason::Drain)
        );
        assert_eq!(
            timeout.ready(&two, due, false, 0, None),
            Ready::Now(StartReason::Timeout)
        );
        let four = forming(4, start);
        assert_eq!(
            timeout.ready(&four, later, false, 0, None),
            Ready::Now(StartReason::Full)
        );
        assert_eq!(timeout.is_ready_ahead(&two, 0), None);
        assert_eq!(timeout.is_ready_ahead(&four, 0), Some(StartReason::Full));
        assert_eq!(timeout.order(), Order::Fifo);
        assert_eq!(timeout.bound(&two, 0, |_| Some(0)).weight, u64::MAX);
    }

    #[test]
    fn an_eager_batch_is_ready_at_once() {
        let eager = batching(Policy::Eager);
        let now = Instant::now();
        assert_eq!(
            eager.ready(&forming(1, now), now, false, 1, Some(0)),
            Ready::Now(StartReason::Eager)
        );
    }

    #[test]
    fn an_adaptive_batch_is_capped_by_the_target_and_cut_for_its_most_urgent_call() {
        // 1 ms + 1 ms per item against 20 ms: (18 / 2 - 1) = 8 items fit.
        let adaptive = batching(Policy::Adaptive {
            target: Duration::from_millis(20),
        });
        let now = Instant::now();
        assert_eq!(
            adaptive.order(),
            Order::EarliestDue {
                budget: Duration::from_millis(20)
            }
        );
        let rules = Rules {
            batch_size: 64,
            ..*adaptive.rules()
        };
        let adaptive = Batching::new(
            rules,
            1,
            Some(Line {
                fixed: 1e-3,
                per_weight: 1e-3,
            }),
        )
        .0;
        let eight = forming(8, now);
        assert_eq!(
            adaptive.ready(&eight, now, false, 1, Some(0)),
            Ready::Now(StartReason::Capped)
        );
        assert_eq!(
            adaptive.is_ready_ahead(&eight, 0),
            Some(StartReason::Capped)
        );
        assert_eq!(adaptive.bound(&eight, 0, |_| None).weight, 8);
        // 7 ms left for the most urgent call: 8 items (9 ms) would be late,
        // 6 items (7 ms) are not.
        let cut = adaptive.bound(&eight, 0, |_| Some(7_000)).weight;
        assert_eq!(cut, 6);
        assert_eq!(
            adaptive.reason_when_cut(
                Bound {
                    items: 64,
                    weight: cut
                },
                StartReason::Eager
            ),
            StartReason::Capped
        );
    }
}
