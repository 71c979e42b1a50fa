//! What the two adaptive dispatchers written in the bench share: calls
//! arrive on a channel to one thread, which decides each batch, runs the
//! function and answers. While it runs, arrivals wait in the channel.

use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

use futures::FutureExt;
use tokio::sync::oneshot;

use super::{CallFuture, Contender};
use crate::workload::{Cost, run_batch};

/// A call waiting for the dispatcher.
pub(super) struct Pending {
    pub(super) x: u64,
    pub(super) at: Instant,
    reply: oneshot::Sender<Result<u64, String>>,
}

impl Pending {
    /// Refuses this call.
    pub(super) fn refuse(self, why: &str) {
        let _ = self.reply.send(Err(why.to_owned()));
    }
}

struct Channel(Sender<Pending>);

impl Contender for Channel {
    fn call(&self, x: u64) -> CallFuture<'_> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            x,
            at: Instant::now(),
            reply,
        };
        match self.0.send(pending) {
            Ok(()) => Box::pin(answer.map(|a| a.unwrap_or_else(|_| Err("dropped".to_owned())))),
            Err(_) => Box::pin(std::future::ready(Err("closed".to_owned()))),
        }
    }
}

/// Starts `dispatch` on a thread of its own, fed by the returned
/// contender's calls; the thread ends when the contender drops.
pub(super) fn spawn(
    name: &str,
    dispatch: impl FnOnce(Receiver<Pending>) + Send + 'static,
) -> Arc<dyn Contender> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || dispatch(rx))
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    Arc::new(Channel(tx))
}

/// Runs one batch and answers its calls; returns how long it ran and the
/// longest latency in it, from arrival to answer.
pub(super) fn run_and_answer(cost: Cost, batch: Vec<Pending>) -> (Duration, Duration) {
    let started = Instant::now();
    let outputs = run_batch(cost, batch.iter().map(|p| p.x));
    let took = started.elapsed();
    let oldest = batch.iter().map(|p| p.at).min().unwrap_or(started);
    let longest = oldest.elapsed();
    for (pending, y) in batch.into_iter().zip(outputs) {
        let _ = pending.reply.send(Ok(y));
    }
    (took, longest)
}
