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
