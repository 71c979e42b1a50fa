//! Where a remote call goes, and when it goes again: a node picked by
//! load or the shared subject; a refusal before running passes the call to
//! another node, up to `max_tries`; a node lost mid-call is tried again
//! only for an idempotent handle.

use std::sync::PoisonError;
use std::sync::atomic::Ordering;
use std::time::Duration;

use batch_serving::CallOptions;
use bytes::Bytes;
use tokio::time::Instant;

use super::attempt::{Attempt, Reply};
use super::discovery::{DISCOVERY_WAIT, gather};
use super::handle::RemoteServing;
use crate::Error;
use crate::protocol::{self, Mode};

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
        let mut lost_tries = 0;
        loop {
            let mut attempt = self
                .admitted(mode, payload.clone(), items, &options)
                .await?;
            match attempt.next().await {
                Ok(Reply::Done(reply)) => return Ok(reply),
                Ok(_) => return Err(Error::BadRequest("stream reply to a plain call".into())),
                Err(e) => {
                    // A node that went silent is dropped from the table
                    // either way; only an idempotent call may run again.
                    let lost = matches!(e, Error::NodeLost { .. } | Error::NoAnswer);
                    if lost && let Some(node) = &attempt.node {
                        self.shared.routes.forget(node);
                    }
                    if lost && self.shared.idempotent && lost_tries + 1 < self.shared.max_tries {
                        lost_tries += 1;
                        tracing::debug!(node = ?attempt.node, "node lost; an idempotent call tries again");
                        continue;
                    }
                    return Err(e);
                }
            }
        }
    }

    /// Sends the call where it is admitted: a picked node, or the shared
    /// subject; a node that refuses before running it (full, closing,
    /// gone) passes the call to the next, up to `max_tries`. Returns the
    /// attempt whose first reply was not such a refusal, with that reply
    /// still to read.
    pub(super) async fn admitted(
        &self,
        mode: Mode,
        payload: Bytes,
        items: usize,
        options: &CallOptions,
    ) -> Result<Attempt<I, O>, Error> {
        let shared = &*self.shared;
        let max = shared.max_payload.load(Ordering::Relaxed);
        if payload.len() > max {
            return Err(Error::PayloadTooLarge {
                size: payload.len(),
                max,
            });
        }
        let mut tried: Vec<String> = Vec::new();
        let mut refusals = 0;
        loop {
            let pick = match shared.route_by_load {
                true => {
                    let mut rng = shared.rng.lock().unwrap_or_else(PoisonError::into_inner);
                    shared.routes.pick(items, &tried, &mut rng)
                }
                false => None,
            };
            let known = shared.routes.len();
            if pick.is_none() && known > 0 && tried.len() >= known {
                // Every known node refused.
                return Err(Error::Overloaded { tries: refusals });
            }
            let mut attempt =
                Attempt::send(&self.shared, pick, mode, payload.clone(), options).await?;
            match attempt.peek_refusal().await {
                None => return Ok(attempt),
                Some(refusal) => {
                    let node = attempt.node.clone();
                    if let (Error::Unavailable { .. }, Some(node)) = (&refusal, &node) {
                        // Its own subject has no listener: it left.
                        shared.routes.forget(node);
                    }
                    if matches!(refusal, Error::Unavailable { .. }) && node.is_none() {
                        // The shared subject has no listener: nobody serves it.
                        return Err(Error::Unavailable {
                            name: shared.name.clone(),
                        });
                    }
                    refusals += 1;
                    if refusals >= shared.max_tries {
                        return Err(match refusal {
                            Error::Unavailable { .. } => Error::Unavailable {
                                name: shared.name.clone(),
                            },
                            Error::Closed => Error::Closed,
                            _ => Error::Overloaded { tries: refusals },
                        });
                    }
                    if let Some(node) = node {
                        tried.push(node);
                    }
                    if shared.route_by_load && shared.routes.len() == 0 {
                        // Refused through the shared subject before any
                        // load is known: ask the nodes now, so the next
                        // try can go elsewhere instead of to another
                        // random pick.
                        if let Some(reports) = gather(
                            &shared.client,
                            &protocol::service_name(&shared.name),
                            DISCOVERY_WAIT,
                        )
                        .await
                        {
                            shared.routes.update(reports, Instant::now(), Duration::MAX);
                        }
                    }
                }
            }
        }
    }
}
