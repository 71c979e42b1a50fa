//! batch-serving itself: one partition, a synchronous batch function on the
//! serving's own thread, or the same function declared cheap, on the
//! runtime.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use batch_serving::{Batch, Policy, Serving};
use futures::TryFutureExt;

use super::{CallFuture, Contender, Setup};
use crate::workload::run_batch;

struct Ours(Serving<u64, u64, Infallible>);

impl Contender for Ours {
    fn call(&self, x: u64) -> CallFuture<'_> {
        Box::pin(self.0.dispatch(x).map_err(|e| e.to_string()))
    }
}

pub(super) fn start(setup: Setup, policy: Policy) -> Result<Arc<dyn Contender>, String> {
    start_sync(setup, policy, Duration::ZERO)
}

/// The eager serving with busy polling. The budget covers one S2 batch
/// (428 µs) with room to spare, as its documentation advises.
pub(super) fn start_busy_poll(setup: Setup) -> Result<Arc<dyn Contender>, String> {
    start_sync(setup, Policy::Eager, Duration::from_millis(1))
}

fn start_sync(
    setup: Setup,
    policy: Policy,
    busy_poll: Duration,
) -> Result<Arc<dyn Contender>, String> {
    let cost = setup.cost;
    let serving = Serving::new(move |batch: Batch<u64>| {
        Ok::<_, Infallible>(run_batch(cost, batch.iter().copied()))
    })
    .batch_size(setup.batch_size)
    .batch_timeout(setup.max_wait)
    .policy(policy)
    .busy_poll(busy_poll)
    .queue_capacity(1 << 20)
    .start()
    .map_err(|e| e.to_string())?;
    Ok(Arc::new(Ours(serving)))
}

/// The same function declared cheap (`Serving::new_on_runtime`): its
/// partition is a task on the runtime, so no batch crosses to another
/// thread.
pub(super) fn start_on_runtime(setup: Setup) -> Result<Arc<dyn Contender>, String> {
    let cost = setup.cost;
    let serving = Serving::new_on_runtime(move |batch: Batch<u64>| {
        Ok::<_, Infallible>(run_batch(cost, batch.iter().copied()))
    })
    .batch_size(setup.batch_size)
    .batch_timeout(setup.max_wait)
    .policy(Policy::Eager)
    .queue_capacity(1 << 20)
    .start()
    .map_err(|e| e.to_string())?;
    Ok(Arc::new(Ours(serving)))
}
