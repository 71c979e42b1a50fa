//! The MobileNet HTTP server's routes: `POST /v1/classify`, `GET /health`
//! and `GET /metrics`.

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use batch_serving::Error;
use batch_serving_ort::{MobileNet, OrtError};
use serde::{Deserialize, Serialize};

/// The largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// The JSON form of a classification request.
#[derive(Debug, Deserialize)]
pub struct ClassifyRequest {
    /// The image file's bytes, base64-encoded (standard alphabet).
    pub image: String,
}

/// One prediction in a response.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct PredictionBody {
    /// ImageNet class index.
    pub class: usize,
    /// Its label.
    pub label: String,
    /// Softmax probability.
    pub probability: f32,
}

/// A successful classification.
#[derive(Debug, Serialize, Deserialize)]
pub struct ClassifyResponse {
    /// The top-5, most probable first.
    pub predictions: Vec<PredictionBody>,
    /// Milliseconds spent in the server on this request.
    pub total_ms: f64,
}

/// Builds the router over a started classifier.
pub fn router(classifier: MobileNet) -> Router {
    Router::new()
        .route("/v1/classify", post(classify))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(classifier)
}

async fn classify(
    State(classifier): State<MobileNet>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let image = match parse_classify_body(content_type, &body) {
        Ok(image) => image,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    // try_dispatch sheds load with 503 once the queue is full, instead of
    // holding connections open behind a backlog.
    match classifier.try_dispatch(image).await {
        Ok(top) => {
            let predictions = top
                .into_iter()
                .map(|p| PredictionBody {
                    class: p.class,
                    label: p.label.to_string(),
                    probability: p.probability,
                })
                .collect();
            let total_ms = started.elapsed().as_secs_f64() * 1e3;
            Json(ClassifyResponse {
                predictions,
                total_ms,
            })
            .into_response()
        }
        Err(e) => error(status_of(&e), e.to_string()),
    }
}

/// The image bytes of a request: the raw body, or `{"image": base64}` when
/// the content type is JSON. Public so that it can be fuzzed.
///
/// # Errors
///
/// A message for the client (sent with 400) for an empty body, invalid JSON
/// or invalid base64.
pub fn parse_classify_body(content_type: Option<&str>, body: &[u8]) -> Result<Vec<u8>, String> {
    let is_json = content_type.is_some_and(|v| v.starts_with("application/json"));
    if body.is_empty() {
        return Err(
            "the request body is empty: send image bytes or {\"image\": base64}".to_owned(),
        );
    }
    if !is_json {
        return Ok(body.to_vec());
    }
    let request: ClassifyRequest =
        serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    base64::engine::general_purpose::STANDARD
        .decode(request.image.trim())
        .map_err(|e| format!("invalid base64 in `image`: {e}"))
}

/// The HTTP status for a serving error.
pub fn status_of(error: &Error<OrtError>) -> StatusCode {
    match error {
        Error::Preprocess(_) => StatusCode::UNPROCESSABLE_ENTITY,
        Error::Overloaded { .. } | Error::Closed => StatusCode::SERVICE_UNAVAILABLE,
        Error::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A JSON error body, `{"error": message}`, with `status`.
pub fn error(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

/// `/health`: 200 while the serving takes calls, 503 once it shuts down.
pub fn health_response(closed: bool) -> Response {
    if closed {
        error(StatusCode::SERVICE_UNAVAILABLE, "shutting down".to_owned())
    } else {
        Json(serde_json::json!({ "status": "ok" })).into_response()
    }
}

/// `/metrics`: the serving's stats as Prometheus text.
pub fn metrics_response(stats: &batch_serving::Stats) -> Response {
    let text = crate::metrics::prometheus(stats);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// Serves `app` until Ctrl-C, then stops accepting connections and lets
/// in-flight requests finish.
///
/// # Errors
///
/// When the server fails.
pub async fn serve_until_ctrl_c(
    listener: tokio::net::TcpListener,
    app: Router,
) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
            println!("shutting down: finishing in-flight requests");
        })
        .await
}

async fn health(State(classifier): State<MobileNet>) -> Response {
    health_response(classifier.serving().is_closed())
}

async fn metrics(State(classifier): State<MobileNet>) -> Response {
    metrics_response(&classifier.serving().stats())
}
