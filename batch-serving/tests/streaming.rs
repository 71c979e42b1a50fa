//! Streaming: one output event per executed piece with its offset, and hooks
//! that reach only the callers they concern.

#![allow(clippy::unwrap_used)] // a panicking unwrap is the failure a test wants

mod support;

use std::collections::HashMap;

use batch_serving::{Batch, Event, Serving};
use futures::StreamExt;

fn hooked() -> Serving<u64, u64, std::convert::Infallible> {
    Serving::new(|batch: Batch<u64>| {
        batch.emit("batch_len", batch.len());
        for (i, x) in batch.iter().enumerate() {
            batch.emit_for(i, "item", *x);
        }
        Ok(batch.iter().map(|x| x + 1).collect())
    })
    .batch_size(4)
    .start()
    .unwrap()
}

#[tokio::test(start_paused = true)]
async fn pieces_arrive_with_offsets_and_per_item_hooks_reach_only_their_owner() {
    let serving = hooked();
    let (a, b) = tokio::join!(
        serving
            .dispatch_stream((0..6).collect())
            .collect::<Vec<_>>(),
        serving
            .dispatch_stream((100..102).collect())
            .collect::<Vec<_>>(),
    );
    for (events, items) in [(a, (0..6).collect::<Vec<u64>>()), (b, vec![100, 101])] {
        let mut outputs = HashMap::new();
        let mut item_hooks = Vec::new();
        let mut batch_hooks = 0;
        for event in events {
            match event.unwrap() {
                Event::Output { offset, outputs: o } => {
                    for (i, y) in o.into_iter().enumerate() {
                        assert!(
                            outputs.insert(offset + i, y).is_none(),
                            "item answered twice"
                        );
                    }
                }
                Event::Hook(hook) if hook.name == "item" => {
                    let index = hook.item.unwrap();
                    assert_eq!(
                        *hook.payload::<u64>().unwrap(),
                        items[index],
                        "hook about another caller's item"
                    );
                    item_hooks.push(index);
                }
                Event::Hook(hook) => {
                    assert_eq!(hook.name, "batch_len");
                    batch_hooks += 1;
                }
            }
        }
        assert_eq!(outputs.len(), items.len());
        for (i, x) in items.iter().enumerate() {
            assert_eq!(outputs[&i], x + 1);
        }
        item_hooks.sort_unstable();
        assert_eq!(item_hooks, (0..items.len()).collect::<Vec<_>>());
        assert!(
            batch_hooks >= 1,
            "batch-wide hooks reach every caller in the batch"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_batch_wide_hook_reaches_a_caller_once_per_batch_even_when_its_items_are_interleaved() {
    // Odd and even items have different keys, so each batch holds every
    // other item of the call: several separate runs of one caller.
    let serving = Serving::new(|batch: Batch<u64>| {
        batch.emit("batch", batch.len());
        Ok::<_, std::convert::Infallible>(batch.to_vec())
    })
    .batch_size(4)
    .key_by(|x: &u64| batch_serving::BatchKey::from(x % 2))
    .start()
    .unwrap();
    let events: Vec<_> = serving.dispatch_stream((0..8).collect()).collect().await;
    let mut hooks = 0;
    let mut outputs = 0;
    for event in events {
        match event.unwrap() {
            Event::Hook(_) => hooks += 1,
            Event::Output { offset, outputs: o } => {
                assert_eq!(
                    o,
                    (offset as u64..offset as u64 + o.len() as u64).collect::<Vec<_>>()
                );
                outputs += o.len();
            }
        }
    }
    assert_eq!(outputs, 8);
    assert_eq!(hooks, 2, "two batches of four, one batch-wide hook each");
}

/// Issue 32, defect 2: a batch handed to a busy partition ahead of time
/// loses the items of calls that leave before it starts. The streaming
/// caller's per-item hooks must follow its own items, not their old
/// positions: here its item moves from position 1 to 0, and the item that
/// moves into position 1 is another caller's.
#[tokio::test(start_paused = true)]
async fn hooks_follow_their_items_when_a_batch_handed_ahead_loses_a_call() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let gate = Arc::new(support::Gate::default());
    let started = Arc::new(AtomicUsize::new(0));
    let listened = Arc::new(std::sync::Mutex::new(Vec::new()));
    let serving = Serving::new({
        let (gate, started, listened) = (gate.clone(), started.clone(), listened.clone());
        move |batch: Batch<u64>| {
            started.fetch_add(1, Ordering::SeqCst);
            if batch.contains(&0) {
                gate.wait();
            }
            listened.lock().unwrap().push(batch.has_listeners());
            for (i, x) in batch.iter().enumerate() {
                batch.emit_for(i, "item", *x);
            }
            Ok::<_, std::convert::Infallible>(batch.iter().map(|x| x + 1).collect())
        }
    })
    .batch_size(3)
    .policy(batch_serving::Policy::Eager)
    .start()
    .unwrap();
    let blocker = {
        let serving = serving.clone();
        tokio::spawn(async move { serving.dispatch(0).await })
    };
    support::until(|| started.load(Ordering::SeqCst) == 1).await;
    // Queued in one go, before the scheduler runs: A, then B's two items
    // (cancelled at once), then the stream T, then C. The first three
    // entries hold no stream, so the batch [A, T, C] goes on deck.
    let mut a = Box::pin(serving.dispatch(10));
    assert!(futures::poll!(a.as_mut()).is_pending());
    let mut b = Box::pin(serving.dispatch_many(vec![20, 21]));
    assert!(futures::poll!(b.as_mut()).is_pending());
    drop(b);
    let mut t = serving.dispatch_stream(vec![30]);
    assert!(futures::poll!(t.next()).is_pending());
    let mut c = Box::pin(serving.dispatch(40));
    assert!(futures::poll!(c.as_mut()).is_pending());
    // The scheduler takes all five messages at once and hands [A, T, C] on.
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    drop(a); // leaves while its batch waits on deck
    gate.open();
    let events: Vec<_> = t.collect().await;
    let mut hooks = Vec::new();
    for event in &events {
        match event.as_ref().unwrap() {
            Event::Hook(hook) => hooks.push((hook.item, *hook.payload::<u64>().unwrap())),
            Event::Output { offset, outputs } => {
                assert_eq!((*offset, outputs.clone()), (0, vec![31]))
            }
        }
    }
    assert_eq!(
        hooks,
        vec![(Some(0), 30)],
        "the stream heard another caller's item, or nothing"
    );
    assert_eq!(c.await.unwrap(), 41);
    assert_eq!(blocker.await.unwrap().unwrap(), 1);
    serving.shutdown().await;
    assert_eq!(*listened.lock().unwrap(), vec![false, true]);
}
