//! batched-fn 0.2.5. Its handler and configuration live in a `static` per
//! macro call site, so each scenario's setup has its own site here.

use std::sync::Arc;
use std::time::Duration;

use batched_fn::batched_fn;
use futures::TryFutureExt;

use super::{CallFuture, Contender, Setup};
use crate::workload::{Cost, run_batch};

async fn s1(x: u64) -> Result<u64, batched_fn::Error> {
    let f = batched_fn! {
        handler = |batch: Vec<u64>| -> Vec<u64> { run_batch(Cost::Free, batch.into_iter()) };
        config = { max_batch_size: 64, max_delay: 1 };
        context = {};
    };
    f(x).await
}

async fn s2(x: u64) -> Result<u64, batched_fn::Error> {
    let f = batched_fn! {
        handler = |batch: Vec<u64>| -> Vec<u64> { run_batch(Cost::S2, batch.into_iter()) };
        config = { max_batch_size: 32, max_delay: 2 };
        context = {};
    };
    f(x).await
}

struct BatchedFn {
    costed: bool,
}

impl Contender for BatchedFn {
    fn call(&self, x: u64) -> CallFuture<'_> {
        if self.costed {
            Box::pin(s2(x).map_err(|e| format!("{e:?}")))
        } else {
            Box::pin(s1(x).map_err(|e| format!("{e:?}")))
        }
    }
}

pub(super) fn start(setup: Setup) -> Result<Arc<dyn Contender>, String> {
    match (setup.cost, setup.batch_size, setup.max_wait) {
        (Cost::Free, 64, wait) if wait == Duration::from_millis(1) => {
            Ok(Arc::new(BatchedFn { costed: false }))
        }
        (Cost::S2, 32, wait) if wait == Duration::from_millis(2) => {
            Ok(Arc::new(BatchedFn { costed: true }))
        }
        _ => Err(format!("no batched-fn call site for {setup:?}")),
    }
}
