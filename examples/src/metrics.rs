//! A serving's [`Stats`] in the Prometheus text exposition format.

use std::fmt::Write;

use batch_serving::Stats;

/// Renders `stats` as Prometheus metrics named `batch_serving_*`.
pub fn prometheus(stats: &Stats) -> String {
    let mut out = String::new();
    let counters = [
        ("batches_total", "batches run", stats.batches),
        ("items_total", "items run", stats.items),
        (
            "cancelled_total",
            "items cancelled before their batch started",
            stats.cancelled,
        ),
        (
            "expired_total",
            "items whose deadline passed in the queue",
            stats.expired,
        ),
        (
            "rejected_total",
            "calls refused as overloaded",
            stats.rejected,
        ),
        (
            "failed_total",
            "batches whose function returned an error",
            stats.failed,
        ),
        (
            "panicked_total",
            "batches whose function panicked",
            stats.panicked,
        ),
    ];
    for (name, help, value) in counters {
        let _ = writeln!(
            out,
            "# HELP batch_serving_{name} {help}\n# TYPE batch_serving_{name} counter\nbatch_serving_{name} {value}"
        );
    }
    let gauges = [
        (
            "queue_depth",
            "items waiting in the queue",
            stats.queue_depth as f64,
        ),
        (
            "in_flight",
            "items in running batches",
            stats.in_flight as f64,
        ),
        (
            "mean_batch_size",
            "mean items per batch",
            stats.mean_batch_size,
        ),
        (
            "utilisation",
            "mean batch size over batch_size",
            stats.utilisation,
        ),
    ];
    for (name, help, value) in gauges {
        let _ = writeln!(
            out,
            "# HELP batch_serving_{name} {help}\n# TYPE batch_serving_{name} gauge\nbatch_serving_{name} {value}"
        );
    }
    for (name, help, p) in [
        (
            "queue_wait_seconds",
            "time from enqueue to batch start",
            &stats.queue_wait,
        ),
        (
            "execution_seconds",
            "batch function run time",
            &stats.execution,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP batch_serving_{name} {help}\n# TYPE batch_serving_{name} summary"
        );
        for (quantile, value) in [
            ("0.5", p.p50),
            ("0.9", p.p90),
            ("0.99", p.p99),
            ("1", p.max),
        ] {
            let _ = writeln!(
                out,
                "batch_serving_{name}{{quantile=\"{quantile}\"}} {}",
                value.as_secs_f64()
            );
        }
        let _ = writeln!(out, "batch_serving_{name}_count {}", p.count);
    }
    out
}

/// Reads one metric's value back from Prometheus text (for the load tester).
pub fn read_metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        line.strip_prefix(name)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_summaries_round_trip() {
        let mut stats = Stats::default();
        (stats.batches, stats.items) = (3, 7);
        let text = prometheus(&stats);
        assert_eq!(read_metric(&text, "batch_serving_batches_total"), Some(3.0));
        assert_eq!(read_metric(&text, "batch_serving_items_total"), Some(7.0));
        assert!(text.contains("batch_serving_execution_seconds{quantile=\"0.99\"}"));
        assert!(
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .all(|l| l.split(' ').count() == 2),
            "{text}"
        );
    }
}
