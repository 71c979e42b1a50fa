//! Where a remote call goes, and when it goes again: a node picked by
//! load or the shared subject; a refusal before running passes the call to
//! another node, up to `max_tries`; a node lost mid-call is tried again
//! only for an idempotent handle. The same rules hold for a call sent on
//! its own and for one coalesced with others into a node's next message.

use std::sync::PoisonError;
use std::sync::atomic::Ordering;
use std::time::Duration;

use batch_serving::CallOptions;
use bytes::Bytes;
use tokio::time::Instant;

use super::attempt::{Attempt, Reply};
use super::coalesce::{CancelOnDrop, Coalescers, HEADER_ROOM, Outgoing, Sent};
use super::discovery::{DISCOVERY_WAIT, gather};
use super::handle::RemoteServing;
use super::route::Pick;
use crate::Error;
use crate::protocol::coalesced::{ENTRY_OVERHEAD, HEAD};
use crate::protocol::{self, Mode};

/// What the rules say after a try failed.
enum Next {
    TryAgain,
    GiveUp(Error),
}

impl<I, O> RemoteServing<I, O>
where
    I: Send + 'static,
    O: Send + 'static,
{
    /// Sends a one- or many-item call and returns its reply payload,
    /// trying other nodes as the rules allow.
    pub(super) async fn call(
        &self,
        mode: Mode,
        payload: Vec<u8>,
        items: usize,
        options: CallOptions,
    ) -> Result<Bytes, Error> {
        let payload = Bytes::from(payload);
        if let Some(coalescers) = &self.shared.coalescers {
            return match options.deadline {
                // The caller's deadline holds here whatever happens on the
                // wire; leaving at it cancels the entry on the node.
                Some(deadline) => tokio::time::timeout_at(
                    deadline,
                    self.coalesced(coalescers, mode, payload, items, &options),
                )
                .await
                .unwrap_or(Err(Error::DeadlineExceeded)),
                None => {
                    self.coalesced(coalescers, mode, payload, items, &options)
                        .await
                }
            };
        }
        let mut lost_tries = 0;
        loop {
            let mut attempt = self
                .admitted(mode, payload.clone(), items, &options)
                .await?;
            match attempt.next().await {
                Ok(Reply::Done(reply)) => return Ok(reply),
                Ok(_) => return Err(Error::BadRequest("stream reply to a plain call".into())),
                Err(e) => match self.after_loss(e, attempt.node.as_deref(), &mut lost_tries) {
                    Next::TryAgain => continue,
                    Next::GiveUp(e) => return Err(e),
                },
            }
        }
    }

    /// A call in the next message to its node: the node is picked per
    /// call, by the items waiting and in flight there, so a node with a
    /// large message out is seen as loaded.
    async fn coalesced(
        &self,
        coalescers: &Coalescers,
        mode: Mode,
        payload: Bytes,
        items: usize,
        options: &CallOptions,
    ) -> Result<Bytes, Error> {
        let shared = &*self.shared;
        let max = shared.wire.max_payload.load(Ordering::Relaxed);
        // The call's message would be its payload and the envelope's
        // overhead; that is the size the server would refuse.
        let size = payload.len() + HEADER_ROOM + HEAD + ENTRY_OVERHEAD;
        if size > max {
            return Err(Error::PayloadTooLarge { size, max });
        }
        let mut tried: Vec<String> = Vec::new();
        let mut refusals = 0;
        let mut lost_tries = 0;
        loop {
            let pick = self.pick(items, &tried, refusals)?;
            let node = pick.as_ref().map(|pick| pick.node.clone());
            let sent = std::sync::Arc::new(Sent::default());
            let cancel = CancelOnDrop::new(&shared.wire, &sent);
            let call = Outgoing {
                mode,
                items: payload.clone(),
                priority: options.priority,
                deadline: options.deadline,
                sent,
            };
            let out = coalescers.enter(node.as_deref());
            let answer = match out.alone {
                true => {
                    self.alone(node.clone(), mode, payload.clone(), options)
                        .await
                }
                false => out.coalesced(call, *options).await,
            };
            drop(out);
            cancel.disarm();
            drop(pick);
            let error = match answer {
                Ok(reply) => return Ok(reply),
                Err(e) => e,
            };
            let next = if error.never_ran() {
                if let (Error::Unavailable { .. }, Some(node)) = (&error, &node) {
                    coalescers.forget(node);
                }
                self.after_refusal(error, node, &mut tried, &mut refusals)
                    .await
            } else {
                if let (Error::NodeLost { .. } | Error::NoAnswer, Some(node)) = (&error, &node) {
                    coalescers.forget(node);
                }
                self.after_loss(error, node.as_deref(), &mut lost_tries)
            };
            match next {
                Next::TryAgain => continue,
                Next::GiveUp(e) => return Err(e),
            }
        }
    }

    /// One try of a call sent as its own request, for a call with nothing
    /// else out to its node.
    async fn alone(
        &self,
        node: Option<String>,
        mode: Mode,
        payload: Bytes,
        options: &CallOptions,
    ) -> Result<Bytes, Error> {
        let mut attempt = Attempt::send_to(&self.shared.wire, node, mode, payload, options).await?;
        match attempt.next().await? {
            Reply::Done(reply) => Ok(reply),
            _ => Err(Error::BadRequest("stream reply to a plain call".into())),
        }
    }

    /// A node by load not tried yet, or `None` for the shared subject (the
    /// handle does not route by load, or knows no node yet); `Overloaded`
    /// once every known node has refused.
    fn pick(&self, items: usize, tried: &[String], refusals: usize) -> Result<Option<Pick>, Error> {
        let shared = &*self.shared;
        if !shared.route_by_load {
            return Ok(None);
        }
        let pick = {
            let mut rng = shared.rng.lock().unwrap_or_else(PoisonError::into_inner);
            shared.routes.pick(items, tried, &mut rng)
        };
        let known = shared.routes.len();
        if pick.is_none() && known > 0 && tried.len() >= known {
            return Err(Error::Overloaded { tries: refusals });
        }
        Ok(pick)
    }

    /// After a failure that may have run the call: a node that went silent
    /// is dropped from the table either way; only an idempotent call runs
    /// again.
    fn after_loss(&self, error: Error, node: Option<&str>, lost_tries: &mut usize) -> Next {
        let lost = matches!(error, Error::NodeLost { .. } | Error::NoAnswer);
        if lost && let Some(node) = node {
            self.shared.routes.forget(node);
        }
        if lost && self.shared.idempotent && *lost_tries + 1 < self.shared.max_tries {
            *lost_tries += 1;
            tracing::debug!(?node, "node lost; an idempotent call tries again");
            return Next::TryAgain;
        }
        Next::GiveUp(error)
    }

    /// After a refusal that proves the call never ran (full, closing,
    /// gone): another node, unless the tries are spent.
    async fn after_refusal(
        &self,
        refusal: Error,
        node: Option<String>,
        tried: &mut Vec<String>,
        refusals: &mut usize,
    ) -> Next {
        let shared = &*self.shared;
        if let (Error::Unavailable { .. }, Some(node)) = (&refusal, &node) {
            // Its own subject has no listener: it left.
            shared.routes.forget(node);
        }
        if matches!(refusal, Error::Unavailable { .. }) && node.is_none() {
            // The shared subject has no listener: nobody serves it.
            return Next::GiveUp(Error::Unavailable {
                name: shared.wire.name.clone(),
            });
        }
        *refusals += 1;
        if *refusals >= shared.max_tries {
            return Next::GiveUp(match refusal {
                Error::Unavailable { .. } => Error::Unavailable {
                    name: shared.wire.name.clone(),
                },
                Error::Closed => Error::Closed,
                _ => Error::Overloaded { tries: *refusals },
            });
        }
        if let Some(node) = node {
            tried.push(node);
        }
        if shared.route_by_load && shared.routes.len() == 0 {
            // Refused through the shared subject before any load is known:
            // ask the nodes now, so the next try can go elsewhere instead
            // of to another random pick.
            if let Some(reports) = gather(
                &shared.wire.client,
                &protocol::service_name(&shared.wire.name),
                DISCOVERY_WAIT,
            )
            .await
            {
                shared.routes.update(reports, Instant::now(), Duration::MAX);
            }
        }
        Next::TryAgain
    }

    /// Sends the call on its own where it is admitted: a picked node, or
    /// the shared subject; a node that refuses before running it (full,
    /// closing, gone) passes the call to the next, up to `max_tries`.
    /// Returns the attempt whose first reply was not such a refusal, with
    /// that reply still to read.
    pub(super) async fn admitted(
        &self,
        mode: Mode,
        payload: Bytes,
        items: usize,
        options: &CallOptions,
    ) -> Result<Attempt, Error> {
        let shared = &*self.shared;
        let max = shared.wire.max_payload.load(Ordering::Relaxed);
        if payload.len() > max {
            return Err(Error::PayloadTooLarge {
                size: payload.len(),
                max,
            });
        }
        let mut tried: Vec<String> = Vec::new();
        let mut refusals = 0;
        loop {
            let pick = self.pick(items, &tried, refusals)?;
            let mut attempt =
                Attempt::send(&shared.wire, pick, mode, payload.clone(), options).await?;
            match attempt.peek_refusal().await {
                None => return Ok(attempt),
                Some(refusal) => {
                    let node = attempt.node.clone();
                    match self
                        .after_refusal(refusal, node, &mut tried, &mut refusals)
                        .await
                    {
                        Next::TryAgain => continue,
                        Next::GiveUp(e) => return Err(e),
                    }
                }
            }
        }
    }
}
