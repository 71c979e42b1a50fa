//! The Open Inference Protocol (KServe v2) over HTTP, the protocol that
//! Triton, KServe, MLServer and OpenVINO speak, for any served ONNX model:
//!
//! - `GET /v2`: the server's name, version and the extensions served;
//! - `GET /v2/health/live`, `GET /v2/health/ready` (`{"live": true}`,
//!   `{"ready": true}`);
//! - `GET /v2/models/{name}` (metadata), `GET /v2/models/{name}/ready`;
//! - `POST /v2/models/{name}/infer`, with JSON tensors or the
//!   binary-tensor extension (`Inference-Header-Content-Length`), gzip or
//!   deflate bodies, the `timeout` and `priority` parameters, and the
//!   classification extension (`classification: N` on an output);
//! - Triton's additions: `GET /v2/models/{name}/config`,
//!   `GET /v2/models[/{name}]/stats` and `POST /v2/repository/index`;
//! - the model routes under `/v2/models/{name}/versions/1/...` too;
//! - `GET /metrics`: Prometheus text.
//!
//! A request's batch of N is cut into N items that batch with every other
//! client's items; the answers are stacked back in order. A bad request (a
//! wrong model name, input name, shape, datatype or data size) gets 400
//! with the protocol's `{"error": "..."}` and nothing is queued for it;
//! overload and shutdown get 503 with `Retry-After`; a body over the limit
//! gets 413.

pub mod classification;
pub mod compression;
pub mod grpc;
pub mod repository;
pub mod tensor;
pub mod triton;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use batch_serving::{CallOptions, Error};
use batch_serving_ort::{Dtype, ModelInputs, ModelOutputs, ModelServing, OrtError, TensorSpec};
use serde_json::json;
use tokio::sync::Semaphore;

use crate::http::{default_max_decodes, metrics_response, refused};
use crate::json_errors::{error, harden};
use crate::serve::HttpLimits;
pub use repository::Repository;
use tensor::{BatchTensor, Elements, InferRequest, InferResponse, datatype_name};
use triton::{VERSION, model_config, model_statistics, priority_of};

/// The header that says how long the JSON part of a binary body is.
pub const HEADER_LENGTH: &str = "inference-header-content-length";

/// The largest request body accepted by default, in bytes: a batch of 16
/// MobileNet images as binary tensors is 9.6 MB, as JSON about 30 MB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// The protocol extensions this server serves, as `GET /v2` lists them.
pub const EXTENSIONS: [&str; 6] = [
    "binary_tensor_data",
    "classification",
    "model_configuration",
    "statistics",
    "model_repository",
    "parameters",
];

/// What the routes share.
#[derive(Debug, Clone)]
pub struct OipState {
    repository: Arc<Repository>,
    /// Bounds the request bodies being parsed at once (on the blocking
    /// pool), as the classify route bounds its decodes.
    decodes: Arc<Semaphore>,
    /// The largest body accepted, also once inflated.
    max_body_bytes: usize,
}

impl OipState {
    /// The routes' state over `repository`.
    pub fn new(repository: Repository) -> Self {
        Self {
            repository: Arc::new(repository),
            decodes: Arc::new(Semaphore::new(default_max_decodes())),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }

    /// The served models.
    pub fn repository(&self) -> &Repository {
        &self.repository
    }
}

/// The router with the default limits.
pub fn oip_router(repository: Repository) -> Router {
    oip_router_with(
        OipState::new(repository),
        DEFAULT_MAX_BODY_BYTES,
        HttpLimits::default().request_timeout,
    )
}

/// The router over `state`, refusing bodies over `max_body_bytes` with 413
/// and answering 408 after `request_timeout`.
pub fn oip_router_with(
    mut state: OipState,
    max_body_bytes: usize,
    request_timeout: Duration,
) -> Router {
    state.max_body_bytes = max_body_bytes;
    let routes = Router::new()
        .route("/v2", get(server_metadata))
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready))
        .route("/v2/models/stats", get(all_statistics))
        .route("/v2/repository/index", post(repository_index))
        .route("/v2/models/{name}", get(model_metadata))
        .route("/v2/models/{name}/ready", get(model_ready))
        .route("/v2/models/{name}/config", get(config))
        .route("/v2/models/{name}/stats", get(statistics))
        .route("/v2/models/{name}/infer", post(infer))
        .route("/v2/models/{name}/versions/{version}", get(model_metadata))
        .route(
            "/v2/models/{name}/versions/{version}/ready",
            get(model_ready),
        )
        .route("/v2/models/{name}/versions/{version}/config", get(config))
        .route(
            "/v2/models/{name}/versions/{version}/stats",
            get(statistics),
        )
        .route("/v2/models/{name}/versions/{version}/infer", post(infer))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state);
    harden(routes, request_timeout)
}

