//! The embedding server's routes: `POST /v1/embed`, `GET /health` and
//! `GET /metrics`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use batch_serving_ort::embedding::Embedder;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::http::{default_max_decodes, health_response, metrics_response, refused, status_of};
use crate::json_errors::{error, harden};
use crate::serve::HttpLimits;

/// The most texts one request may carry; larger jobs belong in several
/// requests (or in `embed_index`), so one client cannot fill the queue.
/// The server's queue holds four such requests by default.
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

/// What the embed route shares: the embedder, and the tokenizing slots
/// that bound the requests tokenized at once.
#[derive(Debug, Clone)]
pub struct EmbedState {
    embedder: Embedder,
    tokenizing: Arc<Semaphore>,
}

impl EmbedState {
    /// The embedder with `max_tokenizing` requests tokenized at once.
    pub fn new(embedder: Embedder, max_tokenizing: usize) -> Self {
        Self {
            embedder,
            tokenizing: Arc::new(Semaphore::new(max_tokenizing)),
        }
    }

    /// The embedder.
    pub fn embedder(&self) -> &Embedder {
        &self.embedder
    }

    /// The tokenizing slots (tests hold them to see the bound act).
    pub fn tokenizing(&self) -> &Arc<Semaphore> {
        &self.tokenizing
    }
}

/// Builds the router over a started embedder, with the default limits.
pub fn embed_router(embedder: Embedder) -> Router {
    embed_router_with(
        EmbedState::new(embedder, default_max_decodes()),
        HttpLimits::default().request_timeout,
    )
}

/// Builds the router over `state`, answering 408 to requests that take
/// longer than `request_timeout` and JSON errors everywhere.
pub fn embed_router_with(state: EmbedState, request_timeout: Duration) -> Router {
    let own = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(state.clone());
    harden(embed_routes(state).merge(own), request_timeout)
}

/// `POST /v1/embed` alone, with its body limit and without the request
/// timeout or error shape, for a server that serves it beside other routes
/// (the model server) and hardens them all at once.
pub fn embed_routes(state: EmbedState) -> Router {
    Router::new()
        .route("/v1/embed", post(embed))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

async fn embed(State(state): State<EmbedState>, body: Bytes) -> Response {
    let started = Instant::now();
    let texts = match parse_embed_body(&body) {
        Ok(texts) => texts,
        Err((status, message)) => return error(status, message),
    };
    // Admission before tokenizing: a request the queue has no room for is
    // refused at once, having cost only its JSON parse.
    let room = match state.embedder.serving().try_reserve(texts.len()) {
        Ok(room) => room,
        Err(e) => return refused(status_of(&e), e.to_string()),
    };
    // Tokenizing runs on the blocking pool, holding a slot (waited for with
    // the queue room held, so the waiting requests are bounded too); each
    // text is cut to what can reach its kept tokens first.
    let Ok(slot) = Arc::clone(&state.tokenizing).acquire_owned().await else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "shutting down".to_owned());
    };
    let embedder = state.embedder.clone();
    let tokens = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        embedder.tokenize_all(&texts)
    })
    .await;
    let tokens = match tokens {
        Ok(Ok(tokens)) => tokens,
        Ok(Err(e)) => return error(status_of(&e), e.to_string()),
        Err(_) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "tokenizing failed".to_owned(),
            );
        }
    };
    match room.dispatch_many(tokens).await {
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

async fn health(State(state): State<EmbedState>) -> Response {
    health_response(state.embedder.serving().is_closed())
}

async fn metrics() -> Response {
    metrics_response()
}
