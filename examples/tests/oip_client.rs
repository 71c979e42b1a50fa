//! Real Open Inference Protocol clients against the server on a socket:
//! - `tests/python/oip_client.py` drives NVIDIA's tritonclient[http]
//!   (2.73), which classifies cat.jpg, checks that concurrent and batched
//!   requests give the outputs of single ones, that bad requests get 400,
//!   and reads Triton's configuration, statistics and repository index,
//!   with compressed bodies, a priority and the classification extension;
//! - `tests/python/kserve_client.py` drives the KServe SDK's REST client
//!   (0.21): health, readiness, JSON and binary inference;
//! - Triton's perf_analyzer (2.60), over HTTP and gRPC, at 1 and 128
//!   concurrent requests, with no error.
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
use batch_serving_examples::front_door::{FrontDoor, serve_both};
use batch_serving_examples::oip::{DEFAULT_MAX_BODY_BYTES, OipState, Repository};
use batch_serving_examples::serve::HttpLimits;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn perf_analyzer_loads_the_server_over_http_and_grpc_without_an_error() {
    let Some(files) = common::mobilenet_files("the perf_analyzer test") else {
        return;
    };
    let Some(perf_analyzer) = perf_analyzer_or_skip() else {
        return;
    };
    // The server's defaults (batches of 16, the eager policy), with the
    // default queue: 128 closed-loop requests must all be queued.
    let serving = ModelServingBuilder::new(&files.model)
        .serving(|core| {
            core.batch_size(16)
                .queue_capacity(512)
                .name("perf-analyzer-test")
        })
        .start()
        .unwrap();
    let servers = Servers::start(&serving).await;
    let runs = [
        ("http", servers.http.to_string()),
        ("grpc", servers.grpc.to_string()),
    ];
    let mut reported = 0;
    for (protocol, address) in runs {
        // Count windows of 64 requests, stable or not: this checks that
        // every request is answered, not how fast (a debug build).
        let args = [
            "-m",
            "mobilenet",
            "-u",
            &address,
            "-i",
            protocol,
            "--concurrency-range",
            "1:128:127",
            "--measurement-mode",
            "count_windows",
            "--measurement-request-count",
            "64",
            "--stability-percentage",
            "1000",
            "--max-trials",
            "3",
        ];
        let (command, args) = (perf_analyzer.clone(), args.map(str::to_owned));
        let (success, text) = tokio::task::spawn_blocking(move || run_within(command, &args, 240))
            .await
            .unwrap();
        assert!(success, "perf_analyzer over {protocol} failed:\n{text}");
        assert!(
            !text.to_lowercase().contains("error"),
            "over {protocol}:\n{text}"
        );
        for concurrency in ["Concurrency: 1, throughput", "Concurrency: 128, throughput"] {
            assert!(
                text.contains(concurrency),
                "over {protocol}, no `{concurrency}`:\n{text}"
            );
        }
        // perf_analyzer reads the server's statistics (the route or the
        // RPC) around each window, and prints what it read.
        let successful: Vec<u64> = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("Successful request count: "))
            .map(|n| n.trim().parse().unwrap())
            .collect();
        assert_eq!(successful.len(), 2, "over {protocol}:\n{text}");
        assert!(
            successful.iter().all(|&n| n >= 64),
            "over {protocol}:\n{text}"
        );
        reported += successful.iter().sum::<u64>();
    }
    servers.stop().await;
    let stats = serving.serving().stats();
    assert_eq!(
        stats.failed_calls + stats.expired + stats.rejected,
        0,
        "{stats:?}"
    );
    assert!(
        stats.answered >= reported,
        "{stats:?} against {reported} reported"
    );
    // At 128 concurrent requests, requests shared batches.
    assert!(stats.batches < stats.items, "{stats:?}");
}

/// Runs `command` with `args`; whether it succeeded within `seconds`, and
/// its output (standard output and error together). One still running then
/// is killed, so that a tool that hangs fails the test instead of holding
/// the test command.
fn run_within(command: PathBuf, args: &[String], seconds: u64) -> (bool, String) {
    let log = std::env::temp_dir().join(format!(
        "perf-analyzer-{}-{:?}.txt",
        std::process::id(),
        std::thread::current().id()
    ));
    let file = std::fs::File::create(&log).unwrap();
    let mut child = Command::new(command)
        .args(args)
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(seconds);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    if status.is_none() {
        text.push_str(&format!("\n(killed: still running after {seconds} s)"));
    }
    (status.is_some_and(|s| s.success()), text)
}

/// The perf_analyzer command (`PERF_ANALYZER`, or the copy the test
/// command fetches into `.tools/perf-analyzer`), or `None` after saying
/// loudly that the test skips (a failure when CI requires the clients).
fn perf_analyzer_or_skip() -> Option<PathBuf> {
    let cached =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.tools/perf-analyzer/perf_analyzer");
    let command = std::env::var_os("PERF_ANALYZER").map_or(cached, PathBuf::from);
    let runs = Command::new(&command)
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    if !runs {
        assert!(
            !common::required("BATCH_SERVING_REQUIRE_OIP_CLIENT"),
            "BATCH_SERVING_REQUIRE_OIP_CLIENT=1 but perf_analyzer does not run: `source scripts/perf-analyzer.sh && perf_analyzer_find` fetches it"
        );
        eprintln!(
            "\n*** SKIPPING the perf_analyzer test: no perf_analyzer runs here; `source scripts/perf-analyzer.sh && perf_analyzer_find` fetches it\n"
        );
    }
    runs.then_some(command)
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

/// The model server over one repository of one model, HTTP and gRPC on
/// two sockets, as `model_server` runs them.
struct Servers {
    http: std::net::SocketAddr,
    grpc: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Servers {
    async fn start(serving: &batch_serving_ort::ModelServing) -> Self {
        let repository = Repository::from_servings([("mobilenet".to_owned(), serving.clone())]);
        let door = FrontDoor::new(OipState::new(repository), None, None);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let grpc_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (http, grpc) = (
            listener.local_addr().unwrap(),
            grpc_listener.local_addr().unwrap(),
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            serve_both(
                listener,
                grpc_listener,
                &door,
                DEFAULT_MAX_BODY_BYTES,
                HttpLimits::default(),
                shutdown,
            )
            .await
            .unwrap();
        });
        Servers {
            http,
            grpc,
            stop,
            task,
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap();
    }
}
