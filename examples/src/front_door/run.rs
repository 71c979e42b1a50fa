//! The model server's sockets: HTTP and gRPC served together until one
//! shutdown signal, then the drain of every serving within what is left of
//! the drain limit.

use std::future::Future;

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
    let summary = |name: &str, items: u64, batches: u64, finished: bool| {
        format!(
            "{name}: {items} item(s) in {batches} batch(es){}",
            if finished {
                ""
            } else {
                "; calls still queued were failed"
            }
        )
    };
    for (name, model) in door.oip().repository().iter() {
        let finished = model
            .serving()
            .shutdown_timeout(drain_left(stopped, limits))
            .await
            .is_ok();
        let stats = model.serving().stats();
        lines.push(summary(name, stats.items, stats.batches, finished));
    }
    if let Some(embedder) = door.embedder() {
        let finished = embedder
            .serving()
            .shutdown_timeout(drain_left(stopped, limits))
            .await
            .is_ok();
        let stats = embedder.serving().stats();
        lines.push(summary("/v1/embed", stats.items, stats.batches, finished));
    }
    lines
}
