//! Batching as one more tower layer in an axum service: requests to
//! `/embed` each carry one sentence; the handler calls a batched tower
//! service, and concurrent requests share one call of the inner service
//! (which stands in for a model that takes a batch).
//!
//! ```text
//! cargo run -p batch-serving --features tower --example tower_axum
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::routing::post;
use batch_serving::tower::{BatchLayer, ServingService};
use tower::{ServiceBuilder, ServiceExt, service_fn};

/// The handler's service: one sentence in, its "embedding" out.
type Embed = ServingService<String, Vec<f32>, String>;

async fn embed(
    State(service): State<Embed>,
    sentence: String,
) -> Result<String, (StatusCode, String)> {
    let vector = service
        .oneshot(sentence)
        .await
        .map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    Ok(format!("{vector:?}"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    // The inner service takes a whole batch, as a model would.
    let model = service_fn(move |sentences: Vec<String>| {
        counted.fetch_add(1, Ordering::Relaxed);
        async move {
            Ok::<_, String>(
                sentences
                    .iter()
                    .map(|s| vec![s.len() as f32, 1.0])
                    .collect::<Vec<_>>(),
            )
        }
    });
    let batched: Embed = ServiceBuilder::new()
        .layer(BatchLayer::new(|core| {
            core.batch_size(32).batch_timeout(Duration::from_millis(5))
        }))
        .service(model);
    let app = Router::new()
        .route("/embed", post(embed))
        .with_state(batched);

    // Sixteen concurrent requests, driven straight into the router.
    let requests = (0..16).map(|i| {
        let app = app.clone();
        async move {
            let request = Request::post("/embed").body(Body::from(format!("sentence {i:02}")))?;
            let response = app.oneshot(request).await?;
            assert_eq!(response.status(), StatusCode::OK);
            let body = axum::body::to_bytes(response.into_body(), 1 << 16).await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(String::from_utf8(body.to_vec())?)
        }
    });
    let answers = futures::future::try_join_all(requests)
        .await
        .map_err(|e| e.to_string())?;
    assert!(answers.iter().all(|a| a == "[11.0, 1.0]"), "{answers:?}");
    let inner_calls = calls.load(Ordering::Relaxed);
    println!("16 requests answered by {inner_calls} call(s) of the inner service");
    assert!(inner_calls < 16, "concurrent requests were batched");
    Ok(())
}
