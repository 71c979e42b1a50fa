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

use crate::call::core::{AbandonOnDrop, Inner};
use crate::call::gate::{Ask, Pass, Ticket};
use crate::engine::message::{Msg, Piece};
use crate::error::Error;
use crate::options::{CallOptions, Priority};
use crate::request::Request;

impl<I, O, E> Inner<I, O, E> {
    /// A many-item call whose first `held` items already hold queue room
    /// (0 for a call that holds none); the rest is admitted as `options`
    /// say.
    pub(crate) async fn call_many(
        &self,
        items: Vec<I>,
        options: CallOptions,
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
            self.enqueue_rest(items, request, priority, offset).await?;
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

    /// The part of a many-item call before it may wait: the gate, its
    /// shared state (allocated only once the gate lets it in), and queueing
    /// the items whose room it holds, so that held room is always room in
    /// the queue. Returns the items left to wait for and the position of the
    /// first. Kept out of `call_many`, so that its locals do not live in
    /// that future.
    #[allow(clippy::type_complexity, reason = "one private hand-over")]
    fn start_many(
        &self,
        items: Vec<I>,
        options: &CallOptions,
        held: usize,
    ) -> Result<(Arc<Request<O, E>>, Vec<I>, usize), Error<E>> {
        let pass = self.gate(Ask::new(items.len(), options).holding(held))?;
        let request =
            Arc::new(Request::new(items.len(), None).due(self.queue_deadline(options.deadline)));
        let (rest, offset) = self.queue_admitted(items, &request, options.priority, pass)?;
        Ok((request, rest, offset))
    }

    /// Queues the items the gate's pass holds room for, at the front of
    /// `items` (all of them, or the held ones when the rest must wait).
    /// Returns the items left to wait for, and the position of the first.
    pub(crate) fn queue_admitted(
        &self,
        mut items: Vec<I>,
        request: &Arc<Request<O, E>>,
        priority: Priority,
        pass: Pass<'_>,
    ) -> Result<(Vec<I>, usize), Error<E>> {
        let ticket = match pass {
            Pass::Now(ticket) | Pass::Wait(ticket) => ticket,
        };
        let offset = ticket.items().min(items.len());
        if offset == 0 {
            return Ok((items, 0));
        }
        let rest = items.split_off(offset);
        self.queue_piece(items, request, 0, priority, ticket)?;
        Ok((rest, offset))
    }

    /// Waits for room for the rest of a many-item call that the gate sent
    /// to wait, and queues it; its first item is the call's item `offset`
    /// (items before it are queued already). The rest is admitted whole
    /// when it fits the queue, and otherwise piece by piece (a batch's
    /// worth at a time) as room frees up.
    pub(crate) async fn enqueue_rest(
        &self,
        mut items: Vec<I>,
        request: &Arc<Request<O, E>>,
        priority: Priority,
        mut offset: usize,
    ) -> Result<(), Error<E>> {
        let total = items.len();
        if total == 0 {
            return Ok(());
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
            // Boxed, so that every call's future does not carry the size of
            // the semaphore's wait, which only a full queue needs.
            let ticket = Box::pin(self.wait_for_room(len)).await?;
            self.queue_piece(chunk, request, offset, priority, ticket)?;
            offset += len;
        }
        Ok(())
    }

    /// Sends one piece of a call to the scheduler, in the room its ticket
    /// holds: `items[i]` is the call's item `offset + i`. Should the
    /// scheduler be gone (a shutdown), the ticket gives the room back as
    /// it drops.
    pub(crate) fn queue_piece(
        &self,
        items: Vec<I>,
        request: &Arc<Request<O, E>>,
        offset: usize,
        priority: Priority,
        mut ticket: Ticket<'_>,
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
        })))?;
        ticket.queued(len);
        Ok(())
    }
}
