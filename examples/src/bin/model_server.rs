//! The model server: ONNX models over the Open Inference Protocol (KServe
//! v2) on HTTP and gRPC at once (Triton's ports, 8000 and 8001, by
//! default), with batching across every client of a model whichever way it
//! came; and on the same HTTP port `POST /v1/classify` (photos, to
//! MobileNetV2's serving) and `POST /v1/embed` (texts, to all-MiniLM-L6-v2),
//! `/health` and `/metrics`. Serves MobileNet as `mobilenet` and MiniLM as
//! `minilm` from the models folder, or every model in `--model-dir`.
//!
//! ```text
//! cargo run --release -p batch-serving-examples --bin model_server
//! curl --data-binary @cat.jpg http://127.0.0.1:8000/v1/classify
//! curl -H 'content-type: application/json' -d '["A man is eating food."]' http://127.0.0.1:8000/v1/embed
//! curl http://127.0.0.1:8000/v2/models/mobilenet/config
//! perf_analyzer -m mobilenet -u 127.0.0.1:8001 -i grpc --concurrency-range 1:128:4
//! ```
//!
//! `--help` lists the flags; each has a `BS_*` environment variable too.
//! Ctrl-C stops accepting connections, finishes requests in progress within
//! the drain limit, drains every serving's queue, then exits.

use batch_serving_examples::front_door::{FrontDoor, ServerConfig, drain, serve_both};
use batch_serving_examples::serve::ctrl_c;
use clap::Parser;

/// ONNX models over the Open Inference Protocol (HTTP and gRPC), with
/// /v1/classify and /v1/embed, and batching across every client.
#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    server: ServerConfig,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let config = Cli::parse().server;
    let door = FrontDoor::start(&config)?;
    let http = tokio::net::TcpListener::bind(&config.addr).await?;
    let grpc = tokio::net::TcpListener::bind(&config.grpc_addr).await?;
    println!(
        "serving {} on http://{} and grpc://{} ({})",
        door.describe(),
        http.local_addr()?,
        grpc.local_addr()?,
        config.serving.describe()
    );
    let stopped = serve_both(
        http,
        grpc,
        &door,
        config.max_body_bytes,
        config.limits,
        ctrl_c(),
    )
    .await?;
    if !stopped.drained {
        println!("drain limit reached: closed the connections still open");
    }
    for line in drain(&door, &stopped, &config.limits).await {
        println!("{line}");
    }
    Ok(())
}
