//! A serving exported through NATS, and a caller on another machine using
//! it with the verbs of a local serving: here both in one process, on a
//! nats-server you start.
//!
//! ```text
//! nats-server -a 127.0.0.1 -p 4222 &     # or: source scripts/nats-server.sh && nats_server
//! cargo run -p batch-serving-nats --example node_and_remote
//! NATS_URL=127.0.0.1:4333 cargo run -p batch-serving-nats --example node_and_remote
//! ```
//!
//! The node runs a batched look-up (a stand-in for a database read that is
//! cheaper for many keys at once); 32 concurrent remote callers each ask
//! for one key; their calls reach the node's serving as separate calls and
//! batch with each other there. Then the same handle's deadline, a many-item
//! call and a stream of pieces.

use std::time::Duration;

use batch_serving::{Batch, CallOptions, Serving};
use batch_serving_nats::{Node, RemoteEvent, RemoteServing};
use futures::StreamExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "127.0.0.1:4222".to_owned());
    let Ok(client) = async_nats::connect(&url).await else {
        eprintln!(
            "no nats-server at {url}: start one (`nats-server -a 127.0.0.1 -p 4222`, or \
             `source scripts/nats-server.sh && nats_server` to fetch one), or set NATS_URL"
        );
        std::process::exit(1);
    };

    // On the serving machine: a serving like any local one, exported.
    let lookups = Serving::new(|keys: Batch<u64>| {
        // One round trip for the whole batch, as `WHERE id IN (...)`.
        Ok::<_, String>(keys.iter().map(|key| format!("row {key}")).collect())
    })
    .batch_size(16)
    .batch_timeout(Duration::from_millis(5))
    .start()?;
    let node = Node::builder(client.clone(), "lookups", lookups.clone())
        .start()
        .await?;

    // On the calling machine: a handle with the same verbs.
    let remote = RemoteServing::<u64, String>::builder(client, "lookups")
        .connect()
        .await?;
    remote.wait_for_nodes(1, Duration::from_secs(2)).await;

    let calls: Vec<_> = (0..32u64)
        .map(|key| {
            let remote = remote.clone();
            tokio::spawn(async move { remote.dispatch(key).await })
        })
        .collect();
    for (key, call) in calls.into_iter().enumerate() {
        // Each caller gets exactly its own row back.
        assert_eq!(call.await??, format!("row {key}"));
    }
    let stats = lookups.stats();
    println!(
        "32 remote calls ran as {} batch(es) on node {} (mean {:.1} keys per batch)",
        stats.batches,
        node.id(),
        stats.mean_batch_size
    );
    assert!(
        stats.batches < 32,
        "remote calls batch together on the node"
    );

    // Many items in one call, their rows in order.
    let rows = remote.dispatch_many(vec![7, 8, 9]).await?;
    assert_eq!(rows, ["row 7", "row 8", "row 9"]);

    // A deadline travels with the call and is enforced on both sides.
    let urgent = CallOptions::new().timeout(Duration::from_millis(500));
    println!("{}", remote.dispatch_with(42, urgent).await?);

    // A stream of pieces as the node runs them.
    let mut events = remote.dispatch_stream((100..140).collect());
    let mut received = 0;
    while let Some(event) = events.next().await {
        if let RemoteEvent::Output { outputs, .. } = event? {
            received += outputs.len();
        }
    }
    assert_eq!(received, 40);
    println!("streamed 40 rows in pieces");

    node.stop().await?;
    lookups.shutdown().await;
    Ok(())
}
