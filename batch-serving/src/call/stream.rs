//! Streaming dispatch: outputs per executed piece, plus hook events, as they
//! happen.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::mpsc;
use tokio::time::Sleep;

use crate::call::core::Inner;
use crate::call::gate::Ask;
use crate::error::{Error, Failure};
use crate::event::Event;
use crate::options::CallOptions;
use crate::request::Request;
use crate::stats::Outcome;

type Admitting<E> = Pin<Box<dyn Future<Output = Result<(), Error<E>>> + Send>>;

/// The stream [`Serving::dispatch_stream`](crate::Serving::dispatch_stream) returns. It ends after the last
/// output or after the first error.
///
/// Dropping it before the end cancels the request's items that have not
/// started.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use batch_serving::{Batch, Serving};
/// use futures::TryStreamExt;
/// let serving = Serving::new(|b: Batch<u8>| Ok::<_, std::convert::Infallible>(b.to_vec()))
///     .batch_size(1)
///     .start()?;
/// let pieces: Vec<_> = serving.dispatch_stream(vec![1, 2, 3]).try_collect().await?;
/// assert_eq!(pieces.len(), 3); // one Output per executed piece
/// # Ok(()) }
/// ```
pub struct DispatchStream<I, O, E> {
    inner: Arc<Inner<I, O, E>>,
    request: Arc<Request<O, E>>,
    events: mpsc::UnboundedReceiver<Result<Event<O>, Failure<E>>>,
    admitting: Option<Admitting<E>>,
    deadline: Option<Pin<Box<Sleep>>>,
    remaining: usize,
    finished: bool,
}

impl<I, O, E> std::fmt::Debug for DispatchStream<I, O, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DispatchStream")
            .field("remaining", &self.remaining)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl<I, O, E> DispatchStream<I, O, E>
where
    I: Send + 'static,
    O: Send + 'static,
    E: Send + Sync + 'static,
{
    pub(crate) fn new(
        inner: &Arc<Inner<I, O, E>>,
        items: Vec<I>,
        options: CallOptions,
        held: usize,
    ) -> Self {
        let (tx, events) = mpsc::unbounded_channel();
        let remaining = items.len();
        let request =
            Arc::new(Request::new(remaining, Some(tx)).due(inner.queue_deadline(options.deadline)));
        let ask = Ask::new(remaining, &options).holding(held);
        let admitting: Option<Admitting<E>> = if remaining == 0 {
            None
        } else if held > 0 {
            // Held room: through the gate and into the queue now, so that
            // the room is in the queue (and goes back through it) even if
            // the stream is never polled.
            match inner
                .gate(ask)
                .and_then(|pass| inner.queue_admitted(items, &request, options.priority, pass))
            {
                Err(error) => Some(Box::pin(std::future::ready(Err(error))) as Admitting<E>),
                Ok((rest, _)) if rest.is_empty() => None,
                Ok((rest, offset)) => {
                    let inner = Arc::clone(inner);
                    let request = Arc::clone(&request);
                    Some(Box::pin(async move {
                        inner
                            .enqueue_rest(rest, &request, options.priority, offset)
                            .await
                    }) as Admitting<E>)
                }
            }
        } else {
            let inner = Arc::clone(inner);
            let request = Arc::clone(&request);
            Some(Box::pin(async move {
                let pass = inner.gate(ask)?;
                let (rest, offset) =
                    inner.queue_admitted(items, &request, options.priority, pass)?;
                inner
                    .enqueue_rest(rest, &request, options.priority, offset)
                    .await
            }) as Admitting<E>)
        };
        DispatchStream {
            inner: Arc::clone(inner),
            request,
            events,
            admitting,
            deadline: options
                .deadline
                .map(|at| Box::pin(tokio::time::sleep_until(at))),
            remaining,
            finished: remaining == 0,
        }
    }
}

impl<I, O, E> DispatchStream<I, O, E> {
    fn end(&mut self) {
        self.finished = true;
        self.admitting = None;
        self.deadline = None;
    }
}

impl<I, O, E> Stream for DispatchStream<I, O, E> {
    type Item = Result<Event<O>, Error<E>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(None);
        }
        // Admission of a large request continues while earlier pieces run.
        if let Some(admitting) = &mut this.admitting {
            match admitting.as_mut().poll(cx) {
                Poll::Ready(Ok(())) => this.admitting = None,
                Poll::Ready(Err(error)) => {
                    this.request.abandon(false);
                    this.end();
                    return Poll::Ready(Some(Err(error)));
                }
                Poll::Pending => {}
            }
        }
        if let Some(deadline) = &mut this.deadline
            && deadline.as_mut().poll(cx).is_ready()
        {
            if this.inner.abandon(&this.request, true) {
                this.end();
                return Poll::Ready(Some(Err(Error::DeadlineExceeded)));
            }
            // Every item was answered as the deadline came: the stream ends
            // as its events say, and is counted so.
            this.deadline = None;
        }
        match this.events.poll_recv(cx) {
            Poll::Ready(Some(Ok(Event::Output { offset, outputs }))) => {
                this.remaining = this.remaining.saturating_sub(outputs.len());
                if this.remaining == 0 {
                    this.end();
                }
                Poll::Ready(Some(Ok(Event::Output { offset, outputs })))
            }
            Poll::Ready(Some(Ok(hook))) => Poll::Ready(Some(Ok(hook))),
            Poll::Ready(Some(Err(failure))) => {
                // The request failed: its pieces still queued need not run.
                // It ends here rather than with its last piece, so it is
                // counted here (unless that piece was its last).
                if this.request.abandon(false) {
                    this.inner.recorder.count(Outcome::of(&failure));
                }
                this.end();
                Poll::Ready(Some(Err(failure.into())))
            }
            Poll::Ready(None) => {
                this.end();
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<I, O, E> Drop for DispatchStream<I, O, E> {
    fn drop(&mut self) {
        if !self.finished {
            self.inner.abandon(&self.request, false);
        }
    }
}
