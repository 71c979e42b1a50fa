//! Settings for a remote handle, and its start: the reply subscription and
//! the task that keeps the nodes' load fresh.

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};

use super::coalesce::{
    Coalescers, Coalescing, DEFAULT_COALESCE_IN_FLIGHT, DEFAULT_COALESCE_LINGER,
    DEFAULT_COALESCE_MAX,
};
use super::wire::Wire;
use std::time::Duration;

use async_nats::Client;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::discovery::refresh;
use super::handle::RemoteServing;
use super::inbox::Inbox;
use super::route::Routes;
use super::shared::{Local, Shared};
use crate::Error;
use crate::codec::{Codec, MsgPack};
use crate::dispatch::LocalServing;
use crate::protocol;

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

const DEFAULT_COALESCING: Coalescing = Coalescing {
    max: DEFAULT_COALESCE_MAX,
    in_flight: DEFAULT_COALESCE_IN_FLIGHT,
    linger: DEFAULT_COALESCE_LINGER,
};

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
    coalesce: Option<Coalescing>,
}

impl<I, O> std::fmt::Debug for RemoteBuilder<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteBuilder")
            .field("name", &self.name)
            .field("max_tries", &self.max_tries)
            .field("silence_limit", &self.silence_limit)
            .field("refresh", &self.refresh)
            .field("idempotent", &self.idempotent)
            .field("coalesce", &self.coalesce)
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
            coalesce: Some(DEFAULT_COALESCING),
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

    /// Whether calls bound for the same node travel together (default
    /// `true`): the calls that arrive while a message to a node is in
    /// flight go out as one message, and the node feeds them to its
    /// serving as separate calls, each with its own deadline, priority and
    /// answer. A call with nothing ahead of it leaves at once. Streams
    /// always travel alone. With `false`, every call is its own request, as
    /// protocol clients in other languages send them.
    pub fn coalesce(mut self, coalesce: bool) -> Self {
        self.coalesce = coalesce.then_some(self.coalesce.unwrap_or(DEFAULT_COALESCING));
        self
    }

    /// How long a coalesced message in flight holds back the next message
    /// to its node ([`DEFAULT_COALESCE_LINGER`]); after it, the message's
    /// reply is awaited in the background and the calls gathered meanwhile
    /// leave. This bounds what coalescing can add to a call's latency, and
    /// lets a node that batches by time receive the calls it waits for.
    pub fn coalesce_linger(mut self, linger: Duration) -> Self {
        if let Some(coalesce) = &mut self.coalesce {
            coalesce.linger = linger;
        }
        self
    }

    /// Most calls in one coalesced message (at least 1;
    /// [`DEFAULT_COALESCE_MAX`]). A message that would pass the server's
    /// `max_payload` is split whatever this says.
    pub fn coalesce_max(mut self, calls: usize) -> Self {
        if let Some(coalesce) = &mut self.coalesce {
            coalesce.max = calls.max(1);
        }
        self
    }

    /// Coalesced messages that hold their place at one node at once (at least 1;
    /// [`DEFAULT_COALESCE_IN_FLIGHT`]): more keeps a node busy while a
    /// reply travels, fewer makes bigger messages.
    pub fn coalesce_in_flight(mut self, messages: usize) -> Self {
        if let Some(coalesce) = &mut self.coalesce {
            coalesce.in_flight = messages.max(1);
        }
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
        let wire = Arc::new(Wire {
            client: self.client,
            shared_subject: protocol::shared_subject(&self.name),
            cancel_subject: protocol::cancel_subject(&self.name),
            max_payload,
            name: self.name,
            codec: self.items.name(),
            inbox,
            silence_limit: self.silence_limit,
        });
        let coalescers = self
            .coalesce
            .map(|settings| Coalescers::new(Arc::clone(&wire), settings));
        Ok(RemoteServing {
            shared: Arc::new(Shared {
                wire,
                items: self.items,
                outputs: self.outputs,
                routes,
                local: self.local,
                coalescers,
                max_tries: self.max_tries,
                idempotent: self.idempotent,
                route_by_load: self.route_by_load,
                rng: Mutex::new(fastrand::Rng::new()),
                refresher,
            }),
        })
    }
}
