//! What every request on the node reads and answers with: the node's
//! context, its table of running requests (with a coalesced message's
//! entries), the options a remote call runs with, and error replies. A
//! leaf below the plain call (`call.rs`) and the coalesced message
//! (`coalesced.rs`), so that neither imports the other to reach it.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::service::Request;
use async_nats::service::error::Error as ServiceError;
use async_nats::{Client, HeaderMap, Subject};
use batch_serving::CallOptions;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::hook_encoder::HookEncoder;
use crate::Error;
use crate::codec::Codec;
use crate::protocol::{self, ErrorKind, ReplyHeader};

/// A request this node has taken and not answered: how to drop it, since
/// when it runs and where its heartbeats go, and for a coalesced message
/// its entries.
pub(super) struct Taken {
    pub(super) abort: AbortHandle,
    pub(super) since: Instant,
    pub(super) reply: Subject,
    pub(super) entries: Option<Arc<Entries>>,
}

impl Taken {
    /// Callers' calls it stands for.
    pub(super) fn calls(&self) -> usize {
        self.entries
            .as_ref()
            .map_or(1, |entries| entries.left.load(Ordering::Relaxed))
    }
}

/// The entries of a coalesced message still running, each droppable on
/// its own: one row per message in the node's table, not one per entry, so
/// that an entry costs no table lock or key of its own.
#[derive(Default)]
pub(super) struct Entries {
    pub(super) aborts: Mutex<Vec<(u32, futures::future::AbortHandle)>>,
    pub(super) left: AtomicUsize,
}

impl Entries {
    /// Drops the entry `id`, if it is still running.
    pub(super) fn cancel(&self, id: u32) -> bool {
        let aborts = self.aborts.lock().unwrap_or_else(PoisonError::into_inner);
        match aborts.iter().find(|(entry, _)| *entry == id) {
            Some((_, abort)) => {
                abort.abort();
                true
            }
            None => false,
        }
    }
}

/// The calls this node is running, by reply subject (the call's id).
pub(super) type Running = Arc<Mutex<HashMap<String, Taken>>>;

pub(super) struct Context<I, O, S> {
    pub(super) client: Client,
    pub(super) node: String,
    pub(super) serving: S,
    pub(super) items: Arc<dyn Codec<I>>,
    pub(super) outputs: Arc<dyn Codec<O>>,
    pub(super) hooks: Option<HookEncoder>,
    /// The server's `max_payload`, read once: a reply over it is refused
    /// by the server, so the caller gets an error reply instead.
    pub(super) max_payload: usize,
    pub(super) _types: PhantomData<fn(I) -> O>,
}

/// The options a remote call runs with on this node. Remote admission is
/// always fail-fast: a full queue answers at once, and the caller tries
/// another node instead of waiting here.
pub(super) fn options_of(
    priority: batch_serving::Priority,
    timeout: Option<Duration>,
) -> CallOptions {
    let options = CallOptions::new().fail_fast().priority(priority);
    match timeout {
        Some(timeout) => options.timeout(timeout),
        None => options,
    }
}

/// A header value is one line of visible ASCII; anything else in a message
/// (a batch function's error text, a hook's name) is replaced.
pub(super) fn visible(text: &str) -> String {
    text.lines()
        .next()
        .unwrap_or("")
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(512)
        .collect()
}

pub(super) async fn respond_error<I, O, S>(
    context: &Context<I, O, S>,
    request: &Request,
    kind: ErrorKind,
    message: &str,
) {
    let mut headers = HeaderMap::new();
    headers.insert(
        protocol::REPLY,
        ReplyHeader::Error(kind).write(&context.node),
    );
    let error = ServiceError {
        status: visible(message),
        code: kind.code(),
    };
    if let Err(e) = request.respond_with_headers(Err(error), headers).await {
        tracing::debug!(error = %e, "error reply could not be sent");
    }
}

/// The message a caller rebuilds its error from: the inner text where the
/// kind already says what failed, so it is not prefixed twice.
pub(super) fn status_of(error: Error) -> String {
    match error {
        Error::Batch(message)
        | Error::Panicked(message)
        | Error::BadRequest(message)
        | Error::Failed(message) => message,
        other => other.to_string(),
    }
}

pub(super) fn kind_of(error: &Error) -> ErrorKind {
    match error {
        Error::Overloaded { .. } => ErrorKind::Overloaded,
        Error::Closed => ErrorKind::Closed,
        Error::DeadlineExceeded => ErrorKind::DeadlineExceeded,
        Error::Batch(_) => ErrorKind::Batch,
        Error::Panicked(_) => ErrorKind::Panicked,
        Error::BadRequest(_) => ErrorKind::BadRequest,
        _ => ErrorKind::Failed,
    }
}
