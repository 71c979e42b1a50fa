//! An Open Inference Protocol (KServe v2) server for ONNX models, with
//! batching across clients, over HTTP and gRPC at once (Triton's ports,
//! 8000 and 8001, by default): MobileNetV2 as `mobilenet` and
//! all-MiniLM-L6-v2 as `minilm` from the models folder, or every model in
//! `--model-dir`. Requests over both protocols batch together.
//!
//! ```text
//! cargo run --release -p batch-serving-examples --bin oip_server
//! curl http://127.0.0.1:8000/v2/models/mobilenet
//! python3 -c 'import tritonclient.http as t; print(t.InferenceServerClient("127.0.0.1:8000").is_server_ready())'
//! python3 -c 'import tritonclient.grpc as t; print(t.InferenceServerClient("127.0.0.1:8001").is_server_ready())'
//! ```
//!
//! `--help` lists the flags; each has a `BS_*` environment variable too.
//! Ctrl-C stops accepting connections, finishes requests in progress within
//! the drain limit, drains every model's queue, then exits.

use std::path::PathBuf;

use batch_serving_examples::oip::grpc::grpc_service;
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
    /// The address the gRPC service listens on (`inference.GRPCInferenceService`).
    #[arg(long, env = "BS_GRPC_ADDR", default_value = "127.0.0.1:8001")]
    grpc_addr: String,
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
    let grpc_listener = tokio::net::TcpListener::bind(&cli.grpc_addr).await?;
    let names: Vec<&str> = repository.iter().map(|(name, _)| name).collect();
    println!(
        "serving {} over the Open Inference Protocol on http://{} and grpc://{} ({})",
        names.join(", "),
        listener.local_addr()?,
        grpc_listener.local_addr()?,
        cli.serving.describe()
    );
    let state = OipState::new(repository);
    let app = oip_router_with(
        state.clone(),
        cli.max_body_bytes,
        cli.limits.request_timeout,
    );
    // The gRPC service stops when the HTTP server does (at Ctrl-C), and
    // finishes the calls in progress as it goes.
    let (stop_grpc, grpc_stopped) = tokio::sync::oneshot::channel::<()>();
    let grpc = tokio::spawn(
        tonic::transport::Server::builder()
            .layer(batch_serving_examples::oip::grpc::deadline_layer())
            .add_service(grpc_service(state.clone(), cli.max_body_bytes))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(grpc_listener),
                async {
                    let _ = grpc_stopped.await;
                },
            ),
    );
    let stopped = serve(listener, app, cli.limits, ctrl_c()).await?;
    let _ = stop_grpc.send(());
    let _ = tokio::time::timeout(drain_left(&stopped, &cli.limits), grpc).await;
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
