//! Real Open Inference Protocol clients against the server on a socket:
//! - `tests/python/oip_client.py` drives NVIDIA's tritonclient[http]
//!   (2.73), which classifies cat.jpg, checks that concurrent and batched
//!   requests give the outputs of single ones, that bad requests get 400,
//!   and reads Triton's configuration, statistics and repository index,
//!   with compressed bodies, a priority and the classification extension;
//! - `tests/python/kserve_client.py` drives the KServe SDK's REST client
//!   (0.21): health, readiness, JSON and binary inference.
//!
//! Each runs in its own process: the two packages register the same
//! protobuf names and cannot be imported together. The test command
//! installs them into `.tools/python`; without them the tests skip loudly,
//! unless `BATCH_SERVING_REQUIRE_OIP_CLIENT=1` (CI) makes that a failure.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use batch_serving::Policy;
use batch_serving_examples::oip::OipState;
use batch_serving_examples::oip::Repository;
use batch_serving_examples::oip::grpc::grpc_service;
use batch_serving_examples::serve::{HttpLimits, serve};
use batch_serving_ort::ModelServingBuilder;

/// The Python path under which python3 can run `imports` (from
/// `.tools/python` or where they are installed), if it can.
fn python_path(imports: &str) -> Option<String> {
    let local = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.tools/python");
    let path = std::env::var("PYTHONPATH").map_or(local.display().to_string(), |p| {
        format!("{}:{p}", local.display())
    });
    let found = Command::new("python3")
        .args(["-c", &format!("import {imports}")])
        .env("PYTHONPATH", &path)
        .status()
        .is_ok_and(|status| status.success());
    found.then_some(path)
}

/// The Python path for `imports`, or `None` after saying loudly that the
/// test skips (a failure when CI requires the clients).
fn python_or_skip(imports: &str, test: &str) -> Option<String> {
    let path = python_path(imports);
    if path.is_none() {
        assert!(
            !common::required("BATCH_SERVING_REQUIRE_OIP_CLIENT"),
            "BATCH_SERVING_REQUIRE_OIP_CLIENT=1 but python3 cannot import {imports}: run `source scripts/oip-client.sh && oip_python`"
        );
        eprintln!(
            "\n*** SKIPPING {test}: python3 cannot import {imports}; `source scripts/oip-client.sh && oip_python` installs them\n"
        );
    }
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tritonclient_classifies_the_cat_and_batched_requests_match_single_ones() {
    let Some(files) = common::mobilenet_files("the tritonclient test") else {
        return;
    };
    let Some(python) = python_or_skip("tritonclient.http, PIL, numpy", "the tritonclient test")
    else {
        return;
    };
    // A 100 ms window, so that the client's concurrent requests meet in
    // batches however slowly this debug build parses them.
    let serving = ModelServingBuilder::new(&files.model)
        .serving(|core| {
            core.batch_size(8)
                .batch_timeout(Duration::from_millis(100))
                .policy(Policy::Timeout)
                .name("oip-client-test")
        })
        .start()
        .unwrap();
    let servers = Servers::start(&serving).await;
    let (address, grpc_address) = (servers.http, servers.grpc);
    let cat = files.model.with_file_name("cat.jpg").display().to_string();
    let args = [address.to_string(), cat, grpc_address.to_string()];
    let stdout = run_client("oip_client.py", &args, python).await;
    servers.stop().await;
    assert!(stdout.contains("oip client: ok"), "{stdout}");
    assert!(stdout.contains("grpc client: ok"), "{stdout}");
    // Over HTTP: 14 single requests (one batch each at most), one batch of
    // four, and 16 concurrent requests; over gRPC: 2 single requests, a
    // batch of four and 8 concurrent ones. At most 16 + 2 + 24 / 2 batches
    // means the concurrent ones shared batches, two or more to a batch.
    let stats = serving.serving().stats();
    assert_eq!(stats.items, 14 + 4 + 16 + 2 + 4 + 8, "{stats:?}");
    assert_eq!(stats.answered, 14 + 1 + 16 + 2 + 1 + 8, "{stats:?}");
    assert!(
        stats.batches <= 16 + 2 + 12,
        "concurrent requests did not batch: {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kserve_sdk_checks_health_and_infers_with_json_and_binary_tensors() {
    let Some(files) = common::mobilenet_files("the KServe SDK test") else {
        return;
    };
    let Some(python) = python_or_skip("kserve, numpy", "the KServe SDK test") else {
        return;
    };
    let serving = ModelServingBuilder::new(&files.model)
        .serving(|core| core.batch_size(8).name("kserve-client-test"))
        .start()
        .unwrap();
    let servers = Servers::start(&serving).await;
    let (address, grpc_address) = (servers.http, servers.grpc);
    let args = [address.to_string(), grpc_address.to_string()];
    let stdout = run_client("kserve_client.py", &args, python).await;
    servers.stop().await;
    assert!(stdout.contains("kserve client: ok"), "{stdout}");
    // Two inferences over REST and two over gRPC, of one image each.
    let stats = serving.serving().stats();
    assert_eq!((stats.items, stats.answered), (4, 4), "{stats:?}");
}

/// Runs `tests/python/{script}` with `args` under the Python path
/// `python`, off the runtime; its standard output, once it succeeded.
async fn run_client(script: &str, args: &[String], python: String) -> String {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(script);
    let args = args.to_vec();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(&script)
            .args(args)
            .env("PYTHONPATH", python)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the client failed:\n{stdout}\n{stderr}"
    );
    stdout
}

/// The HTTP routes and the gRPC service over one repository of one model,
/// on two sockets, as `oip_server` runs them.
struct Servers {
    http: std::net::SocketAddr,
    grpc: std::net::SocketAddr,
    stop: Vec<tokio::sync::oneshot::Sender<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Servers {
    async fn start(serving: &batch_serving_ort::ModelServing) -> Self {
        let state = OipState::new(Repository::from_servings([(
            "mobilenet".to_owned(),
            serving.clone(),
        )]));
        let app = batch_serving_examples::oip::oip_router_with(
            state.clone(),
            batch_serving_examples::oip::DEFAULT_MAX_BODY_BYTES,
            HttpLimits::default().request_timeout,
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let grpc_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (http, grpc) = (
            listener.local_addr().unwrap(),
            grpc_listener.local_addr().unwrap(),
        );
        let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
        let (stop_grpc, grpc_stopped) = tokio::sync::oneshot::channel::<()>();
        let tasks = vec![
            tokio::spawn(async move {
                serve(listener, app, HttpLimits::default(), async {
                    let _ = http_stopped.await;
                })
                .await
                .unwrap();
            }),
            tokio::spawn(async move {
                tonic::transport::Server::builder()
                    .layer(batch_serving_examples::oip::grpc::deadline_layer())
                    .add_service(grpc_service(state, 64 << 20))
                    .serve_with_incoming_shutdown(
                        tokio_stream::wrappers::TcpListenerStream::new(grpc_listener),
                        async {
                            let _ = grpc_stopped.await;
                        },
                    )
                    .await
                    .unwrap();
            }),
        ];
        Servers {
            http,
            grpc,
            stop: vec![stop_http, stop_grpc],
            tasks,
        }
    }

    async fn stop(self) {
        for stop in self.stop {
            let _ = stop.send(());
        }
        for task in self.tasks {
            task.await.unwrap();
        }
    }
}
