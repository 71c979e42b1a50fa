//! Batch keys: only items with the same key share a batch. Use them when a
//! batch must be uniform: tensors of one shape, texts of one length bucket,
//! rows for one table.
//!
//! ```text
//! cargo run -p batch-serving --example keys
//! ```

use std::convert::Infallible;

use batch_serving::{Batch, BatchKey, Serving};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Each batch checks that all its words have one length: keys make sure.
    let serving = Serving::new(|batch: Batch<String>| {
        let len = batch[0].len();
        assert!(batch.iter().all(|word| word.len() == len));
        println!("batch of {} words of length {len}", batch.len());
        Ok::<_, Infallible>(batch.iter().map(|word| word.to_uppercase()).collect())
    })
    .key_by(|word: &String| BatchKey::from(word.len()))
    .start()?;

    let words = ["ant", "bee", "wasp", "moth", "cricket", "cat"].map(String::from);
    let loud = serving.dispatch_many(words.to_vec()).await?;
    // Outputs come back in the call's own order, whatever batches ran them.
    assert_eq!(loud, ["ANT", "BEE", "WASP", "MOTH", "CRICKET", "CAT"]);
    serving.shutdown().await;
    Ok(())
}
