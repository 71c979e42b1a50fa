//! An online model of what a batch costs: execution time against batch
//! weight, fitted as a line by least squares with exponential forgetting,
//! plus a spread for the tail.
//!
//! Why a line: a batch function pays a fixed cost per run (a kernel launch,
//! a round trip, a lock) and a cost per unit of work; BentoML fits the same
//! `a·n + b`. Why forgetting rather than a window: each batch updates five
//! sums in O(1) and old batches fade, so the model follows a function whose
//! cost changes (a warm-up, thermal drift) without keeping a history. Why a
//! spread: the adaptive policy plans against the slow batches, not the
//! average ones (Clipper estimates p99 as the mean plus 3σ).

use std::time::Duration;

/// Each batch's weight in the sums is this times the previous batch's: a
/// batch `k` batches old counts `FORGET^k`. At 0.9 the model's memory is
/// about ten batches, and after a change in the function's cost the old
/// cost's share of the fit is below 12% within 20 batches.
pub(crate) const FORGET: f64 = 0.9;

/// A batch enters the fit at no more than this times its expected time
/// (plus the tail's sigmas).
const OUTLIER: f64 = 3.0;

/// How many standard deviations of the fit's residuals the tail adds.
const TAIL_SIGMAS: f64 = 3.0;

/// The data give the slope once batch weights spread by this share of
/// their mean (as a standard deviation); below it the prior's slope holds.
const SPREAD_FOR_SLOPE: f64 = 0.1;

/// After this many batches a slope guessed from the first batch is used
/// for admission even if no batches of different weights have shown it.
const TRUSTED_AFTER: u64 = 8;

/// A batch's cost as a line: `fixed + per_weight × weight`, in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Line {
    pub(crate) fixed: f64,
    pub(crate) per_weight: f64,
}

impl Line {
    pub(crate) fn at(self, weight: f64) -> f64 {
        self.fixed + self.per_weight * weight
    }
}

/// The fitted cost of one batch key's batches.
#[derive(Debug, Clone)]
pub(crate) struct CostModel {
    /// Exponentially forgotten sums: of 1, w, w², t, w·t and t².
    s0: f64,
    sw: f64,
    sww: f64,
    st: f64,
    swt: f64,
    stt: f64,
    /// The variance of batch times about the fitted line.
    var: f64,
    /// The user's prior, or one made from the first batch.
    prior: Option<Line>,
    /// Whether the slope is known rather than guessed: the user gave a
    /// prior, or batches of different weights have shown it.
    trusted: bool,
    /// The line fitted after the latest batch.
    fitted: Option<Line>,
    batches: u64,
}

impl CostModel {
    /// A model with no batches yet, starting from `prior` when the user
    /// gave one (otherwise from its first batch: half fixed, half per unit).
    pub(crate) fn new(prior: Option<Line>) -> Self {
        CostModel {
            s0: 0.0,
            sw: 0.0,
            sww: 0.0,
            st: 0.0,
            swt: 0.0,
            stt: 0.0,
            var: 0.0,
            prior,
            trusted: prior.is_some(),
            fitted: prior,
            batches: 0,
        }
    }

    /// Whether the model is more than a guess: from the user's prior, from
    /// batches of different weights, or from enough batches that a guessed
    /// slope has been corrected where it matters (at the weights seen).
    pub(crate) fn is_trusted(&self) -> bool {
        self.trusted || self.batches >= TRUSTED_AFTER
    }

    /// The current line, or `None` before any batch or prior.
    pub(crate) fn line(&self) -> Option<Line> {
        self.fitted
    }

    /// What the tail adds to the line, in seconds.
    pub(crate) fn spread(&self) -> f64 {
        TAIL_SIGMAS * self.var.sqrt()
    }

    /// Expected seconds for a batch of `weight`.
    pub(crate) fn mean(&self, weight: f64) -> Option<f64> {
        self.fitted.map(|line| line.at(weight).max(0.0))
    }

    /// Seconds that a batch of `weight` stays within but for rare cases:
    /// the line plus the spread.
    pub(crate) fn tail(&self, weight: f64) -> Option<f64> {
        self.mean(weight).map(|mean| mean + self.spread())
    }

