//! Finding the nodes and their load: every node answers the service API's
//! `$SRV.STATS` request with its report, asked for at each refresh tick,
//! and at once when a call is refused before any load is known.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_nats::Client;
use bytes::Bytes;
use futures::StreamExt;
use tokio::time::Instant;

use super::route::Routes;
use crate::report::NodeReport;

/// How long a call that was refused before any load was known waits for
/// the nodes' reports.
pub(super) const DISCOVERY_WAIT: Duration = Duration::from_millis(50);

/// Asks every node for its report at each tick and keeps the table fresh
/// (only the server's limit without routing by load).
pub(super) async fn refresh(
    client: Client,
    service: String,
    routes: Arc<Routes>,
    max_payload: Arc<AtomicUsize>,
    every: Duration,
    route_by_load: bool,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        max_payload.store(client.server_info().max_payload, Ordering::Relaxed);
        if !route_by_load {
            continue;
        }
        // Replies that take longer than half a tick count in the next round.
        if let Some(reports) = gather(&client, &service, every / 2).await {
            routes.update(reports, Instant::now(), every * 4);
        }
    }
}

/// One `$SRV.STATS` round: every node of the service answers with its
/// report; those heard within `wait` are returned. `None` when the request
/// could not be sent.
pub(super) async fn gather(
    client: &Client,
    service: &str,
    wait: Duration,
) -> Option<Vec<NodeReport>> {
    let inbox = client.new_inbox();
    let mut replies = client.subscribe(inbox.clone()).await.ok()?;
    client
        .publish_with_reply(format!("$SRV.STATS.{service}"), inbox, Bytes::new())
        .await
        .ok()?;
    let until = Instant::now() + wait;
    let mut reports = Vec::new();
    while let Ok(Some(message)) = tokio::time::timeout_at(until, replies.next()).await {
        if let Some(report) = read_report(&message.payload) {
            reports.push(report);
        }
    }
    Some(reports)
}

/// A node's report from a `$SRV.STATS` reply; `None` for anything else.
fn read_report(payload: &[u8]) -> Option<NodeReport> {
    let stats: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let data = stats
        .get("endpoints")?
        .as_array()?
        .first()?
        .get("data")?
        .clone();
    serde_json::from_value(data).ok()
}
