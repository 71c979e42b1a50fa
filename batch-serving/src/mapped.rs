//! Client-side pre- and post-processing (BatchServing's `map_inputs` and
//! `map_results`): they run in the caller's task, so expensive decoding runs
//! in parallel across callers instead of on a partition thread.

use std::sync::Arc;

use crate::error::Error;
use crate::options::CallOptions;
use crate::serving::Serving;

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
/// # async fn main() -> Result<(), batch_serving::Error<String>> {
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
    /// # async fn main() -> Result<(), batch_serving::Error<String>> {
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
    /// # async fn main() -> Result<(), batch_serving::Error<String>> {
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
    /// # async fn main() -> Result<(), batch_serving::Error<String>> {
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
    /// # async fn main() -> Result<(), batch_serving::Error<String>> {
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
    /// # async fn main() -> Result<(), batch_serving::Error<String>> {
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

    pub(crate) fn prepare_many(&self, inputs: Vec<In>) -> Result<Vec<I>, Error<E>> {
        inputs
            .into_iter()
            .map(|input| (self.pre)(input).map_err(Error::Preprocess))
            .collect()
    }

    pub(crate) fn finish_many(&self, outputs: Vec<O>) -> Result<Vec<Out>, Error<E>> {
        outputs
            .into_iter()
            .map(|output| (self.post)(output).map_err(Error::Postprocess))
            .collect()
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
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), batch_serving::Error<String>> {
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

    /// [`dispatch`](Self::dispatch) with call options.
    ///
    /// # Errors
    ///
    /// As [`dispatch`](Self::dispatch), plus [`Error::DeadlineExceeded`].
    ///
    /// # Cancel safety
    ///
    /// As [`Serving::dispatch`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), batch_serving::Error<String>> {
    /// use batch_serving::{Batch, Serving};
    /// let lengths = Serving::new(|b: Batch<Vec<u8>>| Ok::<_, String>(b.iter().map(Vec::len).collect()))
    ///     .start()?
    ///     .map_inputs(|s: &str| Ok(s.as_bytes().to_vec()))
    ///     .map_results(|n: usize| Ok(format!("{n} bytes")));
    /// use batch_serving::{CallOptions, Priority};
    /// let high = CallOptions::new().priority(Priority::High);
    /// assert_eq!(lengths.dispatch_with("a", high).await?, "1 bytes");
    /// # Ok(()) }
    /// ```
    pub async fn dispatch_with(&self, input: In, options: CallOptions) -> Result<Out, Error<E>> {
        self.reserve_by(1, options.deadline)
            .await?
            .dispatch_with(input, options)
            .await
    }

    /// Fail-fast variant of [`dispatch`](Self::dispatch).
    ///
    /// # Errors
    ///
    /// As [`dispatch`](Self::dispatch), plus [`Error::Overloaded`].
    ///
    /// # Cancel safety
    ///
    /// As [`Serving::dispatch`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), batch_serving::Error<String>> {
    /// use batch_serving::{Batch, Serving};
    /// let lengths = Serving::new(|b: Batch<Vec<u8>>| Ok::<_, String>(b.iter().map(Vec::len).collect()))
    ///     .start()?
    ///     .map_inputs(|s: &str| Ok(s.as_bytes().to_vec()))
    ///     .map_results(|n: usize| Ok(format!("{n} bytes")));
    /// assert_eq!(lengths.try_dispatch("ab").await?, "2 bytes");
    /// # Ok(()) }
    /// ```
    pub async fn try_dispatch(&self, input: In) -> Result<Out, Error<E>> {
        self.try_reserve()?.dispatch(input).await
    }

    /// Pre-processes every input (failing the whole call, with nothing
    /// queued, on the first bad one), dispatches them together and
    /// post-processes the outputs in order.
    ///
    /// # Errors
    ///
    /// As [`dispatch`](Self::dispatch).
    ///
    /// # Cancel safety
    ///
    /// As [`Serving::dispatch_many`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), batch_serving::Error<String>> {
    /// use batch_serving::{Batch, Serving};
    /// let lengths = Serving::new(|b: Batch<Vec<u8>>| Ok::<_, String>(b.iter().map(Vec::len).collect()))
    ///     .start()?
    ///     .map_inputs(|s: &str| Ok(s.as_bytes().to_vec()))
    ///     .map_results(|n: usize| Ok(format!("{n} bytes")));
    /// assert_eq!(lengths.dispatch_many(vec!["a", "bcd"]).await?, ["1 bytes", "3 bytes"]);
    /// # Ok(()) }
    /// ```
    pub async fn dispatch_many(&self, inputs: Vec<In>) -> Result<Vec<Out>, Error<E>> {
        self.dispatch_many_with(inputs, CallOptions::default())
            .await
    }

    /// [`dispatch_many`](Self::dispatch_many) with call options.
    ///
    /// # Errors
    ///
    /// As [`dispatch_many`](Self::dispatch_many), plus
    /// [`Error::DeadlineExceeded`].
    ///
    /// # Cancel safety
    ///
    /// As [`Serving::dispatch_many`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), batch_serving::Error<String>> {
    /// use batch_serving::{Batch, Serving};
    /// let lengths = Serving::new(|b: Batch<Vec<u8>>| Ok::<_, String>(b.iter().map(Vec::len).collect()))
    ///     .start()?
    ///     .map_inputs(|s: &str| Ok(s.as_bytes().to_vec()))
    ///     .map_results(|n: usize| Ok(format!("{n} bytes")));
    /// use batch_serving::CallOptions;
    /// let out = lengths.dispatch_many_with(vec!["ab"], CallOptions::new()).await?;
    /// assert_eq!(out, ["2 bytes"]);
    /// # Ok(()) }
    /// ```
    pub async fn dispatch_many_with(
        &self,
        inputs: Vec<In>,
        options: CallOptions,
    ) -> Result<Vec<Out>, Error<E>> {
        if inputs.is_empty() || inputs.len() > self.serving.queue_capacity() {
            // Admitted piece by piece as room frees up (see
            // `Serving::dispatch_many`), so it cannot be admitted up front.
            let items = self.prepare_many(inputs)?;
            let outputs = self.serving.dispatch_many_with(items, options).await?;
            return self.finish_many(outputs);
        }
        let room = self
            .serving
            .reserve_by(inputs.len(), options.deadline)
            .await?;
        let items = self.prepare_many(inputs)?; // on error the room goes back
        let outputs = room.dispatch_many_with(items, options).await?;
        self.finish_many(outputs)
    }

    /// Fail-fast variant of [`dispatch_many`](Self::dispatch_many): admits
    /// all the inputs at once or fails with [`Error::Overloaded`] before
    /// pre-processing any of them.
    ///
    /// # Errors
    ///
    /// As [`dispatch_many`](Self::dispatch_many), plus
    /// [`Error::Overloaded`], also for more inputs than the queue capacity.
    ///
    /// # Cancel safety
    ///
    /// As [`Serving::dispatch_many`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), batch_serving::Error<String>> {
    /// use batch_serving::{Batch, Serving};
    /// let lengths = Serving::new(|b: Batch<Vec<u8>>| Ok::<_, String>(b.iter().map(Vec::len).collect()))
    ///     .start()?
    ///     .map_inputs(|s: &str| Ok(s.as_bytes().to_vec()));
    /// assert_eq!(lengths.try_dispatch_many(vec!["ab", "c"]).await?, [2, 1]);
    /// # Ok(()) }
    /// ```
    pub async fn try_dispatch_many(&self, inputs: Vec<In>) -> Result<Vec<Out>, Error<E>> {
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        let room = self.serving.try_reserve(inputs.len())?;
        let items = self.prepare_many(inputs)?;
        let outputs = room.dispatch_many(items).await?;
        self.finish_many(outputs)
    }

    /// Runs pre-processing, the batch function (on this thread) and
    /// post-processing for one input.
    ///
    /// # Errors
    ///
    /// As [`Serving::inline`], plus the processing errors.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), batch_serving::Error<String>> {
    /// use batch_serving::{Batch, Serving};
    /// let lengths = Serving::new(|b: Batch<Vec<u8>>| Ok::<_, String>(b.iter().map(Vec::len).collect()))
    ///     .start()?
    ///     .map_inputs(|s: &str| Ok(s.as_bytes().to_vec()))
    ///     .map_results(|n: usize| Ok(format!("{n} bytes")));
    /// assert_eq!(lengths.inline("xyz")?, "3 bytes");
    /// # Ok(()) }
    /// ```
    pub fn inline(&self, input: In) -> Result<Out, Error<E>> {
        let item = (self.pre)(input).map_err(Error::Preprocess)?;
        let output = self.serving.inline(item)?;
        (self.post)(output).map_err(Error::Postprocess)
    }

    /// [`inline`](Self::inline) for many inputs, split by `batch_size`.
    ///
    /// # Errors
    ///
    /// As [`inline`](Self::inline).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), batch_serving::Error<String>> {
    /// use batch_serving::{Batch, Serving};
    /// let lengths = Serving::new(|b: Batch<Vec<u8>>| Ok::<_, String>(b.iter().map(Vec::len).collect()))
    ///     .start()?
    ///     .map_inputs(|s: &str| Ok(s.as_bytes().to_vec()))
    ///     .map_results(|n: usize| Ok(format!("{n} bytes")));
    /// assert_eq!(lengths.inline_many(vec!["x", ""])?, ["1 bytes", "0 bytes"]);
    /// # Ok(()) }
    /// ```
    pub fn inline_many(&self, inputs: Vec<In>) -> Result<Vec<Out>, Error<E>> {
        let items = self.prepare_many(inputs)?;
        let outputs = self.serving.inline_many(items)?;
        self.finish_many(outputs)
    }
}
