//! The node side: a local serving exported under a name, so that calls from
//! any machine enter the same queue as local ones and batch with them.
//!
//! A node is one NATS service instance (`bsv1-NAME`) with two endpoints:
//! the shared subject in the serving's queue group, and its own subject,
//! where routers send the calls they aimed at it. It also hears the cancel
//! subject. Each request runs in its own task ([`call`]), so one slow or
//! hostile request never holds up another.

mod call;
mod coalesced;
mod context;
mod hook_encoder;

use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use async_nats::Client;
use async_nats::service::{Service, ServiceExt};
use batch_serving::Hook;
use futures::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;

use self::context::Running;
pub use self::hook_encoder::HookEncoder;

use crate::codec::{Codec, MsgPack};
use crate::dispatch::LocalServing;
use crate::protocol;
use crate::report::NodeReport;

/// How long a node lets a call run before it tells the caller it is alive,
/// and how often again after that, unless set with
/// [`NodeBuilder::heartbeat`]. Calls answered sooner send no extra message.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_millis(200);

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The name is empty or has characters other than `A-Z a-z 0-9 - _`.
    #[error("invalid serving name {0:?}: use A-Z, a-z, 0-9, '-' and '_'")]
    InvalidName(String),
    /// NATS refused the service or a subscription.
    #[error("nats: {0}")]
    Nats(String),
}

/// Settings for a [`Node`]; from [`Node::builder`] or
/// [`Node::builder_with_codecs`].
#[must_use = "a node builder does nothing until start() is called"]
pub struct NodeBuilder<I, O, S> {
    client: Client,
    name: String,
    serving: S,
    items: Arc<dyn Codec<I>>,
    outputs: Arc<dyn Codec<O>>,
    weight: f64,
    heartbeat: Duration,
    hooks: Option<HookEncoder>,
}

impl<I, O, S> std::fmt::Debug for NodeBuilder<I, O, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeBuilder")
            .field("name", &self.name)
            .field("weight", &self.weight)
            .field("heartbeat", &self.heartbeat)
            .finish_non_exhaustive()
    }
}

/// A local serving exported through NATS. Dropping it (or
/// [`stop`](Node::stop)) unsubscribes; calls already taken finish.
pub struct Node {
    id: String,
    name: String,
    service: Option<Service>,
    listener: JoinHandle<()>,
    stopped: Arc<AtomicBool>,
    running: Running,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.id)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Exports `serving` under `name` with the MessagePack codec for items
    /// and outputs.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use batch_serving::{Batch, Serving};
    /// use batch_serving_nats::Node;
    /// let squares = Serving::new(|b: Batch<u32>| Ok::<_, String>(b.iter().map(|x| x * x).collect())).start()?;
    /// let client = async_nats::connect("127.0.0.1:4222").await?;
    /// let node = Node::builder(client, "squares", squares).start().await?;
    /// println!("serving as node {}", node.id());
    /// # Ok(()) }
    /// ```
    pub fn builder<I, O, S>(client: Client, name: &str, serving: S) -> NodeBuilder<I, O, S>
    where
        I: DeserializeOwned + Serialize + Send + Sync + 'static,
        O: DeserializeOwned + Serialize + Send + Sync + 'static,
        S: LocalServing<I, O>,
    {
        Self::builder_with_codecs(client, name, serving, MsgPack, MsgPack)
    }

    /// Exports `serving` with codecs of your choice, for example
    /// [`RawBytes`](crate::RawBytes) items (image bodies) and
    /// [`MsgPack`] outputs.
    pub fn builder_with_codecs<I, O, S>(
        client: Client,
        name: &str,
        serving: S,
        items: impl Codec<I>,
        outputs: impl Codec<O>,
    ) -> NodeBuilder<I, O, S>
    where
        S: LocalServing<I, O>,
    {
        NodeBuilder {
            client,
            name: name.to_string(),
            serving,
            items: Arc::new(items),
            outputs: Arc::new(outputs),
            weight: 1.0,
            heartbeat: DEFAULT_HEARTBEAT,
            hooks: None,
        }
    }

    /// The node's id: its NATS service instance id, as seen in
    /// `$SRV.INFO` and in the `BS-Node` header of its replies.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The serving's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Callers' calls this node has taken and not yet answered (each
    /// entry of a coalesced message counts as one).
    pub fn running(&self) -> usize {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(context::Taken::calls)
            .sum()
    }

    /// Leaves the cluster: stops the service so no new call arrives here.
    /// Calls already taken still finish and are answered.
    ///
    /// # Errors
    ///
    /// When NATS could not be told (the connection is gone); the node has
    /// stopped listening either way.
    pub async fn stop(mut self) -> Result<(), NodeError> {
        self.listener.abort();
        // Calls already taken still finish; they keep their heartbeats
        // until then.
        match self.service.take() {
            Some(service) => service
                .stop()
                .await
                .map_err(|e| NodeError::Nats(e.to_string())),
            None => Ok(()),
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.listener.abort();
        // The heartbeat sweep goes on for the calls already taken, and
        // ends once the last of them is answered.
        self.stopped.store(true, Ordering::Relaxed);
    }
}

