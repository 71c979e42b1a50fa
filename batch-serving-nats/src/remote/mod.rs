//! The caller side: a handle with the verbs of a local serving, for a
//! serving that runs on other machines (and maybe this one).
//!
//! A call goes to the local serving when one was given and it has room;
//! otherwise to a node picked from the nodes' published load
//! ([`route`]); otherwise, while no load is known yet, to the shared
//! subject, where NATS picks a node at random. A call that a node refused
//! before running it (full queue, shutting down, gone) is tried on another
//! node, up to `max_tries`; one that may have run is tried again only on an
//! idempotent handle.

mod attempt;
mod inbox;
mod route;
mod shared;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::Client;
use batch_serving::CallOptions;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::{self, BoxStream, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use self::attempt::{Attempt, Reply};
use self::inbox::Inbox;
use self::route::Routes;
use self::shared::{Local, Shared};
use crate::Error;
use crate::codec::{Codec, MsgPack};
use crate::dispatch::{Dispatch, LocalServing};
use crate::protocol::{self, Mode};
use crate::report::NodeReport;

/// How many nodes a call tries before it gives up as overloaded, unless set
/// with [`RemoteBuilder::max_tries`].
pub const DEFAULT_MAX_TRIES: usize = 3;
/// How long a call waits without hearing from its node before it counts
/// the node as lost, unless set with [`RemoteBuilder::silence_limit`].
/// Nodes send a heartbeat every 200 ms by default, so this is five missed
/// beats.
pub const DEFAULT_SILENCE_LIMIT: Duration = Duration::from_secs(1);
/// How often the handle asks every node for its load, unless set with
/// [`RemoteBuilder::refresh`].
pub const DEFAULT_REFRESH: Duration = Duration::from_millis(250);

/// How long a call that was refused before any load was known waits for
/// the nodes' reports.
const DISCOVERY_WAIT: Duration = Duration::from_millis(50);

/// What a remote streaming call yields.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RemoteEvent<O> {
    /// Outputs of one executed piece, starting at `offset` in the call.
    Output {
        /// Index of the first output's item in the call.
        offset: usize,
        /// The piece's outputs, in order.
        outputs: Vec<O>,
    },
    /// A hook event of the batch function, about the call's items.
    Hook {
        /// The hook's name.
        name: String,
        /// The item it is about, when it is about one.
        item: Option<usize>,
        /// Its payload as the node's hook encoder wrote it (empty without
        /// one).
        payload: Bytes,
    },
}

/// A serving that runs on other machines, called through NATS with the
/// verbs of a local one. Cheap to clone; clones share one reply
/// subscription and one table of nodes.
pub struct RemoteServing<I, O> {
    shared: Arc<Shared<I, O>>,
}

impl<I, O> Clone for RemoteServing<I, O> {
    fn clone(&self) -> Self {
        RemoteServing {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<I, O> std::fmt::Debug for RemoteServing<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteServing")
            .field("name", &self.shared.name)
            .field("nodes", &self.shared.routes.len())
            .finish_non_exhaustive()
    }
}

/// Settings for a [`RemoteServing`].
#[must_use = "a remote builder does nothing until connect() is called"]
pub struct RemoteBuilder<I, O> {
    client: Client,
    name: String,
    items: Arc<dyn Codec<I>>,
    outputs: Arc<dyn Codec<O>>,
    local: Option<Local<I, O>>,
    max_tries: usize,
    silence_limit: Duration,
    refresh: Duration,
    idempotent: bool,
    route_by_load: bool,
}

impl<I, O> std::fmt::Debug for RemoteBuilder<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteBuilder")
            .field("name", &self.name)
            .field("max_tries", &self.max_tries)
            .field("silence_limit", &self.silence_limit)
            .field("refresh", &self.refresh)
            .field("idempotent", &self.idempotent)
            .finish_non_exhaustive()
    }
}

impl<I, O> RemoteServing<I, O>
where
    I: Send + 'static,
    O: Send + 'static,
{
    /// A handle for the serving `name`, with the MessagePack codec.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use batch_serving_nats::RemoteServing;
    /// let client = async_nats::connect("127.0.0.1:4222").await?;
    /// let squares = RemoteServing::<u32, u32>::builder(client, "squares").connect().await?;
    /// assert_eq!(squares.dispatch(3).await?, 9);
    /// # Ok(()) }
    /// ```
    pub fn builder(client: Client, name: &str) -> RemoteBuilder<I, O>
    where
        I: Serialize + DeserializeOwned + Sync,
        O: Serialize + DeserializeOwned + Sync,
    {
        Self::builder_with_codecs(client, name, MsgPack, MsgPack)
    }

    /// A handle with codecs of your choice; they must be the node's.
    pub fn builder_with_codecs(
        client: Client,
        name: &str,
        items: impl Codec<I>,
        outputs: impl Codec<O>,
    ) -> RemoteBuilder<I, O> {
        RemoteBuilder {
            client,
            name: name.to_string(),
            items: Arc::new(items),
            outputs: Arc::new(outputs),
            local: None,
            max_tries: DEFAULT_MAX_TRIES,
            silence_limit: DEFAULT_SILENCE_LIMIT,
            refresh: DEFAULT_REFRESH,
            idempotent: false,
            route_by_load: true,
        }
    }
}

