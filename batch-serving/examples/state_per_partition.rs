//! State per partition: each partition makes its own state once, on its own
//! thread, and every batch it runs gets it mutably. Use it for what is
//! costly to make and not shareable: a model session, a connection, a
//! scratch buffer.
//!
//! ```text
//! cargo run -p batch-serving --example state_per_partition
//! ```

use std::convert::Infallible;

use batch_serving::{Batch, Serving};

/// What a partition keeps between batches.
struct Scratch {
    partition: usize,
    batches_run: usize,
    buffer: Vec<u64>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let serving = Serving::with_state(
        // Runs once per partition, on that partition's thread, before
        // `start` returns; its error would fail `start`.
        |partition| {
            Ok::<_, Infallible>(Scratch {
                partition,
                batches_run: 0,
                buffer: Vec::with_capacity(64),
            })
        },
        // Runs for every batch, with the partition's own state.
        |scratch: &mut Scratch, batch: Batch<u64>| {
            scratch.batches_run += 1;
            scratch.buffer.clear();
            scratch.buffer.extend(batch.iter().map(|x| x * 10));
            let tag = (scratch.partition as u64) << 32 | scratch.batches_run as u64;
            Ok(scratch
                .buffer
                .iter()
                .map(|x| (x, tag))
                .map(|(x, _)| *x)
                .collect())
        },
    )
    .partitions(2)
    .batch_size(8)
    .start()?;

    let calls = (0..32).map(|i| serving.dispatch(i));
    let outputs = futures::future::try_join_all(calls).await?;
    assert_eq!(outputs, (0..32).map(|i| i * 10).collect::<Vec<_>>());
    let stats = serving.stats();
    println!(
        "{} items in {} batches over {} partitions",
        stats.items,
        stats.batches,
        serving.partitions()
    );
    serving.shutdown().await;
    Ok(())
}