async fn server_metadata() -> Response {
    axum::Json(json!({
        "name": "batch-serving",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": EXTENSIONS,
    }))
    .into_response()
}

async fn live() -> Response {
    axum::Json(json!({ "live": true })).into_response()
}

/// Whether every model takes calls.
pub fn is_ready(repository: &Repository) -> bool {
    !repository.is_empty() && repository.iter().all(|(_, m)| !m.serving().is_closed())
}

async fn ready(State(state): State<OipState>) -> Response {
    let ready = is_ready(&state.repository);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(json!({ "ready": ready }))).into_response()
}

async fn config(State(state): State<OipState>, Path(path): Path<ModelPath>) -> Response {
    match find(&state, &path.name, path.version.as_deref()) {
        Ok(model) => axum::Json(model_config(&path.name, model).to_json()).into_response(),
        Err(message) => error(StatusCode::BAD_REQUEST, message),
    }
}

async fn statistics(State(state): State<OipState>, Path(path): Path<ModelPath>) -> Response {
    match find(&state, &path.name, path.version.as_deref()) {
        Ok(model) => axum::Json(json!({
            "model_stats": [model_statistics(&path.name, model).to_json()],
        }))
        .into_response(),
        Err(message) => error(StatusCode::BAD_REQUEST, message),
    }
}

async fn all_statistics(State(state): State<OipState>) -> Response {
    let stats: Vec<_> = state
        .repository
        .iter()
        .map(|(name, model)| model_statistics(name, model).to_json())
        .collect();
    axum::Json(json!({ "model_stats": stats })).into_response()
}

/// Every model, as Triton's repository index lists it (the body's `ready`
/// filter is moot: every model served is ready until shutdown).
async fn repository_index(State(state): State<OipState>) -> Response {
    let models: Vec<_> = state
        .repository
        .iter()
        .map(|(name, model)| {
            let state = if model.serving().is_closed() {
                "UNAVAILABLE"
            } else {
                "READY"
            };
            json!({ "name": name, "version": VERSION, "state": state, "reason": "" })
        })
        .collect();
    axum::Json(models).into_response()
}

async fn metrics() -> Response {
    metrics_response()
}

/// The model called `name`, or the message of the protocol's 400 for an
/// unknown name or version.
fn find<'a>(
    state: &'a OipState,
    name: &str,
    version: Option<&str>,
) -> Result<&'a ModelServing, String> {
    let model = state.repository.get(name).ok_or_else(|| {
        let known: Vec<&str> = state.repository.iter().map(|(n, _)| n).collect();
        format!(
            "unknown model `{name}`; this server has: {}",
            known.join(", ")
        )
    })?;
    match version {
        Some(v) if v != VERSION => Err(format!(
            "model `{name}` has no version `{v}`; it has version {VERSION}"
        )),
        _ => Ok(model),
    }
}

/// A model route's path: `/v2/models/{name}[/versions/{version}]/...`.
#[derive(Debug, serde::Deserialize)]
struct ModelPath {
    name: String,
    version: Option<String>,
}

