//! One trait for a serving wherever it runs: code that takes a
//! `&dyn Dispatch<I, O>` works the same with a local [`Serving`], a
//! [`MappedServing`], or a [`RemoteServing`](crate::RemoteServing).
//!
//! [`LocalServing`] is what a [`Node`](crate::Node) needs from the serving
//! it exports: the call verbs, plus the load figures it publishes.

use batch_serving::{CallOptions, Event, MappedServing, Serving};
use futures::future::BoxFuture;
use futures::stream::{BoxStream, StreamExt};

use crate::Error;

/// The one- and many-item verbs, local or remote.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use batch_serving::{Batch, Serving};
/// use batch_serving_nats::Dispatch;
///
/// async fn total(serving: &dyn Dispatch<u32, u32>) -> u32 {
///     serving.dispatch_many(vec![1, 2, 3]).await.map(|v| v.iter().sum()).unwrap_or(0)
/// }
/// let squares = Serving::new(|b: Batch<u32>| Ok::<_, String>(b.iter().map(|x| x * x).collect())).start()?;
/// assert_eq!(total(&squares).await, 14);
/// # Ok(()) }
/// ```
pub trait Dispatch<I, O>: Send + Sync {
    /// One item with options; see [`Serving::dispatch_with`].
    fn dispatch_with(&self, item: I, options: CallOptions) -> BoxFuture<'_, Result<O, Error>>;

    /// Many items with options; see [`Serving::dispatch_many_with`].
    fn dispatch_many_with(
        &self,
        items: Vec<I>,
        options: CallOptions,
    ) -> BoxFuture<'_, Result<Vec<O>, Error>>;

    /// One item with default options.
    fn dispatch(&self, item: I) -> BoxFuture<'_, Result<O, Error>> {
        self.dispatch_with(item, CallOptions::default())
    }

    /// Many items with default options.
    fn dispatch_many(&self, items: Vec<I>) -> BoxFuture<'_, Result<Vec<O>, Error>> {
        self.dispatch_many_with(items, CallOptions::default())
    }
}

impl<I, O, E> Dispatch<I, O> for Serving<I, O, E>
where
    I: Send + 'static,
    O: Send + 'static,
    E: std::fmt::Display + Send + Sync + 'static,
{
    fn dispatch_with(&self, item: I, options: CallOptions) -> BoxFuture<'_, Result<O, Error>> {
        Box::pin(async move { Ok(Serving::dispatch_with(self, item, options).await?) })
    }

    fn dispatch_many_with(
        &self,
        items: Vec<I>,
        options: CallOptions,
    ) -> BoxFuture<'_, Result<Vec<O>, Error>> {
        Box::pin(async move { Ok(Serving::dispatch_many_with(self, items, options).await?) })
    }
}

impl<In, Out, I, O, E> Dispatch<In, Out> for MappedServing<In, Out, I, O, E>
where
    In: Send + 'static,
    Out: Send + 'static,
    I: Send + 'static,
    O: Send + 'static,
    E: std::fmt::Display + Send + Sync + 'static,
{
    fn dispatch_with(&self, item: In, options: CallOptions) -> BoxFuture<'_, Result<Out, Error>> {
        Box::pin(async move { Ok(MappedServing::dispatch_with(self, item, options).await?) })
    }

    fn dispatch_many_with(
        &self,
        items: Vec<In>,
        options: CallOptions,
    ) -> BoxFuture<'_, Result<Vec<Out>, Error>> {
        Box::pin(async move { Ok(MappedServing::dispatch_many_with(self, items, options).await?) })
    }
}

/// A call already admitted to a local serving, still to be awaited.
pub type LocalCall<T> = BoxFuture<'static, Result<T, Error>>;

/// The load a node publishes, read off its serving.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Load {
    /// Partitions: batches that can run at once.
    pub partitions: usize,
    /// The most items in one batch.
    pub batch_size: usize,
    /// Queue capacity, in items.
    pub queue_capacity: usize,
    /// Items holding queue room now (queued or running).
    pub queued: usize,
    /// Median batch execution time so far, in seconds (0 before the first).
    pub batch_seconds: f64,
    /// Batches run so far.
    pub batches: u64,
    /// Items run so far.
    pub items: u64,
}

