//! What the cluster tests share besides the server: bounds on real time,
//! and a serving that holds its batches until the test lets them go.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use batch_serving::{Batch, Serving};
use tokio::sync::watch;

/// Bounds a test: anything that hangs fails here instead of stalling CI.
pub async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), future)
        .await
        .unwrap_or_else(|_| panic!("{what} hung"))
}

/// Waits until `condition` holds; a condition that never comes fails the
/// test instead of hanging it.
pub async fn eventually(what: &str, condition: impl Fn() -> bool) {
    for _ in 0..2000 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("never: {what}");
}

/// Real time for a node's first heartbeat to reach its caller.
pub async fn past_a_heartbeat() {
    tokio::time::sleep(batch_serving_nats::DEFAULT_HEARTBEAT * 2).await;
}

/// A serving that squares its items, records every item it ran, and holds
/// each batch until the gate is open.
pub struct Gated {
    pub serving: Serving<u32, u32, String>,
    pub ran: Arc<Mutex<Vec<u32>>>,
    pub gate: watch::Sender<bool>,
}

pub fn gated(batch_size: usize, queue_capacity: usize, open: bool) -> Gated {
    let ran: Arc<Mutex<Vec<u32>>> = Arc::default();
    let (gate, watcher) = watch::channel(open);
    let record = Arc::clone(&ran);
    let serving = Serving::new_async(move |batch: Batch<u32>| {
        let record = Arc::clone(&record);
        let mut watcher = watcher.clone();
        async move {
            record.lock().unwrap().extend(batch.iter().copied());
            let _ = watcher.wait_for(|open| *open).await;
            batch.emit("batch_len", batch.len());
            Ok::<_, String>(batch.iter().map(|x| x * x).collect())
        }
    })
    .batch_size(batch_size)
    .queue_capacity(queue_capacity)
    .batch_timeout(Duration::from_millis(1))
    .start()
    .unwrap();
    Gated { serving, ran, gate }
}
