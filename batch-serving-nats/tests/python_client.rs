//! A caller in another language: `tests/python/call_node.py` calls a node
//! with nats-py and msgpack alone, from the wire format the docs give. The
//! test command installs both into `.nats/python`; without them the test
//! skips loudly, unless `BATCH_SERVING_REQUIRE_NATS=1` makes that a
//! failure.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use batch_serving::{Batch, Serving};
use batch_serving_nats::Node;
use common::{NatsServer, connect};

/// The Python path holding nats-py and msgpack, when python3 can import
/// them (from `.nats/python` or where they are installed).
fn python_path() -> Option<String> {
    let local = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.nats/python");
    let path = std::env::var("PYTHONPATH").map_or(local.display().to_string(), |p| {
        format!("{}:{p}", local.display())
    });
    let found = Command::new("python3")
        .args(["-c", "import nats, msgpack"])
        .env("PYTHONPATH", &path)
        .status()
        .is_ok_and(|status| status.success());
    found.then_some(path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_client_calls_a_node_with_nats_py_and_msgpack() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let Some(python) = python_path() else {
        if std::env::var("BATCH_SERVING_REQUIRE_NATS").as_deref() == Ok("1") {
            panic!(
                "BATCH_SERVING_REQUIRE_NATS=1 but python3 cannot import nats and msgpack: run `source scripts/nats-server.sh && nats_python`"
            );
        }
        eprintln!(
            "SKIPPED: python3 cannot import nats (nats-py) and msgpack; `source scripts/nats-server.sh && nats_python` installs them"
        );
        return;
    };
    let serving = Serving::new(|b: Batch<u32>| Ok::<_, String>(b.iter().map(|x| x * x).collect()))
        .batch_size(8)
        .batch_timeout(Duration::from_millis(5))
        .start()
        .unwrap();
    let _node = Node::builder(connect(&server).await, "squares", serving.clone())
        .start()
        .await
        .unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/call_node.py");
    let url = server.url();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(script)
            .arg(url)
            .env("PYTHONPATH", python)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "python client failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("python client: ok"));
    let stats = serving.stats();
    // 1 + 3 + 32 good items ran; the 32 concurrent ones shared batches.
    assert_eq!(stats.items, 36, "{stats:?}");
    assert!(
        stats.batches < 36,
        "concurrent Python callers were batched: {stats:?}"
    );
}
