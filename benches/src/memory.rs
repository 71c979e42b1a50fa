//! Memory per queued call: how much resident memory 100 000 calls queued
//! behind a held batch function take, beyond the same number of idle
//! futures in the same harness. Each measurement runs in a fresh process
//! (the `compare memory` subcommand) so freed memory of earlier work does
//! not hide growth.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};

use crate::contenders::{Kind, Setup};
use crate::workload::{Cost, GATE};

/// Calls queued per measurement.
pub const QUEUED: usize = 100_000;

/// Resident memory of this process in bytes, from `/proc/self/statm`.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

type Pending<'a> = FuturesUnordered<Pin<Box<dyn Future<Output = Result<u64, String>> + Send + 'a>>>;

/// Polls every future once (each enqueues its call), then gives the
/// contender's worker time to drain its channel into its queue.
/// It polls once and sleeps the thread rather than using tokio's timer: a
/// contender that runs its function on a runtime worker holds that worker
/// in the gate, and the timer must not depend on it.
async fn enqueue_all(pending: &mut Pending<'_>) {
    let _ = pending.next().now_or_never();
    std::thread::sleep(Duration::from_millis(300));
}

/// Bytes per call queued in `kind`, beyond idle futures; `None` when memory
/// cannot be read.
///
/// # Errors
///
/// When the contender cannot start.
pub async fn per_queued_call(kind: Kind) -> Result<Option<f64>, String> {
    let setup = Setup {
        batch_size: 64,
        max_wait: Duration::from_millis(1),
        cost: Cost::Free,
    };
    let contender = kind.start(setup)?;
    GATE.close();
    // The first batch enters the function and is held there.
    let mut held: Pending = FuturesUnordered::new();
    held.push(contender.call(u64::MAX - 1));
    enqueue_all(&mut held).await;

    let before = resident_bytes();
    let mut idle: Pending = FuturesUnordered::new();
    for x in 0..QUEUED as u64 {
        idle.push(Box::pin(async move {
            std::future::pending::<()>().await;
            Ok(x)
        }));
    }
    enqueue_all(&mut idle).await;
    let with_idle = resident_bytes();
    let mut queued: Pending = FuturesUnordered::new();
    for x in 0..QUEUED as u64 {
        queued.push(contender.call(x));
    }
    enqueue_all(&mut queued).await;
    let with_queued = resident_bytes();
    GATE.open();
    Ok(match (before, with_idle, with_queued) {
        (Some(before), Some(idle), Some(queued)) => {
            let harness = idle.saturating_sub(before) as f64;
            Some((queued.saturating_sub(idle) as f64 - harness) / QUEUED as f64)
        }
        _ => None,
    })
}

/// Bytes per item when batch-serving holds one `dispatch_many` of
/// [`QUEUED`] items, minus the items' own 8 bytes.
pub async fn per_item_in_one_call() -> Option<f64> {
    let serving = batch_serving::Serving::new(|b: batch_serving::Batch<u64>| {
        Ok::<_, std::convert::Infallible>(crate::workload::run_batch(Cost::Free, b.iter().copied()))
    })
    .batch_size(64)
    .queue_capacity(1 << 20)
    .start()
    .ok()?;
    GATE.close();
    let first = serving.clone();
    let held = tokio::spawn(async move { first.dispatch(u64::MAX - 1).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let items: Vec<u64> = (0..QUEUED as u64).collect();
    let before = resident_bytes()?;
    let call = tokio::spawn({
        let serving = serving.clone();
        async move { serving.dispatch_many(items).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = resident_bytes()?;
    GATE.open();
    let _ = (held.await, call.await);
    Some(after.saturating_sub(before) as f64 / QUEUED as f64 - 8.0)
}
