//! A real Open Inference Protocol client against the server on a socket:
//! `tests/python/oip_client.py` drives NVIDIA's tritonclient[http] (2.73),
//! which classifies cat.jpg, checks that concurrent and batched requests
//! give the outputs of single ones, and that bad requests get 400. The test
//! command installs the client into `.tools/python`; without it the test
//! skips loudly, unless `BATCH_SERVING_REQUIRE_OIP_CLIENT=1` (CI) makes
//! that a failure.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use batch_serving::Policy;
use batch_serving_examples::oip::{Repository, oip_router};
use batch_serving_examples::serve::{HttpLimits, serve};
use batch_serving_ort::ModelServingBuilder;

/// The Python path holding tritonclient, pillow and numpy, when python3
/// can import them (from `.tools/python` or where they are installed).
fn python_path() -> Option<String> {
    let local = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.tools/python");
    let path = std::env::var("PYTHONPATH").map_or(local.display().to_string(), |p| {
        format!("{}:{p}", local.display())
    });
    let found = Command::new("python3")
        .args(["-c", "import tritonclient.http, PIL, numpy"])
        .env("PYTHONPATH", &path)
        .status()
        .is_ok_and(|status| status.success());
    found.then_some(path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tritonclient_classifies_the_cat_and_batched_requests_match_single_ones() {
    let Some(files) = common::mobilenet_files("the tritonclient test") else {
        return;
    };
    let Some(python) = python_path() else {
        assert!(
            !common::required("BATCH_SERVING_REQUIRE_OIP_CLIENT"),
            "BATCH_SERVING_REQUIRE_OIP_CLIENT=1 but python3 cannot import tritonclient.http, PIL and numpy: run `source scripts/oip-client.sh && oip_python`"
        );
        eprintln!(
            "\n*** SKIPPING the tritonclient test: python3 cannot import tritonclient.http, PIL and numpy; `source scripts/oip-client.sh && oip_python` installs them\n"
        );
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
    let app = oip_router(Repository::from_servings([(
        "mobilenet".to_owned(),
        serving.clone(),
    )]));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, app, HttpLimits::default(), async {
        let _ = stopped.await;
    }));
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/oip_client.py");
    let cat = files.model.with_file_name("cat.jpg");
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(script)
            .arg(address.to_string())
            .arg(cat)
            .env("PYTHONPATH", python)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "tritonclient failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("oip client: ok"), "{stdout}");
    // 11 single requests (one batch each at most), one batch of four, and
    // 16 concurrent requests: at most 11 + 1 + 16 / 2 batches means the
    // concurrent ones shared batches, two or more to a batch on average.
    let stats = serving.serving().stats();
    assert_eq!(stats.items, 11 + 4 + 16, "{stats:?}");
    assert!(
        stats.batches <= 11 + 1 + 8,
        "concurrent requests did not batch: {stats:?}"
    );
}
