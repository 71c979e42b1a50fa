//! One error shape for every answer that is not a success:
//! `{"error": "message"}` with `application/json`, whatever produced it:
//! a handler, a body-limit or extractor rejection, the request timeout, an
//! unknown path or a wrong method.

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower_http::timeout::TimeoutLayer;

/// The most bytes of a non-JSON error body kept as the message.
const MAX_MESSAGE_BYTES: usize = 4096;

/// Adds the request timeout and the uniform error shape to `router`, with
/// JSON answers for unknown paths (404) and wrong methods (405).
pub fn harden(router: Router, request_timeout: Duration) -> Router {
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
        .layer(axum::middleware::map_response(as_json_error))
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such path".to_owned())
}

async fn method_not_allowed() -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this path".to_owned(),
    )
}

/// Rewrites an error answer whose body is not JSON (axum's text/plain
/// rejections, the timeout's empty body) into the JSON shape, keeping its
/// status and its other headers (`Allow`, say).
async fn as_json_error(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| is_media_type(v, "application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = to_bytes(body, MAX_MESSAGE_BYTES)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
        .unwrap_or_default();
    let message = if text.is_empty() {
        match status {
            StatusCode::REQUEST_TIMEOUT => {
                "the request took too long to send or to answer".to_owned()
            }
            _ => status.canonical_reason().unwrap_or("error").to_lowercase(),
        }
    } else {
        text
    };
    let json = error(status, message);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::new(json.into_body())).into_response()
}

/// Whether a `Content-Type` value names `wanted`: media types compare
/// without regard to case, and parameters (`; charset=utf-8`) are allowed.
///
/// ```
/// use batch_serving_examples::json_errors::is_media_type;
/// assert!(is_media_type("Application/JSON; charset=UTF-8", "application/json"));
/// assert!(!is_media_type("application/jsonl", "application/json"));
/// ```
pub fn is_media_type(content_type: &str, wanted: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(wanted))
}

/// A JSON error body, `{"error": message}`, with `status`.
pub fn error(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}
