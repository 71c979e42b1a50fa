//! Streaming dispatch: outputs per executed piece, plus hook events, as they
//! happen.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::mpsc;
use tokio::time::Sleep;

use crate::error::{Error, Failure};
use crate::hook::Hook;
use crate::options::CallOptions;
use crate::request::Request;
use crate::serving::{Admission, Inner, Serving};

/// One event of a streaming dispatch.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), batch_serving::Error<std::convert::Infallible>> {
/// use batch_serving::{Batch, Event, Serving};
/// use futures::StreamExt;
/// let serving = Serving::new(|b: Batch<u8>| Ok::<_, std::convert::Infallible>(b.to_vec())).start()?;
/// let mut events = serving.dispatch_stream(vec![1, 2]);
/// let Some(Ok(Event::Output { offset, outputs })) = events.next().await else { panic!() };
/// assert_eq!((offset, outputs), (0, vec![1, 2]));
/// assert!(events.next().await.is_none());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub enum Event<O> {
    /// The outputs of one executed piece of the request: items
    /// `offset..offset + outputs.len()`. Pieces that ran on different
    /// partitions may arrive in any order; together they cover every item
    /// exactly once.
    Output {
        /// Position of the piece's first item in the request.
        offset: usize,
        /// The piece's outputs, in item order.
        outputs: Vec<O>,
    },
    /// An event the batch function emitted while running one of this
    /// request's pieces. It arrives before that piece's `Output`.
    Hook(Hook),
}

type Admitting<E> = Pin<Box<dyn Future<Output = Result<(), Error<E>>> + Send>>;

/// The stream [`Serving::dispatch_stream`] returns. It ends after the last
/// output or after the first error.
///
/// Dropping it before the end cancels the request's items that have not
/// started.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), batch_serving::Error<std::convert::Infallible>> {
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

impl<I, O, E> Serving<I, O, E>
where
    I: Send + 'static,
    O: Send + 'static,
    E: Send + Sync + 'static,
{
    /// Queues `items` like [`dispatch_many`](Self::dispatch_many) and returns
    /// a stream of [`Event`]s: one `Output` per executed piece, carrying its
    /// offset, and the `Hook` events the batch function emits for this
    /// request's items. An empty `items` gives an empty stream.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), batch_serving::Error<std::convert::Infallible>> {
    /// use batch_serving::{Batch, Event, Serving};
    /// use futures::StreamExt;
    /// let serving = Serving::new(|b: Batch<u32>| {
    ///     b.emit("batch_len", b.len());
    ///     Ok::<_, std::convert::Infallible>(b.iter().map(|x| x * 10).collect())
    /// })
    /// .batch_size(2)
    /// .start()?;
    /// let mut done = vec![None; 5];
    /// let mut events = serving.dispatch_stream(vec![1, 2, 3, 4, 5]);
    /// while let Some(event) = events.next().await {
    ///     match event? {
    ///         Event::Output { offset, outputs } => {
    ///             for (i, y) in outputs.into_iter().enumerate() { done[offset + i] = Some(y); }
    ///         }
    ///         Event::Hook(hook) => assert!(*hook.payload::<usize>().unwrap() <= 2),
    ///     }
    /// }
    /// assert_eq!(done, [Some(10), Some(20), Some(30), Some(40), Some(50)]);
    /// # Ok(()) }
    /// ```
    pub fn dispatch_stream(&self, items: Vec<I>) -> DispatchStream<I, O, E> {
        self.dispatch_stream_with(items, CallOptions::default())
    }

    /// [`dispatch_stream`](Self::dispatch_stream) with a deadline and
    /// priority. At the deadline the stream yields
    /// [`Error::DeadlineExceeded`] and ends.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), batch_serving::Error<std::convert::Infallible>> {
    /// use batch_serving::{Batch, CallOptions, Priority, Serving};
    /// use futures::TryStreamExt;
    /// let serving = Serving::new(|b: Batch<u8>| Ok::<_, std::convert::Infallible>(b.to_vec())).start()?;
    /// let options = CallOptions::new().priority(Priority::High);
    /// let events: Vec<_> = serving.dispatch_stream_with(vec![1], options).try_collect().await?;
    /// assert_eq!(events.len(), 1);
    /// # Ok(()) }
    /// ```
    pub fn dispatch_stream_with(
        &self,
        items: Vec<I>,
        options: CallOptions,
    ) -> DispatchStream<I, O, E> {
        let (tx, events) = mpsc::unbounded_channel();
        let remaining = items.len();
        let request = Arc::new(Request::new(remaining, Some(tx)));
        let admitting: Option<Admitting<E>> = (remaining > 0).then(|| {
            let inner = Arc::clone(&self.inner);
            let request = Arc::clone(&request);
            Box::pin(async move {
                inner
                    .enqueue_all(items, &request, options.priority, Admission::Wait)
                    .await
            }) as Admitting<E>
        });
        DispatchStream {
            inner: Arc::clone(&self.inner),
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
            this.inner.abandon(&this.request, true);
            this.end();
            return Poll::Ready(Some(Err(Error::DeadlineExceeded)));
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
                this.request.abandon(false);
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
