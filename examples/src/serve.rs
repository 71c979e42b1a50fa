//! Serving a router over HTTP/1.1 with the limits a public server needs:
//! a deadline for each request's head (hyper's header timeout), a deadline
//! for the rest of the request and its answer (the router's timeout layer,
//! see [`harden`](crate::json_errors::harden)), and a deadline for the
//! drain at shutdown. Without them one client that sends half a request
//! holds a socket for ever, and keeps a shutting-down server alive with it.
//!
//! What a client sees at shutdown: the listener closes at once, so new
//! connections are refused; requests already being read or answered get
//! their answers until the drain deadline, after which their connections are
//! closed without one; idle keep-alive connections are closed, so a request
//! written on one just as the server stops can meet a closed connection.
//! Clients retry such requests on a new connection (every request here is
//! idempotent).

use std::future::Future;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::setup::millis;

/// The time limits of an HTTP server, as flags with `BS_*` fallbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args)]
pub struct HttpLimits {
    /// The most time a client may take to send a request's head, in ms;
    /// the connection is closed after it.
    #[arg(long = "header-timeout-ms", env = "BS_HEADER_TIMEOUT_MS", default_value = "10000", value_parser = millis)]
    pub header_timeout: Duration,
    /// The most time from a request's head to its answer, the body's upload
    /// included, in ms; the client gets 408 after it, and the call is
    /// withdrawn.
    #[arg(long = "request-timeout-ms", env = "BS_REQUEST_TIMEOUT_MS", default_value = "30000", value_parser = millis)]
    pub request_timeout: Duration,
    /// The most time shutdown waits for requests in progress, in ms; their
    /// connections are closed after it.
    #[arg(long = "drain-timeout-ms", env = "BS_DRAIN_TIMEOUT_MS", default_value = "10000", value_parser = millis)]
    pub drain_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(10),
        }
    }
}

/// How a server stopped.
#[derive(Debug, Clone, Copy)]
pub struct Stopped {
    /// When the shutdown signal came: the drain deadline counts from here.
    pub signalled_at: Instant,
    /// Whether every connection finished within the drain deadline (false:
    /// some were closed without an answer).
    pub drained: bool,
}

/// Serves `app` on `listener` until `shutdown` completes, then drains
/// within [`HttpLimits::drain_timeout`].
///
/// # Errors
///
/// None at present: accept errors (too many open files, say) are logged and
/// retried after a pause, since they pass.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<Stopped> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        tracing::warn!(%error, "accept failed; retrying");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let service = TowerToHyperService::new(app.clone());
                let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
                connections.spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    let signalled_at = Instant::now();
    drop(listener);
    let drain = async {
        graceful.shutdown().await;
        while connections.join_next().await.is_some() {}
    };
    let drained = tokio::time::timeout_at(signalled_at + limits.drain_timeout, drain)
        .await
        .is_ok();
    // Dropping the set aborts the connections still open.
    Ok(Stopped {
        signalled_at,
        drained,
    })
}

/// Completes on Ctrl-C (SIGINT), saying so.
pub async fn ctrl_c() {
    let _ = tokio::signal::ctrl_c().await;
    println!("shutting down: finishing requests in progress");
}

/// What is left of the drain deadline, for the serving's own shutdown.
pub fn drain_left(stopped: &Stopped, limits: &HttpLimits) -> Duration {
    (stopped.signalled_at + limits.drain_timeout).saturating_duration_since(Instant::now())
}
