//! Queue room: the bound on queued items, and its only owner. Callers take
//! room before they queue; the engine gives it back when the items leave the
//! queue (a batch starts, or abandoned items are swept, or a shutdown fails
//! them). Every hand-back goes through [`QueueRoom::give_back`], so the
//! count has one place to read and to audit.
//!
//! Room is a count, not a per-item permit: a permit object in every queued
//! entry would cost a pointer per item, and the queue already knows how
//! many entries each path removes.

use tokio::sync::{AcquireError, Semaphore, TryAcquireError};

#[derive(Debug)]
pub(crate) struct QueueRoom {
    free: Semaphore,
    capacity: usize,
}

impl QueueRoom {
    pub(crate) fn new(capacity: usize) -> Self {
        QueueRoom {
            free: Semaphore::new(capacity),
            capacity,
        }
    }

    /// The most items the queue holds.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Takes room for `n` items if it is free now.
    pub(crate) fn try_take(&self, n: u32) -> Result<(), TryAcquireError> {
        self.free
            .try_acquire_many(n)
            .map(tokio::sync::SemaphorePermit::forget)
    }

    /// Waits until room for `n` items is free, and takes it (FIFO among
    /// waiters: a large call is not starved by small ones).
    pub(crate) async fn take(&self, n: u32) -> Result<(), AcquireError> {
        self.free
            .acquire_many(n)
            .await
            .map(tokio::sync::SemaphorePermit::forget)
    }

    /// Gives back room for `n` items that left the queue.
    pub(crate) fn give_back(&self, n: usize) {
        if n > 0 {
            self.free.add_permits(n);
        }
    }

    /// Refuses all further takes; waiters get an error at once.
    pub(crate) fn close(&self) {
        self.free.close();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.free.is_closed()
    }

    /// Items queued or reserved now.
    pub(crate) fn used(&self) -> usize {
        self.capacity.saturating_sub(self.free.available_permits())
    }
}
