//! tower-batch-control 1.1.1: the inner service collects items and answers
//! them all when the wrapper tells it to flush. It runs on a tokio task.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::TryFutureExt;
use tokio::sync::oneshot;
use tower::{Service, ServiceExt};
use tower_batch_control::{Batch, BatchControl, RequestWeight};

use super::{CallFuture, Contender, Setup};
use crate::workload::{Cost, run_batch};

/// One item as tower-batch-control sees it.
#[derive(Debug)]
pub(super) struct Item(u64);

impl RequestWeight for Item {}

type Pending = Arc<Mutex<Vec<(u64, oneshot::Sender<u64>)>>>;

#[derive(Clone)]
struct Collector {
    pending: Pending,
    cost: Cost,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Service<BatchControl<Item>> for Collector {
    type Response = u64;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<u64, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: BatchControl<Item>) -> Self::Future {
        match request {
            BatchControl::Item(Item(x)) => {
                let (tx, rx) = oneshot::channel();
                self.pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((x, tx));
                Box::pin(async move { rx.await.map_err(|e| Box::new(e) as BoxError) })
            }
            BatchControl::Flush => {
                let batch =
                    std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
                let (items, replies): (Vec<u64>, Vec<_>) = batch.into_iter().unzip();
                for (reply, y) in replies
                    .into_iter()
                    .zip(run_batch(self.cost, items.into_iter()))
                {
                    let _ = reply.send(y);
                }
                Box::pin(async { Ok(0) })
            }
        }
    }
}

struct Tower(Batch<Collector, Item>);

impl Contender for Tower {
    fn call(&self, x: u64) -> CallFuture<'_> {
        Box::pin(self.0.clone().oneshot(Item(x)).map_err(|e| e.to_string()))
    }
}

pub(super) fn start(setup: Setup) -> Arc<dyn Contender> {
    let collector = Collector {
        pending: Pending::default(),
        cost: setup.cost,
    };
    // One batch at a time, like the other contenders' single executor.
    Arc::new(Tower(Batch::new(
        collector,
        setup.batch_size,
        1,
        setup.max_wait,
    )))
}
