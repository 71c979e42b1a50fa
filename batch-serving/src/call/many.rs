//! Many-item calls: a call's items are queued as pieces that may run in
//! different batches, and the outputs are put back in order by position.
//!
//! A call no larger than the queue is admitted whole, so its items enter the
//! queue together. A larger call is admitted piece by piece (a batch's worth
//! at a time) as room frees up, so other callers' items can be queued
//! between its pieces; with fail-fast admission such a call is refused
//! whole, even by an empty queue, because it could never be admitted at once.
//!
//! A call that already holds room for some of its items (a reservation
//! spent on more items than it holds) queues those items first, before it
//! waits for the rest. Room a call holds is then always room in the queue,
//! which the engine frees as batches start: no call can sit on room while
//! it waits for more, behind a waiter that needs what it sits on.

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
    /// A many-item call whose first `held` items already hold queue room
    /// (`held` is at most `items.len()`; 0 for a call that holds none);
    /// the rest is admitted as `admission` says.
    pub(crate) async fn call_many(
        &self,
        items: Vec<I>,
        options: CallOptions,
        admission: Admission,
        held: usize,
    ) -> Result<Vec<O>, Error<E>> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let (request, items, offset) = self.start_many(items, &options, held)?;
        let request = &request;
        let guard = AbandonOnDrop {
            inner: self,
            request,
        };
        // Moved in, so that the block holds its values rather than
        // references to this future's copies of them.
        let priority = options.priority;
        let work = async move {
            self.enqueue_all(items, request, priority, admission, offset)
                .await?;
            Ok(poll_fn(|cx| request.poll_complete(cx)).await?)
        };
        let result = match options.deadline {
            Some(at) => Box::pin(self.with_deadline(Some(at), request, work)).await,
            None => work.await,
        };
        if result.is_err() {
            // Pieces of a failed call that are still queued need not run.
            request.abandon(false);
        }
        std::mem::forget(guard);
        result
    }

    /// The part of a many-item call before it may wait: the checks that
    /// refuse it, its shared state, and queueing the items whose room it
    /// holds, so that held room is always room in the queue. Returns the
    /// items left to admit and the position of the first. Kept out of
    /// `call_many`, so that its locals do not live in that future.
    #[allow(clippy::type_complexity, reason = "one private hand-over")]
    fn start_many(
        &self,
        mut items: Vec<I>,
        options: &CallOptions,
        held: usize,
    ) -> Result<(Arc<Request<O, E>>, Vec<I>, usize), Error<E>> {
        let refused = if items.len() > MAX_CALL_ITEMS {
            // Before the reply slots are allocated.
            Err(self.overloaded(items.len()))
        } else if options.deadline.is_some_and(|at| at <= Instant::now()) {
            Err(self.expired_before_queueing())
        } else if held < items.len() {
            self.refuse_if_late(items.len() - held, options.deadline)
        } else {
            Ok(())
        };
        if let Err(error) = refused {
            self.room.give_back(held);
            return Err(error);
        }
        let request =
            Arc::new(Request::new(items.len(), None).due(self.queue_deadline(options.deadline)));
        let offset = held.min(items.len());
        if offset > 0 {
            let rest = items.split_off(offset);
            let reserved = std::mem::replace(&mut items, rest);
            self.queue_piece(reserved, &request, 0, options.priority)?;
        }
        Ok((request, items, offset))
    }

    /// Admits and queues the items of a many-item call, the first of which
    /// is the call's item `offset` (items before it are queued already). A
    /// call larger than the queue is admitted piece by piece as room frees
    /// up.
    pub(crate) async fn enqueue_all(
        &self,
        mut items: Vec<I>,
        request: &Arc<Request<O, E>>,
        priority: Priority,
        admission: Admission,
        mut offset: usize,
    ) -> Result<(), Error<E>> {
        let total = items.len();
        if total == 0 {
            return Ok(());
        }
        if total > MAX_CALL_ITEMS || (admission == Admission::FailFast && total > self.capacity()) {
            return Err(self.overloaded(total));
        }
        let piece = if total <= self.capacity() {
            total
        } else {
            self.batch_size.min(self.capacity())
        };
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
    /// `items[i]` is the call's item `offset + i`. Should the scheduler be
    /// gone (a shutdown), the room goes back here, as no one else holds it.
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
        let len = items.len();
        self.send(Msg::Many(Box::new(Piece {
            items,
            keys,
            request: Arc::clone(request),
            offset,
            priority,
        })))
        .inspect_err(|_| self.room.give_back(len))
    }
}
