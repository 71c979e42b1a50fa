//! The tower integration: backpressure through `poll_ready`, a permit that
//! is dropped before its `call`, the inner service's errors through the
//! batching layer, and composition with tower's own layers.

#![cfg(feature = "tower")]
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use batch_serving::tower::BatchLayer;
use batch_serving::{Batch, CallOptions, Error, Serving};
use futures::FutureExt;

use tokio::sync::watch;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

/// A serving of two places whose batches wait for the gate.
fn gated(capacity: usize) -> (Serving<u32, u32, String>, watch::Sender<bool>) {
    let (gate, watcher) = watch::channel(false);
    let serving = Serving::new_async(move |batch: Batch<u32>| {
        let mut watcher = watcher.clone();
        async move {
            let _ = watcher.wait_for(|open| *open).await;
            Ok::<_, String>(batch.iter().map(|x| x + 1).collect())
        }
    })
    .batch_size(1)
    .queue_capacity(capacity)
    .start()
    .unwrap();
    (serving, gate)
}

#[tokio::test(start_paused = true)]
async fn poll_ready_waits_for_queue_room_and_a_dropped_permit_gives_it_back() {
    let (serving, gate) = gated(2);
    // Two services take the two places through poll_ready.
    let mut first = serving.service();
    let mut second = serving.service();
    first.ready().await.unwrap();
    second.ready().await.unwrap();
    assert_eq!(serving.queued(), 2, "ready permits hold their room");
    // A third is not ready while both are held.
    let mut third = serving.service();
    assert!(
        third.ready().now_or_never().is_none(),
        "no room, so not ready"
    );
    // The second permit's call never comes: dropping it gives the room back
    // (tower-batch-control leaks it), straight to the third, which waited.
    drop(second);
    assert!(
        third.ready().now_or_never().is_some(),
        "the freed room went to the waiter"
    );
    assert_eq!(serving.queued(), 2);
    // With no one waiting, a dropped ready service leaves the queue empty.
    let mut idle = serving.service();
    drop(first.clone());
    let mut spare = serving.service();
    assert!(spare.ready().now_or_never().is_none());
    drop(spare);
    assert!(idle.ready().now_or_never().is_none());
    drop(idle);
    assert_eq!(
        serving.queued(),
        2,
        "pending waiters that gave up hold nothing"
    );
    let calls = [first.call(1), third.call(2)];
    gate.send(true).unwrap();
    let outputs: Vec<u32> = futures::future::try_join_all(calls).await.unwrap();
    assert_eq!(outputs, [2, 3]);
    assert_eq!(serving.queued(), 0);
    // A ready permit dropped with nobody waiting gives its room back.
    let mut lone = serving.service();
    lone.ready().await.unwrap();
    assert_eq!(serving.queued(), 1);
    drop(lone);
    assert_eq!(serving.queued(), 0);
}

