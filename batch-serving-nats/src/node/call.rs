//! One remote call on the node: read the request, admit it (fail-fast, so
//! a full queue answers at once), run it on the local serving beside local
//! calls, and answer: heartbeats while it runs, stream pieces as they come,
//! then `done` or an error. Nothing a request holds can make the node
//! panic or stop serving others.

use std::marker::PhantomData;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use async_nats::service::Request;
use async_nats::service::error::Error as ServiceError;
use async_nats::{Client, HeaderMap, Subject};
use batch_serving::{CallOptions, Event};
use bytes::Bytes;
use futures::StreamExt;

use super::{HookEncoder, Running};
use crate::Error;
use crate::codec::Codec;
use crate::dispatch::LocalServing;
use crate::protocol::{self, ErrorKind, Mode};

pub(super) struct Context<I, O, S> {
    pub(super) client: Client,
    pub(super) node: String,
    pub(super) serving: S,
    pub(super) items: Arc<dyn Codec<I>>,
    pub(super) outputs: Arc<dyn Codec<O>>,
    pub(super) heartbeat: Duration,
    pub(super) hooks: Option<HookEncoder>,
    pub(super) _types: PhantomData<fn(I) -> O>,
}

/// Runs `request` in its own task, known by its call id so that a cancel
/// can drop it.
pub(super) fn spawn<I, O, S>(context: Arc<Context<I, O, S>>, request: Request, running: &Running)
where
    I: Send + 'static,
    O: Send + 'static,
    S: LocalServing<I, O>,
{
    let call =
        protocol::header(request.message.headers.as_ref(), protocol::CALL).map(str::to_string);
    // The lock is held across spawn and insert, so the task's own removal
    // (which takes it too) always comes after its insertion.
    let mut table = running.lock().unwrap_or_else(PoisonError::into_inner);
    let forget = call.clone().map(|id| Forget {
        running: Arc::clone(running),
        id,
    });
    let task = tokio::spawn(async move {
        let _forget = forget;
        answer(&context, request).await;
    });
    if let Some(id) = call {
        table.insert(id, task.abort_handle());
    }
}

/// Removes a finished (or aborted) call from the table.
struct Forget {
    running: Running,
    id: String,
}

impl Drop for Forget {
    fn drop(&mut self) {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}

/// A request that has been read and may run.
struct Parsed<I> {
    mode: Mode,
    items: Vec<I>,
    options: CallOptions,
}

async fn answer<I, O, S>(context: &Context<I, O, S>, request: Request)
where
    I: Send + 'static,
    O: Send + 'static,
    S: LocalServing<I, O>,
{
    let Some(reply) = request.message.reply.clone() else {
        // A publish without a reply subject cannot be answered or
        // cancelled; it is not a call.
        tracing::debug!(subject = %request.message.subject, "message without a reply subject ignored");
        return;
    };
    let parsed = match parse(context, &request) {
        Ok(parsed) => parsed,
        Err(message) => {
            tracing::debug!(%message, "bad request");
            respond_error(context, &request, ErrorKind::BadRequest, &message).await;
            return;
        }
    };
    let result = match parsed.mode {
        Mode::One => {
            let mut items = parsed.items;
            let work = async {
                let item = items
                    .pop()
                    .ok_or_else(|| Error::BadRequest("no item".into()))?;
                let output = context.serving.dispatch_with(item, parsed.options).await?;
                context
                    .outputs
                    .encode(&output)
                    .map_err(|e| Error::Failed(e.to_string()))
            };
            with_heartbeat(context, &reply, work).await
        }
        Mode::Many => {
            let work = async {
                let outputs = context
                    .serving
                    .dispatch_many_with(parsed.items, parsed.options)
                    .await?;
                context
                    .outputs
                    .encode_many(&outputs)
                    .map_err(|e| Error::Failed(e.to_string()))
            };
            with_heartbeat(context, &reply, work).await
        }
        Mode::Stream => {
            let work = stream(context, &reply, parsed.items, parsed.options);
            with_heartbeat(context, &reply, work).await
        }
    };
    match result {
        Ok(payload) => {
            let max = context.client.server_info().max_payload;
            if payload.len() > max {
                let message = format!("reply of {} bytes exceeds max_payload {max}", payload.len());
                respond_error(context, &request, ErrorKind::Failed, &message).await;
                return;
            }
            let mut headers = base_headers(context, &request, protocol::KIND_DONE);
            headers.insert(protocol::CODEC, context.outputs.name());
            if let Err(e) = request
                .respond_with_headers(Ok(Bytes::from(payload)), headers)
                .await
            {
                tracing::debug!(error = %e, "reply could not be sent");
            }
        }
        Err(error) => {
            let kind = kind_of(&error);
            respond_error(context, &request, kind, &status_of(error)).await;
        }
    }
}

/// Reads the headers and payload; any problem is the caller's, as a
/// message for its `bad_request` reply.
fn parse<I: 'static, O, S>(
    context: &Context<I, O, S>,
    request: &Request,
) -> Result<Parsed<I>, String> {
    let headers = request.message.headers.as_ref();
    let version = protocol::header(headers, protocol::PROTOCOL)
        .ok_or("not a batch-serving request (no BS-Protocol header)")?;
    if version != protocol::VERSION {
        return Err(format!(
            "protocol version {version:?} is not spoken here (this node speaks {:?})",
            protocol::VERSION
        ));
    }
    let mode = protocol::header(headers, protocol::MODE)
        .and_then(Mode::parse)
        .ok_or("missing or unknown BS-Mode")?;
    let codec = protocol::header(headers, protocol::CODEC).unwrap_or("");
    if codec != context.items.name() {
        return Err(format!(
            "items are encoded as {codec:?}, this node reads {:?}",
            context.items.name()
        ));
    }
    let mut options = CallOptions::new().fail_fast();
    if let Some(value) = protocol::header(headers, protocol::PRIORITY) {
        options = options.priority(protocol::parse_priority(value).ok_or("unknown BS-Priority")?);
    }
    if let Some(value) = protocol::header(headers, protocol::TIMEOUT_US) {
        let micros: u64 = value.parse().map_err(|_| "BS-Timeout-Us is not a number")?;
        options = options.timeout(Duration::from_micros(micros));
    }
    let payload = &request.message.payload;
    let items = match mode {
        Mode::One => vec![context.items.decode(payload).map_err(|e| e.to_string())?],
        Mode::Many | Mode::Stream => context
            .items
            .decode_many(payload)
            .map_err(|e| e.to_string())?,
    };
    Ok(Parsed {
        mode,
        items,
        options,
    })
}

