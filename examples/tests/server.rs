//! The HTTP server's routes on the real model, driven without a socket.

#![allow(clippy::unwrap_used)]

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use base64::Engine;
use batch_serving_examples::http::{
    ClassifyResponse, ClassifyState, router, router_with, status_of,
};
use batch_serving_ort::{MobileNet, MobileNetFiles, OrtError, Runtime};
use tower::ServiceExt;

fn classifier() -> Option<(MobileNet, Vec<u8>)> {
    classifier_named("mobilenet")
}

/// A classifier whose metrics carry the `serving` label `name`: the tests
/// in this binary share one exporter, so each reads its own serving's.
fn classifier_named(name: &'static str) -> Option<(MobileNet, Vec<u8>)> {
    let found = Runtime::get().and_then(|_| MobileNetFiles::locate(None));
    let files = match found {
        Ok(files) => files,
        Err(e) if std::env::var_os("BATCH_SERVING_REQUIRE_ORT").is_some_and(|v| v == "1") => {
            panic!("{e}")
        }
        Err(e) => {
            eprintln!("\n*** SKIPPING server test: {e}\n");
            return None;
        }
    };
    let cat = std::fs::read(files.model.with_file_name("cat.jpg")).unwrap();
    // Servings register their metrics at start, with the exporter in place.
    batch_serving_examples::metrics::exporter();
    let classifier = MobileNet::builder(&files)
        .unwrap()
        .serving(move |core| core.name(name))
        .start()
        .unwrap();
    Some((classifier, cat))
}

async fn send(app: axum::Router, request: Request<Body>) -> (StatusCode, serde_json::Value) {
    let response = app.oneshot(request).await.unwrap();
    let status = response.status();
    let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    let json = serde_json::from_slice(&body)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&body).into_owned()));
    (status, json)
}

