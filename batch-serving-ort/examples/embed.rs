//! Embeds a few sentences with all-MiniLM-L6-v2, batched by length, and
//! prints how alike each pair is.
//!
//! ```text
//! cargo run --release -p batch-serving-ort --example embed -- "A man is eating food." "A man eats." "A plane lands."
//! ```
//!
//! The model is found in `$BATCH_SERVING_MODELS/minilm` (or a
//! `shared/models/minilm` folder beside the working directory).

use batch_serving_ort::MiniLmFiles;
use batch_serving_ort::embedding::{Embedder, cosine_similarity};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut texts: Vec<String> = std::env::args().skip(1).collect();
    if texts.is_empty() {
        texts = [
            "A man is eating food.",
            "A man is eating a meal.",
            "A plane is landing.",
        ]
        .map(String::from)
        .to_vec();
    }
    let embedder = Embedder::builder(MiniLmFiles::locate(None)?)
        .serving(|core| core.batch_size(16))
        .start()?;
    // One call for all the texts: they are queued together and batched by
    // length with any other caller's.
    let vectors = embedder.embed_many(&texts).await?;
    for (i, a) in vectors.iter().enumerate() {
        for (j, b) in vectors.iter().enumerate().skip(i + 1) {
            println!(
                "{:.3}  {:?} ~ {:?}",
                cosine_similarity(a, b),
                texts[i],
                texts[j]
            );
        }
    }
    embedder.serving().shutdown().await;
    Ok(())
}
