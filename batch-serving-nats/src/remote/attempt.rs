//! One try of a call at one target: send the request, then read its
//! replies until the last one, the deadline, or a silence longer than the
//! limit. Dropped before its end, it tells the nodes to drop the call.

use async_nats::{HeaderMap, Message, StatusCode};
use batch_serving::CallOptions;
use bytes::Bytes;
use tokio::time::Instant;

use super::Shared;
use super::inbox::Mailbox;
use super::route::Pick;
use crate::Error;
use crate::protocol::{self, ErrorKind, Mode};

/// What one reply message was.
pub(crate) enum Reply {
    /// A streaming piece.
    Output { offset: usize, payload: Bytes },
    /// A streaming hook event.
    Hook {
        name: String,
        item: Option<usize>,
        payload: Bytes,
    },
    /// The last message of a successful call.
    Done(Bytes),
}

pub(crate) struct Attempt {
    client: async_nats::Client,
    cancel_subject: String,
    mailbox: Mailbox,
    deadline: Option<Instant>,
    silence_limit: std::time::Duration,
    last_heard: Instant,
    heard: bool,
    /// The node answering, once known (the pick, or the first reply).
    pub(crate) node: Option<String>,
    finished: bool,
    /// A reply read by [`peek_refusal`](Self::peek_refusal) that was not a
    /// refusal, for [`next`](Self::next) to return first.
    pending: Option<Result<Reply, Error>>,
    _pick: Option<Pick>,
}

impl Attempt {
    /// Sends the request to `pick`'s own subject, or to the shared subject
    /// when there is no pick.
    pub(crate) async fn send<I: 'static, O>(
        shared: &Shared<I, O>,
        pick: Option<Pick>,
        mode: Mode,
        payload: Bytes,
        options: &CallOptions,
    ) -> Result<Attempt, Error> {
        let now = Instant::now();
        let mailbox = shared.inbox.mailbox();
        let mut headers = HeaderMap::new();
        headers.insert(protocol::PROTOCOL, protocol::VERSION);
        headers.insert(protocol::CALL, mailbox.subject.as_str());
        headers.insert(protocol::MODE, mode.as_str());
        headers.insert(protocol::CODEC, shared.items.name());
        headers.insert(protocol::PRIORITY, protocol::priority_str(options.priority));
        if let Some(deadline) = options.deadline {
            let left = deadline.saturating_duration_since(now);
            if left.is_zero() {
                return Err(Error::DeadlineExceeded);
            }
            headers.insert(protocol::TIMEOUT_US, left.as_micros().to_string());
        }
        let subject = match &pick {
            Some(pick) => protocol::node_subject(&shared.name, &pick.node),
            None => protocol::shared_subject(&shared.name),
        };
        shared
            .client
            .publish_with_reply_and_headers(subject, mailbox.subject.clone(), headers, payload)
            .await
            .map_err(|e| Error::Nats(e.to_string()))?;
        Ok(Attempt {
            client: shared.client.clone(),
            cancel_subject: protocol::cancel_subject(&shared.name),
            mailbox,
            deadline: options.deadline,
            silence_limit: shared.silence_limit,
            last_heard: now,
            heard: false,
            node: pick.as_ref().map(|pick| pick.node.clone()),
            finished: false,
            pending: None,
            _pick: pick,
        })
    }

    /// Reads the first reply and returns it when it is a refusal that
    /// proves the call never ran (no responders, a full queue, a node
    /// shutting down), so the caller may send it elsewhere. Any other first
    /// reply is kept for [`next`](Self::next).
    pub(crate) async fn peek_refusal(&mut self) -> Option<Error> {
        let first = self.next().await;
        match first {
            Err(e) if e.never_ran() => Some(e),
            other => {
                self.pending = Some(other);
                None
            }
        }
    }

    /// The next reply that matters: heartbeats are read and waited past.
    pub(crate) async fn next(&mut self) -> Result<Reply, Error> {
        if let Some(pending) = self.pending.take() {
            return pending;
        }
        let result = self.read().await;
        if !matches!(result, Ok(Reply::Output { .. } | Reply::Hook { .. })) {
            // The call is over, answered or not: a deadline or a silence
            // still drops it on the node, through the cancel in Drop.
            self.finished = result.is_ok() || self.answered_error(&result);
        }
        result
    }

    /// An error the node itself sent ends the call there; no cancel needed.
    fn answered_error(&self, result: &Result<Reply, Error>) -> bool {
        !matches!(
            result,
            Err(Error::DeadlineExceeded
                | Error::NodeLost { .. }
                | Error::NoAnswer
                | Error::Nats(_))
        )
    }

    async fn read(&mut self) -> Result<Reply, Error> {
        loop {
            let silent_at = self.last_heard + self.silence_limit;
            let wake = match self.deadline {
                Some(deadline) if deadline < silent_at => deadline,
                _ => silent_at,
            };
            let message = match tokio::time::timeout_at(wake, self.mailbox.replies.recv()).await {
                Ok(Some(message)) => message,
                // The inbox task ended: the client is closed.
                Ok(None) => return Err(Error::Nats("connection closed".into())),
                Err(_) if self.deadline.is_some_and(|d| Instant::now() >= d) => {
                    return Err(Error::DeadlineExceeded);
                }
                Err(_) => {
                    return Err(match (&self.node, self.heard) {
                        (Some(node), true) => Error::NodeLost { node: node.clone() },
                        _ => Error::NoAnswer,
                    });
                }
            };
            self.last_heard = Instant::now();
            if let Some(reply) = self.take(message)? {
                return Ok(reply);
            }
        }
    }

    /// Reads one message: `None` for a heartbeat.
    fn take(&mut self, message: Message) -> Result<Option<Reply>, Error> {
        if message.status == Some(StatusCode::NO_RESPONDERS) {
            // The name is filled in by the router, which knows it.
            return Err(Error::Unavailable {
                name: String::new(),
            });
        }
        let headers = message.headers.as_ref();
        if let Some(node) = protocol::header(headers, protocol::NODE) {
            self.node = Some(node.to_string());
            self.heard = true;
        }
        let kind = protocol::header(headers, protocol::KIND).unwrap_or("");
        match kind {
            protocol::KIND_ALIVE => Ok(None),
            protocol::KIND_DONE => Ok(Some(Reply::Done(message.payload))),
            protocol::KIND_OUTPUT => {
                let offset = protocol::header(headers, protocol::OFFSET)
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| Error::BadRequest("output without BS-Offset".into()))?;
                Ok(Some(Reply::Output {
                    offset,
                    payload: message.payload,
                }))
            }
            protocol::KIND_HOOK => Ok(Some(Reply::Hook {
                name: protocol::header(headers, protocol::HOOK_NAME)
                    .unwrap_or("")
                    .to_string(),
                item: protocol::header(headers, protocol::HOOK_ITEM).and_then(|v| v.parse().ok()),
                payload: message.payload,
            })),
            _ => Err(error_of(headers)),
        }
    }
}