    /// Expected time for a batch of `weight`, as a duration.
    pub(crate) fn predict(&self, weight: f64) -> Option<Duration> {
        self.mean(weight).map(seconds)
    }

    /// Adds one batch: `weight` units of work that ran for `took`.
    pub(crate) fn observe(&mut self, weight: f64, took: Duration) {
        let weight = weight.max(0.0);
        let mut t = took.as_secs_f64();
        // A batch far slower than the model expects (its thread was
        // switched out, a page fault, a GC pause elsewhere) enters at a
        // bound: at full weight one such batch would swing the line and the
        // tail for the next dozen batches and refuse calls meanwhile. A real
        // change in cost, even a threefold one, passes whole.
        if self.batches >= 3
            && let Some(mean) = self.mean(weight)
        {
            t = t.min(OUTLIER * mean + TAIL_SIGMAS * self.var.sqrt());
        }
        if self.batches == 0 {
            // A first guess at the noise: a tenth of the first batch.
            self.var = (0.1 * t) * (0.1 * t);
        }
        if self.prior.is_none() {
            self.prior = Some(Line {
                fixed: t / 2.0,
                per_weight: t / (2.0 * weight.max(1.0)),
            });
        }
        self.s0 = FORGET * self.s0 + 1.0;
        self.sw = FORGET * self.sw + weight;
        self.sww = FORGET * self.sww + weight * weight;
        self.st = FORGET * self.st + t;
        self.swt = FORGET * self.swt + weight * t;
        self.stt = FORGET * self.stt + t * t;
        self.batches += 1;
        let line = self.fit();
        // Two numbers fit two batches exactly: the residuals say nothing
        // of the noise until a third.
        if self.s0 > 2.0 {
            self.var = self.residual_variance(line);
        }
        self.fitted = Some(line);
    }

    /// The forgotten mean square of the batches' distances from `line`,
    /// scaled up for the two numbers the line took from them. Unlike the
    /// misses of past predictions, it forgets what the model got wrong
    /// while it learnt, and keeps what the function really varies by.
    fn residual_variance(&self, line: Line) -> f64 {
        let n = self.s0;
        let (mean_w, mean_t) = (self.sw / n, self.st / n);
        let var_w = self.sww / n - mean_w * mean_w;
        let var_t = self.stt / n - mean_t * mean_t;
        let cov = self.swt / n - mean_w * mean_t;
        let b = line.per_weight;
        // Off-centre when `fixed` was clamped at zero.
        let bias = mean_t - line.at(mean_w);
        let square = var_t - 2.0 * b * cov + b * b * var_w + bias * bias;
        square.max(0.0) * n / (n - 2.0)
    }

    /// Least squares over the forgotten sums. While the batches seen
    /// barely differ in weight they fix one point of the line but not its
    /// slope, which then comes from the prior.
    fn fit(&mut self) -> Line {
        let mean_w = self.sw / self.s0;
        let mean_t = self.st / self.s0;
        let var_w = (self.sww / self.s0 - mean_w * mean_w).max(0.0);
        let per_weight = if var_w > (SPREAD_FOR_SLOPE * mean_w.max(1.0)).powi(2) {
            self.trusted = true;
            let cov = self.swt / self.s0 - mean_w * mean_t;
            cov / var_w
        } else {
            self.prior.map_or(0.0, |prior| prior.per_weight)
        };
        // A fixed cost below zero is not physical: the slope is at most
        // what passes the line through the origin and the mean. Without
        // this bound, batches of similar weight with one slow among them
        // made slopes a hundred times too steep.
        let per_weight = per_weight.clamp(0.0, mean_t / mean_w.max(f64::MIN_POSITIVE));
        let fixed = (mean_t - per_weight * mean_w).max(0.0);
        Line { fixed, per_weight }
    }
}

