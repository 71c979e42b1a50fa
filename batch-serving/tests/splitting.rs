//! Splitting: oversized calls fill the forming batch, continue in later
//! batches (on any partition) and come back in their original order.

#![allow(clippy::unwrap_used)] // a panicking unwrap is the failure a test wants

mod support;

use std::time::Duration;

use batch_serving::{Batch, Policy, Serving};
use support::Fake;

#[tokio::test(start_paused = true)]
async fn oversized_dispatch_is_split_and_reassembled_in_order() {
    let fake = Fake::new();
    let serving = fake.builder().batch_size(4).start().unwrap();
    let outputs = serving.dispatch_many((0..10).collect()).await.unwrap();
    assert_eq!(outputs, (1..=10).collect::<Vec<_>>());
    assert_eq!(
        fake.recorded(),
        vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7], vec![8, 9]]
    );
}

#[tokio::test(start_paused = true)]
async fn a_split_call_fills_the_room_left_in_the_forming_batch_first() {
    let fake = Fake::new();
    let serving = fake
        .builder()
        .batch_size(4)
        .batch_timeout(Duration::from_millis(10))
        .start()
        .unwrap();
    let single = support::spawn_dispatch(&serving, 100);
    support::until(|| serving.stats().queue_depth == 1).await;
    let many = serving.dispatch_many(vec![1, 2, 3, 4, 5]).await.unwrap();
    assert_eq!(many, vec![2, 3, 4, 5, 6]);
    assert_eq!(single.await.unwrap().unwrap(), 101);
    assert_eq!(fake.recorded(), vec![vec![100, 1, 2, 3], vec![4, 5]]);
}

#[tokio::test(start_paused = true)]
async fn pieces_finishing_out_of_order_on_other_partitions_still_come_back_in_order() {
    // Later pieces finish first: each batch sleeps less than the one before.
    let serving = Serving::new_async(|batch: Batch<u64>| async move {
        let first = batch[0];
        tokio::time::sleep(Duration::from_millis(100 - first)).await;
        Ok::<_, std::convert::Infallible>(batch.iter().map(|x| x * 10).collect())
    })
    .batch_size(3)
    .partitions(4)
    .policy(Policy::Eager)
    .start()
    .unwrap();
    let outputs = serving.dispatch_many((0..12).collect()).await.unwrap();
    assert_eq!(outputs, (0..12).map(|x| x * 10).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn empty_dispatch_many_returns_empty_without_queueing() {
    let fake = Fake::new();
    let serving = fake.builder().start().unwrap();
    assert_eq!(
        serving.dispatch_many(vec![]).await.unwrap(),
        Vec::<u64>::new()
    );
    assert_eq!(serving.stats().batches, 0);
    assert!(fake.recorded().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_call_larger_than_the_queue_is_admitted_in_pieces() {
    let fake = Fake::new();
    let serving = fake
        .builder()
        .batch_size(4)
        .queue_capacity(6)
        .start()
        .unwrap();
    let outputs = serving.dispatch_many((0..50).collect()).await.unwrap();
    assert_eq!(outputs, (1..=50).collect::<Vec<_>>());
    assert!(fake.recorded().iter().all(|b| b.len() <= 4));
}