/// The caller's error for a node's error reply (or for a reply that is not
/// ours at all).
fn error_of(headers: Option<&HeaderMap>) -> Error {
    let status = protocol::header(headers, async_nats::service::NATS_SERVICE_ERROR)
        .unwrap_or("reply without a BS-Kind")
        .to_string();
    let Some(kind) = protocol::header(headers, protocol::ERROR_KIND) else {
        return Error::BadRequest(status);
    };
    match ErrorKind::parse(kind) {
        ErrorKind::BadRequest => Error::BadRequest(status),
        ErrorKind::Overloaded => Error::Overloaded { tries: 1 },
        ErrorKind::Closed => Error::Closed,
        ErrorKind::DeadlineExceeded => Error::DeadlineExceeded,
        ErrorKind::Batch => Error::Batch(status),
        ErrorKind::Panicked => Error::Panicked(status),
        ErrorKind::Failed => Error::Failed(status),
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // Dropped mid-call (the caller gave up, or its deadline passed):
        // every node hears the cancel and the one running it drops it, as
        // a dropped local call drops its queued items.
        let client = self.client.clone();
        let subject = self.cancel_subject.clone();
        let call = self.mailbox.subject.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let mut headers = HeaderMap::new();
                headers.insert(protocol::PROTOCOL, protocol::VERSION);
                headers.insert(protocol::CALL, call.as_str());
                let _ = client
                    .publish_with_headers(subject, headers, Bytes::new())
                    .await;
            });
        }
    }
}
