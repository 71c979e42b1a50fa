//! Coalescing: the calls bound for one node travel as one message.
//!
//! Each node (and the shared subject, before any node's load is known)
//! gets a local serving of this crate's own engine whose batch function is
//! "send this batch to that node": eager, so a call with nothing ahead of
//! it leaves at once, and while a message is in flight the calls that
//! arrive meanwhile gather into the next one. The node answers each entry
//! on its own, so every promise stays per call; this side maps the answers
//! back to their callers by entry number.
//!
//! A call that finds nothing else out to its node (nothing waiting here,
//! no message in flight) goes alone as a plain request, with no hand-off
//! to the coalescing serving: coalescing costs a lone caller nothing.
//!
//! A message holds its place for at most the linger: a node that batches
//! by time may be waiting for the very calls gathered here, so after the
//! linger the message's reply is read in the background and the next
//! message leaves. Coalescing then costs a call at most the linger, and
//! never a wait on another call's node time.
//!
//! A caller that leaves while its entry is on the wire sends a cancel that
//! names the entry (`REPLY_SUBJECT ID`), so the node drops that entry and
//! no other.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use batch_serving::{Batch, CallOptions, Policy, Priority, Serving};
use bytes::Bytes;
use futures::channel::oneshot;
use tokio::time::Instant;

use super::attempt::{Attempt, Reply, error_of};
use super::wire::Wire;
use crate::Error;
use crate::protocol::Mode;
use crate::protocol::coalesced::{self, ENTRY_OVERHEAD, Entry, HEAD, RequestWriter};

/// Room kept in every message for its headers: `max_payload` bounds
/// headers and payload together.
pub(super) const HEADER_ROOM: usize = 512;

/// Most calls in one message, unless set with
/// [`RemoteBuilder::coalesce_max`](crate::RemoteBuilder::coalesce_max).
pub const DEFAULT_COALESCE_MAX: usize = 256;
/// Messages in flight to one node at once, unless set with
/// [`RemoteBuilder::coalesce_in_flight`](crate::RemoteBuilder::coalesce_in_flight).
pub const DEFAULT_COALESCE_IN_FLIGHT: usize = 2;
/// How long a message in flight holds back the next one to its node,
/// unless set with
/// [`RemoteBuilder::coalesce_linger`](crate::RemoteBuilder::coalesce_linger).
pub const DEFAULT_COALESCE_LINGER: Duration = Duration::from_millis(1);

/// The most calls waiting to be sent to one node. Far above any node's
/// queue: the node's own fail-fast admission is what refuses work; this
/// only bounds memory if every node stops answering.
const QUEUE: usize = 1 << 16;

type Answer = Result<Bytes, Error>;
/// The coalescing serving's output: the answer comes when the node's reply
/// does, which may be after the batch function has let the next message go.
type Pending = oneshot::Receiver<Answer>;
type Sender = Serving<Outgoing, Pending, Infallible>;

/// One node's coalescer, started on the first call that needs it (a lone
/// caller never does), and how many of the handle's calls are out to the
/// node now, alone or coalesced.
struct Target {
    node: Option<String>,
    sender: OnceLock<Option<Sender>>,
    out: AtomicUsize,
}

/// The coalescers by node, and the one for the shared subject: looked up
/// by `&str` on every call, without making a key.
#[derive(Default)]
struct Targets {
    shared: Option<Arc<Target>>,
    nodes: HashMap<String, Arc<Target>>,
}

/// A call counted as out to its node until dropped.
pub(super) struct Out<'c> {
    coalescers: &'c Coalescers,
    target: Arc<Target>,
    /// Nothing else was out to the node when the call came: it goes alone.
    pub(super) alone: bool,
}

impl Drop for Out<'_> {
    fn drop(&mut self) {
        self.target.out.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Out<'_> {
    /// Sends the call in the next message to its node, and returns its
    /// answer.
    pub(super) async fn coalesced(&self, call: Outgoing, options: CallOptions) -> Answer {
        let sender = self
            .target
            .sender
            .get_or_init(|| self.coalescers.start(self.target.node.clone()));
        let Some(sender) = sender else {
            return Err(Error::Failed("the coalescer could not start".into()));
        };
        match sender.dispatch_with(call, options).await {
            Ok(pending) => pending
                .await
                .unwrap_or_else(|_| Err(Error::Failed("the coalesced message was dropped".into()))),
            Err(e) => Err(e.into()),
        }
    }
}

/// One caller's call, waiting to go out in the next message to its node.
pub(super) struct Outgoing {
    pub(super) mode: Mode,
    pub(super) items: Bytes,
    pub(super) priority: Priority,
    pub(super) deadline: Option<Instant>,
    pub(super) sent: Arc<Sent>,
}

/// Where an entry went once it went, for the cancel of a caller that
/// leaves while it is on the wire.
#[derive(Default)]
pub(super) struct Sent(Mutex<Option<(Arc<str>, u32)>>);

