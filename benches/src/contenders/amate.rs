//! amate 0.16.2, the batching behind the furnace-server model server:
//! batches run on its own worker threads; while a worker is idle each item
//! runs alone, and once every worker is busy the next to finish takes all
//! that is queued, up to `max_batch`. Configured as its docs recommend for
//! one batch at a time: one worker, the scenario's wait as its window,
//! waiting only for announced items (none are here, as no caller decodes
//! anything first). Replies are ours to deliver, through a oneshot each.

use std::sync::Arc;
use std::time::Duration;

use amate::{Batching, Config, Engine, Queued};
use futures::TryFutureExt;
use tokio::sync::oneshot;

use super::{CallFuture, Contender, Setup};
use crate::workload::{Cost, run_batch};

/// One call: its input and where its reply goes.
type Item = (u64, oneshot::Sender<u64>);

struct Run {
    cost: Cost,
    window: Duration,
}

impl Batching for Run {
    type Item = Item;

    fn weight(&self, _: &Item) -> usize {
        1
    }

    /// A caller that gave up is skipped, as amate's docs suggest.
    fn wanted(&self, item: &Item) -> bool {
        !item.1.is_closed()
    }

    fn window(&self) -> Duration {
        self.window
    }

    fn run(&self, batch: Vec<Queued<Item>>) {
        let (inputs, replies): (Vec<u64>, Vec<_>) = batch.into_iter().map(|q| q.item).unzip();
        for (reply, y) in replies
            .into_iter()
            .zip(run_batch(self.cost, inputs.into_iter()))
        {
            let _ = reply.send(y);
        }
    }
}

struct Amate(Engine<Item>);

impl Contender for Amate {
    fn call(&self, x: u64) -> CallFuture<'_> {
        let (tx, rx) = oneshot::channel();
        if self.0.submit(None, (x, tx)).is_err() {
            return Box::pin(std::future::ready(Err("amate: queue full".to_owned())));
        }
        Box::pin(rx.map_err(|e| format!("amate: {e}")))
    }
}

pub(super) fn start(setup: Setup) -> Arc<dyn Contender> {
    let config = Config {
        max_batch: setup.batch_size,
        workers: 1,
        // As the other contenders: room for every call the scenarios queue.
        capacity: Some(1 << 20),
        waits_unannounced: false,
    };
    let run = Run {
        cost: setup.cost,
        window: setup.max_wait,
    };
    Arc::new(Amate(Engine::start(run, config, |i| format!("amate-{i}"))))
}
