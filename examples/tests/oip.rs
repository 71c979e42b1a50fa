//! The Open Inference Protocol routes on the real models, driven without a
//! socket: metadata, JSON and binary tensors, batching across requests,
//! and a 400, 413 or 503 for what should get one, with nothing else lost.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use batch_serving::Policy;
use batch_serving_examples::oip::{OipState, Repository, oip_router, oip_router_with};
use batch_serving_ort::mobilenet::preprocess;
use batch_serving_ort::{ModelServing, ModelServingBuilder};
use serde_json::{Value, json};
use tower::ServiceExt;

/// MobileNet as a raw model serving (batch 8, a 30 ms window), with the
/// cat as a `[3, 224, 224]` tensor.
fn mobilenet() -> Option<(ModelServing, Vec<f32>)> {
    mobilenet_waiting(Duration::from_millis(30))
}

/// MobileNet whose batches wait up to `window` to fill.
fn mobilenet_waiting(window: Duration) -> Option<(ModelServing, Vec<f32>)> {
    let files = common::mobilenet_files("Open Inference Protocol test")?;
    let cat = std::fs::read(files.model.with_file_name("cat.jpg")).unwrap();
    let cat = preprocess(&cat).unwrap().iter().copied().collect();
    let serving = ModelServingBuilder::new(&files.model)
        .serving(move |core| {
            core.batch_size(8)
                .batch_timeout(window)
                .policy(Policy::Timeout)
                .queue_capacity(16)
                .name("oip-test")
        })
        .start()
        .unwrap();
    Some((serving, cat))
}

async fn send(
    app: &axum::Router,
    request: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let response = app.clone().oneshot(request).await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (status, headers, body.to_vec())
}

