//! An Open Inference Protocol (KServe v2) server for ONNX models, with
//! batching across clients: MobileNetV2 as `mobilenet` and
//! all-MiniLM-L6-v2 as `minilm` from the models folder, or every model in
//! `--model-dir`.
//!
//! ```text
//! cargo run --release -p batch-serving-examples --bin oip_server -- --addr 127.0.0.1:8000
//! curl http://127.0.0.1:8000/v2/models/mobilenet
//! python3 -c 'import tritonclient.http as t; print(t.InferenceServerClient("127.0.0.1:8000").is_server_ready())'
//! ```
//!
//! `--help` lists the flags; each has a `BS_*` environment variable too.
//! Ctrl-C stops accepting connections, finishes requests in progress within
//! the drain limit, drains every model's queue, then exits.

use std::path::PathBuf;

use batch_serving_examples::oip::repository::{models_in, sample_models};
use batch_serving_examples::oip::{DEFAULT_MAX_BODY_BYTES, OipState, Repository, oip_router_with};
use batch_serving_examples::serve::{HttpLimits, ctrl_c, drain_left, serve};
use batch_serving_examples::setup::ServingConfig;
use clap::Parser;

/// An Open Inference Protocol (KServe v2) server for ONNX models, with batching.
#[derive(Debug, Parser)]
struct Cli {
    /// The address to listen on.
    #[arg(long, env = "BS_ADDR", default_value = "127.0.0.1:8000")]
    addr: String,
    /// Serve every ONNX model in this folder (`NAME.onnx`, or `NAME/` with
    /// one .onnx file) instead of MobileNet and MiniLM from the models folder.
    #[arg(long, env = "BS_MODEL_DIR")]
    model_dir: Option<PathBuf>,
    /// The largest request body accepted, in bytes (larger ones get 413).
    #[arg(long, env = "BS_MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    max_body_bytes: usize,
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
    let files = match &cli.model_dir {
        Some(dir) => models_in(dir)?,
        None => sample_models(cli.serving.models.as_deref())?,
    };
    let repository = Repository::start(files, &cli.serving)?;
    let listener = tokio::net::TcpListener::bind(&cli.addr).await?;
    let names: Vec<&str> = repository.iter().map(|(name, _)| name).collect();
    println!(
        "serving {} over the Open Inference Protocol on http://{} ({})",
        names.join(", "),
        listener.local_addr()?,
        cli.serving.describe()
    );
    let state = OipState::new(repository);
    let app = oip_router_with(
        state.clone(),
        cli.max_body_bytes,
        cli.limits.request_timeout,
    );
    let stopped = serve(listener, app, cli.limits, ctrl_c()).await?;
    if !stopped.drained {
        println!("drain limit reached: closed the connections still open");
    }
    for (name, model) in state.repository().iter() {
        let finished = model
            .serving()
            .shutdown_timeout(drain_left(&stopped, &cli.limits))
            .await;
        let stats = model.serving().stats();
        println!(
            "{name}: {} item(s) in {} batch(es){}",
            stats.items,
            stats.batches,
            if finished.is_err() {
                "; calls still queued were failed"
            } else {
                ""
            }
        );
    }
    Ok(())
}
