//! The Open Inference Protocol over gRPC: `inference.GRPCInferenceService`
//! (KServe v2) with Triton's `ModelConfig`, `ModelStatistics` and
//! `RepositoryIndex`, served with tonic over the same repository as the
//! HTTP routes, so that requests from HTTP and gRPC clients batch together.
//!
//! The same limits as over HTTP: the message size (`--max-body-bytes`), a
//! deadline from `grpc-timeout` or the `timeout` parameter, cancellation
//! when the client goes away (tonic drops the call, which the serving
//! counts as cancelled), and `RESOURCE_EXHAUSTED` with a `retry-after`
//! hint when the queue is full. A request that does not fit the model is
//! `INVALID_ARGUMENT`, and nothing is queued for it.

use std::collections::HashMap;
use std::time::Duration;

use batch_serving::{CallOptions, Error};
use batch_serving_ort::{Dtype, ModelOutputs, ModelServing, OrtError, TensorData, TensorSpec};
use tonic::{Request, Response, Status};

use super::grpc_proto::grpc_inference_service_server::{
    GrpcInferenceService, GrpcInferenceServiceServer,
};
use super::grpc_proto::infer_parameter::ParameterChoice;
use super::grpc_proto::model_infer_response::InferOutputTensor;
use super::grpc_proto::{
    InferParameter, ModelConfigRequest, ModelConfigResponse, ModelInferRequest, ModelInferResponse,
    ModelMetadataRequest, ModelMetadataResponse, ModelReadyRequest, ModelReadyResponse,
    ModelStatisticsRequest, ModelStatisticsResponse, RepositoryIndexRequest,
    RepositoryIndexResponse, ServerLiveRequest, ServerLiveResponse, ServerMetadataRequest,
    ServerMetadataResponse, ServerReadyRequest, ServerReadyResponse,
};
use super::tensor::{self, BatchTensor, Elements, datatype_name};
use super::triton::{self, PRIORITY_LEVELS, VERSION, priority_of};
use super::{EXTENSIONS, OipState, classification, find, input_spec, is_ready, items_of};

/// The gRPC service over `state`, accepting messages up to
/// `max_message_bytes`.
pub fn grpc_service(
    state: OipState,
    max_message_bytes: usize,
) -> GrpcInferenceServiceServer<Inference> {
    GrpcInferenceServiceServer::new(Inference { state })
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes)
}

/// The service's handlers.
#[derive(Debug, Clone)]
pub struct Inference {
    state: OipState,
}

impl Inference {
    fn model(&self, name: &str, version: &str) -> Result<&ModelServing, Status> {
        let version = (!version.is_empty()).then_some(version);
        find(&self.state, name, version).map_err(Status::invalid_argument)
    }
}

#[tonic::async_trait]
impl GrpcInferenceService for Inference {
    async fn server_live(
        &self,
        _: Request<ServerLiveRequest>,
    ) -> Result<Response<ServerLiveResponse>, Status> {
        Ok(Response::new(ServerLiveResponse { live: true }))
    }

    async fn server_ready(
        &self,
        _: Request<ServerReadyRequest>,
    ) -> Result<Response<ServerReadyResponse>, Status> {
        let ready = is_ready(self.state.repository());
        Ok(Response::new(ServerReadyResponse { ready }))
    }

    async fn model_ready(
        &self,
        request: Request<ModelReadyRequest>,
    ) -> Result<Response<ModelReadyResponse>, Status> {
        let request = request.into_inner();
        let model = self.model(&request.name, &request.version)?;
        let ready = !model.serving().is_closed();
        Ok(Response::new(ModelReadyResponse { ready }))
    }

    async fn server_metadata(
        &self,
        _: Request<ServerMetadataRequest>,
    ) -> Result<Response<ServerMetadataResponse>, Status> {
        Ok(Response::new(ServerMetadataResponse {
            name: "batch-serving".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            extensions: EXTENSIONS.iter().map(|&e| e.to_owned()).collect(),
        }))
    }

