//! Client-side pre- and post-processing (BatchServing's `map_inputs` and
//! `map_results`): they run in the caller's task, so expensive decoding runs
//! in parallel across callers instead of on a partition thread.

use std::sync::Arc;

use futures::StreamExt;
use futures::stream::BoxStream;

use crate::call::core::CancelledIfDropped;
use crate::error::Error;
use crate::event::Event;
use crate::options::CallOptions;
use crate::reservation::Reservation;
use crate::serving::Serving;

/// The stream [`MappedServing::dispatch_stream`] returns: boxed, so that it
/// is `Unpin` and nameable like a serving's own [`DispatchStream`](crate::DispatchStream).
pub type MappedStream<Out, E> = BoxStream<'static, Result<Event<Out>, Error<E>>>;

pub(crate) type Pre<In, I, E> = Arc<dyn Fn(In) -> Result<I, E> + Send + Sync>;
pub(crate) type Post<O, Out, E> = Arc<dyn Fn(O) -> Result<Out, E> + Send + Sync>;

/// A [`Serving`] with client-side processing: callers pass `In` and get
/// `Out`; the batch function sees `I` and returns `O`.
///
/// An error in either step reaches only that caller, as
/// [`Error::Preprocess`] or [`Error::Postprocess`]; a pre-processing error
/// queues nothing.
///
/// Every call is admitted before its input is pre-processed: a call the
/// queue has no room for fails (or waits) before any pre-processing work,
/// and room taken for an input that then fails pre-processing goes back at
/// once. [`try_reserve`](Self::try_reserve) exposes the steps, for callers
/// that pre-process elsewhere (on a blocking pool, say).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use batch_serving::{Batch, Error, Serving};
/// let serving = Serving::new(|b: Batch<u32>| Ok::<_, String>(b.iter().map(|x| x * 2).collect()))
///     .start()?
///     .map_inputs(|text: &str| text.parse::<u32>().map_err(|e| e.to_string()))
///     .map_results(|n| Ok(format!("={n}")));
/// assert_eq!(serving.dispatch("21").await?, "=42");
/// assert!(matches!(serving.dispatch("x").await, Err(Error::Preprocess(_))));
/// # Ok(()) }
/// ```
pub struct MappedServing<In, Out, I, O, E> {
    pub(crate) serving: Serving<I, O, E>,
    pub(crate) pre: Pre<In, I, E>,
    pub(crate) post: Post<O, Out, E>,
}

impl<In, Out, I, O, E> Clone for MappedServing<In, Out, I, O, E> {
    fn clone(&self) -> Self {
        MappedServing {
            serving: self.serving.clone(),
            pre: Arc::clone(&self.pre),
            post: Arc::clone(&self.post),
        }
    }
}

impl<In, Out, I, O, E> std::fmt::Debug for MappedServing<In, Out, I, O, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedServing")
            .field("serving", &self.serving)
            .finish_non_exhaustive()
    }
}

impl<I, O, E> Serving<I, O, E>
where
    I: Send + 'static,
    O: Send + 'static,
    E: Send + Sync + 'static,
{
    /// Adds client-side pre-processing: `pre` turns each caller's input into
    /// the batch function's item, in the caller's task.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use batch_serving::{Batch, Error, Serving};
    /// let parse = Serving::new(|b: Batch<u32>| Ok::<_, String>(b.iter().map(|x| x * 2).collect()))
    ///     .start()?
    ///     .map_inputs(|text: &str| text.parse::<u32>().map_err(|e| e.to_string()));
    /// assert_eq!(parse.dispatch("21").await?, 42);
    /// assert!(matches!(parse.dispatch("x").await, Err(Error::Preprocess(_)))); // this caller only
    /// # Ok(()) }
    /// ```
    pub fn map_inputs<In, P>(self, pre: P) -> MappedServing<In, O, I, O, E>
    where
        P: Fn(In) -> Result<I, E> + Send + Sync + 'static,
    {
        MappedServing {
            serving: self,
            pre: Arc::new(pre),
            post: Arc::new(Ok),
        }
    }

    /// Adds client-side post-processing: `post` turns each output into what
    /// the caller gets, in the caller's task.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use batch_serving::{Batch, Serving};
    /// let labelled = Serving::new(|b: Batch<u32>| Ok::<_, String>(b.to_vec()))
    ///     .start()?
    ///     .map_results(|x: u32| Ok(format!("#{x}")));
    /// assert_eq!(labelled.dispatch(7).await?, "#7");
    /// # Ok(()) }
    /// ```
    pub fn map_results<Out, P>(self, post: P) -> MappedServing<I, Out, I, O, E>
    where
        P: Fn(O) -> Result<Out, E> + Send + Sync + 'static,
    {
        MappedServing {
            serving: self,
            pre: Arc::new(Ok),
            post: Arc::new(post),
        }
    }
}

