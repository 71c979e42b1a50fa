//! The gRPC service's own promises, with tonic's client on a socket and
//! the real MobileNet: an HTTP and a gRPC request meet in one batch; a full
//! queue is `RESOURCE_EXHAUSTED` with a retry hint; the `timeout`
//! parameter and `grpc-timeout` end the call in the serving too; a request that does not fit the model is `INVALID_ARGUMENT`
//! and queues nothing; and the answers equal the HTTP ones.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use batch_serving::Policy;
use batch_serving_examples::oip::grpc::grpc_service;
use batch_serving_examples::oip::grpc_proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use batch_serving_examples::oip::grpc_proto::infer_parameter::ParameterChoice;
use batch_serving_examples::oip::grpc_proto::model_infer_request::InferInputTensor;
use batch_serving_examples::oip::grpc_proto::{
    InferParameter, ModelConfigRequest, ModelInferRequest,
};
use batch_serving_examples::oip::{OipState, Repository, oip_router};
use batch_serving_ort::mobilenet::preprocess;
use batch_serving_ort::{ModelServing, ModelServingBuilder};
use tonic::Code;

/// MobileNet whose batches wait `window` to fill (up to 8), with a queue
/// of `capacity`, and the cat as raw little-endian f32 bytes.
fn mobilenet(window: Duration, capacity: usize) -> Option<(ModelServing, Vec<u8>)> {
    let files = common::mobilenet_files("the gRPC service test")?;
    let cat = std::fs::read(files.model.with_file_name("cat.jpg")).unwrap();
    let cat = preprocess(&cat)
        .unwrap()
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let serving = ModelServingBuilder::new(&files.model)
        .serving(move |core| {
            core.batch_size(8)
                .batch_timeout(window)
                .policy(Policy::Timeout)
                .queue_capacity(capacity)
                .name("grpc-test")
        })
        .start()
        .unwrap();
    Some((serving, cat))
}

fn infer_request(image: &[u8], shape: Vec<i64>) -> ModelInferRequest {
    ModelInferRequest {
        model_name: "mobilenet".to_owned(),
        inputs: vec![InferInputTensor {
            name: "input".to_owned(),
            datatype: "FP32".to_owned(),
            shape,
            ..Default::default()
        }],
        raw_input_contents: vec![image.to_vec()],
        ..Default::default()
    }
}

/// Serves `serving` over gRPC on a socket; returns the address.
async fn serve_grpc(serving: &ModelServing) -> (std::net::SocketAddr, OipState) {
    let state = OipState::new(Repository::from_servings([(
        "mobilenet".to_owned(),
        serving.clone(),
    )]));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let service = grpc_service(state.clone(), 64 << 20);
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(batch_serving_examples::oip::grpc::deadline_layer())
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    (address, state)
}

async fn client(
    address: std::net::SocketAddr,
) -> GrpcInferenceServiceClient<tonic::transport::Channel> {
    GrpcInferenceServiceClient::connect(format!("http://{address}"))
        .await
        .unwrap()
        .max_decoding_message_size(64 << 20)
}

fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_and_grpc_requests_batch_together_and_agree() {
    let Some((serving, cat)) = mobilenet(Duration::from_millis(300), 16) else {
        return;
    };
    let (address, state) = serve_grpc(&serving).await;
    let mut grpc = client(address).await;
    let config = grpc
        .model_config(ModelConfigRequest {
            name: "mobilenet".to_owned(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .config
        .unwrap();
    assert_eq!(
        (config.max_batch_size, config.input[0].dims.as_slice()),
        (8, &[3, 224, 224][..])
    );
    // One request over each protocol, at once: the 300 ms window puts them
    // in one batch of two.
    let app = oip_router(state.repository().clone());
    let http_body = serde_json::json!({
        "inputs": [{ "name": "input", "shape": [1, 3, 224, 224], "datatype": "FP32", "data": floats(&cat) }],
    })
    .to_string();
    let over_http = tokio::spawn(async move {
        use tower::ServiceExt;
        let response = app
            .oneshot(
                axum::http::Request::post("/v2/models/mobilenet/infer")
                    .body(axum::body::Body::from(http_body))
                    .unwrap(),
            )
            .await
            .unwrap();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
        answer["outputs"][0]["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect::<Vec<f32>>()
    });
    let over_grpc = grpc
        .model_infer(infer_request(&cat, vec![1, 3, 224, 224]))
        .await
        .unwrap()
        .into_inner();
    let http_logits = over_http.await.unwrap();
    assert_eq!(over_grpc.outputs[0].shape, [1, 1000]);
    let grpc_logits = floats(&over_grpc.raw_output_contents[0]);
    assert_eq!(grpc_logits.len(), 1000);
    for (a, b) in grpc_logits.iter().zip(&http_logits) {
        assert!((a - b).abs() < 1e-4, "{a} against {b}");
    }
    let stats = serving.serving().stats();
    assert_eq!(
        (stats.batches, stats.items),
        (1, 2),
        "not one batch: {stats:?}"
    );
    serving.serving().shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_a_deadline_and_a_bad_shape_each_get_their_status() {
    // A 2 s window and room for one item: the first request waits in the
    // queue, so the second finds it full.
    let Some((serving, cat)) = mobilenet(Duration::from_secs(2), 1) else {
        return;
    };
    let (address, _) = serve_grpc(&serving).await;
    let mut waiting = client(address).await;
    let mut second = client(address).await;
    let first = {
        let request = infer_request(&cat, vec![1, 3, 224, 224]);
        tokio::spawn(async move { waiting.model_infer(request).await })
    };
    while serving.serving().queued() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let refused = second
        .model_infer(infer_request(&cat, vec![1, 3, 224, 224]))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert_eq!(
        refused
            .metadata()
            .get("retry-after")
            .map(|v| v.to_str().unwrap()),
        Some("1")
    );
    assert_eq!(
        first.await.unwrap().unwrap().into_inner().outputs[0].shape,
        [1, 1000]
    );
    // With room again, a shape the model does not take is refused as the
    // client's error.
    let bad = second
        .model_infer(infer_request(
            &cat[..4 * 3 * 224 * 223],
            vec![1, 3, 224, 223],
        ))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");
    // The protocol's `timeout` parameter, 100 ms against the 2 s window:
    // the serving's deadline ends the call, DEADLINE_EXCEEDED, counted
    // expired.
    let mut timed = infer_request(&cat, vec![1, 3, 224, 224]);
    timed.parameters.insert(
        "timeout".to_owned(),
        InferParameter {
            parameter_choice: Some(ParameterChoice::Int64Param(100_000)),
        },
    );
    let late = second.model_infer(timed).await.unwrap_err();
    assert_eq!(late.code(), Code::DeadlineExceeded, "{late:?}");
    assert_eq!(serving.serving().stats().expired, 1);
    // grpc-timeout, 100 ms: the client's transport and the server race to
    // end the call at the same moment (DEADLINE_EXCEEDED or CANCELLED);
    // either way the call leaves the serving's queue, and is counted.
    let mut request = tonic::Request::new(infer_request(&cat, vec![1, 3, 224, 224]));
    request.set_timeout(Duration::from_millis(100));
    let ended = second.model_infer(request).await.unwrap_err();
    assert!(
        matches!(ended.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{ended:?}"
    );
    tokio::time::timeout(Duration::from_secs(5), async {
        let left = |s: batch_serving::Stats| s.expired + s.cancelled;
        while left(serving.serving().stats()) < 2 || serving.serving().queued() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    let stats = serving.serving().stats();
    assert_eq!((stats.rejected, stats.batches), (1, 1), "{stats:?}");
    serving.serving().shutdown().await;
}