/// Seconds as a duration, clamped to what a duration holds.
pub(crate) fn seconds(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs.max(0.0)).unwrap_or(Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(fixed_us: f64, per_item_us: f64, n: f64) -> Duration {
        Duration::from_secs_f64((fixed_us + per_item_us * n) * 1e-6)
    }

    fn close(got: f64, want: f64, within: f64) -> bool {
        (got - want).abs() <= within * want.abs()
    }

    #[test]
    fn one_slow_batch_among_similar_ones_does_not_swing_the_line() {
        let mut model = CostModel::new(None);
        for round in 0..30 {
            let n = f64::from(28 + round % 5);
            model.observe(n, cost(1000.0, 60.0, n));
        }
        let before = model.tail(32.0).unwrap_or_default();
        // Switched out for 50 ms.
        model.observe(32.0, Duration::from_millis(50));
        let after = model.tail(32.0).unwrap_or_default();
        let line = model.line().unwrap_or_else(|| unreachable!("observed"));
        assert!(line.per_weight < 200e-6, "slope {}", line.per_weight);
        assert!(after < 4.0 * before, "tail {before} -> {after}");
    }

    #[test]
    fn knows_nothing_before_the_first_batch_unless_given_a_prior() {
        assert_eq!(CostModel::new(None).predict(4.0), None);
        let prior = Line {
            fixed: 1e-3,
            per_weight: 1e-4,
        };
        let model = CostModel::new(Some(prior));
        assert_eq!(model.predict(10.0), Some(seconds(2e-3)));
    }

    #[test]
    fn recovers_a_line_from_batches_of_varied_size() {
        let mut model = CostModel::new(None);
        for round in 0..100 {
            let n = f64::from(1 + (round * 7) % 32);
            model.observe(n, cost(1000.0, 60.0, n));
        }
        let line = model.line().unwrap_or_else(|| unreachable!("observed"));
        assert!(close(line.fixed, 1e-3, 0.02), "fixed {}", line.fixed);
        assert!(
            close(line.per_weight, 60e-6, 0.02),
            "slope {}",
            line.per_weight
        );
        // A noiseless function's spread fades once the early misses are
        // forgotten.
        assert!(model.spread() < 1e-4, "spread {}", model.spread());
    }

    #[test]
    fn batches_of_one_size_fix_that_point_and_the_prior_gives_the_slope() {
        let mut model = CostModel::new(None);
        for _ in 0..30 {
            model.observe(8.0, cost(1000.0, 60.0, 8.0));
        }
        let at_eight = model.mean(8.0).unwrap_or_default();
        assert!(close(at_eight, 1.48e-3, 0.01), "{at_eight}");
        // Larger batches are predicted to cost more, not the same.
        assert!(model.mean(32.0).unwrap_or_default() > at_eight);
    }

    #[test]
    fn follows_a_change_in_cost_within_twenty_batches() {
        let mut model = CostModel::new(None);
        for round in 0..50 {
            let n = f64::from(1 + round % 32);
            model.observe(n, cost(1000.0, 60.0, n));
        }
        // The function gets twice as slow (a colder cache, a throttled core).
        for round in 0..20 {
            let n = f64::from(1 + (round * 5) % 32);
            model.observe(n, cost(2000.0, 120.0, n));
        }
        let predicted = model.mean(16.0).unwrap_or_default();
        let actual = cost(2000.0, 120.0, 16.0).as_secs_f64();
        assert!(close(predicted, actual, 0.15), "{predicted} vs {actual}");
    }

    #[test]
    fn the_tail_covers_noisy_batches() {
        let mut model = CostModel::new(None);
        let mut within = 0;
        let mut seen = 0;
        // A deterministic jitter of up to ±20% around the line.
        for round in 0..400u32 {
            let n = f64::from(1 + (round * 11) % 32);
            let jitter = f64::from((round * 37) % 41) / 100.0 - 0.2;
            let took = cost(1000.0, 60.0, n).mul_f64(1.0 + jitter);
            if round >= 50 {
                seen += 1;
                if took.as_secs_f64() <= model.tail(n).unwrap_or_default() {
                    within += 1;
                }
            }
            model.observe(n, took);
        }
        assert!(
            within * 100 >= seen * 97,
            "{within} of {seen} within the tail"
        );
    }
}
