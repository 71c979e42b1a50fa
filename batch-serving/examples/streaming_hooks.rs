//! Streaming with hooks: a many-item call yields each executed piece's
//! outputs as soon as its batch finishes, and the batch function can send
//! progress events to exactly the callers whose items it is running.
//!
//! ```text
//! cargo run -p batch-serving --example streaming_hooks
//! ```

use std::convert::Infallible;

use batch_serving::{Batch, Event, Serving};
use futures::StreamExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let serving = Serving::new(|batch: Batch<u32>| {
        // Reaches every caller with items in this batch, before its outputs.
        batch.emit("batch_started", batch.len());
        Ok::<_, Infallible>(batch.iter().map(|x| x * 2).collect())
    })
    .batch_size(4)
    .start()?;

    let mut done = [None; 10];
    let mut events = serving.dispatch_stream((0..10).collect());
    while let Some(event) = events.next().await {
        match event? {
            Event::Output { offset, outputs } => {
                println!("items {offset}..{} done", offset + outputs.len());
                for (i, output) in outputs.into_iter().enumerate() {
                    done[offset + i] = Some(output);
                }
            }
            Event::Hook(hook) => {
                println!("{}: {:?}", hook.name, hook.payload::<usize>());
            }
        }
    }
    assert!(done.iter().all(Option::is_some));
    serving.shutdown().await;
    Ok(())
}
