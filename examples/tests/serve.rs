//! The HTTP plumbing on real sockets, without a model: slow or half-sent
//! requests are cut off by the configured timeouts, shutdown never waits
//! longer than its drain limit, and every error answer is JSON.
//!
//! Timeouts are small real durations (the sockets are real); the tests
//! assert what happens, never how long it took, and a generous guard turns
//! a hang into a failure.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, to_bytes};
use axum::extract::DefaultBodyLimit;
use axum::http::{Request, StatusCode};
use axum::routing::{get, post};
use batch_serving_examples::json_errors::harden;
use batch_serving_examples::serve::{HttpLimits, Stopped, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tower::ServiceExt;

/// Fails a test that hangs instead of letting it run for ever.
const GUARD: Duration = Duration::from_secs(20);

fn app(request_timeout: Duration) -> Router {
    let routes = Router::new()
        .route("/echo", post(|body: Bytes| async move { body }))
        .route("/health", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(1024));
    harden(routes, request_timeout)
}

struct Server {
    address: String,
    stop: Option<oneshot::Sender<()>>,
    stopped: tokio::task::JoinHandle<std::io::Result<Stopped>>,
}

async fn start(limits: HttpLimits) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let (stop, stopping) = oneshot::channel::<()>();
    let stopped = tokio::spawn(serve(
        listener,
        app(limits.request_timeout),
        limits,
        async {
            let _ = stopping.await;
        },
    ));
    Server {
        address,
        stop: Some(stop),
        stopped,
    }
}

/// Reads until the server closes the connection (or errors): what it sent.
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(GUARD, stream.read_to_end(&mut answer))
        .await
        .expect("the server never closed the connection");
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_head_is_disconnected() {
    let limits = HttpLimits {
        header_timeout: Duration::from_millis(200),
        ..HttpLimits::default()
    };
    let server = start(limits).await;
    let mut slow = TcpStream::connect(&server.address).await.unwrap();
    slow.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let answer = read_to_close(&mut slow).await;
    assert!(!answer.contains("200 OK"), "{answer}");
    // The server still answers others.
    let mut other = TcpStream::connect(&server.address).await.unwrap();
    other
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    assert!(read_to_close(&mut other).await.starts_with("HTTP/1.1 200"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_sent_too_slowly_gets_a_json_408() {
    let limits = HttpLimits {
        request_timeout: Duration::from_millis(300),
        ..HttpLimits::default()
    };
    let server = start(limits).await;
    let mut slow = TcpStream::connect(&server.address).await.unwrap();
    slow.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
        .await
        .unwrap();
    let answer = read_to_close(&mut slow).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer
            .to_lowercase()
            .contains("content-type: application/json"),
        "{answer}"
    );
    assert!(answer.contains(r#"{"error":"#), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_a_half_sent_request_open_ends_at_the_drain_limit() {
    // The head timeout is far longer than the guard, so only the drain
    // limit can end the wait.
    let limits = HttpLimits {
        header_timeout: Duration::from_secs(600),
        request_timeout: Duration::from_secs(600),
        drain_timeout: Duration::from_millis(300),
    };
    let mut server = start(limits).await;
    let mut half_head = TcpStream::connect(&server.address).await.unwrap();
    half_head
        .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut half_body = TcpStream::connect(&server.address).await.unwrap();
    half_body
        .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
        .await
        .unwrap();
    // Let the server read both before it is told to stop.
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.stop.take().unwrap().send(()).unwrap();
    let stopped = tokio::time::timeout(GUARD, &mut server.stopped)
        .await
        .expect("shutdown waited past its drain limit")
        .unwrap()
        .unwrap();
    assert!(
        !stopped.drained,
        "two requests were still open at the limit"
    );
    read_to_close(&mut half_head).await;
    read_to_close(&mut half_body).await;
    assert!(
        TcpStream::connect(&server.address).await.is_err(),
        "still listening"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_a_request_in_progress_and_reports_a_clean_drain() {
    let mut server = start(HttpLimits::default()).await;
    let mut client = TcpStream::connect(&server.address).await.unwrap();
    client
        .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.stop.take().unwrap().send(()).unwrap();
    client.write_all(b"cd").await.unwrap();
    let answer = read_to_close(&mut client).await;
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("abcd"),
        "{answer}"
    );
    let stopped = tokio::time::timeout(GUARD, &mut server.stopped)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(stopped.drained);
}

async fn status_and_json(
    app: Router,
    request: Request<Body>,
) -> (StatusCode, String, serde_json::Value) {
    let response = app.oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    let json = serde_json::from_slice(&body)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&body)));
    (status, content_type, json)
}

#[tokio::test]
async fn every_error_answer_is_json_with_one_shape() {
    let app = app(Duration::from_secs(30));
    let cases = [
        (
            Request::get("/nowhere").body(Body::empty()).unwrap(),
            StatusCode::NOT_FOUND,
        ),
        (
            Request::get("/echo").body(Body::empty()).unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Request::post("/echo")
                .body(Body::from(vec![0u8; 4096]))
                .unwrap(),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ];
    for (request, expected) in cases {
        let (status, content_type, json) = status_and_json(app.clone(), request).await;
        assert_eq!(status, expected);
        assert_eq!(content_type, "application/json");
        let message = json["error"].as_str().unwrap();
        assert!(!message.is_empty(), "{json}");
        assert_eq!(json.as_object().unwrap().len(), 1, "{json}");
    }
}
