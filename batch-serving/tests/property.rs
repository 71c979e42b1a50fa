//! The core promise under random concurrency, sizes, splits, partitions,
//! keys and cancellations: every caller gets exactly its own outputs, in
//! order, and no item runs twice or is lost.

#![allow(clippy::unwrap_used)] // a panicking unwrap is the failure a test wants

mod support;

use std::collections::HashMap;
use std::time::Duration;

use batch_serving::{BatchKey, Policy};
use proptest::prelude::*;
use support::Fake;

#[derive(Debug, Clone)]
struct Call {
    len: usize,
    cancel: bool,
}

fn calls() -> impl Strategy<Value = Vec<Call>> {
    prop::collection::vec(
        (1usize..20, prop::bool::weighted(0.2)).prop_map(|(len, cancel)| Call { len, cancel }),
        1..40,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn every_caller_gets_its_own_outputs_in_order(
        calls in calls(),
        batch_size in 1usize..9,
        partitions in 1usize..4,
        keys in 1u64..4,
        eager in any::<bool>(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
        runtime.block_on(async move {
            let fake = Fake::new();
            let serving = fake
                .builder()
                .batch_size(batch_size)
                .partitions(partitions)
                .batch_timeout(Duration::from_millis(3))
                .policy(if eager { Policy::Eager } else { Policy::Timeout })
                .key_by(move |x: &u64| BatchKey::new((x / 7) % keys))
                .start()
                .unwrap();
            let mut next = 0u64;
            let mut tasks = Vec::new();
            for call in &calls {
                let items: Vec<u64> = (next..next + call.len as u64).collect();
                next += call.len as u64;
                let s = serving.clone();
                let expected: Vec<u64> = items.iter().map(|x| x + 1).collect();
                let task = tokio::spawn(async move {
                    if items.len() == 1 { s.dispatch(items[0]).await.map(|y| vec![y]) } else { s.dispatch_many(items).await }
                });
                tasks.push((task, expected, call.cancel));
            }
            tokio::task::yield_now().await;
            let mut completed = Vec::new();
            for (task, expected, cancel) in tasks {
                if cancel {
                    task.abort();
                    let _ = task.await;
                } else {
                    completed.push((task.await.unwrap().unwrap(), expected));
                }
            }
            for (got, expected) in &completed {
                assert_eq!(got, expected, "a caller got someone else's outputs or out of order");
            }
            serving.shutdown().await;
            let mut runs: HashMap<u64, usize> = HashMap::new();
            for batch in fake.recorded() {
                assert!(!batch.is_empty() && batch.len() <= batch_size);
                let key = (batch[0] / 7) % keys;
                assert!(batch.iter().all(|x| (x / 7) % keys == key), "mixed keys in {batch:?}");
                for x in batch {
                    *runs.entry(x).or_default() += 1;
                }
            }
            assert!(runs.values().all(|&n| n == 1), "an item ran twice");
            for (_, expected) in &completed {
                for y in expected {
                    assert_eq!(runs.get(&(y - 1)), Some(&1), "a completed call's item was lost");
                }
            }
        });
    }
}
