//! Deadlines and cancellation: a call with a deadline fails at the deadline,
//! not when a slow batch finally ends, and an item still queued then is
//! removed and never runs. Dropping a call's future does the same. A
//! fail-fast call is refused at once when the queue is full.
//!
//! ```text
//! cargo run -p batch-serving --example deadlines_and_cancellation
//! ```

use std::convert::Infallible;
use std::time::Duration;

use batch_serving::{Batch, CallOptions, Error, Policy, Priority, Serving};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let serving = Serving::new_async(|batch: Batch<u32>| async move {
        tokio::time::sleep(Duration::from_millis(200)).await; // a slow batch
        Ok::<_, Infallible>(batch.to_vec())
    })
    .batch_size(1)
    .policy(Policy::Eager)
    .queue_capacity(2)
    .start()?;

    // Occupies the only partition for 200 ms.
    let busy = tokio::spawn({
        let serving = serving.clone();
        async move { serving.dispatch(0).await }
    });
    tokio::time::sleep(Duration::from_millis(10)).await;

    // Queued behind it with 50 ms to live: fails at 50 ms, and never runs.
    let hurried = CallOptions::new().timeout(Duration::from_millis(50));
    let late = serving.dispatch_with(1, hurried).await;
    assert!(matches!(late, Err(Error::DeadlineExceeded)));

    // Dropped while queued: removed, never runs.
    let dropped = tokio::time::timeout(Duration::from_millis(10), serving.dispatch(2)).await;
    assert!(dropped.is_err());

    // Fill the queue, then a fail-fast call is refused at once.
    let queued: Vec<_> = (3..5)
        .map(|i| {
            let serving = serving.clone();
            tokio::spawn(async move { serving.dispatch(i).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(10)).await;
    let urgent = CallOptions::new().priority(Priority::High).fail_fast();
    let refused = serving.dispatch_with(5, urgent).await;
    assert!(matches!(refused, Err(Error::Overloaded { .. })));

    assert_eq!(busy.await??, 0);
    for call in queued {
        call.await??;
    }
    let stats = serving.stats();
    println!(
        "ran {} items; {} expired, {} cancelled, {} rejected",
        stats.items, stats.expired, stats.cancelled, stats.rejected
    );
    serving.shutdown().await;
    Ok(())
}
