//! The servers' `/metrics`: every serving reports through the `metrics`
//! facade (the core's `metrics` feature), and the facade's Prometheus
//! exporter renders what they reported. Nothing of the exposition format is
//! written here; [`read_metric`] only reads a scrape back for the load
//! tester and the tests.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Batch sizes as histogram buckets: powers of two up to 1024.
const BATCH_SIZE_BUCKETS: [f64; 11] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// Times as histogram buckets, in seconds: 50 µs to 10 s, about three per
/// decade, which covers a cheap lookup and a large model alike.
const SECONDS_BUCKETS: [f64; 16] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 10.0,
];

/// How often histogram samples are folded into their buckets when nobody
/// scrapes, so that an unscraped server's memory stays flat.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

static EXPORTER: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's Prometheus exporter, installed as the global recorder on
/// first use. Servings register their metrics when they start, so call
/// this before starting them (the examples' `start` functions do).
///
/// When another recorder was installed first, the handle renders an empty
/// registry and a warning says why.
pub fn exporter() -> &'static PrometheusHandle {
    EXPORTER.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("batch_serving_batch_size".to_owned()),
                &BATCH_SIZE_BUCKETS,
            )
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), &SECONDS_BUCKETS)
            });
        let builder = match builder {
            Ok(builder) => builder,
            Err(error) => unreachable!("the bucket lists are not empty: {error}"),
        };
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if let Err(error) = metrics::set_global_recorder(recorder) {
            tracing::warn!(%error, "another metrics recorder is installed; /metrics stays empty");
        }
        let upkeep = handle.clone();
        let _ = std::thread::Builder::new()
            .name("metrics-upkeep".to_owned())
            .spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                }
            });
        handle
    })
}

/// The sum of every series called `name` in Prometheus text, whatever its
/// labels; `None` when there is none.
pub fn read_metric(text: &str, name: &str) -> Option<f64> {
    read_series(text, name, |_| true)
}

/// The value of `name` for the serving named `serving` (its `serving`
/// label), summed over any other labels.
pub fn read_metric_for(text: &str, name: &str, serving: &str) -> Option<f64> {
    let label = format!("serving=\"{serving}\"");
    read_series(text, name, |labels| {
        labels.split(',').any(|l| l.trim() == label)
    })
}

fn read_series(text: &str, name: &str, wanted: impl Fn(&str) -> bool) -> Option<f64> {
    let mut total = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (labels, value) = match rest.strip_prefix('{') {
            Some(rest) => match rest.split_once("} ") {
                Some((labels, value)) => (labels, value),
                None => continue,
            },
            None => match rest.strip_prefix(' ') {
                Some(value) => ("", value),
                None => continue,
            },
        };
        if let (true, Ok(value)) = (wanted(labels), value.trim().parse::<f64>()) {
            *total.get_or_insert(0.0) += value;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRAPE: &str = "# TYPE batch_serving_items_total counter\n\
        batch_serving_items_total{serving=\"a\"} 3\n\
        batch_serving_items_total{serving=\"b\"} 4\n\
        batch_serving_items_total_extra 100\n\
        batch_serving_batch_starts_total{serving=\"a\",reason=\"full\"} 2\n\
        batch_serving_batch_starts_total{serving=\"a\",reason=\"eager\"} 5\n";

    #[test]
    fn series_are_summed_over_labels_and_picked_by_serving() {
        assert_eq!(read_metric(SCRAPE, "batch_serving_items_total"), Some(7.0));
        assert_eq!(
            read_metric_for(SCRAPE, "batch_serving_items_total", "b"),
            Some(4.0)
        );
        assert_eq!(
            read_metric_for(SCRAPE, "batch_serving_batch_starts_total", "a"),
            Some(7.0)
        );
        assert_eq!(read_metric(SCRAPE, "batch_serving_batches_total"), None);
        assert_eq!(
            read_metric_for(SCRAPE, "batch_serving_items_total", "c"),
            None
        );
    }
}
