//! Observability: the batch span's fields and links, and the stats
//! percentiles, on virtual time.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use batch_serving::{Batch, Serving};
use tracing::Instrument;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

#[derive(Debug, Default, Clone)]
struct SpanRecord {
    name: &'static str,
    fields: HashMap<String, String>,
    follows_from: Vec<u64>,
}

/// Records every span's fields, later `record`s and follows-from links.
#[derive(Debug, Default, Clone)]
struct Captured(Arc<Mutex<HashMap<u64, SpanRecord>>>);

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: tracing::Subscriber> Layer<S> for Captured {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let mut record = SpanRecord {
            name: attrs.metadata().name(),
            ..SpanRecord::default()
        };
        attrs.record(&mut Fields(&mut record.fields));
        self.0.lock().unwrap().insert(id.into_u64(), record);
    }
    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        if let Some(record) = self.0.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(&mut Fields(&mut record.fields));
        }
    }
    fn on_follows_from(&self, span: &Id, follows: &Id, _: Context<'_, S>) {
        if let Some(record) = self.0.lock().unwrap().get_mut(&span.into_u64()) {
            record.follows_from.push(follows.into_u64());
        }
    }
}

fn echo(batch_size: usize) -> Serving<u64, u64, Infallible> {
    Serving::new(|b: Batch<u64>| Ok::<_, Infallible>(b.to_vec()))
        .batch_size(batch_size)
        .batch_timeout(Duration::from_millis(10))
        .start()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn each_batch_has_a_span_with_its_fields_linked_to_the_callers_spans() {
    let captured = Captured::default();
    let _default =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(captured.clone()));
    let serving = echo(2);
    let first = tracing::info_span!("request", id = 1);
    let second = tracing::info_span!("request", id = 2);
    let (a, b) = tokio::join!(
        serving.dispatch(1).instrument(first.clone()),
        serving.dispatch(2).instrument(second.clone())
    );
    assert_eq!((a.unwrap(), b.unwrap()), (1, 2));
    serving.shutdown().await;

    let spans = captured.0.lock().unwrap().clone();
    let batches: Vec<&SpanRecord> = spans.values().filter(|s| s.name == "batch").collect();
    assert_eq!(batches.len(), 1, "{spans:#?}");
    let batch = batches[0];
    for (field, value) in [
        ("size", "2"),
        ("reason", "full"),
        ("partition", "0"),
        ("key", "0"),
        ("queue_wait_us", "0"),
    ] {
        assert_eq!(
            batch.fields.get(field).map(String::as_str),
            Some(value),
            "{field} in {batch:?}"
        );
    }
    assert!(
        batch
            .fields
            .get("exec_us")
            .is_some_and(|v| v.parse::<u64>().is_ok()),
        "exec_us recorded: {batch:?}"
    );
    let mut links = batch.follows_from.clone();
    links.sort_unstable();
    let mut callers = vec![
        first.id().unwrap().into_u64(),
        second.id().unwrap().into_u64(),
    ];
    callers.sort_unstable();
    assert_eq!(links, callers, "the batch follows from both callers' spans");
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_batch_span_says_timeout_and_its_queue_wait() {
    let captured = Captured::default();
    let _default =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(captured.clone()));
    let serving = echo(8);
    assert_eq!(serving.dispatch(5).await.unwrap(), 5);
    serving.shutdown().await;
    let spans = captured.0.lock().unwrap().clone();
    let batch = spans.values().find(|s| s.name == "batch").unwrap();
    assert_eq!(
        batch.fields.get("reason").map(String::as_str),
        Some("timeout")
    );
    assert_eq!(
        batch.fields.get("queue_wait_us").map(String::as_str),
        Some("10000")
    );
}

fn within(actual: Duration, expected: Duration) -> bool {
    // The histogram keeps 16 sub-buckets per power of two: 1/16 precision.
    actual.abs_diff(expected) <= expected / 16
}

#[tokio::test(start_paused = true)]
async fn stats_report_queue_wait_percentiles_and_counts() {
    let serving = echo(100);
    let mut calls = Vec::new();
    // Items arrive 1 ms apart; the batch starts at 10 ms, so they waited
    // 10, 9, …, 1 ms.
    for i in 0..10u64 {
        let serving = serving.clone();
        calls.push(tokio::spawn(async move { serving.dispatch(i).await }));
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    for call in calls {
        call.await.unwrap().unwrap();
    }
    let stats = serving.stats();
    assert_eq!((stats.batches, stats.items), (1, 10));
    assert_eq!(stats.mean_batch_size, 10.0);
    assert_eq!(stats.utilisation, 0.1);
    assert_eq!(stats.queue_wait.count, 10);
    assert_eq!(stats.queue_wait.max, Duration::from_millis(10));
    assert!(
        within(stats.queue_wait.p50, Duration::from_millis(5)),
        "{:?}",
        stats.queue_wait
    );
    assert!(
        within(stats.queue_wait.p90, Duration::from_millis(9)),
        "{:?}",
        stats.queue_wait
    );
    assert_eq!(stats.execution.count, 1);
    assert!(stats.execution.p50 <= stats.execution.max);
    assert_eq!((stats.queue_depth, stats.in_flight), (0, 0));
}
