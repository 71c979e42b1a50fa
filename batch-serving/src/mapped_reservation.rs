//! Admission before pre-processing for a [`MappedServing`]: room is taken
//! first, the input is pre-processed (where the caller likes: in its task,
//! or on a blocking pool), then the item is queued in that room.

use crate::error::Error;
use crate::mapped::{MappedServing, Post, Pre};
use crate::options::CallOptions;
use crate::reservation::Reservation;

/// Queue room for one call of a [`MappedServing`], with its processing
/// steps: [`prepare`](Self::prepare) runs the pre-processing, and the
/// [`PreparedCall`] it returns queues the item in the room. Dropped at any
/// point before the item is queued, the room goes back.
///
/// It is `Send + 'static`, so the pre-processing can run off the async
/// workers:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use batch_serving::{Batch, Serving};
/// let parse = Serving::new(|b: Batch<u32>| Ok::<_, String>(b.iter().map(|x| x * 2).collect()))
///     .start()?
///     .map_inputs(|text: String| text.parse::<u32>().map_err(|e| e.to_string()));
/// let room = parse.try_reserve()?; // overload is refused here, before any parsing
/// let prepared = tokio::task::spawn_blocking(move || room.prepare("21".to_owned()))
///     .await
///     .expect("the parser does not panic")?;
/// assert_eq!(prepared.dispatch().await?, 42);
/// # Ok(()) }
/// ```
#[must_use = "dropping a reservation gives its queue room back"]
pub struct MappedReservation<In, Out, I, O, E> {
    room: Reservation<I, O, E>,
    pre: Pre<In, I, E>,
    post: Post<O, Out, E>,
}

/// A pre-processed input in reserved queue room, ready to be queued by
/// [`dispatch`](Self::dispatch).
#[must_use = "dropping a prepared call gives its queue room back"]
pub struct PreparedCall<Out, I, O, E> {
    room: Reservation<I, O, E>,
    item: I,
    post: Post<O, Out, E>,
}

impl<In, Out, I, O, E> std::fmt::Debug for MappedReservation<In, Out, I, O, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedReservation")
            .field("room", &self.room)
            .finish_non_exhaustive()
    }
}

impl<Out, I, O, E> std::fmt::Debug for PreparedCall<Out, I, O, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedCall")
            .field("room", &self.room)
            .finish_non_exhaustive()
    }
}

impl<In, Out, I, O, E> MappedServing<In, Out, I, O, E>
where
    I: Send + 'static,
    O: Send + 'static,
    E: Send + Sync + 'static,
{
    /// Takes queue room for one call now, or fails at once, before any
    /// pre-processing: what [`try_dispatch`](Self::try_dispatch) does first.
    ///
    /// # Errors
    ///
    /// [`Error::Overloaded`] when the queue is full, [`Error::Closed`] after
    /// shutdown.
    pub fn try_reserve(&self) -> Result<MappedReservation<In, Out, I, O, E>, Error<E>> {
        Ok(self.with_room(self.serving.try_reserve(1)?))
    }

    /// Takes queue room for one call, waiting while the queue is full.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after shutdown.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future while it waits takes no room.
    pub async fn reserve(&self) -> Result<MappedReservation<In, Out, I, O, E>, Error<E>> {
        Ok(self.with_room(self.serving.reserve(1).await?))
    }

    fn with_room(&self, room: Reservation<I, O, E>) -> MappedReservation<In, Out, I, O, E> {
        MappedReservation {
            room,
            pre: self.pre.clone(),
            post: self.post.clone(),
        }
    }
}

impl<In, Out, I, O, E> MappedReservation<In, Out, I, O, E>
where
    I: Send + 'static,
    O: Send + 'static,
    E: Send + Sync + 'static,
{
    /// Runs the pre-processing on `input`, on this thread.
    ///
    /// # Errors
    ///
    /// [`Error::Preprocess`]; the room then goes back.
    pub fn prepare(self, input: In) -> Result<PreparedCall<Out, I, O, E>, Error<E>> {
        let item = (self.pre)(input).map_err(Error::Preprocess)?;
        Ok(PreparedCall {
            room: self.room,
            item,
            post: self.post,
        })
    }

    /// Pre-processes `input` in this task, queues it in the room and waits
    /// for the post-processed output.
    ///
    /// # Errors
    ///
    /// As [`MappedServing::dispatch`].
    ///
    /// # Cancel safety
    ///
    /// As [`Serving::dispatch`](crate::Serving::dispatch).
    pub async fn dispatch(self, input: In) -> Result<Out, Error<E>> {
        self.dispatch_with(input, CallOptions::default()).await
    }

    /// [`dispatch`](Self::dispatch) with call options.
    ///
    /// # Errors
    ///
    /// As [`MappedServing::dispatch_with`].
    ///
    /// # Cancel safety
    ///
    /// As [`Serving::dispatch`](crate::Serving::dispatch).
    pub async fn dispatch_with(self, input: In, options: CallOptions) -> Result<Out, Error<E>> {
        self.prepare(input)?.dispatch_with(options).await
    }
}

impl<Out, I, O, E> PreparedCall<Out, I, O, E>
where
    I: Send + 'static,
    O: Send + 'static,
    E: Send + Sync + 'static,
{
    /// Queues the item in its room and waits for the post-processed output.
    ///
    /// # Errors
    ///
    /// As [`Serving::dispatch`](crate::Serving::dispatch), plus
    /// [`Error::Postprocess`].
    ///
    /// # Cancel safety
    ///
    /// As [`Serving::dispatch`](crate::Serving::dispatch).
    pub async fn dispatch(self) -> Result<Out, Error<E>> {
        self.dispatch_with(CallOptions::default()).await
    }

    /// [`dispatch`](Self::dispatch) with call options.
    ///
    /// # Errors
    ///
    /// As [`Serving::dispatch_with`](crate::Serving::dispatch_with), plus
    /// [`Error::Postprocess`].
    ///
    /// # Cancel safety
    ///
    /// As [`Serving::dispatch`](crate::Serving::dispatch).
    pub async fn dispatch_with(self, options: CallOptions) -> Result<Out, Error<E>> {
        let output = self.room.dispatch_with(self.item, options).await?;
        (self.post)(output).map_err(Error::Postprocess)
    }
}
