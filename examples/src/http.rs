//! The MobileNet HTTP server's routes: `POST /v1/classify`, `GET /health`
//! and `GET /metrics`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use batch_serving::Error;
use batch_serving_ort::{MobileNet, OrtError};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

pub use crate::json_errors::error;
use crate::json_errors::{harden, is_media_type};
use crate::serve::HttpLimits;

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

/// The most images decoded at once by default: two per core. Decoding runs
/// on the blocking pool; past this many a request waits for a slot (its
/// queue room already held) rather than taking a thread and up to 144 MB
/// of pixels (see `MAX_IMAGE_PIXELS`).
pub fn default_max_decodes() -> usize {
    2 * std::thread::available_parallelism().map_or(2, usize::from)
}

/// What the classify route shares: the classifier, and the decoding slots
/// that bound the decodes running at once.
#[derive(Debug, Clone)]
pub struct ClassifyState {
    classifier: MobileNet,
    decodes: Arc<Semaphore>,
}

impl ClassifyState {
    /// The classifier with `max_decodes` decoding slots.
    pub fn new(classifier: MobileNet, max_decodes: usize) -> Self {
        Self {
            classifier,
            decodes: Arc::new(Semaphore::new(max_decodes)),
        }
    }

    /// The decoding slots (tests hold them to see the bound act).
    pub fn decodes(&self) -> &Arc<Semaphore> {
        &self.decodes
    }
}

/// Builds the router over a started classifier, with the default limits.
pub fn router(classifier: MobileNet) -> Router {
    router_with(
        ClassifyState::new(classifier, default_max_decodes()),
        HttpLimits::default().request_timeout,
    )
}

/// Builds the router over `state`, answering 408 to requests that take
/// longer than `request_timeout` and JSON errors everywhere.
pub fn router_with(state: ClassifyState, request_timeout: Duration) -> Router {
    let own = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(state.clone());
    harden(classify_routes(state).merge(own), request_timeout)
}

/// `POST /v1/classify` alone, with its body limit and without the
/// request timeout or error shape, for a server that serves it beside other
/// routes (the model server) and hardens them all at once.
pub fn classify_routes(state: ClassifyState) -> Router {
    Router::new()
        .route("/v1/classify", post(classify))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

async fn classify(State(state): State<ClassifyState>, request: Request) -> Response {
    let started = Instant::now();
    // Admission first: a request the queue has no room for is refused in
    // microseconds, before its body is read, parsed or decoded. Its unread
    // body cannot be skipped on a kept-alive connection, so the answer
    // closes the connection.
    let room = match state.classifier.calls().try_reserve() {
        Ok(room) => room,
        Err(e) => {
            // Its body is unread and cannot be skipped on a kept-alive
            // connection, so the answer closes it.
            let mut answer = refused(status_of(&e), e.to_string());
            answer
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return answer;
        }
    };
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = match Bytes::from_request(request, &()).await {
        Ok(body) => body,
        Err(rejection) => return rejection.into_response(),
    };
    // Parsing, decoding and resizing run on the blocking pool, holding a
    // decoding slot, so the async workers stay free for other requests. A
    // request waits for a slot with its queue room already held, so the
    // waiting ones are bounded by the queue capacity.
    let Ok(slot) = Arc::clone(&state.decodes).acquire_owned().await else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "shutting down".to_owned());
    };
    let prepared = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let image = parse_classify_body(content_type.as_deref(), &body)
            .map_err(|message| (StatusCode::BAD_REQUEST, message))?;
        room.prepare(image)
            .map_err(|e| (status_of(&e), e.to_string()))
    })
    .await;
    let prepared = match prepared {
        Ok(Ok(prepared)) => prepared,
        Ok(Err((status, message))) => return error(status, message),
        Err(_) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "decoding the image failed".to_owned(),
            );
        }
    };
    match prepared.dispatch().await {
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
/// the content type is JSON (`application/json` in any case, parameters
/// allowed). Public so that it can be fuzzed.
///
/// # Errors
///
/// A message for the client (sent with 400) for an empty body, invalid JSON
/// or invalid base64.
pub fn parse_classify_body(content_type: Option<&str>, body: &[u8]) -> Result<Vec<u8>, String> {
    let is_json = content_type.is_some_and(|v| is_media_type(v, "application/json"));
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
        Error::Overloaded { .. } | Error::PredictedLate { .. } | Error::Closed => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        Error::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The answer to a call refused for overload or shutdown: the error, with
/// `Retry-After: 1` for 503.
pub fn refused(status: StatusCode, message: String) -> Response {
    let mut response = error(status, message);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// `/health`: 200 while the serving takes calls, 503 once it shuts down.
pub fn health_response(closed: bool) -> Response {
    if closed {
        error(StatusCode::SERVICE_UNAVAILABLE, "shutting down".to_owned())
    } else {
        Json(serde_json::json!({ "status": "ok" })).into_response()
    }
}

/// `/metrics`: what every serving in the process reported, as Prometheus
/// text from the exporter.
pub fn metrics_response() -> Response {
    let text = crate::metrics::exporter().render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn health(State(state): State<ClassifyState>) -> Response {
    health_response(state.classifier.serving().is_closed())
}

async fn metrics() -> Response {
    metrics_response()
}
