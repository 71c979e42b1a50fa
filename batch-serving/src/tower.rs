//! tower integration (feature `tower`): a serving as a `Service`, and a
//! `Layer` that makes any `Service<Vec<I>, Response = Vec<O>>` batched.
//!
//! Backpressure goes through `poll_ready`: it takes queue room for one item
//! as an owned [`Reservation`], and `call` dispatches with it. A permit
//! whose `call` never comes (the caller was dropped between the two, or a
//! `ConcurrencyLimit` above gave up) is given back when the service, or its
//! clone that holds it, is dropped, so room never leaks; tower-batch-control
//! leaks it (zebra #1593).

use std::sync::Arc;

use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tower_layer::Layer;
use tower_service::Service;

use crate::batch::Batch;
use crate::builder::Builder;
use crate::error::{Error, StartError};
use crate::options::CallOptions;
use crate::reservation::Reservation;
use crate::serving::Serving;

/// A [`Serving`] as a tower [`Service`] of one item: `poll_ready` waits for
/// queue room (or, with fail-fast options, fails at once with
/// [`Error::Overloaded`]), `call` queues the item in it.
///
/// Each clone takes its own room, as tower's `Buffer` does; clone per
/// caller.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use batch_serving::{Batch, Serving};
/// use tower::{Service, ServiceExt};
/// let serving = Serving::new(|b: Batch<u32>| Ok::<_, String>(b.iter().map(|x| x * 2).collect())).start()?;
/// let mut service = serving.service();
/// assert_eq!(service.ready().await?.call(21).await?, 42);
/// # Ok(()) }
/// ```
pub struct ServingService<I, O, E> {
    serving: Serving<I, O, E>,
    options: CallOptions,
    permit: Option<Reservation<I, O, E>>,
    // Behind a mutex only to be `Sync` (axum's state must be): it is only
    // reached through `&mut self`, with `get_mut`, so it is never locked.
    waiting: Option<std::sync::Mutex<Waiting<I, O, E>>>,
}

/// `poll_ready`'s wait for room, kept across polls.
type Waiting<I, O, E> = BoxFuture<'static, Result<Reservation<I, O, E>, Error<E>>>;

/// How a [`BatchLayer`] sets up its serving.
type Configure<I, O, E> = dyn Fn(Builder<I, O, E>) -> Builder<I, O, E> + Send + Sync;

impl<I, O, E> std::fmt::Debug for ServingService<I, O, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServingService")
            .field("options", &self.options)
            .field("ready", &self.permit.is_some())
            .finish_non_exhaustive()
    }
}

impl<I, O, E> Clone for ServingService<I, O, E> {
    /// A clone starts without room of its own.
    fn clone(&self) -> Self {
        ServingService {
            serving: self.serving.clone(),
            options: self.options,
            permit: None,
            waiting: None,
        }
    }
}

impl<I, O, E> Serving<I, O, E>
where
    I: Send + 'static,
    O: Send + 'static,
    E: Send + Sync + 'static,
{
    /// This serving as a tower [`Service`] with default call options.
    pub fn service(&self) -> ServingService<I, O, E> {
        self.service_with(CallOptions::default())
    }

    /// This serving as a tower [`Service`] whose calls carry `options`
    /// (priority; `fail_fast` makes `poll_ready` fail at once on a full
    /// queue instead of waiting). A deadline in `options` is fixed when it
    /// is set, so use tower's `Timeout` layer for per-request time limits.
    pub fn service_with(&self, options: CallOptions) -> ServingService<I, O, E> {
        ServingService {
            serving: self.clone(),
            options,
            permit: None,
            waiting: None,
        }
    }
}

impl<I, O, E> Service<I> for ServingService<I, O, E>
where
    I: Send + 'static,
    O: Send + 'static,
    E: Send + Sync + 'static,
{
    type Response = O;
    type Error = Error<E>;
    type Future = BoxFuture<'static, Result<O, Error<E>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.permit.is_some() {
            return Poll::Ready(Ok(()));
        }
        let waiting = self.waiting.get_or_insert_with(|| {
            let serving = self.serving.clone();
            let options = self.options;
            std::sync::Mutex::new(Box::pin(
                async move { serving.reserve_as(1, &options).await },
            ))
        });
        let waiting = waiting
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match waiting.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(result) => {
                self.waiting = None;
                self.permit = Some(result?);
                Poll::Ready(Ok(()))
            }
        }
    }

    fn call(&mut self, item: I) -> Self::Future {
        let options = self.options;
        match self.permit.take() {
            Some(permit) => Box::pin(permit.dispatch_with(item, options)),
            // `call` without `poll_ready` breaks tower's contract; rather
            // than panic, the call takes the plain path and waits for room
            // itself.
            None => {
                let serving = self.serving.clone();
                Box::pin(async move { serving.dispatch_with(item, options).await })
            }
        }
    }
}

