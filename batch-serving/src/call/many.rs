//! Many-item calls: a call's items are queued as pieces that may run in
//! different batches, and the outputs are put back in order by position.
//!
//! A call no larger than the queue is admitted whole, so its items enter the
//! queue together. A larger call is admitted piece by piece (a batch's worth
//! at a time) as room frees up, so other callers' items can be queued
//! between its pieces; with fail-fast admission such a call is refused
//! whole, even by an empty queue, because it could never be admitted at once.

use std::future::poll_fn;
use std::sync::Arc;

use tokio::time::Instant;

use crate::call::admission::Admission;
use crate::call::core::{AbandonOnDrop, Inner, MAX_CALL_ITEMS};
use crate::engine::message::{Msg, Piece};
use crate::error::Error;
use crate::options::{CallOptions, Priority};
use crate::request::Request;

impl<I, O, E> Inner<I, O, E> {
    pub(crate) async fn call_many(
        &self,
        items: Vec<I>,
        options: CallOptions,
        admission: Admission,
    ) -> Result<Vec<O>, Error<E>> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        if items.len() > MAX_CALL_ITEMS {
            // Before the reply slots are allocated.
            return Err(self.overloaded(items.len()));
        }
        if options.deadline.is_some_and(|at| at <= Instant::now()) {
            self.release_reserved(items.len(), admission);
            return Err(self.expired_before_queueing());
        }
        if admission != Admission::Reserved {
            self.refuse_if_late(items.len(), options.deadline)?;
        }
        let request =
            Arc::new(Request::new(items.len(), None).due(self.queue_deadline(options.deadline)));
        let guard = AbandonOnDrop {
            inner: self,
            request: &request,
        };
        let work = async {
            self.enqueue_all(items, &request, options.priority, admission)
                .await?;
            Ok(poll_fn(|cx| request.poll_complete(cx)).await?)
        };
        let result = match options.deadline {
            Some(at) => Box::pin(self.with_deadline(Some(at), &request, work)).await,
            None => work.await,
        };
        if result.is_err() {
            // Pieces of a failed call that are still queued need not run.
            request.abandon(false);
        }
        std::mem::forget(guard);
        result
    }

    /// Queues every item of a many-item call. A call larger than the queue
    /// is admitted piece by piece as room frees up.
    pub(crate) async fn enqueue_all(
        &self,
        mut items: Vec<I>,
        request: &Arc<Request<O, E>>,
        priority: Priority,
        admission: Admission,
    ) -> Result<(), Error<E>> {
        let total = items.len();
        if total > MAX_CALL_ITEMS || (admission == Admission::FailFast && total > self.capacity()) {
            return Err(self.overloaded(total));
        }
        let piece = if total <= self.capacity() {
            total
        } else {
            self.batch_size.min(self.capacity())
        };
        let mut offset = 0;
        while !items.is_empty() {
            let rest = if items.len() > piece {
                items.split_off(piece)
            } else {
                Vec::new()
            };
            let chunk = std::mem::replace(&mut items, rest);
            let len = chunk.len();
            self.admit(len, admission).await?;
            self.queue_piece(chunk, request, offset, priority)?;
            offset += len;
        }
        Ok(())
    }

    /// Sends one piece of a call to the scheduler (its room already taken):
    /// `items[i]` is the call's item `offset + i`.
    pub(crate) fn queue_piece(
        &self,
        items: Vec<I>,
        request: &Arc<Request<O, E>>,
        offset: usize,
        priority: Priority,
    ) -> Result<(), Error<E>> {
        let keys = match &self.key_fn {
            Some(key_fn) => items.iter().map(|item| key_fn(item)).collect(),
            None => Vec::new(),
        };
        self.send(Msg::Many(Box::new(Piece {
            items,
            keys,
            request: Arc::clone(request),
            offset,
            priority,
        })))
    }
}