async fn get_json(app: &axum::Router, path: &str) -> (StatusCode, Value) {
    let (status, _, body) = send(app, Request::get(path).body(Body::empty()).unwrap()).await;
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

async fn infer_json(app: &axum::Router, model: &str, request: &Value) -> (StatusCode, Value) {
    let (status, _, body) = send(
        app,
        Request::post(format!("/v2/models/{model}/infer"))
            .header("content-type", "application/json")
            .body(Body::from(request.to_string()))
            .unwrap(),
    )
    .await;
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn image_request(images: &[&[f32]]) -> Value {
    let data: Vec<f32> = images.iter().flat_map(|i| i.iter().copied()).collect();
    json!({
        "id": "req-1",
        "inputs": [{ "name": "input", "shape": [images.len(), 3, 224, 224], "datatype": "FP32", "data": data }],
    })
}

fn logits(response: &Value) -> Vec<f32> {
    response["outputs"][0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect()
}

fn argmax(row: &[f32]) -> usize {
    (0..row.len())
        .max_by(|&a, &b| row[a].total_cmp(&row[b]))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_health_and_a_json_inference_of_the_cat() {
    let Some((serving, cat)) = mobilenet() else {
        return;
    };
    let app = oip_router(Repository::from_servings([(
        "mobilenet".to_owned(),
        serving,
    )]));
    let (status, server) = get_json(&app, "/v2").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        server["extensions"]
            .as_array()
            .unwrap()
            .contains(&json!("binary_tensor_data"))
    );
    for path in [
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/mobilenet/ready",
        "/v2/models/mobilenet/versions/1/ready",
    ] {
        let (status, _, _) = send(&app, Request::get(path).body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    let (status, meta) = get_json(&app, "/v2/models/mobilenet").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        meta["inputs"][0],
        json!({ "name": "input", "datatype": "FP32", "shape": [-1, 3, 224, 224] })
    );
    assert_eq!(meta["outputs"][0]["shape"], json!([-1, 1000]));
    let (status, missing) = get_json(&app, "/v2/models/resnet").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        missing["error"]
            .as_str()
            .unwrap()
            .contains("unknown model `resnet`"),
        "{missing}"
    );

    let (status, answer) = infer_json(&app, "mobilenet", &image_request(&[&cat])).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["model_name"], "mobilenet");
    assert_eq!(answer["id"], "req-1");
    assert_eq!(answer["outputs"][0]["shape"], json!([1, 1000]));
    assert!(
        (281..=285).contains(&argmax(&logits(&answer))),
        "a cat class"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_tensors_and_concurrent_requests_batch_and_match_single_ones() {
    let Some((serving, cat)) = mobilenet() else {
        return;
    };
    // A second serving whose batches wait long enough to fill: eight
    // concurrent clients fill exactly one, however slowly they arrive.
    let Some((filling, _)) = mobilenet_waiting(Duration::from_secs(20)) else {
        return;
    };
    let app = oip_router(Repository::from_servings([
        ("mobilenet".to_owned(), serving),
        ("filling".to_owned(), filling.clone()),
    ]));
    // A darker cat, so that the rows differ.
    let dim: Vec<f32> = cat.iter().map(|v| v * 0.5).collect();
    let (_, single) = infer_json(&app, "mobilenet", &image_request(&[&cat])).await;
    let (_, single_dim) = infer_json(&app, "mobilenet", &image_request(&[&dim])).await;
    let (single, single_dim) = (logits(&single), logits(&single_dim));

    // The binary extension: the JSON part, then the raw bytes.
    let header = json!({
        "inputs": [{ "name": "input", "shape": [2, 3, 224, 224], "datatype": "FP32", "parameters": { "binary_data_size": 2 * 4 * cat.len() } }],
        "outputs": [{ "name": "output", "parameters": { "binary_data": true } }],
    })
    .to_string();
    let mut body = header.clone().into_bytes();
    body.extend(cat.iter().chain(&dim).flat_map(|v| v.to_le_bytes()));
    let (status, headers, answer) = send(
        &app,
        Request::post("/v2/models/mobilenet/versions/1/infer")
            .header("inference-header-content-length", header.len())
            .body(Body::from(body))
            .unwrap(),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let json_length: usize = headers["inference-header-content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let meta: Value = serde_json::from_slice(&answer[..json_length]).unwrap();
    assert_eq!(meta["outputs"][0]["shape"], json!([2, 1000]));
    assert_eq!(
        meta["outputs"][0]["parameters"]["binary_data_size"],
        json!(2 * 4000)
    );
    let rows: Vec<f32> = answer[json_length..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-3);
    assert!(close(&rows[..1000], &single) && close(&rows[1000..], &single_dim));

    // Eight clients at once: their calls share a batch, and each gets its own row.
    let calls: Vec<_> = (0..8)
        .map(|i| {
            let app = app.clone();
            let image = if i % 2 == 0 { cat.clone() } else { dim.clone() };
            tokio::spawn(async move {
                (
                    i,
                    infer_json(&app, "filling", &image_request(&[&image])).await,
                )
            })
        })
        .collect();
    for call in calls {
        let (i, (status, answer)) = call.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{answer}");
        let expected = if i % 2 == 0 { &single } else { &single_dim };
        assert!(
            close(&logits(&answer), expected),
            "client {i} got another client's row"
        );
    }
    let stats = filling.serving().stats();
    assert_eq!(
        (stats.batches, stats.items),
        (1, 8),
        "eight clients, one batch"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_400_oversize_413_overload_503_and_good_ones_still_pass() {
    let Some((serving, cat)) = mobilenet() else {
        return;
    };
    let handle = serving.clone();
    let repository = Repository::from_servings([("mobilenet".to_owned(), serving)]);
    let app = oip_router_with(
        OipState::new(repository),
        4 * 1024 * 1024,
        Duration::from_secs(30),
    );
    let input = |shape: Value, datatype: &str, data: Value| json!({ "inputs": [{ "name": "input", "shape": shape, "datatype": datatype, "data": data }] });
    let cases = [
        (
            "wrong shape",
            input(
                json!([1, 3, 224, 223]),
                "FP32",
                json!(vec![0.0; 3 * 224 * 223]),
            ),
            "[3, 224, 224]",
        ),
        (
            "wrong datatype",
            input(
                json!([1, 3, 224, 224]),
                "INT64",
                json!(vec![0; 3 * 224 * 224]),
            ),
            "takes FP32",
        ),
        (
            "too little data",
            input(json!([1, 3, 224, 224]), "FP32", json!([1.0, 2.0])),
            "needs 150528",
        ),
        (
            "zero batch",
            input(json!([0, 3, 224, 224]), "FP32", json!([])),
            "is 0",
        ),
        (
            "no batch axis",
            input(json!([]), "FP32", json!([])),
            "batch axis",
        ),
        (
            "wrong input name",
            json!({ "inputs": [{ "name": "pixels", "shape": [1], "datatype": "FP32", "data": [1.0] }] }),
            "no input `pixels`",
        ),
        (
            "wrong output name",
            json!({ "inputs": [], "outputs": [{ "name": "probs" }] }),
            "no output `probs`",
        ),
        ("not JSON", json!("{"), "invalid inference request"),
        (
            "batch larger than the queue",
            input(json!([17, 1]), "FP32", json!(vec![0.0; 17])),
            "",
        ),
    ];
    for (case, request, message) in cases {
        let (status, answer) = infer_json(&app, "mobilenet", &request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{case}: {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(message) && !error.is_empty(),
            "{case}: {answer}"
        );
    }
    let (status, answer) = infer_json(&app, "resnet", &image_request(&[&cat])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    // A binary header that claims more than was sent.
    let (status, _, _) = send(
        &app,
        Request::post("/v2/models/mobilenet/infer")
            .header("inference-header-content-length", "999999")
            .body(Body::from("{}"))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Nothing bad reached the queue.
    assert_eq!(handle.serving().stats().items, 0);

    // An oversize body: 413 with the JSON error shape.
    let big = vec![b' '; 5 * 1024 * 1024];
    let (status, _, body) = send(
        &app,
        Request::post("/v2/models/mobilenet/infer")
            .body(Body::from(big))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(serde_json::from_slice::<Value>(&body).unwrap()["error"].is_string());

    // A full queue: 503 with Retry-After, at once.
    let held = handle.serving().try_reserve(16).unwrap();
    let (status, headers, _) = send(
        &app,
        Request::post("/v2/models/mobilenet/infer")
            .body(Body::from(image_request(&[&cat]).to_string()))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers["retry-after"], "1");
    drop(held);
    let (status, answer) = infer_json(&app, "mobilenet", &image_request(&[&cat])).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!((281..=285).contains(&argmax(&logits(&answer))));
    assert_eq!(handle.serving().stats().items, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minilm_takes_int64_token_ids_of_any_length() {
    let Some(files) = common::minilm_files("the MiniLM Open Inference Protocol test") else {
        return;
    };
    let serving = ModelServingBuilder::new(&files.model).start().unwrap();
    let inputs: Vec<String> = serving
        .signature()
        .inputs
        .iter()
        .map(|s| s.name.clone())
        .collect();
    let app = oip_router(Repository::from_servings([("minilm".to_owned(), serving)]));
    let (_, meta) = get_json(&app, "/v2/models/minilm").await;
    assert_eq!(meta["inputs"][0]["datatype"], "INT64");
    assert_eq!(meta["inputs"][0]["shape"], json!([-1, -1]));
    // "[CLS] hello world [SEP]" in the model's vocabulary, twice.
    let ids = [101, 7592, 2088, 102];
    let tensors: Vec<Value> = inputs
        .iter()
        .map(|name| {
            let data: Vec<i64> = match name.as_str() {
                "input_ids" => ids.iter().chain(&ids).copied().collect(),
                "attention_mask" => vec![1; 8],
                _ => vec![0; 8],
            };
            json!({ "name": name, "shape": [2, 4], "datatype": "INT64", "data": data })
        })
        .collect();
    let (status, answer) = infer_json(&app, "minilm", &json!({ "inputs": tensors })).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let hidden = &answer["outputs"][0];
    assert_eq!(hidden["shape"], json!([2, 4, 384]));
    let values = hidden["data"].as_array().unwrap();
    assert_eq!(
        values[..4 * 384],
        values[4 * 384..],
        "the same sentence twice, the same states"
    );
}

/// What the ecosystem's clients ask of a server beyond inference: JSON
/// health bodies (the KServe SDK parses them), Triton's model
/// configuration, statistics and repository index (tritonclient and
/// perf_analyzer read them), and requests as those clients write them:
/// unknown top-level fields, gzip and deflate bodies, a priority, and the
/// classification extension. A decompression bomb gets 413 and nothing is
/// allocated for it past the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_config_stats_index_compression_priority_and_classification() {
    use std::io::Write;
    let Some((serving, cat)) = mobilenet() else {
        return;
    };
    let repository = Repository::from_servings([("mobilenet".to_owned(), serving.clone())])
        .with_labels(
            "mobilenet",
            (0..1000).map(|i| format!("class {i}")).collect(),
        );
    let app = oip_router_with(OipState::new(repository), 8 << 20, Duration::from_secs(30));
    assert_eq!(
        get_json(&app, "/v2/health/live").await,
        (StatusCode::OK, json!({ "live": true }))
    );
    assert_eq!(
        get_json(&app, "/v2/health/ready").await,
        (StatusCode::OK, json!({ "ready": true }))
    );
    let (status, ready) = get_json(&app, "/v2/models/mobilenet/ready").await;
    assert_eq!((status, &ready["ready"]), (StatusCode::OK, &json!(true)));
    let (_, server) = get_json(&app, "/v2").await;
    assert!(
        server["extensions"]
            .as_array()
            .unwrap()
            .contains(&json!("classification"))
    );

    let (status, config) = get_json(&app, "/v2/models/mobilenet/config").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(config["max_batch_size"], 8);
    assert_eq!(config["input"][0]["dims"], json!([3, 224, 224]));
    assert_eq!(config["input"][0]["data_type"], "TYPE_FP32");
    assert_eq!(config["output"][0]["dims"], json!([1000]));
    assert_eq!(
        config["dynamic_batching"]["max_queue_delay_microseconds"],
        30_000
    );
    assert_eq!(config["instance_group"][0]["count"], 1);
    let (_, versioned) = get_json(&app, "/v2/models/mobilenet/versions/1/config").await;
    assert_eq!(versioned, config);

    // As the KServe SDK writes it: model_name and model_version in the body;
    // a priority; the top three classes of the output, labelled.
    let mut request = image_request(&[&cat]);
    request["model_name"] = json!("mobilenet");
    request["model_version"] = json!("1");
    request["parameters"] = json!({ "priority": 1 });
    request["outputs"] = json!([{ "name": "output", "parameters": { "classification": 3 } }]);
    let (status, classes) = infer_json(&app, "mobilenet", &request).await;
    assert_eq!(status, StatusCode::OK, "{classes}");
    let output = &classes["outputs"][0];
    assert_eq!(
        (output["datatype"].as_str(), &output["shape"]),
        (Some("BYTES"), &json!([1, 3]))
    );
    let top = output["data"][0].as_str().unwrap();
    let class: usize = top.split(':').nth(1).unwrap().parse().unwrap();
    assert!((281..=285).contains(&class), "not a cat: {top}");
    assert!(top.ends_with(&format!(":class {class}")), "{top}");
    request["parameters"] = json!({ "priority": 9 });
    assert_eq!(
        infer_json(&app, "mobilenet", &request).await.0,
        StatusCode::BAD_REQUEST
    );
    request["parameters"] = json!({});
    request["outputs"] = json!([{ "name": "output", "parameters": { "classification": 0 } }]);
    assert_eq!(
        infer_json(&app, "mobilenet", &request).await.0,
        StatusCode::BAD_REQUEST
    );

    // The same request gzipped and deflated answers the raw logits.
    let plain = image_request(&[&cat]).to_string();
    let expected = logits(
        &infer_json(&app, "mobilenet", &image_request(&[&cat]))
            .await
            .1,
    );
    for (encoding, body) in [
        ("gzip", {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(plain.as_bytes()).unwrap();
            e.finish().unwrap()
        }),
        ("deflate", {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(plain.as_bytes()).unwrap();
            e.finish().unwrap()
        }),
    ] {
        let (status, _, answer) = send(
            &app,
            Request::post("/v2/models/mobilenet/infer")
                .header("content-type", "application/json")
                .header("content-encoding", encoding)
                .body(Body::from(body))
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{encoding}");
        let answer: Value = serde_json::from_slice(&answer).unwrap();
        assert_eq!(logits(&answer), expected, "{encoding}");
    }
    // 64 MiB of zeros in well under the 8 MiB body limit: refused at the limit.
    let bomb = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(&vec![0u8; 64 << 20]).unwrap();
        e.finish().unwrap()
    };
    let (status, _, _) = send(
        &app,
        Request::post("/v2/models/mobilenet/infer")
            .header("content-encoding", "gzip")
            .body(Body::from(bomb))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    let (status, stats) = get_json(&app, "/v2/models/mobilenet/stats").await;
    assert_eq!(status, StatusCode::OK);
    let model = &stats["model_stats"][0];
    // Four answered inferences of one image each, in four batches of one.
    assert_eq!(model["inference_count"], 4, "{stats}");
    assert_eq!(model["inference_stats"]["success"]["count"], 4, "{stats}");
    assert_eq!(model["batch_stats"][0]["batch_size"], 1, "{stats}");
    assert_eq!(
        model["batch_stats"][0]["compute_infer"]["count"],
        model["execution_count"]
    );
    let (_, all) = get_json(&app, "/v2/models/stats").await;
    assert_eq!(all["model_stats"][0]["name"], "mobilenet");
    let (status, _, index) = send(
        &app,
        Request::post("/v2/repository/index")
            .body(Body::from("{}"))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let index: Value = serde_json::from_slice(&index).unwrap();
    assert_eq!(
        index,
        json!([{ "name": "mobilenet", "version": "1", "state": "READY", "reason": "" }])
    );
    serving.serving().shutdown().await;
    let (status, ready) = get_json(&app, "/v2/health/ready").await;
    assert_eq!(
        (status, ready),
        (StatusCode::SERVICE_UNAVAILABLE, json!({ "ready": false }))
    );
}
