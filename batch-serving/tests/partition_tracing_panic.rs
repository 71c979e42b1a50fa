//! A panic in an application's tracing layer while a partition enters,
//! records or closes a batch's span: that batch's calls are answered (with
//! the panic where the batch could not run), and the partition lives on for
//! the next. Its own test binary, because the panicking layer is set as the
//! test thread's default and tracing caches which spans are wanted
//! process-wide.

#![allow(clippy::unwrap_used)] // a panicking unwrap is the failure a test wants

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use batch_serving::{Batch, Error, Serving};
use support::Fake;
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// Where the layer panics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hook {
    Enter,
    Record,
    Close,
}

/// A tracing layer that panics once, the first time a span named `span`
/// reaches `hook` after `skip` earlier times.
struct PanicsOnce {
    hook: Hook,
    span: &'static str,
    skip: AtomicUsize,
    fired: Arc<AtomicBool>,
}

impl PanicsOnce {
    fn at<S>(&self, hook: Hook, id: &Id, ctx: &Context<'_, S>)
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    {
        let named = ctx.span(id).is_some_and(|span| span.name() == self.span);
        if hook != self.hook || !named {
            return;
        }
        let skipped = self
            .skip
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if !skipped && !self.fired.swap(true, Ordering::SeqCst) {
            panic!("the layer's own bug, at {hook:?}");
        }
    }
}

impl<S> tracing_subscriber::Layer<S> for PanicsOnce
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, _: &Attributes<'_>, _: &Id, _: Context<'_, S>) {}

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        self.at(Hook::Enter, id, &ctx);
    }

    fn on_record(&self, id: &Id, _: &Record<'_>, ctx: Context<'_, S>) {
        self.at(Hook::Record, id, &ctx);
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        self.at(Hook::Close, &id, &ctx);
    }
}

/// Sets the panicking layer as this thread's default; the returned flag
/// says whether it has fired.
fn panicking_layer(hook: Hook) -> (tracing::subscriber::DefaultGuard, Arc<AtomicBool>) {
    panicking_layer_on("batch", 0, hook)
}

fn panicking_layer_on(
    span: &'static str,
    skip: usize,
    hook: Hook,
) -> (tracing::subscriber::DefaultGuard, Arc<AtomicBool>) {
    let fired = Arc::new(AtomicBool::new(false));
    let layer = PanicsOnce {
        hook,
        span,
        skip: AtomicUsize::new(skip),
        fired: Arc::clone(&fired),
    };
    let guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    (guard, fired)
}

/// A call's answer, or a failure of the test if it never comes. The clock is
/// paused, so a caller left waiting lets it run on to the timeout.
async fn answer_of(
    call: impl Future<Output = Result<u64, Error<support::FakeError>>>,
) -> Result<u64, Error<support::FakeError>> {
    tokio::time::timeout(Duration::from_secs(3600), call)
        .await
        .expect("the call was never answered")
}

#[tokio::test(start_paused = true)]
async fn a_layer_panicking_as_the_partition_enters_a_batch_fails_that_batch_only() {
    let (_default, fired) = panicking_layer(Hook::Enter);
    let fake = Fake::new();
    let serving = fake.builder().start().unwrap();
    let first = answer_of(serving.dispatch(1)).await;
    assert!(fired.load(Ordering::SeqCst));
    match first {
        Err(Error::Panicked { message }) => assert!(message.contains("the layer's own bug")),
        other => panic!("expected the layer's panic, got {other:?}"),
    }
    assert_eq!(fake.started(), 0, "the batch did not run");
    // The partition is still there for the next batch.
    assert_eq!(answer_of(serving.dispatch(2)).await.unwrap(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_layer_panicking_as_the_partition_records_a_batch_still_answers_it() {
    let (_default, fired) = panicking_layer(Hook::Record);
    let fake = Fake::new();
    let serving = fake.builder().start().unwrap();
    assert_eq!(answer_of(serving.dispatch(1)).await.unwrap(), 2);
    assert!(fired.load(Ordering::SeqCst));
    assert_eq!(answer_of(serving.dispatch(2)).await.unwrap(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_layer_panicking_as_the_partition_closes_a_batch_span_keeps_the_partition() {
    let (_default, fired) = panicking_layer(Hook::Close);
    let fake = Fake::new();
    let serving = fake.builder().start().unwrap();
    assert_eq!(answer_of(serving.dispatch(1)).await.unwrap(), 2);
    support::until(|| fired.load(Ordering::SeqCst)).await;
    assert_eq!(answer_of(serving.dispatch(2)).await.unwrap(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_layer_panicking_as_an_async_partition_enters_a_batch_fails_that_batch_only() {
    let (_default, fired) = panicking_layer(Hook::Enter);
    let serving: Serving<u64, u64, support::FakeError> = Serving::new_async(
        |batch: Batch<u64>| async move { Ok(batch.iter().map(|x| x + 1).collect()) },
    )
    .start()
    .unwrap();
    let first = answer_of(serving.dispatch(1)).await;
    assert!(fired.load(Ordering::SeqCst));
    assert!(matches!(first, Err(Error::Panicked { .. })), "{first:?}");
    assert_eq!(answer_of(serving.dispatch(2)).await.unwrap(), 3);
}

/// The panic that nothing inside the partition can catch: entering the
/// async partition's own span as its task is polled again mid-batch. The
/// task ends, and the batch it held is still answered rather than lost.
#[tokio::test(start_paused = true)]
async fn a_batch_held_by_an_async_partition_that_dies_is_still_answered() {
    // The partition task enters its span on its first poll and on the
    // poll that takes the call; the next one, mid-batch, panics.
    let (_default, fired) = panicking_layer_on("partition", 2, Hook::Enter);
    let serving: Serving<u64, u64, support::FakeError> =
        Serving::new_async(|batch: Batch<u64>| async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            Ok(batch.iter().map(|x| x + 1).collect())
        })
        .start()
        .unwrap();
    let first = answer_of(serving.dispatch(1)).await;
    assert!(fired.load(Ordering::SeqCst));
    match first {
        Err(Error::Panicked { message }) => {
            assert!(message.contains("outside the batch function"), "{message}");
        }
        other => panic!("expected the partition's panic, got {other:?}"),
    }
}
