//! One remote call on the node: read the request, admit it (fail-fast, so
//! a full queue answers at once), run it on the local serving beside local
//! calls, and answer: stream pieces as they come, then `done` or an error.
//! Heartbeats for calls that run long come from the node's sweep
//! ([`super::heartbeats`]), not from a timer per call. Nothing a request
//! holds can make the node panic or stop serving others.

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use async_nats::service::Request;
use async_nats::{HeaderMap, Subject};
use batch_serving::{CallOptions, Event};
use bytes::Bytes;
use futures::StreamExt;
use tokio::time::Instant;

use super::context::{
    Context, Entries, Running, Taken, kind_of, options_of, respond_error, status_of, visible,
};
use crate::Error;
use crate::dispatch::LocalServing;
use crate::protocol::{self, CallHeader, ErrorKind, Mode, ReplyHeader};

/// Runs `request` in its own task, known by its reply subject so that a
/// cancel can drop it.
pub(super) fn spawn<I, O, S>(context: Arc<Context<I, O, S>>, request: Request, running: &Running)
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
    // The lock is held across spawn and insert, so the task's own removal
    // (which takes it too) always comes after its insertion.
    let mut table = running.lock().unwrap_or_else(PoisonError::into_inner);
    let id = reply.as_str().to_string();
    let forget = Forget {
        running: Arc::clone(running),
        id: id.clone(),
    };
    let coalesced = protocol::header(request.message.headers.as_ref(), protocol::CALL)
        .is_some_and(|line| line.split_ascii_whitespace().nth(1) == Some(Mode::Coalesced.as_str()));
    let entries = coalesced.then(Arc::<Entries>::default);
    let for_task = entries.clone();
    let task = tokio::spawn(async move {
        let _forget = forget;
        answer(&context, request, for_task).await;
    });
    table.insert(
        id,
        Taken {
            abort: task.abort_handle(),
            since: Instant::now(),
            reply,
            entries,
        },
    );
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

async fn answer<I, O, S>(
    context: &Context<I, O, S>,
    request: Request,
    entries: Option<Arc<Entries>>,
) where
    I: Send + 'static,
    O: Send + 'static,
    S: LocalServing<I, O>,
{
    let call = match read_header(context, &request) {
        Ok(call) => call,
        Err(message) => {
            tracing::debug!(%message, "bad request");
            respond_error(context, &request, ErrorKind::BadRequest, &message).await;
            return;
        }
    };
    if let (Mode::Coalesced, Some(entries)) = (call.mode, entries) {
        super::coalesced::answer(context, request, &entries).await;
        return;
    }
    let parsed = match parse(context, &request, call) {
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
            match items.pop() {
                Some(item) => match context.serving.dispatch_with(item, parsed.options).await {
                    Ok(output) => context
                        .outputs
                        .encode(&output)
                        .map_err(|e| Error::Failed(e.to_string())),
                    Err(e) => Err(e),
                },
                None => Err(Error::BadRequest("no item".into())),
            }
        }
        Mode::Many => match context
            .serving
            .dispatch_many_with(parsed.items, parsed.options)
            .await
        {
            Ok(outputs) => context
                .outputs
                .encode_many(&outputs)
                .map_err(|e| Error::Failed(e.to_string())),
            Err(e) => Err(e),
        },
        Mode::Stream => stream(context, &request, parsed.items, parsed.options).await,
        Mode::Coalesced => Err(Error::BadRequest(
            "a coalesced call read as a plain one".into(),
        )),
    };
    match result {
        Ok(payload) if payload.len() > context.max_payload => {
            let message = format!(
                "reply of {} bytes exceeds max_payload {}",
                payload.len(),
                context.max_payload
            );
            respond_error(context, &request, ErrorKind::Failed, &message).await;
        }
        Ok(payload) => {
            let mut headers = HeaderMap::new();
            headers.insert(protocol::REPLY, ReplyHeader::Done.write(&context.node));
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

/// Reads the `BS-Call` header and checks the codec; any problem is the
/// caller's, as a message for its `bad_request` reply.
fn read_header<'r, I: 'static, O, S>(
    context: &Context<I, O, S>,
    request: &'r Request,
) -> Result<CallHeader<'r>, String> {
    let line = protocol::header(request.message.headers.as_ref(), protocol::CALL)
        .ok_or("not a batch-serving request (no BS-Call header)")?;
    let call = CallHeader::parse(line)?;
    if call.codec != context.items.name() {
        return Err(format!(
            "items are encoded as {:?}, this node reads {:?}",
            call.codec,
            context.items.name()
        ));
    }
    Ok(call)
}

/// Reads a plain call's payload.
fn parse<I: 'static, O, S>(
    context: &Context<I, O, S>,
    request: &Request,
    call: CallHeader<'_>,
) -> Result<Parsed<I>, String> {
    let options = options_of(call.priority, call.timeout);
    let payload = &request.message.payload;
    let items = match call.mode {
        Mode::One => vec![context.items.decode(payload).map_err(|e| e.to_string())?],
        Mode::Many | Mode::Stream => context
            .items
            .decode_many(payload)
            .map_err(|e| e.to_string())?,
        Mode::Coalesced => return Err("a coalesced call read as a plain one".into()),
    };
    Ok(Parsed {
        mode: call.mode,
        items,
        options,
    })
}

/// A streaming call: each piece and hook as its own message, in order.
/// Returns the payload of the end marker (empty).
async fn stream<I, O, S>(
    context: &Context<I, O, S>,
    request: &Request,
    items: Vec<I>,
    options: CallOptions,
) -> Result<Vec<u8>, Error>
where
    I: Send + 'static,
    O: Send + 'static,
    S: LocalServing<I, O>,
{
    let reply: Subject = request
        .message
        .reply
        .clone()
        .ok_or_else(|| Error::BadRequest("no reply subject".into()))?;
    let mut events = context.serving.dispatch_stream_with(items, options);
    while let Some(event) = events.next().await {
        let mut headers = HeaderMap::new();
        let payload = match event? {
            Event::Output { offset, outputs } => {
                headers.insert(
                    protocol::REPLY,
                    ReplyHeader::Output(offset).write(&context.node),
                );
                context
                    .outputs
                    .encode_many(&outputs)
                    .map_err(|e| Error::Failed(e.to_string()))?
            }
            Event::Hook(hook) => {
                let line = ReplyHeader::Hook {
                    item: hook.item,
                    name: hook.name,
                }
                .write(&context.node);
                headers.insert(protocol::REPLY, visible(&line));
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

/// How often the sweep looks for calls that owe their caller a heartbeat.
pub(super) fn sweep_every(heartbeat: Duration) -> Duration {
    (heartbeat / 2).max(Duration::from_millis(1))
}
