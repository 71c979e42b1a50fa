//! One count or level of the serving's own stats, mirrored to the `metrics`
//! facade when that feature is on. With it off, a meter is a bare atomic:
//! the engine pays nothing for the feature it does not use.
//!
//! Handles are registered once, when the serving starts, with the global
//! recorder installed then (install the exporter before starting
//! servings); each update is then one atomic here and one call into the
//! recorder's handle, with no name lookup.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A monotonic count (`..._total`).
pub(crate) struct Count {
    value: AtomicU64,
    #[cfg(feature = "metrics")]
    metric: metrics::Counter,
}

impl std::fmt::Debug for Count {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.get().fmt(f)
    }
}

impl Count {
    /// A count named `name` for the serving `serving`.
    pub(crate) fn new(name: &'static str, serving: &str) -> Self {
        #[cfg(not(feature = "metrics"))]
        let _ = (name, serving);
        Count {
            value: AtomicU64::new(0),
            #[cfg(feature = "metrics")]
            metric: metrics::counter!(name, "serving" => serving.to_owned()),
        }
    }

    /// A count with one more label, such as a batch's start reason.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn labelled(
        name: &'static str,
        serving: &str,
        key: &'static str,
        value: &'static str,
    ) -> Self {
        Count {
            value: AtomicU64::new(0),
            #[cfg(feature = "metrics")]
            metric: metrics::counter!(name, "serving" => serving.to_owned(), key => value),
        }
    }

    pub(crate) fn add(&self, n: u64) {
        self.value.fetch_add(n, Relaxed);
        #[cfg(feature = "metrics")]
        self.metric.increment(n);
    }

    pub(crate) fn get(&self) -> u64 {
        self.value.load(Relaxed)
    }
}

/// A level that goes up and down (a gauge).
pub(crate) struct Level {
    value: AtomicU64,
    #[cfg(feature = "metrics")]
    metric: metrics::Gauge,
}

impl std::fmt::Debug for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.get().fmt(f)
    }
}

impl Level {
    pub(crate) fn new(name: &'static str, serving: &str) -> Self {
        #[cfg(not(feature = "metrics"))]
        let _ = (name, serving);
        Level {
            value: AtomicU64::new(0),
            #[cfg(feature = "metrics")]
            metric: metrics::gauge!(name, "serving" => serving.to_owned()),
        }
    }

    pub(crate) fn add(&self, n: u64) {
        self.value.fetch_add(n, Relaxed);
        #[cfg(feature = "metrics")]
        self.metric.increment(n as f64);
    }

    pub(crate) fn sub(&self, n: u64) {
        self.value.fetch_sub(n, Relaxed);
        #[cfg(feature = "metrics")]
        self.metric.decrement(n as f64);
    }

    /// Sets the level outright (a gauge read off elsewhere, such as the
    /// queue's depth at a batch start).
    pub(crate) fn set(&self, n: u64) {
        self.value.store(n, Relaxed);
        #[cfg(feature = "metrics")]
        self.metric.set(n as f64);
    }

    pub(crate) fn get(&self) -> u64 {
        self.value.load(Relaxed)
    }
}

/// The facade's histograms for one serving; nothing without the feature
/// (the serving's own histograms live in `stats`).
#[derive(Debug)]
pub(crate) struct Distributions {
    #[cfg(feature = "metrics")]
    batch_size: metrics::Histogram,
    #[cfg(feature = "metrics")]
    queue_wait: metrics::Histogram,
    #[cfg(feature = "metrics")]
    execution: metrics::Histogram,
}

impl Distributions {
    pub(crate) fn new(serving: &str) -> Self {
        #[cfg(not(feature = "metrics"))]
        let _ = serving;
        Distributions {
            #[cfg(feature = "metrics")]
            batch_size: metrics::histogram!("batch_serving_batch_size", "serving" => serving.to_owned()),
            #[cfg(feature = "metrics")]
            queue_wait: metrics::histogram!("batch_serving_queue_wait_seconds", "serving" => serving.to_owned()),
            #[cfg(feature = "metrics")]
            execution: metrics::histogram!("batch_serving_execution_seconds", "serving" => serving.to_owned()),
        }
    }

    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn batch(&self, size: usize, took: std::time::Duration) {
        #[cfg(feature = "metrics")]
        {
            self.batch_size.record(size as f64);
            self.execution.record(took.as_secs_f64());
        }
    }

    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn queue_wait(&self, wait: std::time::Duration) {
        #[cfg(feature = "metrics")]
        self.queue_wait.record(wait.as_secs_f64());
    }
}

/// Every metric the servings report, with its help text, so that an
/// exporter can write `# HELP` lines (promtool and Prometheus linters ask
/// for them). The names follow Prometheus conventions: `_total` for
/// counters, the base unit as a suffix.
#[cfg(feature = "metrics")]
const DESCRIPTIONS: [(&str, &str); 23] = [
    ("batch_serving_batches_total", "batches run"),
    ("batch_serving_items_total", "items in the batches run"),
    (
        "batch_serving_batch_starts_total",
        "batches started, by why they started",
    ),
    (
        "batch_serving_answered_total",
        "calls that got all their outputs",
    ),
    (
        "batch_serving_failed_calls_total",
        "calls that ended with their batch's error",
    ),
    (
        "batch_serving_panicked_calls_total",
        "calls whose batch panicked",
    ),
    (
        "batch_serving_closed_total",
        "queued calls ended by a shutdown that ran out of time",
    ),
    (
        "batch_serving_refused_closed_total",
        "calls refused at admission because the serving had closed",
    ),
    (
        "batch_serving_cancelled_total",
        "calls dropped by their callers before completing",
    ),
    (
        "batch_serving_expired_total",
        "calls that passed their deadline",
    ),
    (
        "batch_serving_rejected_total",
        "calls refused at admission (overloaded or closed)",
    ),
    (
        "batch_serving_refused_late_total",
        "calls the adaptive policy refused at admission as predicted to finish late",
    ),
    (
        "batch_serving_late_plans_total",
        "adaptive batches that started already predicted to finish their oldest call late",
    ),
    (
        "batch_serving_failed_batches_total",
        "batches whose function returned an error",
    ),
    (
        "batch_serving_panicked_batches_total",
        "batches whose function panicked",
    ),
    (
        "batch_serving_busy_poll_caught_total",
        "busy polls that caught a call",
    ),
    (
        "batch_serving_busy_poll_gave_up_total",
        "busy polls that caught nothing",
    ),
    (
        "batch_serving_inline_batches_total",
        "batches run inline on a caller's thread",
    ),
    ("batch_serving_in_flight", "items in batches running now"),
    (
        "batch_serving_queue_depth",
        "items holding queue room at the latest batch start",
    ),
    ("batch_serving_batch_size", "items per batch"),
    (
        "batch_serving_queue_wait_seconds",
        "each item's wait from queueing to its batch's start",
    ),
    ("batch_serving_execution_seconds", "each batch's run time"),
];

/// Gives the recorder installed now the help text and unit of every
/// metric (once per serving start; describing again is harmless).
pub(crate) fn describe() {
    #[cfg(feature = "metrics")]
    for (name, help) in DESCRIPTIONS {
        if name.ends_with("_total") {
            metrics::describe_counter!(name, help);
        } else if matches!(
            name,
            "batch_serving_in_flight" | "batch_serving_queue_depth"
        ) {
            metrics::describe_gauge!(name, help);
        } else if name.ends_with("_seconds") {
            metrics::describe_histogram!(name, metrics::Unit::Seconds, help);
        } else {
            metrics::describe_histogram!(name, metrics::Unit::Count, help);
        }
    }
}
