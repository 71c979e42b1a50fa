//! A coalesced message on the node: each entry becomes its own call on the
//! local serving, with its own caller's priority and deadline, so it
//! batches with every other caller's items exactly as a lone remote call
//! would. The answers go back together: in one `done` reply, with `part`
//! replies before it when one would pass the server's `max_payload`.
//!
//! The message has one row in the node's table of running calls, with a
//! list of its entries' abort handles, so a cancel that names
//! `REPLY_SUBJECT ID` drops that entry alone (its items leave the queue, as
//! a dropped local call's do); the message keeps its heartbeat for all of
//! them.

use std::sync::PoisonError;
use std::sync::atomic::Ordering;

use super::context::{Context, Entries, kind_of, options_of, respond_error, status_of};
use crate::Error;
use crate::dispatch::LocalServing;
use crate::protocol::coalesced::{self, ANSWER_OVERHEAD, Answer, Entry, HEAD, ReplyWriter};
use crate::protocol::{self, ErrorKind, Mode, ReplyHeader};
use async_nats::HeaderMap;
use async_nats::service::Request;
use bytes::Bytes;
use futures::future::{AbortHandle, Abortable, BoxFuture};
use futures::stream::{FuturesUnordered, StreamExt};

/// Room kept in every reply for its headers: `max_payload` bounds headers
/// and payload together.
const HEADER_ROOM: usize = 512;

pub(super) async fn answer<I, O, S>(context: &Context<I, O, S>, request: Request, running: &Entries)
where
    I: Send + 'static,
    O: Send + 'static,
    S: LocalServing<I, O>,
{
    let Some(reply) = request.message.reply.clone() else {
        return;
    };
    let entries = match coalesced::read_request(&request.message.payload) {
        Ok(entries) => entries,
        Err(message) => {
            // The envelope itself is bad: no entry can be told apart, so
            // the whole message is refused, and nothing ran.
            tracing::debug!(%message, "bad coalesced request");
            respond_error(context, &request, ErrorKind::BadRequest, &message).await;
            return;
        }
    };
    let mut pending = FuturesUnordered::new();
    {
        let mut aborts = running
            .aborts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        aborts.reserve(entries.len());
        running.left.store(entries.len(), Ordering::Relaxed);
        for entry in &entries {
            let (abort, registration) = AbortHandle::new_pair();
            aborts.push((entry.id, abort));
            let id = entry.id;
            let call = Abortable::new(run(context, entry), registration);
            pending.push(async move {
                let result = call
                    .await
                    .unwrap_or_else(|_| Err(Error::Failed("cancelled by its caller".into())));
                (id, result)
            });
        }
    }
    drop(entries);

    let budget = context.max_payload.saturating_sub(HEADER_ROOM);
    let mut writer = ReplyWriter::default();
    while let Some((id, result)) = pending.next().await {
        running.left.fetch_sub(1, Ordering::Relaxed);
        let error;
        let mut answer = Answer {
            id,
            result: match &result {
                Ok(body) => Ok(body.as_slice()),
                Err(e) => {
                    error = status_of(e.clone());
                    Err((kind_of(e), error.as_str()))
                }
            },
        };
        let too_large;
        if HEAD + answer.size() > budget {
            too_large = format!(
                "reply of {} bytes exceeds max_payload {}",
                answer.size() - ANSWER_OVERHEAD,
                context.max_payload
            );
            answer.result = Err((ErrorKind::Failed, too_large.as_str()));
        }
        if !writer.is_empty() && writer.len() + answer.size() > budget {
            send_part(context, &reply, writer.take()).await;
        }
        writer.push(&answer);
    }
    let mut headers = HeaderMap::new();
    headers.insert(protocol::REPLY, ReplyHeader::Done.write(&context.node));
    if let Err(e) = request
        .respond_with_headers(Ok(Bytes::from(writer.take())), headers)
        .await
    {
        tracing::debug!(error = %e, "coalesced reply could not be sent");
    }
}

/// One entry as its own call; items the codec cannot read fail this entry
/// alone.
fn run<'c, I, O, S>(
    context: &'c Context<I, O, S>,
    entry: &Entry<'_>,
) -> BoxFuture<'c, Result<Vec<u8>, Error>>
where
    I: Send + 'static,
    O: Send + 'static,
    S: LocalServing<I, O>,
{
    let options = options_of(entry.priority, entry.timeout);
    match entry.mode {
        Mode::Many => match context.items.decode_many(entry.items) {
            Ok(items) if items.is_empty() => Box::pin(async { Ok(Vec::new()) }),
            Ok(items) => Box::pin(async move {
                let outputs = context.serving.dispatch_many_with(items, options).await?;
                context
                    .outputs
                    .encode_many(&outputs)
                    .map_err(|e| Error::Failed(e.to_string()))
            }),
            Err(e) => Box::pin(std::future::ready(Err(Error::BadRequest(e.to_string())))),
        },
        _ => match context.items.decode(entry.items) {
            Ok(item) => Box::pin(async move {
                let output = context.serving.dispatch_with(item, options).await?;
                context
                    .outputs
                    .encode(&output)
                    .map_err(|e| Error::Failed(e.to_string()))
            }),
            Err(e) => Box::pin(std::future::ready(Err(Error::BadRequest(e.to_string())))),
        },
    }
}

async fn send_part<I, O, S>(
    context: &Context<I, O, S>,
    reply: &async_nats::Subject,
    payload: Vec<u8>,
) {
    let mut headers = HeaderMap::new();
    headers.insert(protocol::REPLY, ReplyHeader::Part.write(&context.node));
    if let Err(e) = context
        .client
        .publish_with_headers(reply.clone(), headers, Bytes::from(payload))
        .await
    {
        tracing::debug!(error = %e, "part of a coalesced reply could not be sent");
    }
}
