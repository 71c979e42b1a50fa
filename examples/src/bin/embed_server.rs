//! An HTTP sentence-embedding server (all-MiniLM-L6-v2) with length-bucketed
//! batching.
//!
//! ```text
//! cargo run --release -p batch-serving-examples --bin embed_server -- --addr 127.0.0.1:8081
//! curl -H 'content-type: application/json' -d '["A man is eating food.", "A man is riding a horse."]' \
//!     http://127.0.0.1:8081/v1/embed
//! curl http://127.0.0.1:8081/metrics
//! ```
//!
//! Flags (or environment): `--addr` (`BS_ADDR`), `--models`
//! (`BATCH_SERVING_MODELS`), `--batch-size`, `--batch-timeout-ms`,
//! `--partitions`, `--threads`, `--queue-capacity`, `--max-tokens`, `--buckets`, `--policy`
//! (`BS_*`). Ctrl-C stops accepting connections, lets in-flight requests
//! finish, drains the queue, then exits.

use std::time::Duration;

use batch_serving_examples::args::Args;
use batch_serving_examples::embed_http::embed_router;
use batch_serving_examples::embed_setup::EmbedConfig;
use batch_serving_examples::http::serve_until_ctrl_c;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::from_env();
    let address: String = args.value("addr", "BS_ADDR", "127.0.0.1:8081".to_owned());
    let config = EmbedConfig::from_args(&args);
    let embedder = config.start()?;
    let listener = tokio::net::TcpListener::bind(&address).await?;
    println!(
        "serving all-MiniLM-L6-v2 embeddings on http://{} ({})",
        listener.local_addr()?,
        config.describe()
    );
    serve_until_ctrl_c(listener, embed_router(embedder.clone())).await?;
    embedder
        .serving()
        .shutdown(Some(Duration::from_secs(30)))
        .await?;
    let stats = embedder.serving().stats();
    println!(
        "embedded {} sentence(s) in {} batch(es)",
        stats.items, stats.batches
    );
    Ok(())
}
