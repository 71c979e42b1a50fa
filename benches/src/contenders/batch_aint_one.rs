//! batch-aint-one 0.16.0: a worker task batches items per key and runs the
//! processor's async `process` on the runtime, one batch at a time here
//! (`max_key_concurrency` 1, as every contender), under one of its
//! policies: Immediate (run at once while a slot is free, grow while
//! busy), Duration (the scenario's wait, or sooner when full) and Balanced
//! (wait for half a batch or a finished batch while one is running).

use std::sync::Arc;

use batch_aint_one::{Batcher, BatchingPolicy, Limits, OnFull, Processor};
use futures::TryFutureExt;

use super::{CallFuture, Contender, Setup};
use crate::workload::{Cost, run_batch};

/// Which of its policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Policy {
    /// `BatchingPolicy::Immediate`.
    Immediate,
    /// `BatchingPolicy::Duration(max_wait, OnFull::Process)`.
    Duration,
    /// `BatchingPolicy::Balanced { min_size_hint: batch_size / 2 }`.
    Balanced,
}

#[derive(Debug, Clone)]
struct Run {
    cost: Cost,
}

impl Processor for Run {
    type Key = ();
    type Input = u64;
    type Output = u64;
    type Error = String;
    type Resources = ();

    async fn acquire_resources(&self, (): ()) -> Result<(), String> {
        Ok(())
    }

    async fn process(
        &self,
        (): (),
        inputs: impl Iterator<Item = u64> + Send,
        (): (),
    ) -> Result<Vec<u64>, String> {
        // The function runs where the library runs it: on the runtime.
        let inputs: Vec<u64> = inputs.collect();
        Ok(run_batch(self.cost, inputs.into_iter()))
    }
}

struct BatchAintOne(Batcher<Run>);

impl Contender for BatchAintOne {
    fn call(&self, x: u64) -> CallFuture<'_> {
        Box::pin(
            self.0
                .add((), x)
                .map_err(|e| format!("batch-aint-one: {e}")),
        )
    }
}

pub(super) fn start(setup: Setup, policy: Policy) -> Arc<dyn Contender> {
    let batching_policy = match policy {
        Policy::Immediate => BatchingPolicy::Immediate,
        Policy::Duration => BatchingPolicy::Duration(setup.max_wait, OnFull::Process),
        Policy::Balanced => BatchingPolicy::Balanced {
            min_size_hint: (setup.batch_size / 2).max(1),
        },
    };
    let limits = Limits::builder()
        .max_batch_size(setup.batch_size)
        .max_key_concurrency(1)
        // Room for every call the scenarios queue, as for the others.
        .max_key_queued_items(1 << 20)
        .build();
    let batcher = Batcher::builder()
        .name("bench")
        .processor(Run { cost: setup.cost })
        .limits(limits)
        .batching_policy(batching_policy)
        .build();
    Arc::new(BatchAintOne(batcher))
}
