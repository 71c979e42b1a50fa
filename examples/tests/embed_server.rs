//! The embedding server's routes on the real model, driven without a socket.

#![allow(clippy::unwrap_used)]

mod common;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use batch_serving_examples::embed_http::{EmbedResponse, MAX_TEXTS, embed_router};
use batch_serving_ort::embedding::{Embedder, cosine_similarity};
use tower::ServiceExt;

fn embedder() -> Option<Embedder> {
    let files = common::minilm_files("embedding server test")?;
    Some(Embedder::builder(files).start().unwrap())
}

async fn post(app: axum::Router, body: String) -> (StatusCode, serde_json::Value) {
    let request = Request::post("/v1/embed")
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    let status = response.status();
    let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (status, serde_json::from_slice(&body).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_of_strings_gets_one_unit_vector_each_in_order() {
    let Some(embedder) = embedder() else { return };
    let app = embed_router(embedder);
    let texts = [
        "A man is eating food.",
        "A man is riding a horse.",
        "A man is eating a piece of bread.",
    ];
    let (status, json) = post(app.clone(), serde_json::to_string(&texts).unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let response: EmbedResponse = serde_json::from_value(json).unwrap();
    assert_eq!(response.dimensions, 384);
    let [food, horse, bread] = [0, 1, 2].map(|i| &response.embeddings[i]);
    assert!((cosine_similarity(food, bread) - 0.7553).abs() < 1e-3);
    assert!((cosine_similarity(food, horse) - 0.2474).abs() < 1e-3);
    // The object form gives the same vectors.
    let (status, json) = post(app, serde_json::json!({ "texts": [texts[0]] }).to_string()).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let again: EmbedResponse = serde_json::from_value(json).unwrap();
    assert!(
        again.embeddings[0]
            .iter()
            .zip(food)
            .all(|(a, b)| (a - b).abs() < 1e-5)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_get_a_4xx_with_a_json_error_and_nothing_is_queued() {
    let Some(embedder) = embedder() else { return };
    let app = embed_router(embedder.clone());
    let too_many = serde_json::to_string(&vec!["x"; MAX_TEXTS + 1]).unwrap();
    for (body, expected) in [
        ("[]".to_owned(), StatusCode::BAD_REQUEST),
        ("not json".to_owned(), StatusCode::BAD_REQUEST),
        ("[1, 2]".to_owned(), StatusCode::BAD_REQUEST),
        ("{\"text\": \"one\"}".to_owned(), StatusCode::BAD_REQUEST),
        (too_many, StatusCode::PAYLOAD_TOO_LARGE),
    ] {
        let (status, json) = post(app.clone(), body.clone()).await;
        assert_eq!(status, expected, "{body}: {json}");
        assert!(
            json["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{json}"
        );
    }
    assert_eq!(embedder.serving().stats().items, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_is_refused_before_tokenizing() {
    let Some(embedder) = embedder() else { return };
    let app = embed_router(embedder.clone());
    let capacity = embedder.serving().queue_capacity();
    let held = embedder.serving().try_reserve(capacity).unwrap();
    let (status, json) = post(app.clone(), r#"["A man is eating food."]"#.to_owned()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{json}");
    drop(held);
    let (status, json) = post(app, r#"["A man is eating food."]"#.to_owned()).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(embedder.serving().stats().items, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_very_long_text_embeds_as_its_start_does() {
    let Some(embedder) = embedder() else { return };
    let app = embed_router(embedder);
    // 15 KB: only its first 128 tokens are kept, and it is cut before
    // tokenizing to what can reach them.
    let start = "A man is eating food in the park with his dog. ";
    let long = start.repeat(320);
    let (status, json) = post(app.clone(), serde_json::to_string(&[&long]).unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let long_vector: EmbedResponse = serde_json::from_value(json).unwrap();
    let (_, json) = post(app, serde_json::to_string(&[start.repeat(20)]).unwrap()).await;
    let start_vector: EmbedResponse = serde_json::from_value(json).unwrap();
    let similarity = cosine_similarity(&long_vector.embeddings[0], &start_vector.embeddings[0]);
    assert!(similarity > 0.9999, "{similarity}");
}
