//! The model server's sockets: HTTP and gRPC served together until one
//! shutdown signal, then the drain of every serving within what is left of
//! the drain limit.

use std::future::Future;
use std::time::Duration;

use batch_serving::Serving;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

use super::door::FrontDoor;
use crate::oip::grpc::{deadline_layer, grpc_service};
use crate::serve::{HttpLimits, Stopped, drain_left, serve};

/// Serves `door` over HTTP on `http` and gRPC on `grpc` until `shutdown`
/// completes. Both stop accepting at once; requests in progress on either
/// get their answers within the drain limit.
///
/// # Errors
///
/// When the gRPC server fails.
pub async fn serve_both(
    http: TcpListener,
    grpc: TcpListener,
    door: &FrontDoor,
    max_body_bytes: usize,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()>,
) -> Result<Stopped, Box<dyn std::error::Error + Send + Sync>> {
    let app = door.router(max_body_bytes, limits.request_timeout);
    // The gRPC service stops when the HTTP server does, and finishes the
    // calls in progress as it goes.
    let (stop_grpc, grpc_stopped) = tokio::sync::oneshot::channel::<()>();
    let grpc = tokio::spawn(
        tonic::transport::Server::builder()
            .layer(deadline_layer())
            .add_service(grpc_service(door.oip().clone(), max_body_bytes))
            .serve_with_incoming_shutdown(
                // Without TCP_NODELAY an answer's last segment waits for
                // the client's delayed ACK: 40 ms on every lone call.
                TcpIncoming::from(grpc).with_nodelay(Some(true)),
                async {
                    let _ = grpc_stopped.await;
                },
            ),
    );
    let stopped = serve(http, app, limits, shutdown).await?;
    let _ = stop_grpc.send(());
    match tokio::time::timeout(drain_left(&stopped, &limits), grpc).await {
        Ok(Ok(Err(e))) => return Err(e.into()),
        Ok(Err(e)) => return Err(e.into()),
        // Finished, or the drain limit passed: its connections close as the
        // task is dropped.
        Ok(Ok(Ok(()))) | Err(_) => {}
    }
    Ok(stopped)
}

/// Shuts every serving down within what is left of the drain limit, and
/// says for each what it served (and whether calls still queued had to be
/// failed).
pub async fn drain(door: &FrontDoor, stopped: &Stopped, limits: &HttpLimits) -> Vec<String> {
    let mut lines = Vec::new();
    for (name, model) in door.oip().repository().iter() {
        lines.push(drain_one(name, model.serving(), drain_left(stopped, limits)).await);
    }
    if let Some(embedder) = door.embedder() {
        let left = drain_left(stopped, limits);
        lines.push(drain_one("/v1/embed", embedder.serving(), left).await);
    }
    lines
}

/// Shuts one serving down within `left`; one line of what it served.
async fn drain_one<I, O, E>(name: &str, serving: &Serving<I, O, E>, left: Duration) -> String
where
    I: Send + 'static,
    O: Send + 'static,
    E: Send + Sync + 'static,
{
    let finished = serving.shutdown_timeout(left).await.is_ok();
    let stats = serving.stats();
    format!(
        "{name}: {} item(s) in {} batch(es){}",
        stats.items,
        stats.batches,
        if finished {
            ""
        } else {
            "; calls still queued were failed"
        }
    )
}