/// Runs `work`, telling the caller at every heartbeat that the call is
/// alive, so it can tell a slow node from a dead one.
async fn with_heartbeat<I, O, S, T>(
    context: &Context<I, O, S>,
    reply: &Subject,
    work: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    let mut work = std::pin::pin!(work);
    let mut beat = tokio::time::interval_at(
        tokio::time::Instant::now() + context.heartbeat,
        context.heartbeat,
    );
    loop {
        tokio::select! {
            result = &mut work => return result,
            _ = beat.tick() => {
                let mut headers = HeaderMap::new();
                headers.insert(protocol::KIND, protocol::KIND_ALIVE);
                headers.insert(protocol::NODE, context.node.as_str());
                // A lost heartbeat only makes the caller less sure; the
                // next one, or the answer, follows.
                let _ = context.client.publish_with_headers(reply.clone(), headers, Bytes::new()).await;
            }
        }
    }
}

/// A streaming call: each piece and hook as its own message, in order.
/// Returns the payload of the end marker (empty).
async fn stream<I, O, S>(
    context: &Context<I, O, S>,
    reply: &Subject,
    items: Vec<I>,
    options: CallOptions,
) -> Result<Vec<u8>, Error>
where
    I: Send + 'static,
    O: Send + 'static,
    S: LocalServing<I, O>,
{
    let mut events = context.serving.dispatch_stream_with(items, options);
    while let Some(event) = events.next().await {
        let mut headers = HeaderMap::new();
        headers.insert(protocol::NODE, context.node.as_str());
        let payload = match event? {
            Event::Output { offset, outputs } => {
                headers.insert(protocol::KIND, protocol::KIND_OUTPUT);
                headers.insert(protocol::OFFSET, offset.to_string());
                headers.insert(protocol::CODEC, context.outputs.name());
                context
                    .outputs
                    .encode_many(&outputs)
                    .map_err(|e| Error::Failed(e.to_string()))?
            }
            Event::Hook(hook) => {
                headers.insert(protocol::KIND, protocol::KIND_HOOK);
                headers.insert(protocol::HOOK_NAME, hook.name);
                if let Some(item) = hook.item {
                    headers.insert(protocol::HOOK_ITEM, item.to_string());
                }
                context
                    .hooks
                    .as_ref()
                    .and_then(|encode| encode(&hook))
                    .unwrap_or_default()
            }
        };
        context
            .client
            .publish_with_headers(reply.clone(), headers, Bytes::from(payload))
            .await
            .map_err(|e| Error::Nats(e.to_string()))?;
    }
    Ok(Vec::new())
}

fn base_headers<I, O, S>(context: &Context<I, O, S>, request: &Request, kind: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(protocol::KIND, kind);
    headers.insert(protocol::NODE, context.node.as_str());
    if let Some(call) = protocol::header(request.message.headers.as_ref(), protocol::CALL) {
        headers.insert(protocol::CALL, call);
    }
    headers
}

async fn respond_error<I, O, S>(
    context: &Context<I, O, S>,
    request: &Request,
    kind: ErrorKind,
    message: &str,
) {
    let mut headers = base_headers(context, request, protocol::KIND_ERROR);
    headers.insert(protocol::ERROR_KIND, kind.as_str());
    // Header values are one line of visible ASCII; anything else in a
    // message (a batch function's error text) is replaced.
    let status: String = message
        .lines()
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
        .collect();
    let error = ServiceError {
        status,
        code: kind.code(),
    };
    if let Err(e) = request.respond_with_headers(Err(error), headers).await {
        tracing::debug!(error = %e, "error reply could not be sent");
    }
}

/// The message a caller rebuilds its error from: the inner text where the
/// kind already says what failed, so it is not prefixed twice.
fn status_of(error: Error) -> String {
    match error {
        Error::Batch(message)
        | Error::Panicked(message)
        | Error::BadRequest(message)
        | Error::Failed(message) => message,
        other => other.to_string(),
    }
}

fn kind_of(error: &Error) -> ErrorKind {
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