    async fn model_metadata(
        &self,
        request: Request<ModelMetadataRequest>,
    ) -> Result<Response<ModelMetadataResponse>, Status> {
        use super::grpc_proto::model_metadata_response::TensorMetadata;
        let request = request.into_inner();
        let model = self.model(&request.name, &request.version)?;
        let describe = |spec: &TensorSpec| TensorMetadata {
            name: spec.name.clone(),
            datatype: datatype_name(spec.dtype).to_owned(),
            shape: std::iter::once(-1)
                .chain(spec.item_dims.iter().map(|d| d.map_or(-1, |d| d as i64)))
                .collect(),
        };
        let signature = model.signature();
        Ok(Response::new(ModelMetadataResponse {
            name: request.name,
            versions: vec![VERSION.to_owned()],
            platform: "onnxruntime_onnx".to_owned(),
            inputs: signature.inputs.iter().map(describe).collect(),
            outputs: signature.outputs.iter().map(describe).collect(),
        }))
    }

    async fn model_config(
        &self,
        request: Request<ModelConfigRequest>,
    ) -> Result<Response<ModelConfigResponse>, Status> {
        let request = request.into_inner();
        let model = self.model(&request.name, &request.version)?;
        let config = triton::model_config(&request.name, model);
        Ok(Response::new(ModelConfigResponse {
            config: Some(config_message(&config)),
        }))
    }

    async fn model_statistics(
        &self,
        request: Request<ModelStatisticsRequest>,
    ) -> Result<Response<ModelStatisticsResponse>, Status> {
        let request = request.into_inner();
        let model_stats = if request.name.is_empty() {
            self.state
                .repository()
                .iter()
                .map(|(name, model)| statistics_message(&triton::model_statistics(name, model)))
                .collect()
        } else {
            let model = self.model(&request.name, &request.version)?;
            vec![statistics_message(&triton::model_statistics(
                &request.name,
                model,
            ))]
        };
        Ok(Response::new(ModelStatisticsResponse { model_stats }))
    }

    async fn repository_index(
        &self,
        _: Request<RepositoryIndexRequest>,
    ) -> Result<Response<RepositoryIndexResponse>, Status> {
        use super::grpc_proto::repository_index_response::ModelIndex;
        let models = self
            .state
            .repository()
            .iter()
            .map(|(name, model)| ModelIndex {
                name: name.to_owned(),
                version: VERSION.to_owned(),
                state: if model.serving().is_closed() {
                    "UNAVAILABLE"
                } else {
                    "READY"
                }
                .to_owned(),
                reason: String::new(),
            })
            .collect();
        Ok(Response::new(RepositoryIndexResponse { models }))
    }

    async fn model_infer(
        &self,
        request: Request<ModelInferRequest>,
    ) -> Result<Response<ModelInferResponse>, Status> {
        // tonic ends a call at its grpc-timeout itself, as CANCELLED; the
        // serving's deadline comes a little sooner, so that the client gets
        // DEADLINE_EXCEEDED and the serving counts the call as expired.
        let deadline = request
            .extensions()
            .get::<ClientDeadline>()
            .map(|deadline| {
                deadline
                    .0
                    .saturating_duration_since(tokio::time::Instant::now())
                    .saturating_sub(TRANSPORT_MARGIN)
            });
        let request = request.into_inner();
        let model = self
            .model(&request.model_name, &request.model_version)?
            .clone();
        let name = request.model_name.clone();
        let id = request.id.clone();
        let prepared = prepare(&model, request).map_err(Status::invalid_argument)?;
        let capacity = model.serving().queue_capacity();
        if prepared.items.len() > capacity {
            return Err(Status::invalid_argument(format!(
                "a batch of {} is more than model `{name}` queues at once ({capacity}); send it in smaller requests",
                prepared.items.len()
            )));
        }
        let mut options = CallOptions::new().fail_fast().priority(prepared.priority);
        let timeout = match (deadline, prepared.timeout) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(timeout) = timeout {
            options = options.timeout(timeout.saturating_sub(TRANSPORT_MARGIN));
        }
        let call = model.dispatch_many_with(prepared.items, options);
        let results = match deadline {
            // The call's deadline ends it first, counted as expired; this
            // answers DEADLINE_EXCEEDED, should the call be slow to say so
            // (its pre-processing is not interrupted), before tonic's own
            // timer answers CANCELLED.
            Some(left) => tokio::time::timeout(left, call)
                .await
                .map_err(|_| Status::deadline_exceeded("the deadline (grpc-timeout) passed"))?,
            None => call.await,
        }
        .map_err(|e| status_of(&e))?;
        let labels = self.state.repository().labels(&name);
        let response = answer(name, id, &prepared.outputs, &results, labels)?;
        Ok(Response::new(response))
    }
}

