//! The embedding server's routes: `POST /v1/embed`, `GET /health` and
//! `GET /metrics`.

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use batch_serving_ort::embedding::Embedder;
use serde::{Deserialize, Serialize};

use crate::http::{error, health_response, metrics_response, status_of};

/// The most texts one request may carry; larger jobs belong in several
/// requests (or in `embed_index`), so one client cannot fill the queue.
pub const MAX_TEXTS: usize = 256;

/// The largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// A request body: a JSON list of strings, or `{"texts": [...]}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum EmbedRequest {
    /// `["first text", "second text"]`
    List(Vec<String>),
    /// `{"texts": ["first text", "second text"]}`
    Object {
        /// The texts to embed.
        texts: Vec<String>,
    },
}

impl EmbedRequest {
    fn into_texts(self) -> Vec<String> {
        match self {
            Self::List(texts) | Self::Object { texts } => texts,
        }
    }
}

/// A successful response: one unit vector per text, in request order.
#[derive(Debug, Serialize, Deserialize)]
pub struct EmbedResponse {
    /// The embeddings.
    pub embeddings: Vec<Vec<f32>>,
    /// The vector length (384 for all-MiniLM-L6-v2).
    pub dimensions: usize,
    /// Milliseconds spent in the server on this request.
    pub total_ms: f64,
}

/// Builds the router over a started embedder.
pub fn embed_router(embedder: Embedder) -> Router {
    Router::new()
        .route("/v1/embed", post(embed))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(embedder)
}

async fn embed(State(embedder): State<Embedder>, body: Bytes) -> Response {
    let started = Instant::now();
    let texts = match parse_embed_body(&body) {
        Ok(texts) => texts,
        Err((status, message)) => return error(status, message),
    };
    // try_embed_many sheds load with 503 once the queue is full.
    match embedder.try_embed_many(&texts).await {
        Ok(embeddings) => Json(EmbedResponse {
            dimensions: embeddings.first().map_or(0, Vec::len),
            embeddings,
            total_ms: started.elapsed().as_secs_f64() * 1e3,
        })
        .into_response(),
        Err(e) => error(status_of(&e), e.to_string()),
    }
}

/// The texts of a request body, or the status and message to answer with.
/// Public so that it can be fuzzed.
///
/// # Errors
///
/// 400 for a body that is not a JSON list of strings or `{"texts": [...]}`,
/// or an empty list; 413 for more than [`MAX_TEXTS`] texts.
pub fn parse_embed_body(body: &[u8]) -> Result<Vec<String>, (StatusCode, String)> {
    let texts = serde_json::from_slice::<EmbedRequest>(body)
        .map_err(|e| {
            (
                StatusCode::BAD_REQUEST,
                format!("expected a JSON list of strings or {{\"texts\": [...]}}: {e}"),
            )
        })?
        .into_texts();
    if texts.is_empty() {
        return Err((
            StatusCode::BAD_REQUEST,
            "the list of texts is empty".to_owned(),
        ));
    }
    if texts.len() > MAX_TEXTS {
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{} texts in one request; the limit is {MAX_TEXTS}",
                texts.len()
            ),
        ));
    }
    Ok(texts)
}

async fn health(State(embedder): State<Embedder>) -> Response {
    health_response(embedder.serving().is_closed())
}

async fn metrics(State(embedder): State<Embedder>) -> Response {
    metrics_response(&embedder.serving().stats())
}
