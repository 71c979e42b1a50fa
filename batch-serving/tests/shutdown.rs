//! Shutdown: queued work runs to completion; a time limit fails what is left.

#![allow(clippy::unwrap_used)] // a panicking unwrap is the failure a test wants

mod support;

use std::time::Duration;

use batch_serving::{Error, Policy, ShutdownTimedOut};
use support::Fake;

#[tokio::test(start_paused = true)]
async fn shutdown_runs_everything_already_queued() {
    let fake = Fake::new();
    let serving = fake
        .builder()
        .batch_size(2)
        .batch_timeout(Duration::from_secs(60))
        .start()
        .unwrap();
    let calls: Vec<_> = (0..5)
        .map(|i| {
            let s = serving.clone();
            tokio::spawn(async move { s.dispatch(i).await })
        })
        .collect();
    support::until(|| serving.stats().queue_depth + serving.stats().items == 5).await;
    serving.shutdown().await;
    for (i, call) in calls.into_iter().enumerate() {
        assert_eq!(
            call.await.unwrap().unwrap(),
            i as u64 + 1,
            "nothing queued is lost"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn dropping_the_last_handle_drains() {
    let fake = Fake::new();
    let serving = fake
        .builder()
        .batch_size(8)
        .batch_timeout(Duration::from_secs(60))
        .start()
        .unwrap();
    let call = tokio::spawn({
        let s = serving.clone();
        async move { s.dispatch_many(vec![1, 2, 3]).await }
    });
    support::until(|| serving.stats().queue_depth == 3).await;
    drop(serving);
    assert_eq!(call.await.unwrap().unwrap(), vec![2, 3, 4]);
}

#[tokio::test(start_paused = true)]
async fn shutdown_time_limit_fails_queued_calls_and_waits_for_the_running_batch() {
    let fake = Fake::new();
    let serving = fake
        .builder()
        .batch_size(1)
        .policy(Policy::Eager)
        .start()
        .unwrap();
    let running = support::occupy_partition(&fake, &serving).await;
    let queued = support::spawn_dispatch(&serving, 1);
    support::until(|| serving.stats().queue_depth == 1).await;
    let stopping = tokio::spawn({
        let s = serving.clone();
        async move { s.shutdown_timeout(Duration::from_millis(10)).await }
    });
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    tokio::time::advance(Duration::from_millis(10)).await;
    assert!(matches!(queued.await.unwrap(), Err(Error::Closed)));
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(
        !stopping.is_finished(),
        "the limit bounds the queue, not the running batch: shutdown waits for it"
    );
    fake.gate.open();
    assert_eq!(
        running.await.unwrap().unwrap(),
        1,
        "the running batch finished"
    );
    assert!(matches!(stopping.await.unwrap(), Err(ShutdownTimedOut)));
}

/// Issue 32, defect 6: reservations spent after a shutdown fail with
/// `Closed` and give their room back, whichever verb spends them.
#[tokio::test(start_paused = true)]
async fn reservations_spent_after_shutdown_give_their_room_back() {
    use futures::StreamExt;
    let fake = Fake::new();
    let serving = fake.builder().queue_capacity(4).start().unwrap();
    let one = serving.try_reserve(1).unwrap();
    let two = serving.try_reserve(2).unwrap();
    let streamed = serving.try_reserve(1).unwrap();
    assert_eq!(serving.queued(), 4);
    serving.shutdown().await;
    assert!(matches!(one.dispatch(1).await, Err(Error::Closed)));
    assert!(matches!(
        two.dispatch_many(vec![2, 3]).await,
        Err(Error::Closed)
    ));
    let events: Vec<_> = streamed.dispatch_stream(vec![4]).collect().await;
    assert!(
        matches!(events.as_slice(), [Err(Error::Closed)]),
        "{events:?}"
    );
    assert_eq!(serving.queued(), 0, "room leaked after shutdown");
    assert_eq!(serving.stats().queue_depth, 0);
    assert!(fake.all_items().is_empty());
}