/// A gRPC status for a serving error: the queue full is
/// `RESOURCE_EXHAUSTED` with a `retry-after` hint, as 503 has
/// `Retry-After` over HTTP.
fn status_of(error: &Error<OrtError>) -> Status {
    let message = error.to_string();
    match error {
        Error::Preprocess(_) => Status::invalid_argument(message),
        Error::Overloaded { .. } | Error::PredictedLate { .. } => {
            let mut status = Status::resource_exhausted(message);
            status.metadata_mut().insert(
                "retry-after",
                tonic::metadata::MetadataValue::from_static("1"),
            );
            status
        }
        Error::Closed => Status::unavailable(message),
        Error::DeadlineExceeded => Status::deadline_exceeded(message),
        _ => Status::internal(message),
    }
}

/// How much sooner than its `grpc-timeout` a call's own deadline comes:
/// more than the 1 ms that tokio's timer may add to either.
const TRANSPORT_MARGIN: Duration = Duration::from_millis(3);

/// When a request's `grpc-timeout` runs out, counted from its arrival (as
/// tonic counts it, before the message is decoded, which for a large
/// tensor takes a while): kept in the request's extensions by
/// [`deadline_layer`].
#[derive(Debug, Clone, Copy)]
pub struct ClientDeadline(pub tokio::time::Instant);

/// The layer that keeps each request's `grpc-timeout` for its handler, as
/// a [`ClientDeadline`] from the moment it arrived: give it to the server's
/// builder.
pub fn deadline_layer<B>() -> tower::util::MapRequestLayer<KeepDeadline<B>> {
    tower::util::MapRequestLayer::new(keep_deadline::<B> as KeepDeadline<B>)
}

/// What [`deadline_layer`] does to each request.
pub type KeepDeadline<B> = fn(axum::http::Request<B>) -> axum::http::Request<B>;

fn keep_deadline<B>(mut request: axum::http::Request<B>) -> axum::http::Request<B> {
    if let Some(timeout) = request
        .headers()
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(grpc_timeout)
    {
        let at = tokio::time::Instant::now() + timeout;
        request.extensions_mut().insert(ClientDeadline(at));
    }
    request
}

/// A `grpc-timeout` value (digits and a unit: `H`, `M`, `S`, `m`, `u` or
/// `n`) as a duration.
fn grpc_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.saturating_mul(3600)),
        "M" => Duration::from_secs(amount.saturating_mul(60)),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// An output to answer: its name, and the classification extension's N.
struct Wanted {
    name: String,
    classes: Option<u64>,
}

/// A request cut into items, with what the answer needs.
struct Prepared {
    items: Vec<batch_serving_ort::ModelInputs>,
    outputs: Vec<Wanted>,
    timeout: Option<Duration>,
    priority: batch_serving::Priority,
}

/// An integer parameter, however the client typed it.
fn integer(parameter: &InferParameter) -> Option<u64> {
    match parameter.parameter_choice.as_ref()? {
        ParameterChoice::Int64Param(v) => u64::try_from(*v).ok(),
        ParameterChoice::Uint64Param(v) => Some(*v),
        _ => None,
    }
}

fn parameter(parameters: &HashMap<String, InferParameter>, key: &str) -> Option<u64> {
    parameters.get(key).and_then(integer)
}

