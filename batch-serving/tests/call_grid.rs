//! The call grid: every verb takes its modes as `CallOptions`, on `Serving`
//! and on `MappedServing` alike, and the semantics the docs state hold.

#![allow(clippy::unwrap_used)] // a panicking unwrap is the failure a test wants

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use batch_serving::{CallOptions, Error, Event, Policy, Priority, StartError};
use futures::StreamExt;
use support::Fake;

#[tokio::test(start_paused = true)]
async fn fail_fast_in_options_refuses_each_verb_on_a_full_queue() {
    let fake = Fake::new();
    let serving = fake
        .builder()
        .batch_size(1)
        .policy(Policy::Eager)
        .queue_capacity(1)
        .start()
        .unwrap();
    let running = support::occupy_partition(&fake, &serving).await;
    let queued = support::spawn_dispatch(&serving, 1);
    support::until(|| serving.stats().queue_depth == 1).await;
    let fast = CallOptions::new().fail_fast().priority(Priority::High);
    assert!(matches!(
        serving.dispatch_with(2, fast).await,
        Err(Error::Overloaded {
            requested: 1,
            capacity: 1
        })
    ));
    assert!(matches!(
        serving.dispatch_many_with(vec![3], fast).await,
        Err(Error::Overloaded { requested: 1, .. })
    ));
    let mut stream = serving.dispatch_stream_with(vec![4], fast);
    assert!(matches!(
        stream.next().await,
        Some(Err(Error::Overloaded { .. }))
    ));
    assert!(
        stream.next().await.is_none(),
        "the stream ends after its error"
    );
    assert_eq!(serving.stats().rejected, 3);
    fake.gate.open();
    assert_eq!(running.await.unwrap().unwrap(), 1);
    assert_eq!(queued.await.unwrap().unwrap(), 2);
    assert!(!fake.all_items().contains(&2), "refused items never ran");
}

#[tokio::test]
async fn a_fail_fast_many_item_call_larger_than_the_queue_is_refused_even_when_empty() {
    let fake = Fake::new();
    let serving = fake.builder().queue_capacity(4).start().unwrap();
    assert!(matches!(
        serving.try_dispatch_many(vec![1, 2, 3, 4, 5]).await,
        Err(Error::Overloaded {
            requested: 5,
            capacity: 4
        })
    ));
    // Waiting, the same call is admitted piece by piece.
    assert_eq!(
        serving.dispatch_many(vec![1, 2, 3, 4, 5]).await.unwrap(),
        vec![2, 3, 4, 5, 6]
    );
}

#[tokio::test]
async fn inline_batches_are_counted_apart_and_a_passed_deadline_runs_nothing() {
    let fake = Fake::new();
    let serving = fake.builder().batch_size(2).start().unwrap();
    assert_eq!(serving.inline_many(vec![1, 2, 3]).unwrap(), vec![2, 3, 4]);
    let stats = serving.stats();
    assert_eq!((stats.inline_batches, stats.batches), (2, 0));
    let past = CallOptions::new().deadline(tokio::time::Instant::now());
    assert!(matches!(
        serving.inline_many_with(vec![7], past),
        Err(Error::DeadlineExceeded)
    ));
    assert!(!fake.all_items().contains(&7));
    assert_eq!(serving.stats().expired, 1);
}

#[tokio::test]
async fn a_mapped_stream_post_processes_each_piece_and_admits_before_pre_processing() {
    let fake = Fake::new();
    let serving = fake
        .builder()
        .batch_size(2)
        .queue_capacity(3)
        .start()
        .unwrap();
    let prepared = Arc::new(AtomicUsize::new(0));
    let mapped = serving
        .clone()
        .map_inputs({
            let prepared = Arc::clone(&prepared);
            move |text: &str| {
                prepared.fetch_add(1, Ordering::SeqCst);
                text.parse::<u64>()
                    .map_err(|_| support::FakeError("not a number"))
            }
        })
        .map_results(|n| Ok(format!("={n}")));
    let mut outputs = vec![String::new(); 3];
    let mut events = mapped.dispatch_stream(vec!["1", "2", "3"]);
    while let Some(event) = events.next().await {
        if let Event::Output {
            offset,
            outputs: piece,
        } = event.unwrap()
        {
            for (i, out) in piece.into_iter().enumerate() {
                outputs[offset + i] = out;
            }
        }
    }
    assert_eq!(outputs, ["=2", "=3", "=4"]);
    assert_eq!(prepared.swap(0, Ordering::SeqCst), 3);

    let mut bad = mapped.dispatch_stream(vec!["1", "x"]);
    assert!(matches!(bad.next().await, Some(Err(Error::Preprocess(_)))));
    assert!(bad.next().await.is_none());
    assert_eq!(
        serving.stats().queue_depth,
        0,
        "a refused input gives its room back"
    );

    // Larger than the queue under fail-fast: refused before any input is
    // pre-processed.
    prepared.store(0, Ordering::SeqCst);
    let mut refused =
        mapped.dispatch_stream_with(vec!["1", "2", "3", "4"], CallOptions::new().fail_fast());
    assert!(matches!(
        refused.next().await,
        Some(Err(Error::Overloaded { .. }))
    ));
    assert_eq!(prepared.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_reserved_stream_dropped_unpolled_loses_no_room() {
    let fake = Fake::new();
    let serving = fake.builder().queue_capacity(2).start().unwrap();
    let room = serving.try_reserve(2).unwrap();
    let stream = room.dispatch_stream(vec![5, 6]);
    drop(stream); // never polled: its items were queued, then abandoned
    support::until(|| serving.stats().queue_depth == 0).await;
    assert_eq!(serving.dispatch_many(vec![1, 2]).await.unwrap(), vec![2, 3]);
}

#[tokio::test]
async fn mapped_one_item_verbs_take_every_option() {
    let fake = Fake::new();
    let mapped = fake
        .builder()
        .start()
        .unwrap()
        .map_results(|n: u64| Ok(n * 10));
    let options = CallOptions::new()
        .timeout(Duration::from_secs(5))
        .priority(Priority::Low);
    assert_eq!(mapped.dispatch_with(1, options).await.unwrap(), 20);
    assert_eq!(mapped.try_dispatch(2).await.unwrap(), 30);
    assert_eq!(
        mapped.try_dispatch_many(vec![3, 4]).await.unwrap(),
        vec![40, 50]
    );
    assert_eq!(mapped.inline_with(5, options).unwrap(), 60);
}

#[test]
fn a_start_error_is_a_std_error_whatever_the_function_error_is() {
    fn is_error<T: std::error::Error>() {}
    is_error::<StartError<String>>();
    is_error::<StartError<support::FakeError>>();
    let error: StartError<String> = StartError::PartitionStart {
        partition: 1,
        error: "no gpu".to_owned(),
    };
    assert_eq!(error.to_string(), "partition 1 failed to start: no gpu");
}
