//! Failures: errors, panics and wrong output counts reach only the callers
//! of their batch, shared, and the partition keeps serving.

#![allow(clippy::unwrap_used)] // a panicking unwrap is the failure a test wants

mod support;

use std::sync::Arc;

use batch_serving::{Batch, BatchKey, Error, Policy, Serving, StartError};
use support::{Behaviour, Fake, FakeError};

/// Runs two concurrent callers into one batch and returns their results.
async fn one_batch_of_two(
    serving: &Serving<u64, u64, FakeError>,
) -> (Result<u64, Error<FakeError>>, Result<u64, Error<FakeError>>) {
    tokio::join!(serving.dispatch(1), serving.dispatch(2))
}

#[tokio::test(start_paused = true)]
async fn batch_error_reaches_every_caller_of_that_batch_shared() {
    let fake = Fake::new();
    let serving = fake.builder().batch_size(2).start().unwrap();
    fake.set(Behaviour::Error);
    let (a, b) = one_batch_of_two(&serving).await;
    match (a, b) {
        (Err(Error::Batch(a)), Err(Error::Batch(b))) => {
            assert!(
                Arc::ptr_eq(&a, &b),
                "one error shared, not rebuilt per caller"
            );
            assert_eq!(*a, FakeError("fake failure"));
        }
        other => panic!("expected shared batch errors, got {other:?}"),
    }
    fake.set(Behaviour::Ok);
    assert_eq!(
        serving.dispatch(7).await.unwrap(),
        8,
        "other batches are unaffected"
    );
    assert_eq!(serving.stats().failed, 1);
}

#[tokio::test(start_paused = true)]
async fn panic_fails_only_its_batch_and_the_partition_keeps_serving() {
    let fake = Fake::new();
    let serving = fake.builder().batch_size(2).start().unwrap();
    fake.set(Behaviour::Panic);
    let (a, b) = one_batch_of_two(&serving).await;
    for result in [a, b] {
        match result {
            Err(Error::Panicked { message }) => assert_eq!(&*message, "fake panic"),
            other => panic!("expected a panic error, got {other:?}"),
        }
    }
    fake.set(Behaviour::Ok);
    for i in 0..5 {
        assert_eq!(serving.dispatch(i).await.unwrap(), i + 1);
    }
    assert_eq!(serving.stats().panicked, 1);
}

#[tokio::test(start_paused = true)]
async fn async_panic_is_caught_too() {
    let serving = Serving::new_async(|batch: Batch<u64>| async move {
        assert!(batch[0] != 13, "unlucky");
        Ok::<_, std::convert::Infallible>(batch.to_vec())
    })
    .batch_size(1)
    .start()
    .unwrap();
    assert!(matches!(
        serving.dispatch(13).await,
        Err(Error::Panicked { .. })
    ));
    assert_eq!(serving.dispatch(12).await.unwrap(), 12);
}

#[tokio::test(start_paused = true)]
async fn wrong_output_count_names_expected_and_actual() {
    let fake = Fake::new();
    let serving = fake.builder().batch_size(2).start().unwrap();
    fake.set(Behaviour::WrongCount);
    let (a, _) = one_batch_of_two(&serving).await;
    let error = a.unwrap_err();
    assert!(
        matches!(
            error,
            Error::WrongOutputCount {
                expected: 2,
                actual: 1
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "batch function returned 1 outputs for 2 inputs"
    );
}

#[tokio::test(start_paused = true)]
async fn calls_on_a_shut_down_serving_return_closed() {
    let fake = Fake::new();
    let serving = fake.builder().start().unwrap();
    serving.shutdown().await;
    assert!(serving.is_closed());
    assert!(matches!(serving.dispatch(1).await, Err(Error::Closed)));
    assert!(matches!(
        serving.dispatch_many(vec![1, 2]).await,
        Err(Error::Closed)
    ));
    assert!(matches!(serving.try_dispatch(1).await, Err(Error::Closed)));
}

#[tokio::test(start_paused = true)]
async fn bad_configuration_is_an_error_at_start_not_a_panic() {
    let fake = Fake::new();
    assert!(matches!(
        fake.builder().batch_size(0).start(),
        Err(StartError::InvalidConfig(_))
    ));
    assert!(matches!(
        fake.builder().partitions(0).start(),
        Err(StartError::InvalidConfig(_))
    ));
    assert!(matches!(
        fake.builder().queue_capacity(0).start(),
        Err(StartError::InvalidConfig(_))
    ));
}

#[test]
fn start_outside_a_runtime_is_an_error() {
    let fake = Fake::new();
    assert!(matches!(fake.builder().start(), Err(StartError::NoRuntime)));
}

#[tokio::test(start_paused = true)]
async fn failing_factory_stops_start_with_its_error() {
    let started = Serving::with_state(
        |partition| {
            if partition == 1 {
                Err(FakeError("no gpu"))
            } else {
                Ok(())
            }
        },
        |_: &mut (), batch: Batch<u64>| Ok(batch.to_vec()),
    )
    .partitions(2)
    .start();
    match started {
        Err(StartError::PartitionStart {
            partition: 1,
            error,
        }) => assert_eq!(error, FakeError("no gpu")),
        other => panic!("expected a partition start error, got {other:?}"),
    }
}

/// A many-item call whose first batch failed is answered with that failure;
/// when a later batch holds its other item and then another caller's, that
/// caller must still get its own output. (The failed call's outputs were
/// once left unconsumed, and every caller after it in the batch got its
/// neighbour's output.)
#[tokio::test]
async fn a_failed_call_does_not_shift_the_outputs_of_the_callers_after_it_in_a_batch() {
    const BLOCKER: u64 = 0;
    const FAILS: u64 = 1000;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let held = Arc::clone(&gate);
    let serving = Serving::new_async(move |batch: Batch<u64>| {
        let (held, items) = (Arc::clone(&held), batch.to_vec());
        async move {
            if items.contains(&BLOCKER) {
                let _ = held.acquire().await;
            }
            if items.contains(&FAILS) {
                return Err("this batch fails");
            }
            Ok(items.iter().map(|x| x + 1).collect())
        }
    })
    .batch_size(4)
    .policy(Policy::Eager)
    // The failing item, the others, and the blocker each get their own key,
    // so the failing item's batch runs alone, before the other two's.
    .key_by(|x: &u64| {
        BatchKey::new(match *x {
            FAILS => 1,
            BLOCKER => 3,
            _ => 2,
        })
    })
    .start()
    .unwrap();
    let blocker = tokio::spawn({
        let serving = serving.clone();
        async move { serving.dispatch(BLOCKER).await }
    });
    support::until(|| serving.stats().in_flight == 1).await;
    let failing = tokio::spawn({
        let serving = serving.clone();
        async move { serving.dispatch_many(vec![FAILS, 5]).await }
    });
    support::until(|| serving.stats().queue_depth == 2).await;
    let after = tokio::spawn({
        let serving = serving.clone();
        async move { serving.dispatch(7).await }
    });
    support::until(|| serving.stats().queue_depth == 3).await;
    gate.add_permits(1);
    assert_eq!(blocker.await.unwrap().unwrap(), BLOCKER + 1);
    assert!(matches!(failing.await.unwrap(), Err(Error::Batch(_))));
    assert_eq!(
        after.await.unwrap().unwrap(),
        8,
        "got its neighbour's output"
    );
}
