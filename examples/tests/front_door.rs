//! The one model server, started as `model_server` starts it (from its
//! flags), driven without a socket: the protocol, `/v1/classify` and
//! `/v1/embed` on one router, one `/health`, and a photo and a tensor of
//! the same photo from the two front doors meeting in one batch of one
//! serving.

#![allow(clippy::unwrap_used)]

mod common;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use batch_serving_examples::front_door::{FrontDoor, ServerConfig};
use batch_serving_ort::mobilenet::preprocess;
use clap::Parser;
use serde_json::{Value, json};
use tower::ServiceExt;

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    server: ServerConfig,
}

async fn send(app: &axum::Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_server_answers_every_route_and_its_two_doors_share_one_serving() {
    let Some(files) = common::mobilenet_files("the model server test") else {
        return;
    };
    let models = files.model.parent().unwrap().display().to_string();
    // A 300 ms window, so that the two requests sent together meet however
    // slowly this debug build parses them.
    let config = Cli::try_parse_from([
        "model_server",
        "--models",
        &models,
        "--batch-size",
        "4",
        "--batch-timeout-ms",
        "300",
        "--policy",
        "timeout",
    ])
    .unwrap()
    .server;
    let door = FrontDoor::start(&config).unwrap();
    let app = door.router(config.max_body_bytes, config.limits.request_timeout);

    let (status, health) = send(&app, get("/health")).await;
    assert_eq!(
        (status, health["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let (status, ready) = send(&app, get("/v2/health/ready")).await;
    assert_eq!(
        (status, ready["ready"].as_bool()),
        (StatusCode::OK, Some(true))
    );
    let (status, index) = send(
        &app,
        Request::post("/v2/repository/index")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = index
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert!(names.contains(&"mobilenet"), "{index}");

    // The photo to /v1/classify and the same photo as a tensor to the
    // protocol, at once: one batch of two, and the same top class.
    let cat = std::fs::read(files.model.with_file_name("cat.jpg")).unwrap();
    let tensor: Vec<f32> = preprocess(&cat).unwrap().iter().copied().collect();
    let before = door
        .oip()
        .repository()
        .get("mobilenet")
        .unwrap()
        .serving()
        .stats();
    let classify = send(
        &app,
        Request::post("/v1/classify")
            .header("content-type", "image/jpeg")
            .body(Body::from(cat))
            .unwrap(),
    );
    let infer = send(
        &app,
        Request::post("/v2/models/mobilenet/infer")
            .header("content-type", "application/json")
            .body(Body::from(
                json!({
                    "inputs": [{ "name": "input", "shape": [1, 3, 224, 224], "datatype": "FP32", "data": tensor }],
                    "outputs": [{ "name": "output", "parameters": { "classification": 1 } }],
                })
                .to_string(),
            ))
            .unwrap(),
    );
    let ((status, classified), (infer_status, inferred)) = tokio::join!(classify, infer);
    assert_eq!(status, StatusCode::OK, "{classified}");
    assert_eq!(infer_status, StatusCode::OK, "{inferred}");
    assert_eq!(classified["predictions"][0]["class"], 285, "{classified}");
    let top = inferred["outputs"][0]["data"][0].as_str().unwrap();
    assert!(top.contains(":285:"), "the protocol's top class: {top}");
    let after = door
        .oip()
        .repository()
        .get("mobilenet")
        .unwrap()
        .serving()
        .stats();
    assert_eq!(
        (after.items - before.items, after.batches - before.batches),
        (2, 1),
        "the two doors did not share one batch: {after:?}"
    );

    // The embed route, where MiniLM's files are there too.
    if common::minilm_files("the model server's embed route").is_some() {
        let (status, embedded) = send(
            &app,
            Request::post("/v1/embed")
                .header("content-type", "application/json")
                .body(Body::from(r#"["A man is eating food."]"#))
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{embedded}");
        assert_eq!(embedded["embeddings"][0].as_array().unwrap().len(), 384);
        assert!(names.contains(&"minilm"), "{index}");
    }
    // One error shape everywhere.
    let (status, missing) = send(&app, get("/v1/nothing")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(missing["error"].is_string(), "{missing}");
    // At shutdown, /health says so.
    for (_, model) in door.oip().repository().iter() {
        model.serving().shutdown().await;
    }
    let (status, _) = send(&app, get("/health")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}