/// Reads a request into the items to dispatch: each input's data from
/// `raw_input_contents` (tritonclient and perf_analyzer send raw bytes) or
/// from its typed `contents`.
fn prepare(model: &ModelServing, request: ModelInferRequest) -> Result<Prepared, String> {
    let signature = model.signature();
    if !request.raw_input_contents.is_empty()
        && request.raw_input_contents.len() != request.inputs.len()
    {
        return Err(format!(
            "{} raw input contents for {} inputs",
            request.raw_input_contents.len(),
            request.inputs.len()
        ));
    }
    let mut tensors: Vec<BatchTensor> = Vec::with_capacity(request.inputs.len());
    for (i, input) in request.inputs.iter().enumerate() {
        let spec = input_spec(signature, &input.name, &tensors)?;
        let shape: Vec<u64> = input
            .shape
            .iter()
            .map(|&d| u64::try_from(d))
            .collect::<Result<_, _>>()
            .map_err(|_| format!("input `{}` has a negative dimension", input.name))?;
        let typed: Vec<u8>;
        let bytes: &[u8] = match request.raw_input_contents.get(i) {
            Some(raw) => raw,
            None => {
                let contents = input.contents.as_ref();
                typed = match spec.dtype {
                    Dtype::I64 => contents
                        .map(|c| {
                            c.int64_contents
                                .iter()
                                .flat_map(|v| v.to_le_bytes())
                                .collect()
                        })
                        .unwrap_or_default(),
                    _ => contents
                        .map(|c| {
                            c.fp32_contents
                                .iter()
                                .flat_map(|v| v.to_le_bytes())
                                .collect()
                        })
                        .unwrap_or_default(),
                };
                &typed
            }
        };
        tensors.push(tensor::decode_input(
            &input.name,
            &input.datatype,
            &shape,
            spec.dtype,
            Elements::Binary(bytes),
        )?);
    }
    let items = items_of(signature, &tensors)?;
    let outputs = if request.outputs.is_empty() {
        signature
            .outputs
            .iter()
            .map(|s| Wanted {
                name: s.name.clone(),
                classes: None,
            })
            .collect()
    } else {
        request
            .outputs
            .iter()
            .map(|o| {
                let spec = signature
                    .outputs
                    .iter()
                    .find(|s| s.name == o.name)
                    .ok_or_else(|| format!("the model has no output `{}`", o.name))?;
                let classes = parameter(&o.parameters, "classification");
                if classes == Some(0) || (classes.is_some() && spec.dtype != Dtype::F32) {
                    return Err(format!(
                        "output `{}` cannot be classified into {classes:?} classes",
                        o.name
                    ));
                }
                Ok(Wanted {
                    name: o.name.clone(),
                    classes,
                })
            })
            .collect::<Result<_, String>>()?
    };
    let priority = priority_of(parameter(&request.parameters, "priority").unwrap_or(0))?;
    Ok(Prepared {
        items,
        outputs,
        timeout: parameter(&request.parameters, "timeout").map(Duration::from_micros),
        priority,
    })
}

/// The response: each output stacked back to the request's batch, as raw
/// little-endian bytes in `raw_output_contents`, as tritonclient reads them.
fn answer(
    name: String,
    id: String,
    wanted: &[Wanted],
    results: &[ModelOutputs],
    labels: Option<&[String]>,
) -> Result<ModelInferResponse, Status> {
    let mut outputs = Vec::with_capacity(wanted.len());
    let mut raw = Vec::with_capacity(wanted.len());
    for output in wanted {
        let items: Option<Vec<_>> = results.iter().map(|r| r.get(&output.name)).collect();
        let stacked = items
            .ok_or_else(|| format!("output `{}` is missing from a result", output.name))
            .and_then(|items| tensor::stack(&output.name, &items))
            .map_err(Status::internal)?;
        let (datatype, shape, bytes) = match output.classes {
            Some(count) => {
                let classes = classification::classify(&output.name, &stacked, count, labels)
                    .map_err(Status::invalid_argument)?;
                ("BYTES", classes.shape.clone(), classes.to_bytes())
            }
            None => {
                let bytes = match &stacked {
                    TensorData::I64(a) => a.iter().flat_map(|v| v.to_le_bytes()).collect(),
                    other => other
                        .as_f32()
                        .map(|a| a.iter().flat_map(|v| v.to_le_bytes()).collect())
                        .unwrap_or_default(),
                };
                let datatype = if matches!(stacked, TensorData::I64(_)) {
                    "INT64"
                } else {
                    "FP32"
                };
                (datatype, stacked.shape().to_vec(), bytes)
            }
        };
        outputs.push(InferOutputTensor {
            name: output.name.clone(),
            datatype: datatype.to_owned(),
            shape: shape.iter().map(|&d| d as i64).collect(),
            parameters: HashMap::new(),
            contents: None,
        });
        raw.push(bytes);
    }
    Ok(ModelInferResponse {
        model_name: name,
        model_version: VERSION.to_owned(),
        id,
        parameters: HashMap::new(),
        outputs,
        raw_output_contents: raw,
    })
}

