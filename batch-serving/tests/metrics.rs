//! The `metrics` feature: what a serving reports through the facade, read
//! back with metrics-util's debugging recorder.

#![cfg(feature = "metrics")]
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::Duration;

use batch_serving::{Batch, CallOptions, Error, Serving};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tokio::sync::watch;

type Reading = (
    metrics_util::CompositeKey,
    Option<metrics::Unit>,
    Option<metrics::SharedString>,
    DebugValue,
);

/// name{labels} -> value, for the serving named "squares".
fn read_vec(snapshot: Vec<Reading>) -> HashMap<String, DebugValue> {
    snapshot
        .into_iter()
        .filter(|(key, ..)| {
            key.key()
                .labels()
                .any(|l| l.key() == "serving" && l.value() == "squares")
        })
        .map(|(key, _, _, value)| {
            let extra: Vec<String> = key
                .key()
                .labels()
                .filter(|l| l.key() != "serving")
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            let name = match extra.is_empty() {
                true => key.key().name().to_string(),
                false => format!("{}{{{}}}", key.key().name(), extra.join(",")),
            };
            (name, value)
        })
        .collect()
}

fn counter(values: &HashMap<String, DebugValue>, name: &str) -> u64 {
    match values.get(name) {
        Some(DebugValue::Counter(n)) => *n,
        other => panic!("{name}: {other:?}"),
    }
}

fn histogram(values: &HashMap<String, DebugValue>, name: &str) -> Vec<f64> {
    match values.get(name) {
        Some(DebugValue::Histogram(v)) => v.iter().map(|x| x.into_inner()).collect(),
        other => panic!("{name}: {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_serving_reports_batches_items_waits_and_outcomes_through_the_facade() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let (gate, watcher) = watch::channel(true);
    // Handles are registered at start, with the recorder in place then.
    let serving = metrics::with_local_recorder(&recorder, || {
        Serving::new_async(move |batch: Batch<u32>| {
            let mut watcher = watcher.clone();
            async move {
                let _ = watcher.wait_for(|open| *open).await;
                tokio::time::sleep(Duration::from_millis(3)).await;
                Ok::<_, String>(batch.iter().map(|x| x * x).collect())
            }
        })
        .name("squares")
        .batch_size(4)
        .queue_capacity(4)
        .batch_timeout(Duration::from_millis(10))
        .start()
        .unwrap()
    });
    // Two full batches, then one of three that waits for the timeout.
    assert_eq!(
        serving.dispatch_many((0..8).collect()).await.unwrap().len(),
        8
    );
    assert_eq!(
        serving.dispatch_many(vec![1, 2, 3]).await.unwrap(),
        [1, 4, 9]
    );
    // One call that expires in the queue behind a held batch, and one
    // refused at once when the queue is full.
    gate.send(false).unwrap();
    let held = tokio::spawn({
        let serving = serving.clone();
        async move { serving.dispatch_many(vec![5, 6, 7, 8]).await }
    });
    tokio::time::sleep(Duration::from_millis(1)).await;
    let late = serving
        .dispatch_with(9, CallOptions::new().timeout(Duration::from_millis(5)))
        .await;
    assert!(matches!(late, Err(Error::DeadlineExceeded)), "{late:?}");
    // Four more fill the queue (the held batch gave its room back when it
    // started), so the next call is refused at once.
    let fill: Vec<_> = (0..4)
        .map(|i| {
            let serving = serving.clone();
            tokio::spawn(async move { serving.try_dispatch(20 + i).await })
        })
        .collect();
    while serving.queued() < 4 {
        tokio::task::yield_now().await;
    }
    let refused = serving.try_dispatch_many(vec![30, 31]).await;
    assert!(
        matches!(refused, Err(Error::Overloaded { .. })),
        "{refused:?}"
    );
    gate.send(true).unwrap();
    held.await.unwrap().unwrap();
    for call in fill {
        call.await.unwrap().unwrap();
    }

    let snapshot = snapshotter.snapshot().into_vec();
    // Every metric has help text for the exporter's `# HELP` line, and the
    // times say they are in seconds.
    for (key, unit, help, _) in &snapshot {
        let name = key.key().name();
        assert!(
            help.as_ref().is_some_and(|h| !h.is_empty()),
            "{name} has no help text"
        );
        if name.ends_with("_seconds") {
            assert_eq!(*unit, Some(metrics::Unit::Seconds), "{name}");
        }
    }
    let values = read_vec(snapshot);
    assert_eq!(counter(&values, "batch_serving_batches_total"), 5);
    assert_eq!(counter(&values, "batch_serving_items_total"), 19);
    assert_eq!(counter(&values, "batch_serving_expired_total"), 1);
    assert_eq!(counter(&values, "batch_serving_rejected_total"), 1);
    assert_eq!(
        counter(&values, "batch_serving_batch_starts_total{reason=full}"),
        4
    );
    assert_eq!(
        counter(&values, "batch_serving_batch_starts_total{reason=timeout}"),
        1
    );
    let mut sizes = histogram(&values, "batch_serving_batch_size");
    sizes.sort_by(f64::total_cmp);
    assert_eq!(sizes, [3.0, 4.0, 4.0, 4.0, 4.0]);
    let executions = histogram(&values, "batch_serving_execution_seconds");
    assert_eq!(executions.len(), 5);
    // Execution is timed on the real clock, so only its count is checked.
    assert!(executions.iter().all(|s| s.is_finite() && *s >= 0.0));
    assert_eq!(
        histogram(&values, "batch_serving_queue_wait_seconds").len(),
        19
    );
    assert!(
        matches!(values.get("batch_serving_in_flight"), Some(DebugValue::Gauge(g)) if g.into_inner() == 0.0)
    );
    assert!(values.contains_key("batch_serving_queue_depth"));
    // The serving's own stats agree with what the facade saw.
    let stats = serving.stats();
    assert_eq!(
        (stats.batches, stats.items, stats.expired, stats.rejected),
        (5, 19, 1, 1)
    );
}
