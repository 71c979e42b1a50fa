//! Inline runs and client-side pre/post-processing.

#![allow(clippy::unwrap_used)] // a panicking unwrap is the failure a test wants

mod support;

use batch_serving::{Batch, Error, Serving};
use support::{Fake, FakeError};

#[tokio::test(start_paused = true)]
async fn inline_runs_on_the_calling_thread_split_by_batch_size() {
    let caller = std::thread::current().id();
    let serving = Serving::new(move |batch: Batch<u64>| {
        assert_eq!(std::thread::current().id(), caller);
        Ok::<_, std::convert::Infallible>(batch.iter().map(|_| batch.len() as u64).collect())
    })
    .batch_size(3)
    .start()
    .unwrap();
    // Seven items in batches of at most three: 3 + 3 + 1.
    assert_eq!(
        serving.inline_many(vec![9; 7]).unwrap(),
        vec![3, 3, 3, 3, 3, 3, 1]
    );
    assert_eq!(serving.stats().batches, 0, "no queue involved");
}

#[tokio::test(start_paused = true)]
async fn inline_on_an_async_serving_is_a_clear_error() {
    let serving =
        Serving::new_async(
            |b: Batch<u8>| async move { Ok::<_, std::convert::Infallible>(b.to_vec()) },
        )
        .start()
        .unwrap();
    assert!(matches!(serving.inline(1), Err(Error::InlineUnsupported)));
}

#[tokio::test(start_paused = true)]
async fn preprocessing_error_reaches_only_its_caller() {
    let fake = Fake::new();
    let serving = fake
        .builder()
        .batch_size(4)
        .start()
        .unwrap()
        .map_inputs(|s: &'static str| s.parse::<u64>().map_err(|_| FakeError("not a number")))
        .map_results(|y| Ok(y.to_string()));
    let (good, bad, other) = tokio::join!(
        serving.dispatch("1"),
        serving.dispatch("x"),
        serving.dispatch("41")
    );
    assert_eq!(good.unwrap(), "2");
    assert!(matches!(
        bad,
        Err(Error::Preprocess(FakeError("not a number")))
    ));
    assert_eq!(other.unwrap(), "42");
    assert_eq!(fake.all_items().len(), 2, "the bad input was never queued");
}

/// Issue 32, defect 7: a synchronous function declared cheap
/// (`new_on_runtime`) runs inline like any synchronous one; only async
/// functions refuse.
#[tokio::test(start_paused = true)]
async fn a_function_on_the_runtime_runs_inline() {
    let serving = Serving::new_on_runtime(|b: Batch<u64>| {
        if b.contains(&13) {
            panic!("unlucky");
        }
        Ok::<_, FakeError>(b.iter().map(|x| x * 3).collect())
    })
    .batch_size(2)
    .start()
    .unwrap();
    assert_eq!(serving.inline(2).unwrap(), 6);
    assert_eq!(serving.inline_many(vec![1, 2, 3]).unwrap(), vec![3, 6, 9]);
    assert!(matches!(serving.inline(13), Err(Error::Panicked { .. })));
    // 1 + 2 + the batch that panicked: a batch that ran counts.
    assert_eq!(serving.stats().inline_batches, 4);
    assert_eq!(
        serving.dispatch(5).await.unwrap(),
        15,
        "the serving lives on"
    );
    let refused = Serving::new_async(|b: Batch<u64>| async move { Ok::<_, FakeError>(b.to_vec()) })
        .start()
        .unwrap()
        .inline(1);
    assert!(matches!(refused, Err(Error::InlineUnsupported)));
}
