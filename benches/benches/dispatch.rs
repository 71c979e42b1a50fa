//! Criterion benchmarks of the dispatch hot path: single and many-item calls
//! under the eager and timeout policies, and the queue under contention.

// criterion's macros generate undocumented functions.
#![allow(missing_docs)]

use std::convert::Infallible;
use std::time::Duration;

use batch_serving::{Batch, Policy, Serving};
use criterion::{Criterion, criterion_group, criterion_main};

fn identity(policy: Policy) -> Serving<u64, u64, Infallible> {
    Serving::new(|batch: Batch<u64>| Ok::<_, Infallible>(batch.to_vec()))
        .batch_size(64)
        .batch_timeout(Duration::from_millis(1))
        .policy(policy)
        .start()
        .unwrap_or_else(|e| panic!("serving failed to start: {e}"))
}

fn dispatch(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let eager = runtime.block_on(async { identity(Policy::Eager) });
    c.bench_function("dispatch/one_caller/eager", |b| {
        b.to_async(&runtime)
            .iter(|| async { eager.dispatch(1).await });
    });
    c.bench_function("dispatch_many/64_items/eager", |b| {
        b.to_async(&runtime)
            .iter(|| async { eager.dispatch_many((0..64).collect()).await });
    });
    let timeout = runtime.block_on(async { identity(Policy::Timeout) });
    c.bench_function("dispatch_many/64_items/timeout_full_batch", |b| {
        b.to_async(&runtime)
            .iter(|| async { timeout.dispatch_many((0..64).collect()).await });
    });
    c.bench_function("dispatch/256_concurrent_callers/eager", |b| {
        b.to_async(&runtime).iter(|| async {
            let calls = (0..256u64).map(|i| eager.dispatch(i));
            futures::future::join_all(calls).await
        });
    });
}

criterion_group!(benches, dispatch);
criterion_main!(benches);
