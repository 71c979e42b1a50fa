//! The NATS soak: three nodes and several calling clients through a real
//! nats-server, with nodes cut off and started again and the server itself
//! killed and restarted under load. Every call is accounted for:
//! - answered with its own outputs (each `x + 1`), or
//! - failed with an error that an injected fault explains: one of the kinds
//!   a lost node or connection gives, ending within a window after a fault;
//! - never misrouted (a reply that is not its own), never run twice (the
//!   handles are not idempotent, so a call runs at most once, counted per
//!   item across all nodes), never hung (each call has a deadline and a
//!   hard bound past it).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use batch_serving::{Batch, CallOptions, Policy, Serving};
use batch_serving_nats::{Error, Node, RemoteServing};
use tokio::time::Instant;

use crate::nats_server::NatsServer;

/// What the NATS soak saw.
#[derive(Debug, Default)]
pub struct NatsOutcome {
    /// Seconds of load.
    pub seconds: f64,
    /// Calls made.
    pub calls: u64,
    /// Calls answered with their own outputs.
    pub ok: u64,
    /// Failed calls, by error kind, that a fault explains.
    pub explained: BTreeMap<&'static str, u64>,
    /// Failed calls that no fault explains, by error kind.
    pub unexplained: BTreeMap<&'static str, u64>,
    /// Replies that were not the call's own.
    pub misrouted: u64,
    /// Items that ran more than once.
    pub ran_twice: u64,
    /// Calls that outlived their hard bound.
    pub hung: u64,
    /// Nodes cut off (and replaced).
    pub node_cuts: u64,
    /// NATS server restarts.
    pub nats_restarts: u64,
    /// Items the nodes ran.
    pub items_run: u64,
}

impl NatsOutcome {
    /// Broken promises: anything but answered or explained.
    pub fn violations(&self) -> u64 {
        self.unexplained.values().sum::<u64>() + self.misrouted + self.ran_twice + self.hung
    }
}

/// How often faults come, and how long after one an error still counts as
/// its doing: the call's deadline plus the silence limit plus slack.
const NODE_CUT_EVERY: Duration = Duration::from_secs(4);
const NATS_RESTART_EVERY: Duration = Duration::from_secs(11);
const DEADLINE: Duration = Duration::from_secs(2);
const SILENCE: Duration = Duration::from_millis(800);
const EXPLAINS_FOR: Duration = Duration::from_secs(5);

type RunCounts = Arc<Mutex<HashMap<u64, u32>>>;

/// A failed call: when it ended, its error kind, and whether that kind is
/// one a fault can cause.
type Failure = (Instant, &'static str, bool);

async fn start_node(
    url: &str,
    ran: &RunCounts,
) -> Result<(Node, async_nats::Client, Serving<u64, u64, String>), String> {
    let ran = Arc::clone(ran);
    let serving = Serving::new_async(move |batch: Batch<u64>| {
        let ran = Arc::clone(&ran);
        async move {
            {
                let mut counts = ran.lock().unwrap_or_else(PoisonError::into_inner);
                for x in batch.iter() {
                    *counts.entry(*x).or_default() += 1;
                }
            }
            tokio::time::sleep(Duration::from_micros(1000 + 10 * batch.len() as u64)).await;
            Ok::<_, String>(batch.iter().map(|x| x + 1).collect::<Vec<_>>())
        }
    })
    .batch_size(32)
    .queue_capacity(1024)
    .policy(Policy::Eager)
    .start()
    .map_err(|e| e.to_string())?;
    let client = connect(url).await?;
    let node = Node::builder(client.clone(), "soak", serving.clone())
        .start()
        .await
        .map_err(|e| e.to_string())?;
    Ok((node, client, serving))
}

async fn connect(url: &str) -> Result<async_nats::Client, String> {
    async_nats::ConnectOptions::new()
        .reconnect_delay_callback(|attempt| Duration::from_millis(20 * attempt.min(10) as u64))
        .connect(url)
        .await
        .map_err(|e| e.to_string())
}

fn kind(error: &Error) -> &'static str {
    match error {
        Error::Unavailable { .. } => "unavailable",
        Error::Overloaded { .. } => "overloaded",
        Error::DeadlineExceeded => "deadline exceeded",
        Error::NodeLost { .. } => "node lost",
        Error::NoAnswer => "no answer",
        Error::Closed => "closed",
        Error::Nats(_) => "nats",
        Error::BadRequest(_) => "bad request",
        _ => "other",
    }
}

/// The kinds a lost node or a lost connection can cause.
fn fault_kind(error: &Error) -> bool {
    matches!(
        error,
        Error::Unavailable { .. }
            | Error::Overloaded { .. }
            | Error::DeadlineExceeded
            | Error::NodeLost { .. }
            | Error::NoAnswer
            | Error::Closed
            | Error::Nats(_)
    )
}

