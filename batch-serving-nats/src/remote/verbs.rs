//! The calls a remote handle takes, as a local serving's: one item, many,
//! a stream of pieces and hook events; each runs on the local serving
//! where one has room, else remotely through the retry rules
//! (`retry.rs`).

use batch_serving::CallOptions;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::{self, BoxStream, StreamExt};

use super::attempt::Reply;
use super::event::RemoteEvent;
use super::handle::RemoteServing;
use crate::Error;
use crate::dispatch::Dispatch;
use crate::protocol::Mode;

impl<I, O> RemoteServing<I, O>
where
    I: Send + 'static,
    O: Send + 'static,
{
    /// One item; see [`Serving::dispatch`](batch_serving::Serving::dispatch).
    ///
    /// # Errors
    ///
    /// Any [`Error`]; [`Error::never_ran`] tells those that are safe to try
    /// again.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future sends a cancel: the node removes the call's item
    /// if it is still queued, as a dropped local call does.
    pub async fn dispatch(&self, item: I) -> Result<O, Error> {
        self.dispatch_with(item, CallOptions::default()).await
    }

    /// One item with options. The deadline travels with the call and is
    /// enforced on the node (a queued item never runs past it) and here (the
    /// error comes at the deadline). Remote admission is always fail-fast:
    /// a full node answers at once and the call tries another.
    ///
    /// # Errors
    ///
    /// As [`dispatch`](Self::dispatch).
    pub async fn dispatch_with(&self, item: I, options: CallOptions) -> Result<O, Error> {
        let item = match &self.shared.local {
            Some(local) => match (local.one)(item, options) {
                Ok(call) => return call.await,
                Err(item) => item,
            },
            None => item,
        };
        let payload = self
            .shared
            .items
            .encode(&item)
            .map_err(|e| Error::BadRequest(e.to_string()))?;
        let reply = self.call(Mode::One, payload, 1, options).await?;
        self.shared
            .outputs
            .decode(&reply)
            .map_err(|e| Error::BadRequest(format!("reply: {e}")))
    }

    /// Many items, their outputs in order.
    ///
    /// # Errors
    ///
    /// As [`dispatch`](Self::dispatch).
    pub async fn dispatch_many(&self, items: Vec<I>) -> Result<Vec<O>, Error> {
        self.dispatch_many_with(items, CallOptions::default()).await
    }

    /// Many items with options, as [`dispatch_with`](Self::dispatch_with).
    ///
    /// # Errors
    ///
    /// As [`dispatch`](Self::dispatch).
    pub async fn dispatch_many_with(
        &self,
        items: Vec<I>,
        options: CallOptions,
    ) -> Result<Vec<O>, Error> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let items = match &self.shared.local {
            Some(local) => match (local.many)(items, options) {
                Ok(call) => return call.await,
                Err(items) => items,
            },
            None => items,
        };
        let n = items.len();
        let payload = self
            .shared
            .items
            .encode_many(&items)
            .map_err(|e| Error::BadRequest(e.to_string()))?;
        let reply = self.call(Mode::Many, payload, n, options).await?;
        let outputs = self
            .shared
            .outputs
            .decode_many(&reply)
            .map_err(|e| Error::BadRequest(format!("reply: {e}")))?;
        if outputs.len() != n {
            return Err(Error::Failed(format!(
                "{} outputs for {n} items",
                outputs.len()
            )));
        }
        Ok(outputs)
    }

    /// Many items as a stream: each executed piece's outputs and the batch
    /// function's hook events as they happen on the node, then the end.
    /// Always remote (a local serving's hooks do not cross a codec).
    ///
    /// # Errors
    ///
    /// The stream yields one [`Error`] and ends.
    ///
    /// # Cancel safety
    ///
    /// Dropping the stream sends a cancel, as for [`dispatch`](Self::dispatch).
    pub fn dispatch_stream_with(
        &self,
        items: Vec<I>,
        options: CallOptions,
    ) -> BoxStream<'static, Result<RemoteEvent<O>, Error>> {
        let this = self.clone();
        let n = items.len();
        let start = async move {
            let payload = this
                .shared
                .items
                .encode_many(&items)
                .map_err(|e| Error::BadRequest(e.to_string()))?;
            let attempt = this
                .admitted(Mode::Stream, Bytes::from(payload), n, &options)
                .await?;
            Ok::<_, Error>((this, attempt))
        };
        stream::once(start)
            .flat_map(|started| match started {
                Err(e) => stream::once(async move { Err(e) }).boxed(),
                Ok((this, attempt)) => stream::unfold(Some((this, attempt)), |state| async move {
                    let (this, mut attempt) = state?;
                    match attempt.next().await {
                        Ok(Reply::Done(_)) => None,
                        Ok(Reply::Output { offset, payload }) => {
                            let event = this
                                .shared
                                .outputs
                                .decode_many(&payload)
                                .map(|outputs| RemoteEvent::Output { offset, outputs })
                                .map_err(|e| Error::BadRequest(format!("reply: {e}")));
                            let next = event.is_ok().then_some((this, attempt));
                            Some((event, next))
                        }
                        Ok(Reply::Hook {
                            name,
                            item,
                            payload,
                        }) => Some((
                            Ok(RemoteEvent::Hook {
                                name,
                                item,
                                payload,
                            }),
                            Some((this, attempt)),
                        )),
                        Ok(Reply::Part(_)) => Some((
                            Err(Error::BadRequest("a coalesced reply to a stream".into())),
                            None,
                        )),
                        Err(e) => Some((Err(e), None)),
                    }
                })
                .boxed(),
            })
            .boxed()
    }

    /// [`dispatch_stream_with`](Self::dispatch_stream_with) with default
    /// options.
    pub fn dispatch_stream(
        &self,
        items: Vec<I>,
    ) -> BoxStream<'static, Result<RemoteEvent<O>, Error>> {
        self.dispatch_stream_with(items, CallOptions::default())
    }
}

impl<I, O> Dispatch<I, O> for RemoteServing<I, O>
where
    I: Send + Sync + 'static,
    O: Send + Sync + 'static,
{
    fn dispatch_with(&self, item: I, options: CallOptions) -> BoxFuture<'_, Result<O, Error>> {
        Box::pin(RemoteServing::dispatch_with(self, item, options))
    }

    fn dispatch_many_with(
        &self,
        items: Vec<I>,
        options: CallOptions,
    ) -> BoxFuture<'_, Result<Vec<O>, Error>> {
        Box::pin(RemoteServing::dispatch_many_with(self, items, options))
    }
}
