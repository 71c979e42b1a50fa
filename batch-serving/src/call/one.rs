//! The future of a one-item call: the hottest path of the crate, written by
//! hand so that it stays small. Every queued call keeps its future alive,
//! and an `async fn` keeps its arguments and each await's locals side by
//! side (160 bytes for a `u64` call); this one holds the serving, and either
//! the item or the call's shared state (24 bytes for a `u64` call).

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use crate::call::core::{AbandonOnDrop, Inner, answer_of_one};
use crate::call::gate::{Ask, Pass, Ticket};
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
        fail_fast: bool,
        /// The caller already holds the item's room (a reservation spent
        /// on it): the call then queues its item in its first poll, without
        /// ever suspending, so the room cannot be lost in between.
        held: bool,
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
        held: bool,
    ) -> Self {
        let stage = if options.deadline.is_some() {
            let ask = Ask::new(1, &options).holding(usize::from(held));
            Stage::General(Box::new(Box::pin(inner.call_one(item, options, Some(ask)))))
        } else {
            Stage::Start {
                item,
                priority: options.priority,
                fail_fast: options.fail_fast,
                held,
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
                        fail_fast,
                        held,
                    } = std::mem::replace(&mut this.stage, Stage::Finished)
                    else {
                        unreachable!("matched just above");
                    };
                    let ask = Ask {
                        items: 1,
                        held: usize::from(held),
                        deadline: None,
                        fail_fast,
                    };
                    let ticket = match this.inner.gate(ask) {
                        Err(error) => return Poll::Ready(Err(error)),
                        Ok(Pass::Now(ticket)) => ticket,
                        Ok(Pass::Wait(_)) => {
                            // The gate has spoken: the general path only waits.
                            let options = CallOptions::new().priority(priority);
                            this.stage = Stage::General(Box::new(Box::pin(
                                this.inner.call_one(item, options, None),
                            )));
                            continue;
                        }
                    };
                    let request = Arc::new(Request::new(1, None));
                    this.inner.queue_one(item, &request, priority, ticket)?;
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
    /// With `ask`, the call has yet to pass the gate; without, the gate
    /// sent it here to wait for room.
    pub(crate) async fn call_one(
        &self,
        item: I,
        options: CallOptions,
        ask: Option<Ask>,
    ) -> Result<O, Error<E>> {
        let ticket = match ask.map(|ask| self.gate(ask)).transpose()? {
            Some(Pass::Now(ticket)) => Some(ticket),
            Some(Pass::Wait(_)) | None => None,
        };
        let request = Arc::new(Request::new(1, None).due(self.queue_deadline(options.deadline)));
        let guard = AbandonOnDrop {
            inner: self,
            request: &request,
        };
        let work = self.enqueue_one_and_wait(item, &request, options.priority, ticket);
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
        ticket: Option<Ticket<'_>>,
    ) -> Result<O, Error<E>> {
        let ticket = match ticket {
            Some(ticket) => ticket,
            None => Box::pin(self.wait_for_room(1)).await?,
        };
        self.queue_one(item, request, priority, ticket)?;
        poll_fn(|cx| request.poll_ready(cx)).await;
        answer_of_one(request)
    }

    /// Sends a one-item call's item to the scheduler, in the room its
    /// ticket holds. Should the scheduler be gone (a shutdown), the ticket
    /// gives the room back as it drops.
    pub(crate) fn queue_one(
        &self,
        item: I,
        request: &Arc<Request<O, E>>,
        priority: Priority,
        mut ticket: Ticket<'_>,
    ) -> Result<(), Error<E>> {
        let key = self.key_of(&item);
        self.send(Msg::One {
            item,
            request: Arc::clone(request),
            key,
            priority,
        })?;
        ticket.queued(1);
        Ok(())
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