impl<I, O> RemoteBuilder<I, O>
where
    I: Send + 'static,
    O: Send + 'static,
{
    /// Runs calls on this local serving while it has queue room, and on
    /// the cluster otherwise (as Nx.Serving prefers a local serving).
    pub fn prefer_local<S: LocalServing<I, O>>(mut self, serving: S) -> Self {
        let for_one = serving.clone();
        let for_many = serving;
        self.local = Some(Local {
            one: Box::new(move |item, options| for_one.try_local_one(item, options)),
            many: Box::new(move |items, options| for_many.try_local_many(items, options)),
        });
        self
    }

    /// Nodes a call tries, in all, before it fails as overloaded (at least
    /// 1).
    pub fn max_tries(mut self, tries: usize) -> Self {
        self.max_tries = tries.max(1);
        self
    }

    /// How long a call waits without a word from its node (no heartbeat,
    /// no answer) before it fails with [`Error::NodeLost`] or
    /// [`Error::NoAnswer`]. Keep it several node heartbeats long.
    pub fn silence_limit(mut self, limit: Duration) -> Self {
        self.silence_limit = limit.max(Duration::from_millis(1));
        self
    }

    /// How often the nodes' load is read.
    pub fn refresh(mut self, every: Duration) -> Self {
        self.refresh = every.max(Duration::from_millis(10));
        self
    }

    /// Marks the serving's function as safe to run twice for one call, so
    /// that a call whose node was lost mid-call is tried on another node.
    /// Without it, such a call fails and never runs twice.
    pub fn idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = idempotent;
        self
    }

    /// With `false`, every call goes to the shared subject and NATS's queue
    /// group picks a node at random, blind to load, as a plain NATS
    /// request would; for comparison (the benchmark's S6) and for
    /// clusters where the stats traffic is unwanted. Default `true`.
    pub fn route_by_load(mut self, route: bool) -> Self {
        self.route_by_load = route;
        self
    }

    /// Subscribes for replies and starts reading the nodes' load.
    ///
    /// # Errors
    ///
    /// [`Error::BadRequest`] for an invalid name, [`Error::Nats`] when the
    /// subscriptions cannot be made.
    pub async fn connect(self) -> Result<RemoteServing<I, O>, Error> {
        if !protocol::valid_name(&self.name) {
            return Err(Error::BadRequest(format!(
                "invalid serving name {:?}",
                self.name
            )));
        }
        let inbox = Inbox::open(&self.client)
            .await
            .map_err(|e| Error::Nats(e.to_string()))?;
        let routes = Arc::new(Routes::default());
        let max_payload = Arc::new(AtomicUsize::new(self.client.server_info().max_payload));
        let refresher = tokio::spawn(refresh(
            self.client.clone(),
            protocol::service_name(&self.name),
            Arc::clone(&routes),
            Arc::clone(&max_payload),
            self.refresh,
            self.route_by_load,
        ));
        Ok(RemoteServing {
            shared: Arc::new(Shared {
                client: self.client,
                shared_subject: protocol::shared_subject(&self.name),
                cancel_subject: protocol::cancel_subject(&self.name),
                max_payload,
                name: self.name,
                items: self.items,
                outputs: self.outputs,
                inbox,
                routes,
                local: self.local,
                max_tries: self.max_tries,
                silence_limit: self.silence_limit,
                idempotent: self.idempotent,
                route_by_load: self.route_by_load,
                rng: Mutex::new(fastrand::Rng::new()),
                refresher,
            }),
        })
    }
}

/// Asks every node for its report at each tick and keeps the table fresh
/// (only the server's limit without routing by load).
async fn refresh(
    client: Client,
    service: String,
    routes: Arc<Routes>,
    max_payload: Arc<AtomicUsize>,
    every: Duration,
    route_by_load: bool,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        max_payload.store(client.server_info().max_payload, Ordering::Relaxed);
        if !route_by_load {
            continue;
        }
        // Replies that take longer than half a tick count in the next round.
        if let Some(reports) = gather(&client, &service, every / 2).await {
            routes.update(reports, Instant::now(), every * 4);
        }
    }
}

/// One `$SRV.STATS` round: every node of the service answers with its
/// report; those heard within `wait` are returned. `None` when the request
/// could not be sent.
async fn gather(client: &Client, service: &str, wait: Duration) -> Option<Vec<NodeReport>> {
    let inbox = client.new_inbox();
    let mut replies = client.subscribe(inbox.clone()).await.ok()?;
    client
        .publish_with_reply(format!("$SRV.STATS.{service}"), inbox, Bytes::new())
        .await
        .ok()?;
    let until = Instant::now() + wait;
    let mut reports = Vec::new();
    while let Ok(Some(message)) = tokio::time::timeout_at(until, replies.next()).await {
        if let Some(report) = read_report(&message.payload) {
            reports.push(report);
        }
    }
    Some(reports)
}

/// A node's report from a `$SRV.STATS` reply; `None` for anything else.
fn read_report(payload: &[u8]) -> Option<NodeReport> {
    let stats: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let data = stats
        .get("endpoints")?
        .as_array()?
        .first()?
        .get("data")?
        .clone();
    serde_json::from_value(data).ok()
}

impl<I, O> RemoteServing<I, O>
where
    I: Send + 'static,
    O: Send + 'static,
{
    /// The serving's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The nodes this handle knows of now, with their last reports.
    pub fn nodes(&self) -> Vec<NodeReport> {
        self.shared.routes.reports()
    }

    /// Waits until at least `count` nodes have reported, or `limit` passes;
    /// returns how many are known. Calls work before (through the shared
    /// subject); this is for start-up and tests.
    pub async fn wait_for_nodes(&self, count: usize, limit: Duration) -> usize {
        let until = Instant::now() + limit;
        while self.shared.routes.len() < count && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.shared.routes.len()
    }

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

    /// Sends a one- or many-item call and returns its reply payload,
    /// trying other nodes as the rules allow.
    async fn call(
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
    async fn admitted(
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