async fn model_metadata(State(state): State<OipState>, Path(path): Path<ModelPath>) -> Response {
    metadata(&state, &path.name, path.version.as_deref())
}

fn metadata(state: &OipState, name: &str, version: Option<&str>) -> Response {
    let model = match find(state, name, version) {
        Ok(model) => model,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let describe = |spec: &TensorSpec| {
        let shape: Vec<i64> = std::iter::once(-1)
            .chain(spec.item_dims.iter().map(|d| d.map_or(-1, |d| d as i64)))
            .collect();
        json!({ "name": spec.name, "datatype": datatype_name(spec.dtype), "shape": shape })
    };
    let signature = model.signature();
    axum::Json(json!({
        "name": name,
        "versions": [VERSION],
        "platform": "onnxruntime_onnx",
        "inputs": signature.inputs.iter().map(describe).collect::<Vec<_>>(),
        "outputs": signature.outputs.iter().map(describe).collect::<Vec<_>>(),
    }))
    .into_response()
}

async fn model_ready(State(state): State<OipState>, Path(path): Path<ModelPath>) -> Response {
    readiness(&state, &path.name, path.version.as_deref())
}

fn readiness(state: &OipState, name: &str, version: Option<&str>) -> Response {
    match find(state, name, version) {
        Ok(model) => {
            let ready = !model.serving().is_closed();
            let status = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            let body = json!({ "name": name, "version": VERSION, "ready": ready });
            (status, axum::Json(body)).into_response()
        }
        Err(message) => error(StatusCode::BAD_REQUEST, message),
    }
}

async fn infer(
    State(state): State<OipState>,
    Path(path): Path<ModelPath>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    run(state, path.name, path.version, headers, body).await
}

/// An output to answer, as the request asked for it.
struct Wanted {
    name: String,
    binary: bool,
    /// The classification extension: its top N classes, not the tensor.
    classes: Option<u64>,
}

/// A request cut into items, with what the answer needs.
struct Prepared {
    id: Option<String>,
    items: Vec<ModelInputs>,
    outputs: Vec<Wanted>,
    timeout: Option<Duration>,
    priority: batch_serving::Priority,
}

async fn run(
    state: OipState,
    name: String,
    version: Option<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let model = match find(&state, &name, version.as_deref()) {
        Ok(model) => model.clone(),
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    // Parsing and cutting run on the blocking pool, holding a slot.
    let Ok(slot) = Arc::clone(&state.decodes).acquire_owned().await else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "shutting down".to_owned());
    };
    let parsing = model.clone();
    let limit = state.max_body_bytes;
    let prepared = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let body = compression::inflate(&headers, &body, limit)?;
        prepare(&parsing, &headers, &body).map_err(|message| (StatusCode::BAD_REQUEST, message))
    })
    .await;
    let prepared = match prepared {
        Ok(Ok(prepared)) => prepared,
        Ok(Err((status, message))) => return error(status, message),
        Err(_) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "reading the request failed".to_owned(),
            );
        }
    };
    let capacity = model.serving().queue_capacity();
    if prepared.items.len() > capacity {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "a batch of {} is more than model `{name}` queues at once ({capacity}); send it in smaller requests",
                prepared.items.len()
            ),
        );
    }
    let mut options = CallOptions::new().fail_fast().priority(prepared.priority);
    if let Some(timeout) = prepared.timeout {
        options = options.timeout(timeout);
    }
    let labels = state.repository.labels(&name);
    match model.dispatch_many_with(prepared.items, options).await {
        Ok(results) => answer(&name, prepared.id, &prepared.outputs, &results, labels),
        Err(e) => {
            let status = status_of(&e);
            refused(status, e.to_string())
        }
    }
}

