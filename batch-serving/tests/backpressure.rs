//! Backpressure: a bounded queue, waiting dispatch and fail-fast try_dispatch.

#![allow(clippy::unwrap_used)] // a panicking unwrap is the failure a test wants

mod support;

use batch_serving::{Batch, Error, Policy, Serving};
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

/// Every in-flight call carries its future: a deadline's timer or a full
/// queue's wait must not make every call's future large (it was 680 bytes
/// before they were boxed off the common path).
#[tokio::test]
async fn a_plain_dispatch_future_stays_small() {
    let serving = Serving::new(|b: Batch<u64>| Ok::<_, std::convert::Infallible>(b.to_vec()))
        .start()
        .unwrap();
    let call = serving.dispatch(1);
    assert!(
        std::mem::size_of_val(&call) <= 192,
        "dispatch future is {} bytes",
        std::mem::size_of_val(&call)
    );
    let many = serving.dispatch_many(vec![1]);
    assert!(
        std::mem::size_of_val(&many) <= 512,
        "dispatch_many future is {} bytes",
        std::mem::size_of_val(&many)
    );
    drop((call, many));
}

/// A call's items are counted in 32 bits, so a larger call is refused at
/// once, before anything is queued or allocated for it; the serving keeps
/// answering. The items are `()`, so the test allocates nothing for them.
#[tokio::test(start_paused = true)]
async fn a_call_of_more_than_u32_max_items_is_refused_whole() {
    let serving = Serving::new(|b: Batch<()>| Ok::<_, std::convert::Infallible>(b.to_vec()))
        .batch_size(4)
        .queue_capacity(u32::MAX as usize + 8)
        .start()
        .unwrap();
    let too_many = u32::MAX as usize + 1;
    assert!(matches!(
        serving.dispatch_many(vec![(); too_many]).await,
        Err(Error::Overloaded { requested, .. }) if requested == too_many
    ));
    let mut stream = serving.dispatch_stream(vec![(); too_many]);
    let first = futures::StreamExt::next(&mut stream).await;
    assert!(
        matches!(first, Some(Err(Error::Overloaded { requested, .. })) if requested == too_many),
        "{first:?}"
    );
    assert!(futures::StreamExt::next(&mut stream).await.is_none());
    assert_eq!(serving.stats().queue_depth, 0);
    assert_eq!(
        serving.dispatch_many(vec![(); 3]).await.unwrap(),
        vec![(); 3]
    );
}
