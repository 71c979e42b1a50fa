//! Shutdown: stop intake, run what is queued, wait for running batches.
//! With a limit, calls still queued at the limit fail with `Closed`, and
//! the batches already running still finish and answer their callers.
//!
//! ```text
//! cargo run -p batch-serving --example shutdown
//! ```

use std::convert::Infallible;
use std::time::Duration;

use batch_serving::{Batch, Error, Policy, Serving};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let serving = Serving::new_async(|batch: Batch<u32>| async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok::<_, Infallible>(batch.to_vec())
    })
    .batch_size(1)
    .policy(Policy::Eager)
    .start()?;

    let calls: Vec<_> = (0..5)
        .map(|i| {
            let serving = serving.clone();
            tokio::spawn(async move { serving.dispatch(i).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(10)).await;

    // One batch is running and four are queued: 150 ms lets one more start.
    let stopped = serving.shutdown_timeout(Duration::from_millis(150)).await;
    println!("shutdown: {stopped:?}");
    let mut answered = 0;
    for call in calls {
        match call.await? {
            Ok(_) => answered += 1,
            Err(Error::Closed) => {}
            Err(other) => return Err(other.into()),
        }
    }
    println!("{answered} calls answered, the rest closed");
    assert!(matches!(serving.dispatch(9).await, Err(Error::Closed)));
    Ok(())
}