/// The HTTP status for a serving error under this protocol: a request that
/// does not fit the model is the client's error (400).
pub fn status_of(error: &Error<OrtError>) -> StatusCode {
    match error {
        Error::Preprocess(_) => StatusCode::BAD_REQUEST,
        Error::Overloaded { .. } | Error::PredictedLate { .. } | Error::Closed => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        Error::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Reads a request's body into the items to dispatch: the JSON part (all of
/// the body, or its first `Inference-Header-Content-Length` bytes), then
/// each input's binary data in order.
///
/// # Errors
///
/// A message for the client (sent with 400).
fn prepare(model: &ModelServing, headers: &HeaderMap, body: &[u8]) -> Result<Prepared, String> {
    let json_length = match headers.get(HEADER_LENGTH) {
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|&n| n <= body.len())
            .ok_or_else(|| {
                format!(
                    "Inference-Header-Content-Length must be a whole number of at most the body's {} bytes",
                    body.len()
                )
            })?,
        None => body.len(),
    };
    let (json_part, mut binary) = body.split_at(json_length);
    let request: InferRequest = serde_json::from_slice(json_part)
        .map_err(|e| format!("invalid inference request JSON: {e}"))?;
    let signature = model.signature();
    let all_binary = request.parameters.binary_data_output == Some(true);
    let priority = priority_of(request.parameters.priority.unwrap_or(0))?;
    let outputs = match request.outputs {
        Some(wanted) => wanted
            .into_iter()
            .map(|o| {
                if let Some(spec) = signature.outputs.iter().find(|s| s.name == o.name) {
                    if o.parameters.classification == Some(0) {
                        return Err(format!(
                            "output `{}`: classification asks for 0 classes; ask for 1 or more",
                            o.name
                        ));
                    }
                    if o.parameters.classification.is_some() && spec.dtype != Dtype::F32 {
                        return Err(format!(
                            "output `{}` is {}, not FP32: it cannot be classified",
                            o.name,
                            datatype_name(spec.dtype)
                        ));
                    }
                    Ok(Wanted {
                        binary: all_binary || o.parameters.binary_data == Some(true),
                        classes: o.parameters.classification,
                        name: o.name,
                    })
                } else {
                    let names: Vec<&str> =
                        signature.outputs.iter().map(|s| s.name.as_str()).collect();
                    Err(format!(
                        "the model has no output `{}`; its outputs are: {}",
                        o.name,
                        names.join(", ")
                    ))
                }
            })
            .collect::<Result<Vec<_>, _>>()?,
        None => signature
            .outputs
            .iter()
            .map(|s| Wanted {
                name: s.name.clone(),
                binary: all_binary,
                classes: None,
            })
            .collect(),
    };
    let mut tensors: Vec<BatchTensor> = Vec::with_capacity(request.inputs.len());
    for input in request.inputs {
        let spec = input_spec(signature, &input.name, &tensors)?;
        let elements = match (input.parameters.binary_data_size, input.data) {
            (Some(size), None) => {
                let size = usize::try_from(size).unwrap_or(usize::MAX);
                if size > binary.len() {
                    return Err(format!(
                        "input `{}` claims {size} bytes of binary data; {} remain in the body",
                        input.name,
                        binary.len()
                    ));
                }
                let (mine, rest) = binary.split_at(size);
                binary = rest;
                Elements::Binary(mine)
            }
            (None, Some(numbers)) => Elements::Json(numbers),
            (Some(_), Some(_)) => {
                return Err(format!(
                    "input `{}` has both `data` and binary data",
                    input.name
                ));
            }
            (None, None) => return Err(format!("input `{}` has no data", input.name)),
        };
        tensors.push(tensor::decode_input(
            &input.name,
            &input.datatype,
            &input.shape,
            spec.dtype,
            elements,
        )?);
    }
    if !binary.is_empty() {
        return Err(format!(
            "{} bytes of binary data belong to no input",
            binary.len()
        ));
    }
    let items = items_of(signature, &tensors)?;
    Ok(Prepared {
        id: request.id,
        items,
        outputs,
        timeout: request.parameters.timeout.map(Duration::from_micros),
        priority,
    })
}

/// The model's spec of the input a request calls `name`, when it is one of
/// the model's inputs and not already among `tensors`. Shared by the HTTP
/// and gRPC services.
///
/// # Errors
///
/// A message for the client (400, or `INVALID_ARGUMENT`).
pub fn input_spec<'a>(
    signature: &'a batch_serving_ort::ModelSignature,
    name: &str,
    tensors: &[BatchTensor],
) -> Result<&'a TensorSpec, String> {
    let spec = signature
        .inputs
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| {
            let names: Vec<&str> = signature.inputs.iter().map(|s| s.name.as_str()).collect();
            format!(
                "the model has no input `{name}`; its inputs are: {}",
                names.join(", ")
            )
        })?;
    if tensors.iter().any(|t| t.name == name) {
        return Err(format!("input `{name}` is given twice"));
    }
    Ok(spec)
}

