//! Priorities: higher-priority items enter the next batch first.

#![allow(clippy::unwrap_used)] // a panicking unwrap is the failure a test wants

mod support;

use batch_serving::{CallOptions, Policy, Priority};
use support::{Behaviour, Fake};

#[tokio::test(start_paused = true)]
async fn high_priority_items_enter_the_next_batch_first() {
    let fake = Fake::new();
    let serving = fake
        .builder()
        .batch_size(2)
        .policy(Policy::Eager)
        // A batch handed ahead to a busy partition is fixed when handed, so
        // strict priority order needs pipelining off.
        .pipeline(false)
        .start()
        .unwrap();
    let blocker = support::occupy_partition(&fake, &serving).await;
    let mut calls = Vec::new();
    for (item, priority) in [
        (1, Priority::Low),
        (2, Priority::Normal),
        (3, Priority::High),
        (4, Priority::Normal),
        (5, Priority::High),
    ] {
        let s = serving.clone();
        calls.push(tokio::spawn(async move {
            s.dispatch_with(item, CallOptions::new().priority(priority))
                .await
        }));
        support::until(|| serving.stats().queue_depth == item).await;
    }
    fake.set(Behaviour::Ok);
    fake.gate.open();
    blocker.await.unwrap().unwrap();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(
        fake.recorded(),
        vec![vec![0], vec![3, 5], vec![2, 4], vec![1]]
    );
}
