#![doc = include_str!("../README.md")]

// The layout is the data path, and imports point one way, downwards:
//   serving, mapped, reservation, builder   the public handles
//   -> call/      what runs in the caller's task (admission, the call futures)
//   -> engine/    the scheduler, queue, policy, partitions and delivery,
//                 reached only through engine::message, and at admission
//                 through the policy's forecast
//   -> request    the reply slot both sides meet at
//   -> the leaves (batch, error, event, hook, key, options, policy, room,
//                  stats, sync)
// `.ci/check-module-cycles` fails the build on an import that points back.
mod batch;
mod builder;
mod call;
mod engine;
mod error;
mod event;
mod hook;
mod key;
#[cfg(feature = "bench-internals")]
pub mod layout;
mod mapped;
mod mapped_reservation;
mod meter;
mod options;
mod policy;
mod request;
mod reservation;
mod room;
mod serving;
mod stats;
mod sync;
#[cfg(feature = "ndarray")]
pub mod tensor;
#[cfg(all(test, loom))]
mod tests;
#[cfg(feature = "tower")]
pub mod tower;

pub use batch::Batch;
pub use builder::{Builder, DEFAULT_BATCH_SIZE, DEFAULT_BATCH_TIMEOUT, DEFAULT_QUEUE_BATCHES};
pub use call::stream::DispatchStream;
pub use error::{Error, ShutdownTimedOut, StartError};
pub use event::Event;
pub use hook::Hook;
pub use key::BatchKey;
pub use mapped::{MappedServing, MappedStream};
pub use mapped_reservation::{MappedReservation, PreparedCall};
pub use options::{CallOptions, Priority};
pub use policy::Policy;
pub use reservation::Reservation;
pub use serving::Serving;
pub use stats::{AdaptiveStats, BatchSizeStats, Percentiles, Starts, Stats};