fn post(body: impl Into<Body>, content_type: &str) -> Request<Body> {
    Request::post("/v1/classify")
        .header("content-type", content_type)
        .body(body.into())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_and_base64_json_requests_classify_the_cat() {
    let Some((classifier, cat)) = classifier() else {
        return;
    };
    let app = router(classifier);
    let (status, json) = send(app.clone(), post(cat.clone(), "image/jpeg")).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let response: ClassifyResponse = serde_json::from_value(json).unwrap();
    assert_eq!(response.predictions.len(), 5);
    assert!((281..=285).contains(&response.predictions[0].class));
    let encoded = base64::engine::general_purpose::STANDARD.encode(&cat);
    let (status, json) = send(
        app,
        post(
            serde_json::json!({ "image": encoded }).to_string(),
            "application/json",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(
        json["predictions"][0]["class"],
        response.predictions[0].class
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_4xx_with_a_json_error_and_metrics_count_only_good_ones() {
    let Some((classifier, cat)) = classifier_named("metrics-test") else {
        return;
    };
    let app = router(classifier);
    for (body, content_type, expected) in [
        (
            b"not an image".to_vec(),
            "image/jpeg",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (Vec::new(), "image/jpeg", StatusCode::BAD_REQUEST),
        (
            b"{\"image\": \"***\"}".to_vec(),
            "application/json",
            StatusCode::BAD_REQUEST,
        ),
        (
            b"{\"picture\": 1}".to_vec(),
            "application/json",
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (status, json) = send(app.clone(), post(body, content_type)).await;
        assert_eq!(status, expected, "{json}");
        assert!(
            json["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{json}"
        );
    }
    let (status, _) = send(app.clone(), post(cat, "image/jpeg")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, health) = send(
        app.clone(),
        Request::get("/health").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(
        (status, health["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let (status, metrics) = send(app, Request::get("/metrics").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let text = metrics.as_str().unwrap();
    let read = |name| batch_serving_examples::metrics::read_metric_for(text, name, "metrics-test");
    assert_eq!(read("batch_serving_items_total"), Some(1.0), "{text}");
    assert_eq!(read("batch_serving_batches_total"), Some(1.0), "{text}");
    // The undecodable image was refused in the caller's task: no batch ran it.
    assert_eq!(
        read("batch_serving_failed_batches_total"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(read("batch_serving_batch_size_count"), Some(1.0), "{text}");
    assert_eq!(
        read("batch_serving_execution_seconds_count"),
        Some(1.0),
        "{text}"
    );
    promtool_accepts(text);
}

/// Runs `promtool check metrics` (Prometheus's own linter) on a scrape:
/// format, types, help text and naming conventions. Skips loudly where
/// promtool is missing, unless BATCH_SERVING_REQUIRE_PROMTOOL=1 (CI).
fn promtool_accepts(text: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let promtool = std::env::var_os("PROMTOOL").unwrap_or_else(|| "promtool".into());
    let child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if std::env::var_os("BATCH_SERVING_REQUIRE_PROMTOOL").is_some_and(|v| v == "1") => {
            panic!("promtool ({promtool:?}) cannot run: {e}")
        }
        Err(e) => {
            eprintln!("\n*** SKIPPING the promtool check: {promtool:?} cannot run: {e}\n");
            return;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics refused the scrape:\n{}{}\n--- scrape ---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn overload_and_shutdown_map_to_503_and_bad_input_to_422() {
    use batch_serving::Error;
    assert_eq!(
        status_of(&Error::<OrtError>::Overloaded {
            requested: 1,
            capacity: 1
        }),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        status_of(&Error::<OrtError>::Closed),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        status_of(&Error::<OrtError>::PredictedLate {
            predicted: std::time::Duration::from_millis(30),
            allowed: std::time::Duration::from_millis(18),
        }),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        status_of(&Error::Preprocess(OrtError::Image("x".into()))),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        status_of(&Error::<OrtError>::DeadlineExceeded),
        StatusCode::GATEWAY_TIMEOUT
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_media_types_match_without_regard_to_case_or_parameters() {
    let Some((classifier, cat)) = classifier() else {
        return;
    };
    let app = router(classifier);
    let encoded = base64::engine::general_purpose::STANDARD.encode(&cat);
    let body = serde_json::json!({ "image": encoded }).to_string();
    for content_type in ["Application/JSON", "application/json; charset=UTF-8"] {
        let (status, json) = send(app.clone(), post(body.clone(), content_type)).await;
        assert_eq!(status, StatusCode::OK, "{content_type}: {json}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_is_refused_before_the_image_is_decoded() {
    let Some((classifier, cat)) = classifier() else {
        return;
    };
    let app = router(classifier.clone());
    let capacity = classifier.serving().queue_capacity();
    let held = classifier.serving().try_reserve(capacity).unwrap();
    // Bytes that would fail decoding with 422 are refused with 503 first:
    // the handler never reached the decoder.
    let (status, json) = send(app.clone(), post(b"not an image".to_vec(), "image/jpeg")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{json}");
    assert!(
        json["error"].as_str().unwrap().contains("overloaded"),
        "{json}"
    );
    let (status, _) = send(app.clone(), post(cat.clone(), "image/jpeg")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    drop(held);
    let (status, json) = send(app, post(cat, "image/jpeg")).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(
        classifier.serving().stats().items,
        1,
        "only the admitted call ran"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_the_decode_bound_waits_for_a_slot() {
    let Some((classifier, cat)) = classifier() else {
        return;
    };
    let state = ClassifyState::new(classifier.clone(), 2);
    let app = router_with(state.clone(), std::time::Duration::from_secs(30));
    let busy = std::sync::Arc::clone(state.decodes())
        .try_acquire_many_owned(2)
        .unwrap();
    let waiting = tokio::spawn(send(app, post(cat, "image/jpeg")));
    support_until(|| classifier.serving().stats().queue_depth == 1).await;
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert!(!waiting.is_finished(), "decoded without a slot");
    assert_eq!(classifier.serving().stats().items, 0);
    drop(busy);
    let (status, json) = waiting.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{json}");
}

/// Yields until `condition` holds (the serving's counters move on other
/// threads).
async fn support_until(mut condition: impl FnMut() -> bool) {
    for _ in 0..1_000_000 {
        if condition() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("condition never held");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_request_is_answered_from_its_head_before_its_body_is_sent() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some((classifier, _)) = classifier() else {
        return;
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let limits = batch_serving_examples::serve::HttpLimits::default();
    let (stop, stopping) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(batch_serving_examples::serve::serve(
        listener,
        router(classifier.clone()),
        limits,
        async {
            let _ = stopping.await;
        },
    ));
    let held = classifier
        .serving()
        .try_reserve(classifier.serving().queue_capacity())
        .unwrap();
    let mut client = tokio::net::TcpStream::connect(address).await.unwrap();
    client
        .write_all(
            b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n\
              Content-Length: 1000000\r\nExpect: 100-continue\r\n\r\n",
        )
        .await
        .unwrap();
    let mut answer = vec![0u8; 512];
    let n = tokio::time::timeout(std::time::Duration::from_secs(20), client.read(&mut answer))
        .await
        .expect("no answer to the head")
        .unwrap();
    let head = String::from_utf8_lossy(&answer[..n]);
    // Not `100 Continue`: the server never asked for the body.
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert!(head.to_lowercase().contains("retry-after: 1"), "{head}");
    drop(held);
    stop.send(()).unwrap();
    assert!(server.await.unwrap().unwrap().drained);
}
