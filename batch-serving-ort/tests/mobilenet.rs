//! MobileNetV2 through the serving, on the real model and ONNX Runtime.

#![allow(clippy::unwrap_used)]

mod support;

use batch_serving::Error;
use batch_serving_ort::mobilenet::preprocess;
use batch_serving_ort::{MobileNet, ModelInputs, ModelServingBuilder, OrtError, SessionOptions};
use ndarray::{Array3, ArrayD};

fn logits(outputs: &batch_serving_ort::ModelOutputs) -> ArrayD<f32> {
    outputs.first().and_then(|t| t.as_f32()).unwrap().to_owned()
}

fn max_abs_diff(a: &ArrayD<f32>, b: &ArrayD<f32>) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cat_and_dogs_get_their_classes() {
    let Some(files) = support::mobilenet() else {
        return;
    };
    let classifier = MobileNet::builder(&files).unwrap().start().unwrap();
    let cat = classifier
        .classify(support::sample(&files, "cat.jpg"))
        .await
        .unwrap();
    let dogs = classifier
        .classify(support::sample(&files, "dogs.jpg"))
        .await
        .unwrap();
    assert!(
        (281..=285).contains(&cat[0].class),
        "cat top-1 was {:?}",
        cat[0]
    );
    assert!(
        (151..=268).contains(&dogs[0].class),
        "dogs top-1 was {:?}",
        dogs[0]
    );
    assert_eq!(cat.len(), 5);
    assert!(cat.windows(2).all(|w| w[0].probability >= w[1].probability));
    assert!(cat[0].label.contains("cat"), "{}", cat[0].label);
}

