//! The primitives of the one hand-written rendezvous in the crate (a call's
//! [`Request`](crate::request)), from `std`, or from `loom` when its models
//! run (`RUSTFLAGS="--cfg loom"`), so that loom can explore every
//! interleaving of callers and partitions.

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU8, AtomicU32};
#[cfg(not(loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU8, AtomicU32};
#[cfg(loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};
