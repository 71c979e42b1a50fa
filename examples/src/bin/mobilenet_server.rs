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
//! `--partitions`, `--threads`, `--queue-capacity`, `--policy` (`BS_*`).
//! Ctrl-C stops accepting connections, lets in-flight requests finish, drains
//! the serving's queue, then exits.

use std::time::Duration;

use batch_serving_examples::args::Args;
use batch_serving_examples::http::router;
use batch_serving_examples::http::serve_until_ctrl_c;
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
    let app = router(classifier.clone());
    serve_until_ctrl_c(listener, app).await?;
    classifier
        .serving()
        .shutdown(Some(Duration::from_secs(30)))
        .await?;
    let stats = classifier.serving().stats();
    println!(
        "served {} image(s) in {} batch(es)",
        stats.items, stats.batches
    );
    Ok(())
}
