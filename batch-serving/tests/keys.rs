//! Batch keys: a batch never mixes keys, and each key has its own timer.

#![allow(clippy::unwrap_used)] // a panicking unwrap is the failure a test wants

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use batch_serving::{Batch, BatchKey, Serving};
use support::Fake;
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn a_batch_never_mixes_keys() {
    let fake = Fake::new();
    let serving = fake
        .builder()
        .batch_size(4)
        .partitions(2)
        .key_by(|x: &u64| BatchKey::new(x % 3))
        .start()
        .unwrap();
    let outputs = serving.dispatch_many((0..30).collect()).await.unwrap();
    assert_eq!(
        outputs,
        (1..=30).collect::<Vec<_>>(),
        "order survives keyed splitting"
    );
    let batches = fake.recorded();
    let keys = fake.keys.lock().unwrap().clone();
    for (batch, key) in batches.iter().zip(keys) {
        assert!(
            batch.iter().all(|x| x % 3 == key.id()),
            "mixed batch {batch:?} under key {key}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn each_key_has_its_own_timer() {
    let log: Arc<Mutex<Vec<(u64, Duration)>>> = Arc::default();
    let t0 = Instant::now();
    let serving = Serving::new_async({
        let log = Arc::clone(&log);
        move |batch: Batch<u64>| {
            log.lock().unwrap().push((batch.key().id(), t0.elapsed()));
            async move { Ok::<_, std::convert::Infallible>(batch.to_vec()) }
        }
    })
    .batch_size(8)
    .partitions(2)
    .batch_timeout(Duration::from_millis(10))
    .key_by(|x: &u64| BatchKey::new(*x))
    .start()
    .unwrap();
    let a = support::spawn_dispatch(&serving, 1);
    tokio::time::sleep(Duration::from_millis(4)).await;
    let b = support::spawn_dispatch(&serving, 2);
    a.await.unwrap().unwrap();
    b.await.unwrap().unwrap();
    let log = log.lock().unwrap().clone();
    assert_eq!(
        log,
        vec![
            (1, Duration::from_millis(10)),
            (2, Duration::from_millis(14))
        ]
    );
}
