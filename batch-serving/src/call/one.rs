//! The future of a one-item call: the hottest path of the crate, written by
//! hand so that it stays small. Every queued call keeps its future alive,
//! and an `async fn` keeps its arguments and each await's locals side by
//! side (160 bytes for a `u64` call); this one holds the serving, and either
//! the item or the call's shared state (24 bytes for a `u64` call).

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::time::Instant;

use crate::call::admission::Admission;
use crate::call::core::{AbandonOnDrop, Inner, answer_of_one};
use crate::engine::message::Msg;
use crate::error::Error;
use crate::options::{CallOptions, Priority};
use crate::request::Request;

type Boxed<'a, O, E> = Pin<Box<dyn Future<Output = Result<O, Error<E>>> + Send + 'a>>;

/// A one-item call (`dispatch`, `dispatch_with`, `try_dispatch`).
pub(crate) struct OneCall<'a, I, O, E> {
    inner: &'a Inner<I, O, E>,
    stage: Stage<'a, I, O, E>,
}

enum Stage<'a, I, O, E> {
    /// Not polled yet: nothing is queued until the first poll.
    Start {
        item: I,
        priority: Priority,
        admission: Admission,
    },
    /// Queued; waiting for the answer.
    Queued(Arc<Request<O, E>>),
    /// A deadline, or a full queue to wait on: the general path, boxed, so
    /// that the calls that need neither do not carry its size. Boxed twice,
    /// so that it takes one word, not a trait object's two: the stage is
    /// then no wider than the item beside its priority, and the general
    /// path allocates anyway.
    General(Box<Boxed<'a, O, E>>),
    Finished,
}

// The item is never pinned (it is moved out on the first poll), and the
// other fields are `Unpin`, so the future can be moved between polls.
impl<I, O, E> Unpin for OneCall<'_, I, O, E> {}

impl<'a, I, O, E> OneCall<'a, I, O, E>
where
    I: Send + 'static,
    O: Send + 'static,
    E: Send + Sync + 'static,
{
    pub(crate) fn new(
        inner: &'a Inner<I, O, E>,
        item: I,
        options: CallOptions,
        admission: Admission,
    ) -> Self {
        let stage = if options.deadline.is_some() {
            Stage::General(Box::new(Box::pin(inner.call_one(item, options, admission))))
        } else {
            Stage::Start {
                item,
                priority: options.priority,
                admission,
            }
        };
        OneCall { inner, stage }
    }
}

impl<'a, I, O, E> Future for OneCall<'a, I, O, E>
where
    I: Send + 'static,
    O: Send + 'static,
    E: Send + Sync + 'static,
{
    type Output = Result<O, Error<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            match &mut this.stage {
                Stage::Start { .. } => {
                    let Stage::Start {
                        item,
                        priority,
                        admission,
                    } = std::mem::replace(&mut this.stage, Stage::Finished)
                    else {
                        unreachable!("matched just above");
                    };
                    if admission != Admission::Reserved
                        && let Err(error) = this.inner.refuse_if_late(1, None)
                    {
                        return Poll::Ready(Err(error));
                    }
                    match this.inner.try_admit(1, admission) {
                        Err(error) => return Poll::Ready(Err(error)),
                        Ok(true) => {}
                        Ok(false) => {
                            let options = CallOptions::new().priority(priority);
                            this.stage = Stage::General(Box::new(Box::pin(
                                this.inner.call_one(item, options, admission),
                            )));
                            continue;
                        }
                    }
                    let request = Arc::new(Request::new(1, None));
                    this.inner.queue_one(item, &request, priority)?;
                    this.stage = Stage::Queued(request);
                }
                Stage::Queued(request) => {
                    ready!(request.poll_ready(cx));
                    let answer = answer_of_one(request);
                    this.stage = Stage::Finished;
                    return Poll::Ready(answer);
                }
                Stage::General(call) => {
                    let answer = ready!(call.as_mut().as_mut().poll(cx));
                    this.stage = Stage::Finished;
                    return Poll::Ready(answer);
                }
                Stage::Finished => panic!("a dispatch future was polled after it completed"),
            }
        }
    }
}

impl<I, O, E> Drop for OneCall<'_, I, O, E> {
    /// A call dropped while queued is abandoned: its item is skipped.
    fn drop(&mut self) {
        if let Stage::Queued(request) = &self.stage
            && !request.is_complete()
        {
            self.inner.abandon(request, false);
        }
    }
}

/// The general path of a one-item call: with a deadline, or waiting for
/// queue room (the fast path in [`OneCall::poll`] handles the rest).
impl<I, O, E> Inner<I, O, E> {
    pub(crate) async fn call_one(
        &self,
        item: I,
        options: CallOptions,
        admission: Admission,
    ) -> Result<O, Error<E>> {
        if options.deadline.is_some_and(|at| at <= Instant::now()) {
            self.release_reserved(1, admission);
            return Err(self.expired_before_queueing());
        }
        if admission != Admission::Reserved {
            self.refuse_if_late(1, options.deadline)?;
        }
        let request = Arc::new(Request::new(1, None).due(self.queue_deadline(options.deadline)));
        let guard = AbandonOnDrop {
            inner: self,
            request: &request,
        };
        let work = self.enqueue_one_and_wait(item, &request, options.priority, admission);
        // Only `OneCall`'s general path comes here, already boxed.
        let result = self.with_deadline(options.deadline, &request, work).await;
        std::mem::forget(guard);
        result
    }

    async fn enqueue_one_and_wait(
        &self,
        item: I,
        request: &Arc<Request<O, E>>,
        priority: Priority,
        admission: Admission,
    ) -> Result<O, Error<E>> {
        if !self.try_admit(1, admission)? {
            Box::pin(self.admit_waiting(1)).await?;
        }
        self.queue_one(item, request, priority)?;
        poll_fn(|cx| request.poll_ready(cx)).await;
        answer_of_one(request)
    }

    /// Sends a one-item call's item to the scheduler (room already taken).
    pub(crate) fn queue_one(
        &self,
        item: I,
        request: &Arc<Request<O, E>>,
        priority: Priority,
    ) -> Result<(), Error<E>> {
        let key = self.key_of(&item);
        self.send(Msg::One {
            item,
            request: Arc::clone(request),
            key,
            priority,
        })
        // The scheduler is gone (a shutdown): the room goes back here, as
        // no one else holds it.
        .inspect_err(|_| self.room.give_back(1))
    }
}

#[cfg(all(test, target_pointer_width = "64"))]
mod tests {
    use std::convert::Infallible;
    use std::mem::size_of;

    use crate::engine::message::Msg;
    use crate::engine::queue::Entry;
    use crate::request::Request;
    use crate::{Batch, Serving};

    /// Each queued call keeps its future, its shared state and its message
    /// alive, so their sizes are the serving's memory per queued call (the
    /// comparison runner measures the total). These bounds fail if any of
    /// them grows back.
    #[tokio::test]
    async fn a_queued_call_keeps_its_per_call_state_small() {
        let serving = Serving::new(|b: Batch<u64>| Ok::<_, Infallible>(b.to_vec()))
            .start()
            .unwrap_or_else(|e| panic!("start: {e}"));
        let call = serving.dispatch(7);
        assert!(
            size_of_val(&call) <= 24,
            "dispatch future is {} bytes",
            size_of_val(&call)
        );
        assert_eq!(call.await.ok(), Some(7));
        assert!(size_of::<Msg<u64, u64, Infallible>>() <= 32);
        assert!(size_of::<Request<u64, Infallible>>() <= 56);
        assert!(size_of::<Entry<u64, u64, Infallible>>() <= 24);
    }
}
