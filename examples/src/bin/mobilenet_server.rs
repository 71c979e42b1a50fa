//! An HTTP inference server for MobileNetV2 with batching.
//!
//! ```text
//! cargo run --release -p batch-serving-examples --bin mobilenet_server -- --addr 127.0.0.1:8080
//! curl --data-binary @cat.jpg http://127.0.0.1:8080/v1/classify
//! curl -H 'content-type: application/json' -d "{\"image\":\"$(base64 -w0 cat.jpg)\"}" http://127.0.0.1:8080/v1/classify
//! curl http://127.0.0.1:8080/metrics
//! ```
//!
//! Flags (or environment): `--addr` (`BS_ADDR`), `--models`
//! (`BATCH_SERVING_MODELS`), `--batch-size`, `--batch-timeout-ms`,
//! `--partitions`, `--threads`, `--queue-capacity` (default four batches),
//! `--policy`, `--max-decodes` (images decoded at once; default two per
//! core), `--header-timeout-ms`, `--request-timeout-ms`, `--drain-timeout-ms`
//! (`BS_*`). Ctrl-C stops accepting connections, lets requests in progress
//! finish within the drain limit, drains the serving's queue, then exits.

use batch_serving_examples::args::Args;
use batch_serving_examples::http::{ClassifyState, default_max_decodes, router_with};
use batch_serving_examples::serve::{HttpLimits, ctrl_c, drain_left, serve};
use batch_serving_examples::setup::ServingConfig;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::from_env();
    let address: String = args.value("addr", "BS_ADDR", "127.0.0.1:8080".to_owned());
    let config = ServingConfig::from_args(&args);
    let classifier = config.start()?;
    let listener = tokio::net::TcpListener::bind(&address).await?;
    println!(
        "serving MobileNetV2 on http://{} ({})",
        listener.local_addr()?,
        config.describe()
    );
    let limits = HttpLimits::from_args(&args);
    let max_decodes = args.value("max-decodes", "BS_MAX_DECODES", default_max_decodes());
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
        .shutdown(Some(drain_left(&stopped, &limits)))
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