/// A tower [`Layer`] that puts a serving in front of any
/// `Service<Vec<I>, Response = Vec<O>>`: calls of one item each are batched
/// into one call of the inner service, and each caller gets its own output.
/// tower-batch-control and tower-batch only flush per batch, with one result
/// per flush.
///
/// The inner service is cloned per batch and driven `ready().call(items)`;
/// its error reaches every caller of that batch as [`Error::Batch`]. A
/// wrong number of outputs is [`Error::WrongOutputCount`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use batch_serving::tower::BatchLayer;
/// use std::time::Duration;
/// use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
///
/// let lengths = service_fn(|words: Vec<String>| async move {
///     Ok::<_, std::io::Error>(words.iter().map(String::len).collect::<Vec<_>>())
/// });
/// let mut batched = ServiceBuilder::new()
///     .layer(BatchLayer::new(|core| core.batch_size(16).batch_timeout(Duration::from_millis(2))))
///     .service(lengths);
/// assert_eq!(batched.ready().await?.call("hello".to_string()).await?, 5);
/// # Ok(()) }
/// ```
pub struct BatchLayer<I, O, E> {
    configure: Arc<Configure<I, O, E>>,
}

impl<I, O, E> Clone for BatchLayer<I, O, E> {
    fn clone(&self) -> Self {
        BatchLayer {
            configure: Arc::clone(&self.configure),
        }
    }
}

impl<I, O, E> std::fmt::Debug for BatchLayer<I, O, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchLayer").finish_non_exhaustive()
    }
}

impl<I, O, E> BatchLayer<I, O, E> {
    /// A layer whose serving is set up by `configure` (batch size, timeout,
    /// partitions, policy, queue capacity, ...).
    pub fn new(
        configure: impl Fn(Builder<I, O, E>) -> Builder<I, O, E> + Send + Sync + 'static,
    ) -> Self {
        BatchLayer {
            configure: Arc::new(configure),
        }
    }

    /// Starts the serving in front of `inner`.
    ///
    /// # Errors
    ///
    /// As [`Builder::start`]: an invalid setting, or no tokio runtime.
    pub fn try_layer<S>(&self, inner: S) -> Result<ServingService<I, O, E>, StartError<E>>
    where
        S: Service<Vec<I>, Response = Vec<O>, Error = E> + Clone + Send + 'static,
        S::Future: Send + 'static,
        I: Send + 'static,
        O: Send + 'static,
        E: Send + Sync + 'static,
    {
        // Many tower services are not `Sync`; behind a mutex, a clone per
        // batch is taken under a lock held only for the clone.
        let inner = std::sync::Mutex::new(inner);
        let builder = Serving::new_async(move |batch: Batch<I>| {
            let mut service = inner
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            async move {
                std::future::poll_fn(|cx| service.poll_ready(cx)).await?;
                service.call(batch.into_items()).await
            }
        });
        Ok((self.configure)(builder).start()?.service())
    }
}

impl<S, I, O, E> Layer<S> for BatchLayer<I, O, E>
where
    S: Service<Vec<I>, Response = Vec<O>, Error = E> + Clone + Send + 'static,
    S::Future: Send + 'static,
    I: Send + 'static,
    O: Send + 'static,
    E: Send + Sync + 'static,
{
    type Service = ServingService<I, O, E>;

    /// Starts the serving in front of `inner`.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, or when `configure` left an invalid setting,
    /// as tower's own `Buffer` panics outside a runtime; use
    /// [`try_layer`](BatchLayer::try_layer) to get the error instead.
    fn layer(&self, inner: S) -> Self::Service {
        match self.try_layer(inner) {
            Ok(service) => service,
            Err(StartError::InvalidConfig(why)) => {
                panic!("BatchLayer: invalid configuration: {why}")
            }
            Err(StartError::NoRuntime) => {
                panic!("BatchLayer must be layered inside a tokio runtime")
            }
            Err(_) => panic!("BatchLayer: the serving could not start"),
        }
    }
}
