//! Admission: taking queue room for a call's items before they are sent,
//! waiting for it or failing fast as the call's options say.

use tokio::sync::TryAcquireError;

use crate::call::core::Inner;
use crate::error::Error;
use crate::options::CallOptions;
use crate::stats::Recorder;

/// Whether admission waits for queue room or fails fast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    Wait,
    FailFast,
    /// The caller already holds the room (a [`Reservation`](crate::Reservation)
    /// handed it over). Admitting is then a no-op that never suspends, so a
    /// reserved call queues its items in its first poll, and room cannot be
    /// lost between the reservation and the queue.
    Reserved,
}

impl Admission {
    /// The admission a call's options ask for.
    pub(crate) fn of(options: &CallOptions) -> Self {
        if options.fail_fast {
            Admission::FailFast
        } else {
            Admission::Wait
        }
    }
}

impl<I, O, E> Inner<I, O, E> {
    /// Reserves queue room for `n` items (`n` is at most the capacity).
    pub(crate) async fn admit(&self, n: usize, admission: Admission) -> Result<(), Error<E>> {
        if !self.try_admit(n, admission)? {
            // Boxed so that every call's future does not carry the size of
            // the semaphore's wait, which only a full queue needs.
            Box::pin(self.admit_waiting(n)).await?;
        }
        Ok(())
    }

    /// Takes room for `n` items if there is some now: `Ok(false)` when the
    /// caller has to wait for it.
    pub(crate) fn try_admit(&self, n: usize, admission: Admission) -> Result<bool, Error<E>> {
        if admission == Admission::Reserved {
            return Ok(true);
        }
        let wanted = u32::try_from(n).map_err(|_| self.overloaded(n))?;
        match self.room.try_take(wanted) {
            Ok(()) => Ok(true),
            Err(TryAcquireError::Closed) => {
                Recorder::bump(&self.recorder.rejected);
                Err(Error::Closed)
            }
            Err(TryAcquireError::NoPermits) if admission == Admission::FailFast => {
                Err(self.overloaded(n))
            }
            Err(TryAcquireError::NoPermits) => Ok(false),
        }
    }

    pub(crate) async fn admit_waiting(&self, n: usize) -> Result<(), Error<E>> {
        let wanted = u32::try_from(n).map_err(|_| self.overloaded(n))?;
        match self.room.take(wanted).await {
            Ok(()) => Ok(()),
            Err(_) => {
                Recorder::bump(&self.recorder.rejected);
                Err(Error::Closed)
            }
        }
    }

    /// Gives back the room of a reserved call that ends before queueing.
    pub(crate) fn release_reserved(&self, n: usize, admission: Admission) {
        if admission == Admission::Reserved {
            self.room.give_back(n);
        }
    }
}