/// Runs the soak for `seconds` against a server from `binary`.
///
/// # Errors
///
/// When the server or a node cannot be started at all.
pub async fn run(
    binary: &std::path::Path,
    seconds: f64,
    clients: usize,
    callers_per_client: usize,
) -> Result<NatsOutcome, String> {
    let mut server = NatsServer::start(binary)?;
    let url = server.url();
    let ran: RunCounts = Arc::default();
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(start_node(&url, &ran).await?);
    }
    let started = Instant::now();
    let faults: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let ok = Arc::new(AtomicU64::new(0));
    let misrouted = Arc::new(AtomicU64::new(0));
    let hung = Arc::new(AtomicU64::new(0));
    let failures: Arc<Mutex<Vec<Failure>>> = Arc::default();

    let mut callers = Vec::new();
    for client_index in 0..clients {
        let remote = RemoteServing::<u64, u64>::builder(connect(&url).await?, "soak")
            .silence_limit(SILENCE)
            .connect()
            .await
            .map_err(|e| e.to_string())?;
        for caller in 0..callers_per_client {
            let remote = remote.clone();
            let (stop, calls, ok, misrouted, hung, failures) = (
                Arc::clone(&stop),
                Arc::clone(&calls),
                Arc::clone(&ok),
                Arc::clone(&misrouted),
                Arc::clone(&hung),
                Arc::clone(&failures),
            );
            let base = ((client_index * callers_per_client + caller) as u64) << 40;
            callers.push(tokio::spawn(async move {
                let mut seq = 0u64;
                while !stop.load(Relaxed) {
                    seq += 1;
                    // One in four calls carries several items.
                    let n = if seq.is_multiple_of(4) {
                        1 + (seq % 5) as usize
                    } else {
                        1
                    };
                    let items: Vec<u64> = (0..n as u64).map(|i| base | (seq << 3) | i).collect();
                    let options = CallOptions::new().timeout(DEADLINE);
                    let call = async {
                        if n == 1 {
                            remote
                                .dispatch_with(items[0], options)
                                .await
                                .map(|y| vec![y])
                        } else {
                            remote.dispatch_many_with(items.clone(), options).await
                        }
                    };
                    calls.fetch_add(1, Relaxed);
                    match tokio::time::timeout(DEADLINE + Duration::from_secs(5), call).await {
                        Err(_) => {
                            hung.fetch_add(1, Relaxed);
                        }
                        Ok(Ok(outputs)) => {
                            let own = outputs.len() == items.len()
                                && outputs.iter().zip(&items).all(|(y, x)| *y == x + 1);
                            if own {
                                ok.fetch_add(1, Relaxed);
                            } else {
                                misrouted.fetch_add(1, Relaxed);
                            }
                        }
                        Ok(Err(error)) => {
                            failures
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .push((Instant::now(), kind(&error), fault_kind(&error)));
                            // Back off a little, as a real caller would.
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
            }));
        }
    }

    let total = Duration::from_secs_f64(seconds);
    let (mut next_cut, mut next_restart) = (started + NODE_CUT_EVERY, started + NATS_RESTART_EVERY);
    let (mut node_cuts, mut nats_restarts) = (0, 0);
    while started.elapsed() < total {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = Instant::now();
        if now >= next_cut {
            // Cut one node off (its connection closes mid-call), then put a
            // fresh node in its place.
            let victim = (node_cuts as usize) % nodes.len();
            faults
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(now);
            let (node, client, serving) = nodes.remove(victim);
            let _ = client.drain().await;
            drop(node);
            serving.shutdown().await;
            nodes.push(start_node(&url, &ran).await?);
            node_cuts += 1;
            next_cut = now + NODE_CUT_EVERY;
        }
        if now >= next_restart {
            faults
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(now);
            server.kill();
            tokio::time::sleep(Duration::from_millis(300)).await;
            server.restart()?;
            faults
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(Instant::now());
            nats_restarts += 1;
            next_restart = Instant::now() + NATS_RESTART_EVERY;
        }
    }
    stop.store(true, Relaxed);
    for caller in callers {
        let _ = caller.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    for (node, _, serving) in nodes {
        let _ = node.stop().await;
        serving.shutdown().await;
    }

    let faults = faults
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let mut outcome = NatsOutcome {
        seconds: elapsed,
        calls: calls.load(Relaxed),
        ok: ok.load(Relaxed),
        misrouted: misrouted.load(Relaxed),
        hung: hung.load(Relaxed),
        node_cuts,
        nats_restarts,
        ..NatsOutcome::default()
    };
    for (at, kind, of_a_fault) in failures
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
    {
        let near = faults
            .iter()
            .any(|fault| *at >= *fault && at.saturating_duration_since(*fault) <= EXPLAINS_FOR);
        let table = if *of_a_fault && near {
            &mut outcome.explained
        } else {
            &mut outcome.unexplained
        };
        *table.entry(kind).or_default() += 1;
    }
    let counts = ran.lock().unwrap_or_else(PoisonError::into_inner);
    outcome.ran_twice = counts.values().filter(|&&n| n > 1).count() as u64;
    outcome.items_run = counts.values().map(|&n| u64::from(n)).sum();
    Ok(outcome)
}