/// Held by a caller while its call is out: dropped before the answer, it
/// tells the node to drop the entry.
pub(super) struct CancelOnDrop {
    wire: Arc<Wire>,
    sent: Arc<Sent>,
    armed: bool,
}

impl CancelOnDrop {
    pub(super) fn new(wire: &Arc<Wire>, sent: &Arc<Sent>) -> Self {
        CancelOnDrop {
            wire: Arc::clone(wire),
            sent: Arc::clone(sent),
            armed: true,
        }
    }

    /// The call has its answer: nothing to cancel.
    pub(super) fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Some((subject, id)) = self
            .sent
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        else {
            // Still queued here: the local serving already removed it.
            return;
        };
        let client = self.wire.client.clone();
        let cancel = self.wire.cancel_subject.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = client
                    .publish(cancel, Bytes::from(format!("{subject} {id}")))
                    .await;
            });
        }
    }
}

/// How a handle coalesces.
#[derive(Debug, Clone, Copy)]
pub(super) struct Coalescing {
    pub(super) max: usize,
    pub(super) in_flight: usize,
    pub(super) linger: Duration,
}

/// The handle's coalescing servings, one per node it has sent to.
pub(crate) struct Coalescers {
    wire: Arc<Wire>,
    settings: Coalescing,
    targets: Mutex<Targets>,
}

impl Coalescers {
    pub(super) fn new(wire: Arc<Wire>, settings: Coalescing) -> Self {
        Coalescers {
            wire,
            settings,
            targets: Mutex::default(),
        }
    }

    /// Counts a call as out to `node` (the shared subject for `None`).
    pub(super) fn enter(&self, node: Option<&str>) -> Out<'_> {
        let target = self.target(node);
        let alone = target.out.fetch_add(1, Ordering::Relaxed) == 0;
        Out {
            coalescers: self,
            target,
            alone,
        }
    }

    fn target(&self, node: Option<&str>) -> Arc<Target> {
        let mut targets = self.targets.lock().unwrap_or_else(PoisonError::into_inner);
        let found = match node {
            Some(node) => targets.nodes.get(node),
            None => targets.shared.as_ref(),
        };
        if let Some(target) = found {
            return Arc::clone(target);
        }
        let target = Arc::new(Target {
            node: node.map(str::to_string),
            sender: OnceLock::new(),
            out: AtomicUsize::new(0),
        });
        match node {
            Some(node) => targets.nodes.insert(node.to_string(), Arc::clone(&target)),
            None => targets.shared.replace(Arc::clone(&target)),
        };
        target
    }

    /// The coalescing serving for `node`; `None` only if the engine refused
    /// the settings, which the builder keeps valid.
    fn start(&self, node: Option<String>) -> Option<Sender> {
        let wire = Arc::clone(&self.wire);
        let linger = self.settings.linger;
        Serving::new_async(move |batch: Batch<Outgoing>| {
            let wire = Arc::clone(&wire);
            let target = node.clone();
            async move {
                let calls = batch.into_items();
                let (senders, pending): (Vec<_>, Vec<_>) =
                    calls.iter().map(|_| oneshot::channel()).unzip();
                let mut flight = tokio::spawn(async move {
                    let answers = exchange(&wire, target, calls).await;
                    for (sender, answer) in senders.into_iter().zip(answers) {
                        // A caller that left does not hear its answer.
                        let _ = sender.send(answer);
                    }
                });
                // The message holds this partition until its reply or the
                // linger, whichever is first; then it flies on alone.
                let _ = tokio::time::timeout(linger, &mut flight).await;
                Ok(pending)
            }
        })
        .policy(Policy::Eager)
        .batch_size(self.settings.max)
        .partitions(self.settings.in_flight)
        .queue_capacity(QUEUE)
        .name("batch-serving-nats coalescer")
        .start()
        .ok()
    }

    /// A node that left: its calls still waiting here are answered
    /// `Closed` (they never ran) and go elsewhere; messages in flight end
    /// as they would have.
    pub(super) fn forget(&self, node: &str) {
        let target = self
            .targets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .nodes
            .remove(node);
        let sender = target.and_then(|target| target.sender.get().cloned().flatten());
        if let (Some(sender), Ok(runtime)) = (sender, tokio::runtime::Handle::try_current()) {
            runtime.spawn(async move { sender.shutdown().await });
        }
    }
}

