//! Observability: the batch span's fields and links, and the stats
//! percentiles, on virtual time.

#![allow(clippy::unwrap_used)]

mod support;

use std::convert::Infallible;
use std::time::Duration;

use batch_serving::{Batch, Serving};
use support::spans::{Captured, SpanRecord};
use tracing::Instrument;

fn echo(batch_size: usize) -> Serving<u64, u64, Infallible> {
    Serving::new(|b: Batch<u64>| Ok::<_, Infallible>(b.to_vec()))
        .batch_size(batch_size)
        .batch_timeout(Duration::from_millis(10))
        .start()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn each_batch_has_a_span_with_its_fields_linked_to_the_callers_spans() {
    let captured = Captured::install();
    let serving = echo(2);
    let first = tracing::info_span!("request", id = 1);
    let second = tracing::info_span!("request", id = 2);
    let (a, b) = tokio::join!(
        serving.dispatch(1).instrument(first.clone()),
        serving.dispatch(2).instrument(second.clone())
    );
    assert_eq!((a.unwrap(), b.unwrap()), (1, 2));
    serving.shutdown().await;

    let spans = captured.all();
    let batches: Vec<&SpanRecord> = spans.iter().filter(|s| s.name == "batch").collect();
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
    let captured = Captured::install();
    let serving = echo(8);
    assert_eq!(serving.dispatch(5).await.unwrap(), 5);
    serving.shutdown().await;
    let batch = captured.in_order("batch").remove(0);
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

/// Issue 32, defect 4: a batch handed to a busy partition ahead of time,
/// whose calls all expire before it starts, never runs, so it is neither a
/// batch nor a start, and its items add no queue wait.
#[tokio::test(start_paused = true)]
async fn a_batch_handed_ahead_whose_calls_all_left_is_not_a_start() {
    use batch_serving::{CallOptions, Error};
    let fake = support::Fake::new();
    let serving = fake
        .builder()
        .batch_size(4)
        .policy(batch_serving::Policy::Eager)
        .start()
        .unwrap();
    let blocker = support::occupy_partition(&fake, &serving).await;
    let late = CallOptions::new().timeout(Duration::from_millis(10));
    let calls: Vec<_> = (1..=2)
        .map(|x| {
            let serving = serving.clone();
            tokio::spawn(async move { serving.dispatch_with(x, late).await })
        })
        .collect();
    support::until(|| serving.queued() == 2).await;
    // The blocked batch holds the paused clock still: move it by hand.
    tokio::time::advance(Duration::from_millis(20)).await;
    for call in calls {
        assert!(matches!(call.await.unwrap(), Err(Error::DeadlineExceeded)));
    }
    fake.gate.open();
    assert_eq!(blocker.await.unwrap().unwrap(), 1);
    serving.shutdown().await;
    let stats = serving.stats();
    let s = stats.starts;
    assert_eq!(stats.batches, 1, "{stats:?}");
    assert_eq!(
        s.full + s.timeout + s.eager + s.drain + s.waited + s.capped,
        1,
        "{stats:?}"
    );
    assert_eq!(stats.queue_wait.count, 1, "{stats:?}");
    assert_eq!(fake.recorded(), vec![vec![0]]);
}

/// Triton's statistics report batches per size and total times: the
/// snapshot gives both, exactly, on the paused clock.
#[tokio::test(start_paused = true)]
async fn stats_count_batches_per_size_and_add_up_their_times() {
    let serving = batch_serving::Serving::new_async(|batch: batch_serving::Batch<u32>| {
        // 1 ms per batch plus 1 ms per item.
        let took = std::time::Duration::from_millis(1 + batch.len() as u64);
        let outputs = batch.to_vec();
        async move {
            tokio::time::sleep(took).await;
            Ok::<_, std::convert::Infallible>(outputs)
        }
    })
    .batch_size(2)
    .policy(batch_serving::Policy::Eager)
    .start()
    .unwrap();
    assert_eq!(
        serving.dispatch_many(vec![1, 2, 3]).await.unwrap(),
        [1, 2, 3]
    );
    let stats = serving.stats();
    let sizes: Vec<(usize, u64, std::time::Duration)> = stats
        .batch_sizes
        .iter()
        .map(|b| (b.size, b.batches, b.execution))
        .collect();
    let ms = std::time::Duration::from_millis;
    assert_eq!(sizes, [(1, 1, ms(2)), (2, 1, ms(3))]);
    assert_eq!(stats.execution.total, ms(5));
    assert_eq!(stats.answered, 1);
    assert_eq!(serving.policy(), batch_serving::Policy::Eager);
    assert_eq!(
        serving.batch_timeout(),
        batch_serving::DEFAULT_BATCH_TIMEOUT
    );
    serving.shutdown().await;
}