impl<In, Out, I, O, E> MappedServing<In, Out, I, O, E>
where
    I: Send + 'static,
    O: Send + 'static,
    E: Send + Sync + 'static,
{
    /// Replaces the pre-processing step.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use batch_serving::{Batch, Serving};
    /// let lengths = Serving::new(|b: Batch<Vec<u8>>| Ok::<_, String>(b.iter().map(Vec::len).collect()))
    ///     .start()?
    ///     .map_inputs(|s: &str| Ok(s.as_bytes().to_vec()))
    ///     .map_results(|n: usize| Ok(format!("{n} bytes")));
    /// let counted = lengths.map_inputs(|n: usize| Ok(vec![0; n]));
    /// assert_eq!(counted.dispatch(3).await?, "3 bytes");
    /// # Ok(()) }
    /// ```
    pub fn map_inputs<In2, P>(self, pre: P) -> MappedServing<In2, Out, I, O, E>
    where
        P: Fn(In2) -> Result<I, E> + Send + Sync + 'static,
    {
        MappedServing {
            serving: self.serving,
            pre: Arc::new(pre),
            post: self.post,
        }
    }

    /// Replaces the post-processing step.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use batch_serving::{Batch, Serving};
    /// let lengths = Serving::new(|b: Batch<Vec<u8>>| Ok::<_, String>(b.iter().map(Vec::len).collect()))
    ///     .start()?
    ///     .map_inputs(|s: &str| Ok(s.as_bytes().to_vec()))
    ///     .map_results(|n: usize| Ok(format!("{n} bytes")));
    /// let raw = lengths.map_results(|n: usize| Ok(n));
    /// assert_eq!(raw.dispatch("abc").await?, 3);
    /// # Ok(()) }
    /// ```
    pub fn map_results<Out2, P>(self, post: P) -> MappedServing<In, Out2, I, O, E>
    where
        P: Fn(O) -> Result<Out2, E> + Send + Sync + 'static,
    {
        MappedServing {
            serving: self.serving,
            pre: self.pre,
            post: Arc::new(post),
        }
    }

    /// The underlying serving (for `stats`, `shutdown`, streaming).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use batch_serving::{Batch, Serving};
    /// let lengths = Serving::new(|b: Batch<Vec<u8>>| Ok::<_, String>(b.iter().map(Vec::len).collect()))
    ///     .start()?
    ///     .map_inputs(|s: &str| Ok(s.as_bytes().to_vec()))
    ///     .map_results(|n: usize| Ok(format!("{n} bytes")));
    /// lengths.dispatch("ab").await?;
    /// assert_eq!(lengths.serving().stats().items, 1);
    /// # Ok(()) }
    /// ```
    pub fn serving(&self) -> &Serving<I, O, E> {
        &self.serving
    }

    fn prepare_many(&self, inputs: Vec<In>) -> Result<Vec<I>, Error<E>> {
        inputs
            .into_iter()
            .map(|input| (self.pre)(input).map_err(Error::Preprocess))
            .collect()
    }

    fn finish_many(&self, outputs: Vec<O>) -> Result<Vec<Out>, Error<E>> {
        outputs
            .into_iter()
            .map(|output| (self.post)(output).map_err(Error::Postprocess))
            .collect()
    }

    /// The call path every queued verb shares: room first, as `options`
    /// say (waiting up to the deadline, or failing fast), and only then
    /// pre-processing, so a call that cannot be admitted never pays for it.
    /// Room taken for inputs that fail pre-processing goes back at once.
    ///
    /// The room is `None` where it cannot be taken up front: for no inputs,
    /// and for a waiting call larger than the whole queue, which the
    /// serving admits piece by piece itself.
    async fn admit_then_prepare(
        &self,
        inputs: Vec<In>,
        options: &CallOptions,
    ) -> Result<(Option<Reservation<I, O, E>>, Vec<I>), Error<E>> {
        let n = inputs.len();
        let whole = n > 0 && (n <= self.serving.queue_capacity() || options.fail_fast);
        let room = match whole {
            true => {
                let waiting = CancelledIfDropped::new(&self.serving.inner.recorder);
                let room = self.serving.reserve_as(n, options).await;
                waiting.defuse();
                Some(room?)
            }
            false => None,
        };
        Ok((room, self.prepare_many(inputs)?))
    }

    /// Pre-processes, dispatches and post-processes one input.
    ///
    /// # Errors
    ///
    /// [`Error::Preprocess`], [`Error::Postprocess`], or any error of
    /// [`Serving::dispatch`].
    ///
    /// # Cancel safety
    ///
    /// As [`Serving::dispatch`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use batch_serving::{Batch, Serving};
    /// let lengths = Serving::new(|b: Batch<Vec<u8>>| Ok::<_, String>(b.iter().map(Vec::len).collect()))
    ///     .start()?
    ///     .map_inputs(|s: &str| Ok(s.as_bytes().to_vec()))
    ///     .map_results(|n: usize| Ok(format!("{n} bytes")));
    /// assert_eq!(lengths.dispatch("abcd").await?, "4 bytes");
    /// # Ok(()) }
    /// ```
    pub async fn dispatch(&self, input: In) -> Result<Out, Error<E>> {
        self.dispatch_with(input, CallOptions::default()).await
    }

    /// [`dispatch`](Self::dispatch) with options, as
    /// [`Serving::dispatch_with`]. The wait for room counts against the
    /// deadline; under fail-fast a full queue refuses the call before its
    /// input is pre-processed.
    ///
    /// # Errors
    ///
    /// As [`dispatch`](Self::dispatch), plus those of
    /// [`Serving::dispatch_with`].
    ///
    /// # Cancel safety
    ///
    /// As [`Serving::dispatch`].
    pub async fn dispatch_with(&self, input: In, options: CallOptions) -> Result<Out, Error<E>> {
        let (room, mut items) = self.admit_then_prepare(vec![input], &options).await?;
        let (Some(room), Some(item)) = (room, items.pop()) else {
            unreachable!("one input always fits a queue of at least one item");
        };
        let output = room.dispatch_with(item, options).await?;
        (self.post)(output).map_err(Error::Postprocess)
    }

    /// [`dispatch`](Self::dispatch) with fail-fast admission.
    ///
    /// # Errors
    ///
    /// As [`dispatch`](Self::dispatch), plus [`Error::Overloaded`].
    ///
    /// # Cancel safety
    ///
    /// As [`Serving::dispatch`].
    pub async fn try_dispatch(&self, input: In) -> Result<Out, Error<E>> {
        self.dispatch_with(input, CallOptions::new().fail_fast())
            .await
    }

    /// Pre-processes every input, dispatches them as one many-item call and
    /// post-processes the outputs. Any input failing pre-processing fails
    /// the whole call before anything is queued.
    ///
    /// # Errors
    ///
    /// As [`dispatch`](Self::dispatch) and [`Serving::dispatch_many`].
    ///
    /// # Cancel safety
    ///
    /// As [`Serving::dispatch_many`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use batch_serving::{Batch, Serving};
    /// let doubled = Serving::new(|b: Batch<u32>| Ok::<_, String>(b.iter().map(|x| x * 2).collect()))
    ///     .start()?
    ///     .map_inputs(|s: &str| s.parse::<u32>().map_err(|e| e.to_string()));
    /// assert_eq!(doubled.dispatch_many(vec!["1", "2"]).await?, vec![2, 4]);
    /// # Ok(()) }
    /// ```
    pub async fn dispatch_many(&self, inputs: Vec<In>) -> Result<Vec<Out>, Error<E>> {
        self.dispatch_many_with(inputs, CallOptions::default())
            .await
    }

    /// [`dispatch_many`](Self::dispatch_many) with options, as
    /// [`Serving::dispatch_many_with`].
    ///
    /// # Errors
    ///
    /// As [`dispatch_many`](Self::dispatch_many), plus those of
    /// [`Serving::dispatch_many_with`].
    ///
    /// # Cancel safety
    ///
    /// As [`Serving::dispatch_many`].
    pub async fn dispatch_many_with(
        &self,
        inputs: Vec<In>,
        options: CallOptions,
    ) -> Result<Vec<Out>, Error<E>> {
        let outputs = match self.admit_then_prepare(inputs, &options).await? {
            (Some(room), items) => room.dispatch_many_with(items, options).await?,
            (None, items) => self.serving.dispatch_many_with(items, options).await?,
        };
        self.finish_many(outputs)
    }

    /// [`dispatch_many`](Self::dispatch_many) with fail-fast admission.
    ///
    /// # Errors
    ///
    /// As [`dispatch_many`](Self::dispatch_many), plus [`Error::Overloaded`].
    ///
    /// # Cancel safety
    ///
    /// As [`Serving::dispatch_many`].
    pub async fn try_dispatch_many(&self, inputs: Vec<In>) -> Result<Vec<Out>, Error<E>> {
        self.dispatch_many_with(inputs, CallOptions::new().fail_fast())
            .await
    }

    /// Streams a many-item call, as [`Serving::dispatch_stream`], with each
    /// piece's outputs post-processed. The call is admitted, then its inputs
    /// pre-processed, when the stream is first polled.
    ///
    /// # Errors
    ///
    /// The stream yields the call's error once, and ends: as
    /// [`dispatch_many`](Self::dispatch_many), or [`Error::Postprocess`]
    /// for a piece whose outputs fail post-processing.
    ///
    /// # Cancel safety
    ///
    /// As [`Serving::dispatch_stream`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use batch_serving::{Batch, Event, Serving};
    /// use futures::TryStreamExt;
    /// let named = Serving::new(|b: Batch<u32>| Ok::<_, String>(b.to_vec()))
    ///     .start()?
    ///     .map_results(|n| Ok(format!("#{n}")));
    /// let events: Vec<_> = named.dispatch_stream(vec![1, 2]).try_collect().await?;
    /// assert!(matches!(&events[..], [Event::Output { offset: 0, outputs }] if outputs == &["#1", "#2"]));
    /// # Ok(()) }
    /// ```
    pub fn dispatch_stream(&self, inputs: Vec<In>) -> MappedStream<Out, E>
    where
        In: Send + 'static,
        Out: Send + 'static,
    {
        self.dispatch_stream_with(inputs, CallOptions::default())
    }

    /// [`dispatch_stream`](Self::dispatch_stream) with options, as
    /// [`Serving::dispatch_stream_with`].
    ///
    /// # Errors
    ///
    /// As [`dispatch_stream`](Self::dispatch_stream), plus those of
    /// [`Serving::dispatch_stream_with`].
    ///
    /// # Cancel safety
    ///
    /// As [`Serving::dispatch_stream`].
    pub fn dispatch_stream_with(
        &self,
        inputs: Vec<In>,
        options: CallOptions,
    ) -> MappedStream<Out, E>
    where
        In: Send + 'static,
        Out: Send + 'static,
    {
        let this = self.clone();
        let post = Arc::clone(&self.post);
        let events = async move {
            let stream = match this.admit_then_prepare(inputs, &options).await? {
                (Some(room), items) => room.dispatch_stream_with(items, options),
                (None, items) => this.serving.dispatch_stream_with(items, options),
            };
            Ok::<_, Error<E>>(stream)
        };
        futures::stream::once(events)
            .map(|started| match started {
                Ok(stream) => stream.left_stream(),
                Err(error) => futures::stream::once(std::future::ready(Err(error))).right_stream(),
            })
            .flatten()
            .map(move |event| match event? {
                Event::Output { offset, outputs } => Ok(Event::Output {
                    offset,
                    outputs: outputs
                        .into_iter()
                        .map(|output| post(output).map_err(Error::Postprocess))
                        .collect::<Result<_, _>>()?,
                }),
                Event::Hook(hook) => Ok(Event::Hook(hook)),
            })
            // The first error ends the stream, as it ends a serving's own.
            .scan(false, |failed, event| {
                let next = (!*failed).then(|| {
                    *failed = event.is_err();
                    event
                });
                std::future::ready(next)
            })
            .boxed()
    }

    /// Pre-processes `input`, runs it [`inline`](Serving::inline) and
    /// post-processes the output.
    ///
    /// # Errors
    ///
    /// [`Error::Preprocess`], [`Error::Postprocess`], or any error of
    /// [`Serving::inline`].
    pub fn inline(&self, input: In) -> Result<Out, Error<E>> {
        self.inline_with(input, CallOptions::default())
    }

    /// [`inline`](Self::inline) with a deadline, as [`Serving::inline_with`].
    ///
    /// # Errors
    ///
    /// As [`inline`](Self::inline), plus [`Error::DeadlineExceeded`].
    pub fn inline_with(&self, input: In, options: CallOptions) -> Result<Out, Error<E>> {
        let item = (self.pre)(input).map_err(Error::Preprocess)?;
        let output = self.serving.inline_with(item, options)?;
        (self.post)(output).map_err(Error::Postprocess)
    }

    /// The many-input form of [`inline`](Self::inline).
    ///
    /// # Errors
    ///
    /// As [`inline`](Self::inline).
    pub fn inline_many(&self, inputs: Vec<In>) -> Result<Vec<Out>, Error<E>> {
        self.inline_many_with(inputs, CallOptions::default())
    }

    /// [`inline_many`](Self::inline_many) with a deadline, as
    /// [`Serving::inline_many_with`].
    ///
    /// # Errors
    ///
    /// As [`inline`](Self::inline), plus [`Error::DeadlineExceeded`].
    pub fn inline_many_with(
        &self,
        inputs: Vec<In>,
        options: CallOptions,
    ) -> Result<Vec<Out>, Error<E>> {
        let items = self.prepare_many(inputs)?;
        let outputs = self.serving.inline_many_with(items, options)?;
        self.finish_many(outputs)
    }
}