/// What a [`Node`](crate::Node) needs from the serving it exports.
/// Implemented for [`Serving`] and [`MappedServing`].
pub trait LocalServing<I, O>: Dispatch<I, O> + Clone + 'static {
    /// A streaming call; see [`Serving::dispatch_stream_with`].
    fn dispatch_stream_with(
        &self,
        items: Vec<I>,
        options: CallOptions,
    ) -> BoxStream<'static, Result<Event<O>, Error>>;

    /// Runs one item here if the queue has room for it now; gives the item
    /// back otherwise, so the caller can send it elsewhere.
    fn try_local_one(&self, item: I, options: CallOptions) -> Result<LocalCall<O>, I>;

    /// Runs many items here if the queue has room for all of them now;
    /// gives them back otherwise.
    fn try_local_many(
        &self,
        items: Vec<I>,
        options: CallOptions,
    ) -> Result<LocalCall<Vec<O>>, Vec<I>>;

    /// Room now held, without a stats snapshot.
    fn queued(&self) -> usize;

    /// The queue's capacity.
    fn queue_capacity(&self) -> usize;

    /// The figures a node publishes (takes a stats snapshot).
    fn load(&self) -> Load;
}

fn load_of<I, O, E>(serving: &Serving<I, O, E>) -> Load
where
    I: Send + 'static,
    O: Send + 'static,
    E: Send + Sync + 'static,
{
    let stats = serving.stats();
    // Execution percentiles are per batch; the p50 is a robust stand-in
    // for the mean that one slow warm-up batch cannot skew.
    Load {
        partitions: serving.partitions(),
        batch_size: serving.batch_size(),
        queue_capacity: serving.queue_capacity(),
        queued: serving.queued(),
        batch_seconds: stats.execution.p50.as_secs_f64(),
        batches: stats.batches,
        items: stats.items,
    }
}

impl<I, O, E> LocalServing<I, O> for Serving<I, O, E>
where
    I: Send + 'static,
    O: Send + 'static,
    E: std::fmt::Display + Send + Sync + 'static,
{
    fn dispatch_stream_with(
        &self,
        items: Vec<I>,
        options: CallOptions,
    ) -> BoxStream<'static, Result<Event<O>, Error>> {
        Serving::dispatch_stream_with(self, items, options)
            .map(|event| event.map_err(Error::from))
            .boxed()
    }

    fn try_local_one(&self, item: I, options: CallOptions) -> Result<LocalCall<O>, I> {
        // A reservation takes the room before the item moves, so a full
        // queue hands the item back instead of losing it.
        match self.try_reserve(1) {
            Ok(room) => Ok(Box::pin(async move {
                Ok(room.dispatch_with(item, options).await?)
            })),
            Err(_) => Err(item),
        }
    }

    fn try_local_many(
        &self,
        items: Vec<I>,
        options: CallOptions,
    ) -> Result<LocalCall<Vec<O>>, Vec<I>> {
        match self.try_reserve(items.len()) {
            Ok(room) => Ok(Box::pin(async move {
                Ok(room.dispatch_many_with(items, options).await?)
            })),
            Err(_) => Err(items),
        }
    }

    fn queued(&self) -> usize {
        Serving::queued(self)
    }

    fn queue_capacity(&self) -> usize {
        Serving::queue_capacity(self)
    }

    fn load(&self) -> Load {
        load_of(self)
    }
}

impl<In, Out, I, O, E> LocalServing<In, Out> for MappedServing<In, Out, I, O, E>
where
    In: Send + 'static,
    Out: Send + 'static,
    I: Send + 'static,
    O: Send + 'static,
    E: std::fmt::Display + Send + Sync + 'static,
{
    fn dispatch_stream_with(
        &self,
        items: Vec<In>,
        options: CallOptions,
    ) -> BoxStream<'static, Result<Event<Out>, Error>> {
        MappedServing::dispatch_stream_with(self, items, options)
            .map(|event| event.map_err(Error::from))
            .boxed()
    }

    fn try_local_one(&self, item: In, options: CallOptions) -> Result<LocalCall<Out>, In> {
        match self.try_reserve() {
            Ok(room) => Ok(Box::pin(async move {
                Ok(room.dispatch_with(item, options).await?)
            })),
            Err(_) => Err(item),
        }
    }

    fn try_local_many(
        &self,
        items: Vec<In>,
        options: CallOptions,
    ) -> Result<LocalCall<Vec<Out>>, Vec<In>> {
        // A mapped serving reserves one input at a time; a many-item call
        // goes here when the room is there now, fail-fast, and in the rare
        // race where another caller takes the room first it fails as
        // overloaded rather than waiting.
        let serving = self.clone();
        if self.queue_capacity() - self.serving().queued().min(self.queue_capacity()) < items.len()
        {
            return Err(items);
        }
        Ok(Box::pin(async move {
            Ok(MappedServing::dispatch_many_with(&serving, items, options.fail_fast()).await?)
        }))
    }

    fn queued(&self) -> usize {
        self.serving().queued()
    }

    fn queue_capacity(&self) -> usize {
        self.serving().queue_capacity()
    }

    fn load(&self) -> Load {
        load_of(self.serving())
    }
}
