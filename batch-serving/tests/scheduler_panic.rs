//! A panic inside the scheduler: the serving closes and every call it
//! holds is answered. Its own test binary, because the panic comes from a
//! tracing layer set as this thread's default, and tracing caches which
//! spans are wanted process-wide: other tests' threads would race it.

#![allow(clippy::unwrap_used)] // a panicking unwrap is the failure a test wants

mod support;

use batch_serving::Error;
use support::Fake;

/// A tracing layer that panics when a batch span is created: code of the
/// application's that runs inside the scheduler.
struct PanicsOnBatchSpans;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for PanicsOnBatchSpans {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _: &tracing::span::Id,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        assert_ne!(attrs.metadata().name(), "batch", "the layer's own bug");
    }
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_the_scheduler_closes_the_serving_and_answers_every_call() {
    use tracing_subscriber::layer::SubscriberExt;
    let _default =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(PanicsOnBatchSpans));
    let fake = Fake::new();
    let serving = fake.builder().batch_size(2).start().unwrap();
    // The first two make a full batch, whose span panics the scheduler as
    // it hands the batch over; the third is still queued then.
    let calls = [1, 2, 3].map(|x| support::spawn_dispatch(&serving, x));
    for call in calls {
        assert!(matches!(call.await.unwrap(), Err(Error::Closed)));
    }
    assert!(matches!(serving.dispatch(4).await, Err(Error::Closed)));
    assert_eq!(fake.started(), 0, "no batch ran");
}