#[tokio::test(start_paused = true)]
async fn fail_fast_options_make_poll_ready_fail_at_once_when_full() {
    let (serving, gate) = gated(1);
    let mut holder = serving.service();
    holder.ready().await.unwrap();
    let mut impatient = serving.service_with(CallOptions::new().fail_fast());
    let error = impatient.ready().await.unwrap_err();
    assert!(matches!(error, Error::Overloaded { .. }), "{error:?}");
    gate.send(true).unwrap();
    assert_eq!(holder.call(9).await.unwrap(), 10);
    // With room again, the same service is ready.
    assert_eq!(impatient.ready().await.unwrap().call(1).await.unwrap(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_layer_batches_callers_into_one_inner_call_and_each_gets_its_own_output() {
    let seen: Arc<Mutex<Vec<usize>>> = Arc::default();
    let record = Arc::clone(&seen);
    let inner = service_fn(move |words: Vec<String>| {
        record.lock().unwrap().push(words.len());
        async move { Ok::<_, String>(words.iter().map(String::len).collect::<Vec<_>>()) }
    });
    let batched = ServiceBuilder::new()
        .layer(BatchLayer::new(|core| {
            core.batch_size(8).batch_timeout(Duration::from_millis(5))
        }))
        .service(inner);
    let words = ["a", "bb", "ccc", "dddd", "eeeee", "ffffff", "g", "hh"];
    let calls = words.iter().map(|w| batched.clone().oneshot(w.to_string()));
    let lengths = futures::future::try_join_all(calls).await.unwrap();
    assert_eq!(lengths, [1, 2, 3, 4, 5, 6, 1, 2]);
    assert_eq!(*seen.lock().unwrap(), [8], "eight callers, one inner call");
}

#[tokio::test(start_paused = true)]
async fn the_inner_services_error_reaches_that_batch_only() {
    let inner = service_fn(|items: Vec<u32>| async move {
        if items.contains(&13) {
            Err("unlucky batch".to_string())
        } else {
            Ok(items.iter().map(|x| x * 10).collect::<Vec<_>>())
        }
    });
    let batched =
        BatchLayer::new(|core| core.batch_size(2).batch_timeout(Duration::from_millis(1)))
            .try_layer(inner)
            .unwrap();
    let (a, b) = tokio::join!(batched.clone().oneshot(12), batched.clone().oneshot(13));
    for result in [a, b] {
        assert!(
            matches!(&result, Err(Error::Batch(e)) if **e == "unlucky batch"),
            "{result:?}"
        );
    }
    assert_eq!(
        batched.clone().oneshot(4).await.unwrap(),
        40,
        "later batches are unaffected"
    );
    // An inner service that answers with the wrong count fails its batch.
    let short = service_fn(|_: Vec<u32>| async { Ok::<_, String>(vec![1]) });
    let batched =
        BatchLayer::new(|core| core.batch_size(2).batch_timeout(Duration::from_millis(1)))
            .try_layer(short)
            .unwrap();
    let (a, b) = tokio::join!(batched.clone().oneshot(1), batched.clone().oneshot(2));
    assert!(
        matches!(
            a,
            Err(Error::WrongOutputCount {
                expected: 2,
                actual: 1
            })
        ),
        "{a:?}"
    );
    assert!(b.is_err());
}

#[tokio::test(start_paused = true)]
async fn it_composes_with_timeout_and_concurrency_limit() {
    let (serving, gate) = gated(8);
    let mut service = ServiceBuilder::new()
        .timeout(Duration::from_millis(50))
        .concurrency_limit(4)
        .service(serving.service());
    // The gate is shut: the call times out at 50 ms of virtual time (its
    // batch runs on without a caller).
    let error = service.ready().await.unwrap().call(1).await.unwrap_err();
    assert!(error.is::<tower::timeout::error::Elapsed>(), "{error}");
    tokio::time::sleep(Duration::from_millis(1)).await;
    gate.send(true).unwrap();
    assert_eq!(service.ready().await.unwrap().call(2).await.unwrap(), 3);
    let calls: Vec<_> = (0..6).map(|i| service.clone().oneshot(i)).collect();
    let outputs = futures::future::try_join_all(calls).await.unwrap();
    assert_eq!(outputs, [1, 2, 3, 4, 5, 6]);
}

#[tokio::test(start_paused = true)]
async fn call_without_poll_ready_still_answers() {
    let serving = Serving::new(|b: Batch<u32>| Ok::<_, String>(b.to_vec()))
        .start()
        .unwrap();
    let mut service = serving.service();
    assert_eq!(service.call(5).await.unwrap(), 5);
}

/// Issue 32, defect 6 through tower: a service made ready before a shutdown
/// and called after it fails with `Closed` and gives its room back.
#[tokio::test(start_paused = true)]
async fn a_ready_service_called_after_shutdown_gives_its_room_back() {
    let (serving, gate) = gated(4);
    let mut service = serving.service();
    service.ready().await.unwrap();
    assert_eq!(serving.queued(), 1);
    gate.send_replace(true);
    serving.shutdown().await;
    assert!(matches!(service.call(1).await, Err(Error::Closed)));
    assert_eq!(serving.queued(), 0, "room leaked after shutdown");
}