impl<I, O, S> NodeBuilder<I, O, S>
where
    I: Send + 'static,
    O: Send + 'static,
    S: LocalServing<I, O>,
{
    /// Multiplies this node's published capacity, as Nx.Serving's
    /// `distribution_weight`: 2.0 gets about twice the calls of an equal
    /// node at 1.0. Negative values count as 0.
    pub fn weight(mut self, weight: f64) -> Self {
        self.weight = weight;
        self
    }

    /// How long a call may run before the node tells its caller it is
    /// alive, and how often again after that. The callers' `silence_limit`
    /// must be several times longer (see [`RemoteBuilder::silence_limit`](crate::RemoteBuilder::silence_limit)).
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every.max(Duration::from_millis(1));
        self
    }

    /// How hook payloads travel to remote streaming callers.
    pub fn hook_encoder(
        mut self,
        encode: impl Fn(&Hook) -> Option<Vec<u8>> + Send + Sync + 'static,
    ) -> Self {
        self.hooks = Some(Arc::new(encode));
        self
    }

    /// Joins the cluster: starts the NATS service and its endpoints.
    ///
    /// # Errors
    ///
    /// [`NodeError::InvalidName`], or [`NodeError::Nats`] when the service
    /// or a subscription could not be made.
    pub async fn start(self) -> Result<Node, NodeError> {
        let NodeBuilder {
            client,
            name,
            serving,
            items,
            outputs,
            weight,
            heartbeat,
            hooks,
        } = self;
        if !protocol::valid_name(&name) {
            return Err(NodeError::InvalidName(name));
        }
        let nats = |e: async_nats::Error| NodeError::Nats(e.to_string());
        // The stats handler runs on the service's own task for every
        // $SRV.STATS request; it needs the id, which exists only once the
        // service does, so it reads it from a cell filled right after.
        let id_cell: Arc<std::sync::OnceLock<String>> = Arc::default();
        let reporting = serving.clone();
        let report_id = Arc::clone(&id_cell);
        let service = client
            .service_builder()
            .description(format!(
                "batch-serving {name}, protocol v{}",
                protocol::VERSION
            ))
            .stats_handler(move |_endpoint, _stats| {
                let load = reporting.load();
                serde_json::to_value(NodeReport {
                    node: report_id.get().cloned().unwrap_or_default(),
                    partitions: load.partitions,
                    batch_size: load.batch_size,
                    weight,
                    queue_capacity: load.queue_capacity,
                    queued: load.queued,
                    batch_seconds: load.batch_seconds,
                    batches: load.batches,
                    items: load.items,
                })
                .unwrap_or_default()
            })
            .start(protocol::service_name(&name), env!("CARGO_PKG_VERSION"))
            .await
            .map_err(nats)?;
        let id = service.info().await.id;
        let _ = id_cell.set(id.clone());

        let shared = service
            .endpoint_builder()
            .name("call")
            .queue_group(protocol::queue_group(&name))
            .add(protocol::shared_subject(&name))
            .await
            .map_err(nats)?;
        // Its own subject in a queue group of one: only this node hears it.
        let own = service
            .endpoint_builder()
            .name("node")
            .queue_group(format!("{}.{id}", protocol::queue_group(&name)))
            .add(protocol::node_subject(&name, &id))
            .await
            .map_err(nats)?;
        let cancels = client
            .subscribe(protocol::cancel_subject(&name))
            .await
            .map_err(|e| NodeError::Nats(e.to_string()))?;

        let running: Running = Arc::default();
        let context = Arc::new(context::Context {
            client: client.clone(),
            node: id.clone(),
            serving,
            items,
            outputs,
            hooks,
            max_payload: client.server_info().max_payload,
            _types: PhantomData,
        });
        let listener = tokio::spawn(listen(context, shared, own, cancels, Arc::clone(&running)));
        let stopped = Arc::new(AtomicBool::new(false));
        tokio::spawn(beat(
            client.clone(),
            id.clone(),
            heartbeat,
            Arc::clone(&running),
            Arc::clone(&stopped),
        ));
        tracing::info!(serving = %name, node = %id, "node joined");
        Ok(Node {
            id,
            name,
            service: Some(service),
            listener,
            stopped,
            running,
        })
    }
}

