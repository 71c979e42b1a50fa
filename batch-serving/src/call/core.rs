//! What one serving shares between its handles, calls and streams, and the
//! small steps every call is made of: keying an item, sending a message,
//! giving up at a deadline, and counting an abandoned call.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::{Duration, Instant};

use crate::engine::message::Msg;
use crate::engine::partition::Runner;
use crate::engine::policy::forecast::Forecast;
use crate::error::Error;
use crate::key::BatchKey;
use crate::policy::Policy;
use crate::request::Request;
use crate::room::QueueRoom;
use crate::stats::Recorder;

pub(crate) type KeyFn<I> = Arc<dyn Fn(&I) -> BatchKey + Send + Sync>;

/// The most items one call may hold: a queued item records its position in
/// its call in 32 bits, which keeps every queue entry small. Larger calls
/// fail with `Overloaded` (admission already counted items in 32 bits).
pub(crate) const MAX_CALL_ITEMS: usize = u32::MAX as usize;

/// What one serving shares between its handles, callers and streams.
pub(crate) struct Inner<I, O, E> {
    pub(crate) tx: mpsc::UnboundedSender<Msg<I, O, E>>,
    pub(crate) room: Arc<QueueRoom>,
    pub(crate) batch_size: usize,
    pub(crate) partitions: usize,
    pub(crate) policy: Policy,
    pub(crate) batch_timeout: Duration,
    pub(crate) recorder: Arc<Recorder>,
    pub(crate) runner: Arc<dyn Runner<I, O, E>>,
    pub(crate) key_fn: Option<KeyFn<I>>,
    /// Under the adaptive policy: what admission predicts from.
    pub(crate) forecast: Option<Arc<Forecast>>,
}

impl<I, O, E> Drop for Inner<I, O, E> {
    /// The last handle (or stream, or reservation) is gone, so no call can
    /// be waiting: stop intake and let the engine wind down.
    fn drop(&mut self) {
        self.room.close();
        let _ = self.tx.send(Msg::Close { done: None });
    }
}

/// A completed one-item call's answer.
pub(crate) fn answer_of_one<O, E>(request: &Request<O, E>) -> Result<O, Error<E>> {
    request.take_single()?.ok_or(Error::Closed)
}

/// Marks a call abandoned if its future is dropped before it completes.
pub(crate) struct AbandonOnDrop<'a, I, O, E> {
    pub(crate) inner: &'a Inner<I, O, E>,
    pub(crate) request: &'a Request<O, E>,
}

impl<I, O, E> Drop for AbandonOnDrop<'_, I, O, E> {
    fn drop(&mut self) {
        if !self.request.is_complete() {
            self.inner.abandon(self.request, false);
        }
    }
}

/// Counts a call as cancelled if its caller drops it while it waits for
/// room before it has queued anything to abandon (a mapped call takes its
/// room first, then pre-processes): such a call is cancelled as much as one
/// dropped while queued. Defused once the wait is over.
pub(crate) struct CancelledIfDropped<'a> {
    recorder: &'a Recorder,
    armed: bool,
}

impl<'a> CancelledIfDropped<'a> {
    pub(crate) fn new(recorder: &'a Recorder) -> Self {
        CancelledIfDropped {
            recorder,
            armed: true,
        }
    }

    pub(crate) fn defuse(mut self) {
        self.armed = false;
    }
}

impl Drop for CancelledIfDropped<'_> {
    fn drop(&mut self) {
        if self.armed {
            Recorder::bump(&self.recorder.cancelled);
        }
    }
}

impl<I, O, E> Inner<I, O, E> {
    /// The queue's capacity, in items.
    pub(crate) fn capacity(&self) -> usize {
        self.room.capacity()
    }

    /// Records an abandoned call and tells the scheduler it may sweep.
    /// Returns false when the call had already ended.
    pub(crate) fn abandon(&self, request: &Request<O, E>, expired: bool) -> bool {
        if !request.abandon(expired) {
            return false;
        }
        Recorder::bump(if expired {
            &self.recorder.expired
        } else {
            &self.recorder.cancelled
        });
        let _ = self.tx.send(Msg::Abandoned);
        true
    }

    pub(crate) fn key_of(&self, item: &I) -> BatchKey {
        self.key_fn
            .as_ref()
            .map_or(BatchKey::DEFAULT, |key_fn| key_fn(item))
    }

    /// The call's deadline as the queue should see it: only an adaptive
    /// serving's queue orders by deadline, so only it is given one.
    pub(crate) fn queue_deadline(&self, deadline: Option<Instant>) -> Option<Instant> {
        deadline.filter(|_| self.forecast.is_some())
    }

    /// Sends a call's items to the scheduler; should it be gone (a
    /// shutdown between the gate and here), the call is refused as closed.
    pub(crate) fn send(&self, msg: Msg<I, O, E>) -> Result<(), Error<E>> {
        self.tx.send(msg).map_err(|_| self.refused_closed())
    }

    /// Runs `work` under the call's deadline, if it has one.
    pub(crate) async fn with_deadline<T>(
        &self,
        deadline: Option<Instant>,
        request: &Request<O, E>,
        work: impl Future<Output = Result<T, Error<E>>>,
    ) -> Result<T, Error<E>> {
        let Some(at) = deadline else {
            return work.await;
        };
        let mut work = std::pin::pin!(work);
        tokio::select! {
            biased;
            result = &mut work => return result,
            () = tokio::time::sleep_until(at) => {}
        }
        if self.abandon(request, true) || !request.is_complete() {
            return Err(Error::DeadlineExceeded);
        }
        // Its last items were answered (on a partition's thread) as the
        // deadline came: the call has ended as its answers say, and is
        // counted so.
        work.await
    }
}
