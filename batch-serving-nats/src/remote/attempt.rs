//! One try of a call at one target: send the request, then read its
//! replies until the last one, the deadline, or a silence longer than the
//! limit. Dropped before its end, it tells the nodes to drop the call.

use std::sync::Arc;

use async_nats::{HeaderMap, Message, StatusCode};
use batch_serving::CallOptions;
use bytes::Bytes;
use futures::StreamExt;
use tokio::time::Instant;

use super::inbox::Mailbox;
use super::route::Pick;
use super::wire::Wire;
use crate::Error;
use crate::protocol::{self, CallHeader, ErrorKind, Mode, ReplyHeader};

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
    /// Some of a coalesced call's answers, more to come.
    Part(Bytes),
    /// The last message of a successful call.
    Done(Bytes),
}

pub(crate) struct Attempt {
    wire: Arc<Wire>,
    mailbox: Mailbox,
    deadline: Option<Instant>,
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
    pub(crate) async fn send(
        wire: &Arc<Wire>,
        pick: Option<Pick>,
        mode: Mode,
        payload: Bytes,
        options: &CallOptions,
    ) -> Result<Attempt, Error> {
        let node = pick.as_ref().map(|pick| pick.node.clone());
        let mut attempt = Self::send_to(wire, node, mode, payload, options).await?;
        attempt._pick = pick;
        Ok(attempt)
    }

    /// Sends the request to `node`'s own subject, or to the shared subject.
    pub(crate) async fn send_to(
        wire: &Arc<Wire>,
        node: Option<String>,
        mode: Mode,
        payload: Bytes,
        options: &CallOptions,
    ) -> Result<Attempt, Error> {
        let now = Instant::now();
        let timeout = match options.deadline {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(now);
                if left.is_zero() {
                    return Err(Error::DeadlineExceeded);
                }
                Some(left)
            }
            None => None,
        };
        let call = CallHeader {
            mode,
            codec: wire.codec,
            priority: options.priority,
            timeout,
        };
        let mut headers = HeaderMap::new();
        headers.insert(protocol::CALL, call.write());
        let subject = match &node {
            Some(node) => protocol::node_subject(&wire.name, node),
            None => wire.shared_subject.clone(),
        };
        let mailbox = wire.inbox.mailbox();
        wire.client
            .publish_with_reply_and_headers(subject, mailbox.subject.clone(), headers, payload)
            .await
            .map_err(|e| Error::Nats(e.to_string()))?;
        Ok(Attempt {
            wire: Arc::clone(wire),
            mailbox,
            deadline: options.deadline,
            last_heard: now,
            heard: false,
            node,
            finished: false,
            pending: None,
            _pick: None,
        })
    }

    /// The subject its replies come to, which is the call's id.
    pub(crate) fn subject(&self) -> &str {
        &self.mailbox.subject
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
        if !matches!(
            result,
            Ok(Reply::Output { .. } | Reply::Hook { .. } | Reply::Part(_))
        ) {
            // The call is over. A deadline, a silence or a broken
            // connection still leaves it on the node, so those are not
            // "finished" and Drop sends the cancel.
            self.finished = !matches!(
                result,
                Err(Error::DeadlineExceeded
                    | Error::NodeLost { .. }
                    | Error::NoAnswer
                    | Error::Nats(_))
            );
        }
        result
    }

    async fn read(&mut self) -> Result<Reply, Error> {
        loop {
            let silent_at = self.last_heard + self.wire.silence_limit;
            let wake = match self.deadline {
                Some(deadline) if deadline < silent_at => deadline,
                _ => silent_at,
            };
            let message = match tokio::time::timeout_at(wake, self.mailbox.replies.next()).await {
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
        let Some((reply, node)) =
            protocol::header(headers, protocol::REPLY).and_then(ReplyHeader::parse)
        else {
            return Err(Error::BadRequest(format!(
                "a reply that is not batch-serving protocol v{}",
                protocol::VERSION
            )));
        };
        if self.node.as_deref() != Some(node) {
            self.node = Some(node.to_string());
        }
        self.heard = true;
        match reply {
            ReplyHeader::Alive => Ok(None),
            ReplyHeader::Done => Ok(Some(Reply::Done(message.payload))),
            ReplyHeader::Part => Ok(Some(Reply::Part(message.payload))),
            ReplyHeader::Output(offset) => Ok(Some(Reply::Output {
                offset,
                payload: message.payload,
            })),
            ReplyHeader::Hook { item, name } => Ok(Some(Reply::Hook {
                name: name.to_string(),
                item,
                payload: message.payload,
            })),
            ReplyHeader::Error(kind) => {
                let status = protocol::header(headers, async_nats::service::NATS_SERVICE_ERROR)
                    .unwrap_or("")
                    .to_string();
                Err(error_of(kind, status))
            }
        }
    }
}

/// The caller's error for a node's error reply.
pub(super) fn error_of(kind: ErrorKind, status: String) -> Error {
    match kind {
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
        let client = self.wire.client.clone();
        let subject = self.wire.cancel_subject.clone();
        let call = Bytes::from(self.mailbox.subject.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = client.publish(subject, call).await;
            });
        }
    }
}