/// Inputs that differ from each other: the two photos and synthetic
/// patterns, so a misrouted output would not match its single-item run.
fn varied_inputs(files: &batch_serving_ort::MobileNetFiles, n: usize) -> Vec<Array3<f32>> {
    let photos = [
        preprocess(&support::sample(files, "cat.jpg")).unwrap(),
        preprocess(&support::sample(files, "dogs.jpg")).unwrap(),
    ];
    (0..n)
        .map(|i| match i % 3 {
            0 | 1 => photos[i % 3].mapv(|v| v * (1.0 - 0.01 * i as f32)),
            _ => Array3::from_shape_fn((3, 224, 224), |(c, y, x)| {
                ((c * 7 + y * 3 + x * (i + 1)) % 97) as f32 / 48.0 - 1.0
            }),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_outputs_match_single_item_outputs_at_batch_1_8_and_32() {
    let Some(files) = support::mobilenet() else {
        return;
    };
    let inputs = varied_inputs(&files, 32);
    let item = |t: &Array3<f32>| ModelInputs::new().with("input", t.clone());
    let single = ModelServingBuilder::new(&files.model)
        .serving(|core| core.batch_size(1))
        .start()
        .unwrap();
    let mut expected = Vec::new();
    for input in &inputs {
        expected.push(logits(&single.dispatch(item(input)).await.unwrap()));
    }
    for batch_size in [1, 8, 32] {
        let serving = ModelServingBuilder::new(&files.model)
            .session_options(SessionOptions::default().intra_threads(2))
            .serving(move |core| {
                core.batch_size(batch_size)
                    .batch_timeout(std::time::Duration::from_secs(60))
            })
            .start()
            .unwrap();
        let outputs = serving
            .dispatch_many(inputs[..batch_size].iter().map(item).collect())
            .await
            .unwrap();
        let stats = serving.serving().stats();
        assert_eq!(
            (stats.batches, stats.items),
            (1, batch_size as u64),
            "one full batch of {batch_size}"
        );
        for (i, output) in outputs.iter().enumerate() {
            let diff = max_abs_diff(&logits(output), &expected[i]);
            assert!(
                diff <= 1e-4,
                "batch {batch_size}, item {i}: max abs diff {diff}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_item_fails_only_its_own_caller() {
    let Some(files) = support::mobilenet() else {
        return;
    };
    let classifier = MobileNet::builder(&files)
        .unwrap()
        .serving(|core| {
            core.batch_size(8)
                .batch_timeout(std::time::Duration::from_millis(50))
        })
        .start()
        .unwrap();
    let cat = support::sample(&files, "cat.jpg");
    let mut calls = Vec::new();
    for i in 0..6 {
        let bytes = if i == 3 {
            b"GIF89a not really".to_vec()
        } else {
            cat.clone()
        };
        let classifier = classifier.clone();
        calls.push(tokio::spawn(
            async move { classifier.classify(bytes).await },
        ));
    }
    // A raw tensor of the wrong shape, through the generic model serving.
    let wrong = classifier
        .model()
        .dispatch(ModelInputs::new().with("input", Array3::<f32>::zeros((3, 200, 200))))
        .await;
    assert!(
        matches!(wrong, Err(Error::Preprocess(OrtError::WrongShape { .. }))),
        "{wrong:?}"
    );
    let missing = classifier
        .model()
        .dispatch(ModelInputs::new().with("pixels", Array3::<f32>::zeros((3, 224, 224))))
        .await;
    assert!(
        matches!(
            missing,
            Err(Error::Preprocess(OrtError::MissingInput { .. }))
        ),
        "{missing:?}"
    );
    let dtype = classifier
        .model()
        .dispatch(ModelInputs::new().with("input", ndarray::Array3::<i64>::zeros((3, 224, 224))))
        .await;
    assert!(
        matches!(dtype, Err(Error::Preprocess(OrtError::WrongDtype { .. }))),
        "{dtype:?}"
    );
    for (i, call) in calls.into_iter().enumerate() {
        let result = call.await.unwrap();
        if i == 3 {
            assert!(
                matches!(result, Err(Error::Preprocess(OrtError::Image(_)))),
                "{result:?}"
            );
        } else {
            assert!((281..=285).contains(&result.unwrap()[0].class));
        }
    }
    let stats = classifier.serving().stats();
    assert_eq!(
        stats.items, 5,
        "only the five good images reached the model"
    );
    assert_eq!(stats.failed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_batch_axis_limits_batch_size_and_pads_smaller_batches() {
    let Some(files) = support::mobilenet() else {
        return;
    };
    let fixed = |n: usize| SessionOptions::default().fix_dimension("batch_size", n);
    let too_big = ModelServingBuilder::new(&files.model)
        .session_options(fixed(1))
        .serving(|core| core.batch_size(8))
        .start();
    assert!(
        matches!(
            &too_big,
            Err(OrtError::FixedBatchAxis {
                fixed: 1,
                batch_size: 8,
                ..
            })
        ),
        "{too_big:?}"
    );
    let inputs = varied_inputs(&files, 3);
    let item = |t: &Array3<f32>| ModelInputs::new().with("input", t.clone());
    let single = ModelServingBuilder::new(&files.model)
        .session_options(fixed(1))
        .serving(|core| core.batch_size(1))
        .start()
        .unwrap();
    let padded = ModelServingBuilder::new(&files.model)
        .session_options(fixed(4))
        .serving(|core| core.batch_size(4))
        .start()
        .unwrap();
    let outputs = padded
        .dispatch_many(inputs.iter().map(item).collect())
        .await
        .unwrap();
    assert_eq!(outputs.len(), 3);
    for (input, output) in inputs.iter().zip(&outputs) {
        let alone = logits(&single.dispatch(item(input)).await.unwrap());
        assert!(max_abs_diff(&logits(output), &alone) <= 1e-4);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_unfit_models_fail_start_with_a_clear_error() {
    let Some(files) = support::mobilenet() else {
        return;
    };
    let missing =
        ModelServingBuilder::new(files.model.with_file_name("no-such-model.onnx")).start();
    let message = missing.as_ref().map(|_| ()).unwrap_err().to_string();
    assert!(message.contains("no-such-model.onnx"), "{message}");

    let mut wrong_labels = files.clone();
    let dir = std::env::temp_dir().join(format!("bs-labels-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    wrong_labels.labels = dir.join("ten.txt");
    std::fs::write(
        &wrong_labels.labels,
        (0..10).map(|i| format!("class{i}\n")).collect::<String>(),
    )
    .unwrap();
    let unfit = MobileNet::builder(&wrong_labels).unwrap().start();
    assert!(matches!(&unfit, Err(OrtError::Labels(_))), "{unfit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cuda_without_the_feature_is_an_error_not_a_cpu_fallback() {
    let Some(files) = support::mobilenet() else {
        return;
    };
    let options = SessionOptions::default()
        .execution_provider(batch_serving_ort::ExecutionProvider::Cuda { device_id: 0 });
    let result = ModelServingBuilder::new(&files.model)
        .session_options(options)
        .start();
    assert!(
        matches!(&result, Err(OrtError::ExecutionProvider { .. })),
        "{result:?}"
    );
}