/// The batch function: sends the calls as one message (or several, when
/// one would pass `max_payload`) and hands each its own answer.
async fn exchange(wire: &Arc<Wire>, node: Option<String>, calls: Vec<Outgoing>) -> Vec<Answer> {
    let now = Instant::now();
    let mut answers: Vec<Option<Answer>> = vec![None; calls.len()];
    let budget = wire
        .max_payload
        .load(Ordering::Relaxed)
        .saturating_sub(HEADER_ROOM);
    let mut messages: Vec<Message> = Vec::new();
    let mut current = Message::default();
    for (index, call) in calls.iter().enumerate() {
        let timeout = match call.deadline {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(now);
                if left.is_zero() {
                    answers[index] = Some(Err(Error::DeadlineExceeded));
                    continue;
                }
                Some(left)
            }
            None => None,
        };
        let size = ENTRY_OVERHEAD + call.items.len();
        if HEAD + size > budget {
            // The server's limit fell since the call was checked (a
            // reconnect to another server).
            answers[index] = Some(Err(Error::PayloadTooLarge {
                size: HEAD + size + HEADER_ROOM,
                max: budget + HEADER_ROOM,
            }));
            continue;
        }
        if !current.writer.is_empty() && current.writer.len() + size > budget {
            messages.push(std::mem::take(&mut current));
        }
        current.writer.push(&Entry {
            id: index as u32,
            mode: call.mode,
            priority: call.priority,
            timeout,
            items: &call.items,
        });
        current.entries.push(index);
        current.priority = current.priority.max(call.priority);
        current.deadline = match (current.entries.len(), current.deadline, call.deadline) {
            (1, _, deadline) => deadline,
            (_, Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        };
    }
    if !current.writer.is_empty() {
        messages.push(current);
    }
    let sent = futures::future::join_all(
        messages
            .into_iter()
            .map(|message| message.exchange(wire, node.clone(), &calls)),
    )
    .await;
    for (index, answer) in sent.into_iter().flatten() {
        answers[index] = Some(answer);
    }
    answers
        .into_iter()
        .map(|answer| {
            answer.unwrap_or_else(|| {
                Err(Error::Failed(
                    "the node's reply had no answer for this call".into(),
                ))
            })
        })
        .collect()
}

/// One message being written: its envelope and which calls are in it.
#[derive(Default)]
struct Message {
    writer: RequestWriter,
    entries: Vec<usize>,
    priority: Priority,
    deadline: Option<Instant>,
}

impl Message {
    /// Sends the message and reads its replies to the end; returns the
    /// answers it got, by call index.
    async fn exchange(
        self,
        wire: &Arc<Wire>,
        node: Option<String>,
        calls: &[Outgoing],
    ) -> Vec<(usize, Answer)> {
        let Message {
            writer,
            entries,
            priority,
            deadline,
        } = self;
        let mut options = CallOptions::new().priority(priority);
        options.deadline = deadline;
        let mut answered = Vec::with_capacity(entries.len());
        let mut attempt = match Attempt::send_to(
            wire,
            node,
            Mode::Coalesced,
            Bytes::from(writer.finish()),
            &options,
        )
        .await
        {
            Ok(attempt) => attempt,
            Err(e) => return entries.iter().map(|&i| (i, Err(e.clone()))).collect(),
        };
        // One copy of the subject for all the message's callers.
        let subject: Arc<str> = Arc::from(attempt.subject());
        for &index in &entries {
            *calls[index]
                .sent
                .0
                .lock()
                .unwrap_or_else(PoisonError::into_inner) =
                Some((Arc::clone(&subject), index as u32));
        }
        loop {
            let (payload, last) = match attempt.next().await {
                Ok(Reply::Part(payload)) => (payload, false),
                Ok(Reply::Done(payload)) => (payload, true),
                Ok(_) => {
                    let e = Error::BadRequest("a stream reply to a coalesced call".into());
                    return fill(answered, &entries, &e);
                }
                Err(e) => {
                    let e = match e {
                        Error::Unavailable { .. } => Error::Unavailable {
                            name: wire.name.clone(),
                        },
                        e => e,
                    };
                    return fill(answered, &entries, &e);
                }
            };
            match coalesced::read_reply(&payload) {
                Ok(replies) => {
                    for reply in replies {
                        // Entry ids are call indices, written in order;
                        // an id not in this message is ignored.
                        let index = reply.id as usize;
                        if entries.binary_search(&index).is_err() {
                            continue;
                        }
                        let answer = match reply.result {
                            Ok(body) => Ok(payload.slice_ref(body)),
                            Err((kind, text)) => Err(error_of(kind, text.to_string())),
                        };
                        answered.push((index, answer));
                    }
                }
                Err(e) => {
                    let e = Error::BadRequest(format!("coalesced reply: {e}"));
                    return fill(answered, &entries, &e);
                }
            }
            if last {
                return answered;
            }
        }
    }
}

/// Every call of the message not answered yet gets `error`.
fn fill(
    mut answered: Vec<(usize, Answer)>,
    entries: &[usize],
    error: &Error,
) -> Vec<(usize, Answer)> {
    let done: std::collections::HashSet<usize> = answered.iter().map(|(i, _)| *i).collect();
    for &index in entries {
        if !done.contains(&index) {
            answered.push((index, Err(error.clone())));
        }
    }
    answered
}
