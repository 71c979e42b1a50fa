//! Dynamic batching for Rust services.
//!
//! Many callers submit work independently and concurrently; calls that
//! arrive close together are merged into one execution of a *batch
//! function*, and each caller gets back exactly its own outputs, in order.
//! It is Elixir's `Nx.Serving` for Rust, with deadlines, cancellation,
//! backpressure, priorities, batch keys, streaming, stats and panic
//! isolation.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), batch_serving::Error<std::convert::Infallible>> {
//! use batch_serving::{Batch, Serving};
//! use std::time::Duration;
//!
//! let serving = Serving::new(|batch: Batch<u32>| {
//!     Ok::<_, std::convert::Infallible>(batch.iter().map(|x| x * x).collect())
//! })
//! .batch_size(32)
//! .batch_timeout(Duration::from_millis(5))
//! .partitions(2)
//! .start()?;
//!
//! assert_eq!(serving.dispatch(3).await?, 9);
//! assert_eq!(serving.dispatch_many(vec![2, 3]).await?, vec![4, 9]);
//! assert_eq!(serving.inline(4)?, 16);
//! # Ok(()) }
//! ```
//!
//! # Data flow
//!
//! A call reserves queue room (a semaphore: the queue is bounded), sends its
//! items to the *scheduler* task, and waits on its own reply slot. The
//! scheduler keeps one FIFO per [`BatchKey`] with a lane per [`Priority`],
//! and starts a batch on a free partition when the [`Policy`] says it is
//! ready. Synchronous batch functions run on threads the serving owns, one
//! per partition; asynchronous ones on one tokio task per partition. The
//! partition writes each caller's outputs into its slot and wakes it.
//!
//! See `docs/guide.md` in the repository for policies, tuning and error
//! semantics.

mod batch;
mod builder;
mod delivery;
mod error;
mod hook;
mod key;
#[doc(hidden)]
pub mod layout;
mod mapped;
mod mapped_reservation;
mod one_call;
mod options;
mod partition;
mod policy;
mod queue;
mod request;
mod reservation;
mod scheduler;
mod serving;
mod stats;
mod stream;
mod sync;
#[cfg(feature = "ndarray")]
pub mod tensor;
#[cfg(all(test, loom))]
mod tests;

pub use batch::Batch;
pub use builder::{Builder, DEFAULT_BATCH_SIZE, DEFAULT_BATCH_TIMEOUT, DEFAULT_QUEUE_BATCHES};
pub use error::Error;
pub use hook::Hook;
pub use key::BatchKey;
pub use mapped::MappedServing;
pub use mapped_reservation::{MappedReservation, PreparedCall};
pub use options::{CallOptions, Priority};
pub use policy::Policy;
pub use reservation::Reservation;
pub use serving::Serving;
pub use stats::{Percentiles, Stats};
pub use stream::{DispatchStream, Event};