/// Triton's model configuration as its message.
fn config_message(config: &triton::ModelConfig) -> super::grpc_proto::ModelConfig {
    use super::grpc_proto::model_config::SchedulingChoice;
    use super::grpc_proto::model_instance_group::Kind;
    use super::grpc_proto::{
        DataType, ModelDynamicBatching, ModelInput, ModelInstanceGroup, ModelOutput,
    };
    let data_type = |name: &str| {
        DataType::from_str_name(name).map_or(DataType::TypeInvalid as i32, |t| t as i32)
    };
    let max_batch_size = i32::try_from(config.max_batch_size).unwrap_or(i32::MAX);
    super::grpc_proto::ModelConfig {
        name: config.name.clone(),
        platform: config.platform.to_owned(),
        backend: config.backend.to_owned(),
        max_batch_size,
        input: config
            .inputs
            .iter()
            .map(|t| ModelInput {
                name: t.name.clone(),
                data_type: data_type(t.data_type),
                dims: t.dims.clone(),
            })
            .collect(),
        output: config
            .outputs
            .iter()
            .map(|t| ModelOutput {
                name: t.name.clone(),
                data_type: data_type(t.data_type),
                dims: t.dims.clone(),
            })
            .collect(),
        instance_group: vec![ModelInstanceGroup {
            name: config.name.clone(),
            count: i32::try_from(config.instances).unwrap_or(i32::MAX),
            kind: Kind::Cpu as i32,
        }],
        scheduling_choice: Some(SchedulingChoice::DynamicBatching(ModelDynamicBatching {
            preferred_batch_size: vec![max_batch_size],
            max_queue_delay_microseconds: config.max_queue_delay.as_micros() as u64,
            preserve_ordering: true,
            priority_levels: PRIORITY_LEVELS,
            default_priority_level: 2,
        })),
    }
}

/// A model's statistics as Triton's message.
fn statistics_message(stats: &triton::ModelStatistics) -> super::grpc_proto::ModelStatistics {
    use super::grpc_proto::{InferBatchStatistics, InferStatistics, StatisticDuration};
    let duration = |t: triton::Timed| {
        Some(StatisticDuration {
            count: t.count,
            ns: t.ns,
        })
    };
    super::grpc_proto::ModelStatistics {
        name: stats.name.clone(),
        version: VERSION.to_owned(),
        last_inference: stats.last_inference,
        inference_count: stats.inference_count,
        execution_count: stats.execution_count,
        inference_stats: Some(InferStatistics {
            success: duration(stats.success),
            fail: duration(stats.fail),
            queue: duration(stats.queue),
            compute_input: duration(stats.untimed()),
            compute_infer: duration(stats.compute_infer),
            compute_output: duration(stats.untimed()),
        }),
        batch_stats: stats
            .batches
            .iter()
            .map(|&(size, run)| InferBatchStatistics {
                batch_size: size,
                compute_input: duration(triton::Timed {
                    count: run.count,
                    ns: 0,
                }),
                compute_infer: duration(run),
                compute_output: duration(triton::Timed {
                    count: run.count,
                    ns: 0,
                }),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_reads_every_unit() {
        for (value, expected) in [
            ("5S", Duration::from_secs(5)),
            ("250m", Duration::from_millis(250)),
            ("7u", Duration::from_micros(7)),
            ("1H", Duration::from_secs(3600)),
        ] {
            assert_eq!(grpc_timeout(value), Some(expected), "{value}");
        }
        assert_eq!(grpc_timeout("soon"), None);
        assert_eq!(grpc_timeout(""), None);
    }
}
