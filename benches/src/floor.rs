//! The floor under S1's per-call cost: the bare parts every contender here
//! is built from, with nothing else. Callers send (item, oneshot) on a tokio
//! channel; one task takes up to a batch at a time as soon as any is there
//! (no timer, no `select!`, no queue of its own) and answers each through
//! its oneshot. Whatever a batching layer adds (a timer, admission, keys,
//! cancellation) costs on top of this, so 1.5 × the best peer is out of
//! reach for any design on these parts when it is above this floor.

use std::sync::Arc;

use crate::contenders::{Contender, channel_contender};
use crate::workload::{Cost, run_batch};

/// Starts the floor's answering task on the current runtime; it answers
/// `x + 1` in batches of at most `batch_size`.
pub fn start(batch_size: usize) -> Arc<dyn Contender> {
    let (contender, mut rx) = channel_contender();
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(batch_size);
        while rx.recv_many(&mut batch, batch_size).await > 0 {
            let (items, replies): (Vec<u64>, Vec<_>) = batch.drain(..).unzip();
            for (reply, y) in replies
                .into_iter()
                .zip(run_batch(Cost::Free, items.into_iter()))
            {
                let _ = reply.send(y);
            }
        }
    });
    contender
}