/// Takes requests from both endpoints and cancels until the node stops.
async fn listen<I, O, S>(
    context: Arc<context::Context<I, O, S>>,
    shared: async_nats::service::endpoint::Endpoint,
    own: async_nats::service::endpoint::Endpoint,
    mut cancels: async_nats::Subscriber,
    running: Running,
) where
    I: Send + 'static,
    O: Send + 'static,
    S: LocalServing<I, O>,
{
    let mut requests = futures::stream::select(shared, own);
    loop {
        tokio::select! {
            request = requests.next() => {
                let Some(request) = request else { break };
                call::spawn(Arc::clone(&context), request, &running);
            }
            cancel = cancels.next() => {
                let Some(cancel) = cancel else { break };
                // The payload is the call's reply subject, or for one
                // entry of a coalesced message `SUBJECT ID`; anything else
                // matches no call and is ignored.
                let Ok(id) = std::str::from_utf8(&cancel.payload) else { continue };
                let mut table = running.lock().unwrap_or_else(PoisonError::into_inner);
                match id.split_once(' ') {
                    Some((message, entry)) => {
                        let Ok(entry) = entry.parse::<u32>() else { continue };
                        let Some(entries) = table.get(message).and_then(|taken| taken.entries.clone()) else { continue };
                        drop(table);
                        // Dropping the entry's future drops its local call,
                        // which removes its items still queued.
                        if entries.cancel(entry) {
                            tracing::debug!(call = message, entry, "entry cancelled by its caller");
                        }
                    }
                    None => {
                        if let Some(taken) = table.remove(id) {
                            // Dropping the call's task drops its local call,
                            // which removes its items still queued, as a
                            // local drop does.
                            taken.abort.abort();
                            tracing::debug!(call = id, "cancelled by its caller");
                        }
                    }
                }
            }
        }
    }
}

/// Tells the caller of every call that has run longer than a heartbeat that
/// it is alive, so the caller can tell a slow node from a dead one. One
/// sweep for all calls, not a timer per call: calls answered within a
/// heartbeat (nearly all) cost nothing here.
async fn beat(
    client: Client,
    node: String,
    heartbeat: Duration,
    running: Running,
    stopped: Arc<AtomicBool>,
) {
    let line = crate::protocol::ReplyHeader::Alive.write(&node);
    let mut tick = tokio::time::interval(call::sweep_every(heartbeat));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = tokio::time::Instant::now();
        let owed: Vec<async_nats::Subject> = {
            let table = running.lock().unwrap_or_else(PoisonError::into_inner);
            if table.is_empty() && stopped.load(Ordering::Relaxed) {
                return;
            }
            table
                .iter()
                .filter(|(_, taken)| now.saturating_duration_since(taken.since) >= heartbeat)
                .map(|(_, taken)| taken.reply.clone())
                .collect()
        };
        for reply in owed {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(protocol::REPLY, line.as_str());
            // A lost heartbeat only makes the caller less sure; the next
            // one, or the answer, follows.
            let _ = client
                .publish_with_headers(reply, headers, bytes::Bytes::new())
                .await;
        }
    }
}