/// Cuts a request's input tensors into the items to dispatch: every input
/// the model has, all with the same batch size, at least 1. Shared by the
/// HTTP and gRPC services.
///
/// # Errors
///
/// A message for the client (400, or `INVALID_ARGUMENT`).
pub fn items_of(
    signature: &batch_serving_ort::ModelSignature,
    tensors: &[BatchTensor],
) -> Result<Vec<ModelInputs>, String> {
    if let Some(missing) = signature
        .inputs
        .iter()
        .find(|s| !tensors.iter().any(|t| t.name == s.name))
    {
        return Err(format!("input `{}` is missing", missing.name));
    }
    let batch = tensors.first().map_or(0, |t| t.data.shape()[0]);
    if let Some(other) = tensors.iter().find(|t| t.data.shape()[0] != batch) {
        return Err(format!(
            "inputs differ in batch size: `{}` has {}, `{}` has {batch}",
            other.name,
            other.data.shape()[0],
            tensors[0].name
        ));
    }
    if batch == 0 {
        return Err("the batch size (each input's first dimension) is 0".to_owned());
    }
    let mut items = vec![ModelInputs::new(); batch];
    for t in tensors {
        for (item, part) in items.iter_mut().zip(tensor::split(&t.data)) {
            *item = std::mem::take(item).with(t.name.clone(), part);
        }
    }
    Ok(items)
}

/// The response: the outputs stacked back to the request's batch, as JSON
/// with the binary ones after it.
fn answer(
    name: &str,
    id: Option<String>,
    wanted: &[Wanted],
    results: &[ModelOutputs],
    labels: Option<&[String]>,
) -> Response {
    let mut binary = Vec::new();
    let mut outputs = Vec::with_capacity(wanted.len());
    for output in wanted {
        let items: Option<Vec<_>> = results.iter().map(|r| r.get(&output.name)).collect();
        let stacked = items
            .ok_or_else(|| format!("output `{}` is missing from a result", output.name))
            .and_then(|items| tensor::stack(&output.name, &items));
        let tensor = match stacked {
            Ok(tensor) => tensor,
            Err(message) => return error(StatusCode::INTERNAL_SERVER_ERROR, message),
        };
        let encoded = match output.classes {
            None => tensor::encode_output(&output.name, &tensor, output.binary, &mut binary),
            Some(count) => match classification::classify(&output.name, &tensor, count, labels) {
                Ok(classes) => {
                    tensor::encode_classes(&output.name, &classes, output.binary, &mut binary)
                }
                Err(message) => return error(StatusCode::BAD_REQUEST, message),
            },
        };
        outputs.push(encoded);
    }
    let response = InferResponse {
        model_name: name.to_owned(),
        model_version: VERSION.to_owned(),
        id,
        outputs,
    };
    let Ok(mut body) = serde_json::to_vec(&response) else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "encoding the response failed".to_owned(),
        );
    };
    if binary.is_empty() {
        return ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    }
    let json_length = body.len();
    body.extend_from_slice(&binary);
    let mut response = ([(header::CONTENT_TYPE, "application/octet-stream")], body).into_response();
    response
        .headers_mut()
        .insert(HEADER_LENGTH, HeaderValue::from(json_length));
    response
}
