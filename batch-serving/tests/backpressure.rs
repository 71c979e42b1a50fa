//! Backpressure: a bounded queue, waiting dispatch and fail-fast try_dispatch.

#![allow(clippy::unwrap_used)] // a panicking unwrap is the failure a test wants

mod support;

use batch_serving::{Error, Policy};
use support::{Behaviour, Fake};

#[tokio::test(start_paused = true)]
async fn try_dispatch_fails_fast_when_the_queue_is_full_and_dispatch_waits() {
    let fake = Fake::new();
    let serving = fake
        .builder()
        .batch_size(2)
        .queue_capacity(3)
        .policy(Policy::Eager)
        .start()
        .unwrap();
    let blocker = support::occupy_partition(&fake, &serving).await;
    let queued = tokio::spawn({
        let s = serving.clone();
        async move { s.dispatch_many(vec![1, 2, 3]).await }
    });
    support::until(|| serving.stats().queue_depth == 3).await;

    let refused = serving.try_dispatch(4).await;
    assert!(
        matches!(
            refused,
            Err(Error::Overloaded {
                requested: 1,
                capacity: 3
            })
        ),
        "{refused:?}"
    );
    assert!(matches!(
        serving.try_dispatch_many(vec![5; 4]).await,
        Err(Error::Overloaded { requested: 4, .. })
    ));

    let waiting = support::spawn_dispatch(&serving, 10);
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        serving.stats().queue_depth,
        3,
        "the waiting call is not queued beyond capacity"
    );
    assert!(!waiting.is_finished());

    fake.set(Behaviour::Ok);
    fake.gate.open();
    blocker.await.unwrap().unwrap();
    assert_eq!(queued.await.unwrap().unwrap(), vec![2, 3, 4]);
    assert_eq!(
        waiting.await.unwrap().unwrap(),
        11,
        "it got in once room freed"
    );
    assert_eq!(serving.stats().rejected, 2);
}

#[tokio::test(start_paused = true)]
async fn default_queue_is_bounded() {
    let fake = Fake::new();
    let serving = fake.builder().batch_size(8).start().unwrap();
    assert_eq!(
        serving.queue_capacity(),
        8 * batch_serving::DEFAULT_QUEUE_BATCHES
    );
}
