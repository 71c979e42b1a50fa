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
//! `--help` lists the flags; each has a `BS_*` environment variable too.
//! Ctrl-C stops accepting connections, lets requests in progress finish
//! within the drain limit, drains the queue, then exits.

use batch_serving_examples::embed_http::{EmbedState, embed_router_with};
use batch_serving_examples::embed_setup::EmbedConfig;
use batch_serving_examples::http::default_max_decodes;
use batch_serving_examples::serve::{HttpLimits, ctrl_c, drain_left, serve};
use clap::Parser;

/// An HTTP sentence-embedding server (all-MiniLM-L6-v2) with length-bucketed
/// batching.
#[derive(Debug, Parser)]
struct Cli {
    /// The address to listen on.
    #[arg(long, env = "BS_ADDR", default_value = "127.0.0.1:8081")]
    addr: String,
    /// Requests tokenized at once [default: two per core].
    #[arg(long, env = "BS_MAX_TOKENIZING")]
    max_tokenizing: Option<usize>,
    #[command(flatten)]
    embed: EmbedConfig,
    #[command(flatten)]
    limits: HttpLimits,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let cli = Cli::parse();
    let (config, limits) = (&cli.embed, cli.limits);
    let embedder = config.start()?;
    let listener = tokio::net::TcpListener::bind(&cli.addr).await?;
    println!(
        "serving all-MiniLM-L6-v2 embeddings on http://{} ({})",
        listener.local_addr()?,
        config.describe()
    );
    let max_tokenizing = cli.max_tokenizing.unwrap_or_else(default_max_decodes);
    let app = embed_router_with(
        EmbedState::new(embedder.clone(), max_tokenizing),
        limits.request_timeout,
    );
    let stopped = serve(listener, app, limits, ctrl_c()).await?;
    if !stopped.drained {
        println!("drain limit reached: closed the connections still open");
    }
    let finished = embedder
        .serving()
        .shutdown_timeout(drain_left(&stopped, &limits))
        .await;
    if finished.is_err() {
        println!("drain limit reached: calls still queued were failed");
    }
    let stats = embedder.serving().stats();
    println!(
        "embedded {} sentence(s) in {} batch(es)",
        stats.items, stats.batches
    );
    Ok(())
}
