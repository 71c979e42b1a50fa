//! Quick start: 1 000 concurrent callers share a squaring batch function;
//! prints how the calls were batched.
//!
//! Run with `cargo run -p batch-serving-examples --bin quickstart`.

use std::convert::Infallible;
use std::time::Duration;

use batch_serving::{Batch, Serving};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let serving = Serving::new(|batch: Batch<u64>| {
        Ok::<_, Infallible>(batch.iter().map(|x| x * x).collect())
    })
    .batch_size(64)
    .batch_timeout(Duration::from_millis(2))
    .partitions(2)
    .start()?;
    let callers: Vec<_> = (0..1_000u64)
        .map(|i| {
            let serving = serving.clone();
            tokio::spawn(async move { (i, serving.dispatch(i).await) })
        })
        .collect();
    for caller in callers {
        let Ok((i, answer)) = caller.await else {
            continue;
        };
        assert_eq!(answer?, i * i, "every caller gets its own answer");
    }
    let stats = serving.stats();
    println!(
        "{} calls ran in {} batches (mean batch {:.1}, utilisation {:.0}%); queue wait p50 {:?}, p99 {:?}",
        stats.items,
        stats.batches,
        stats.mean_batch_size,
        stats.utilisation * 100.0,
        stats.queue_wait.p50,
        stats.queue_wait.p99
    );
    serving.shutdown().await;
    Ok(())
}
