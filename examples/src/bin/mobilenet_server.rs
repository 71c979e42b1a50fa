//! An HTTP inference server for MobileNetV2 with batching.
//!
//! ```text
//! cargo run --release -p batch-serving-examples --bin mobilenet_server -- --addr 127.0.0.1:8080
//! curl --data-binary @cat.jpg http://127.0.0.1:8080/v1/classify
//! curl -H 'content-type: application/json' -d "{\"image\":\"$(base64 -w0 cat.jpg)\"}" http://127.0.0.1:8080/v1/classify
//! curl http://127.0.0.1:8080/metrics
//! ```
//!
//! `--help` lists the flags; each has a `BS_*` environment variable too.
//! Ctrl-C stops accepting connections, lets requests in progress finish
//! within the drain limit, drains the serving's queue, then exits.

use batch_serving_examples::http::{ClassifyState, default_max_decodes, router_with};
use batch_serving_examples::serve::{HttpLimits, ctrl_c, drain_left, serve};
use batch_serving_examples::setup::ServingConfig;
use clap::Parser;

/// An HTTP inference server for MobileNetV2 with batching.
#[derive(Debug, Parser)]
struct Cli {
    /// The address to listen on.
    #[arg(long, env = "BS_ADDR", default_value = "127.0.0.1:8080")]
    addr: String,
    /// Images decoded at once [default: two per core].
    #[arg(long, env = "BS_MAX_DECODES")]
    max_decodes: Option<usize>,
    #[command(flatten)]
    serving: ServingConfig,
    #[command(flatten)]
    limits: HttpLimits,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let cli = Cli::parse();
    let (config, limits) = (&cli.serving, cli.limits);
    let classifier = config.start()?;
    let listener = tokio::net::TcpListener::bind(&cli.addr).await?;
    println!(
        "serving MobileNetV2 on http://{} ({})",
        listener.local_addr()?,
        config.describe()
    );
    let max_decodes = cli.max_decodes.unwrap_or_else(default_max_decodes);
    let state = ClassifyState::new(classifier.clone(), max_decodes);
    let app = router_with(state, limits.request_timeout);
    let stopped = serve(listener, app, limits, ctrl_c()).await?;
    if !stopped.drained {
        println!("drain limit reached: closed the connections still open");
    }
    // The serving gets what is left of the drain limit; queued calls (of
    // connections just closed) are withdrawn or fail with Closed after it.
    let finished = classifier
        .serving()
        .shutdown_timeout(drain_left(&stopped, &limits))
        .await;
    if finished.is_err() {
        println!("drain limit reached: calls still queued were failed");
    }
    let stats = classifier.serving().stats();
    println!(
        "served {} image(s) in {} batch(es)",
        stats.items, stats.batches
    );
    Ok(())
}
