//! Cancellation and deadlines: abandoned items never run, and a deadline
//! fires at the deadline, not when the running batch ends.

#![allow(clippy::unwrap_used)] // a panicking unwrap is the failure a test wants

mod support;

use std::time::Duration;

use batch_serving::{CallOptions, Error, Policy};
use support::{Behaviour, Fake};
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn dropped_call_is_removed_before_its_batch_starts() {
    let fake = Fake::new();
    let serving = fake
        .builder()
        .batch_size(4)
        .policy(Policy::Eager)
        .start()
        .unwrap();
    let blocker = support::occupy_partition(&fake, &serving).await;
    let doomed = tokio::spawn({
        let s = serving.clone();
        async move { s.dispatch_many(vec![66, 67]).await }
    });
    let kept = support::spawn_dispatch(&serving, 5);
    support::until(|| serving.stats().queue_depth == 3).await;
    doomed.abort();
    assert!(doomed.await.unwrap_err().is_cancelled());
    fake.set(Behaviour::Ok);
    fake.gate.open();
    blocker.await.unwrap().unwrap();
    assert_eq!(kept.await.unwrap().unwrap(), 6);
    assert!(
        !fake.all_items().contains(&66) && !fake.all_items().contains(&67),
        "{:?}",
        fake.recorded()
    );
    assert_eq!(serving.stats().cancelled, 1);
}

#[tokio::test(start_paused = true)]
async fn a_call_cancelled_while_its_batch_waits_pipelined_never_runs() {
    let fake = Fake::new();
    let serving = fake
        .builder()
        .batch_size(2)
        .policy(Policy::Eager)
        .start()
        .unwrap();
    let blocker = support::occupy_partition(&fake, &serving).await;
    // Two items fill a batch, which is handed ahead to the busy partition.
    let doomed = support::spawn_dispatch(&serving, 66);
    let kept = support::spawn_dispatch(&serving, 7);
    support::until(|| serving.stats().queue_depth == 2).await;
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    doomed.abort();
    assert!(doomed.await.unwrap_err().is_cancelled());
    fake.set(Behaviour::Ok);
    fake.gate.open();
    blocker.await.unwrap().unwrap();
    assert_eq!(kept.await.unwrap().unwrap(), 8);
    assert_eq!(fake.recorded()[1..], [vec![7]], "{:?}", fake.recorded());
    assert_eq!(serving.stats().cancelled, 1);
}

#[tokio::test(start_paused = true)]
async fn deadline_fails_a_queued_call_at_the_deadline_while_a_batch_still_runs() {
    let fake = Fake::new();
    let serving = fake
        .builder()
        .batch_size(4)
        .policy(Policy::Eager)
        .start()
        .unwrap();
    let blocker = support::occupy_partition(&fake, &serving).await;
    // The blocked batch holds the paused clock (feature `test-util`), so
    // the test moves time itself.
    let start = Instant::now();
    let call = tokio::spawn({
        let s = serving.clone();
        async move {
            s.dispatch_with(9, CallOptions::new().timeout(Duration::from_millis(50)))
                .await
        }
    });
    support::until(|| serving.stats().queue_depth == 1).await;
    tokio::time::advance(Duration::from_millis(49)).await;
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(!call.is_finished(), "answered before the deadline");
    tokio::time::advance(Duration::from_millis(1)).await;
    let result = call.await.unwrap();
    assert!(matches!(result, Err(Error::DeadlineExceeded)), "{result:?}");
    assert_eq!(
        start.elapsed(),
        Duration::from_millis(50),
        "answered at the deadline"
    );
    assert_eq!(
        serving.stats().in_flight,
        1,
        "the running batch has not ended"
    );
    fake.set(Behaviour::Ok);
    fake.gate.open();
    blocker.await.unwrap().unwrap();
    assert_eq!(serving.dispatch(1).await.unwrap(), 2);
    assert!(
        !fake.all_items().contains(&9),
        "expired item ran: {:?}",
        fake.recorded()
    );
    assert_eq!(serving.stats().expired, 1);
}

#[tokio::test(start_paused = true)]
async fn a_deadline_already_past_fails_without_queueing() {
    let fake = Fake::new();
    let serving = fake.builder().start().unwrap();
    let past = Instant::now();
    tokio::time::advance(Duration::from_millis(1)).await;
    let result = serving
        .dispatch_many_with(vec![1, 2], CallOptions::new().deadline(past))
        .await;
    assert!(matches!(result, Err(Error::DeadlineExceeded)));
    assert_eq!(serving.stats().queue_depth, 0);
}

#[tokio::test(start_paused = true)]
async fn a_call_that_meets_its_deadline_gets_its_outputs() {
    let fake = Fake::new();
    let serving = fake
        .builder()
        .batch_timeout(Duration::from_millis(5))
        .start()
        .unwrap();
    let result = serving
        .dispatch_many_with(
            vec![1, 2, 3],
            CallOptions::new().timeout(Duration::from_millis(20)),
        )
        .await;
    assert_eq!(result.unwrap(), vec![2, 3, 4]);
}
