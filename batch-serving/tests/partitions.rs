//! Partitions: concurrency, per-partition state on the partition's own
//! thread, and batches that grow while every partition is busy.

#![allow(clippy::unwrap_used)] // a panicking unwrap is the failure a test wants

mod support;

use std::sync::{Arc, Mutex};
use std::thread::ThreadId;

use batch_serving::{Batch, Serving};
use support::{Behaviour, Fake};

#[tokio::test(start_paused = true)]
async fn factory_runs_once_per_partition_on_that_partitions_thread() {
    let made: Arc<Mutex<Vec<(usize, ThreadId, String)>>> = Arc::default();
    let ran: Arc<Mutex<Vec<(usize, ThreadId)>>> = Arc::default();
    let serving = Serving::with_state(
        {
            let made = Arc::clone(&made);
            move |partition| {
                let thread = std::thread::current();
                let name = thread.name().unwrap_or_default().to_owned();
                made.lock().unwrap().push((partition, thread.id(), name));
                Ok::<_, std::convert::Infallible>((partition, thread.id(), 0usize))
            }
        },
        {
            let ran = Arc::clone(&ran);
            move |state: &mut (usize, ThreadId, usize), batch: Batch<u64>| {
                assert_eq!(
                    state.1,
                    std::thread::current().id(),
                    "state used off its thread"
                );
                state.2 += batch.len();
                ran.lock().unwrap().push((state.0, state.1));
                Ok(batch.iter().map(|_| state.2 as u64).collect())
            }
        },
    )
    .partitions(3)
    .name("probe")
    .start()
    .unwrap();
    let made = made.lock().unwrap().clone();
    assert_eq!(
        made.len(),
        3,
        "one factory call per partition, before start returns"
    );
    let mut partitions: Vec<usize> = made.iter().map(|m| m.0).collect();
    partitions.sort_unstable();
    assert_eq!(partitions, vec![0, 1, 2]);
    let threads: std::collections::HashSet<ThreadId> = made.iter().map(|m| m.1).collect();
    assert_eq!(threads.len(), 3, "each partition has its own thread");
    assert!(
        made.iter().all(|m| m.2.starts_with("probe-p")),
        "threads are the serving's own: {made:?}"
    );
    assert_ne!(made[0].1, std::thread::current().id());
    for i in 0..20 {
        serving.dispatch(i).await.unwrap();
    }
    for (partition, thread) in ran.lock().unwrap().iter() {
        assert!(made.contains(&(*partition, *thread, format!("probe-p{partition}"))));
    }
}

#[tokio::test(start_paused = true)]
async fn n_partitions_run_n_batches_at_once() {
    let fake = Fake::new();
    let serving = fake.builder().batch_size(1).partitions(3).start().unwrap();
    fake.set(Behaviour::Block);
    let calls: Vec<_> = (0..4)
        .map(|i| {
            let s = serving.clone();
            tokio::spawn(async move { s.dispatch(i).await })
        })
        .collect();
    support::until(|| fake.started() == 3).await;
    assert_eq!(serving.stats().in_flight, 3);
    assert_eq!(
        serving.stats().queue_depth,
        1,
        "the fourth waits for a free partition"
    );
    fake.gate.open();
    for (i, call) in calls.into_iter().enumerate() {
        assert_eq!(call.await.unwrap().unwrap(), i as u64 + 1);
    }
}

#[tokio::test(start_paused = true)]
async fn forming_batch_grows_to_full_while_partitions_are_busy() {
    let fake = Fake::new();
    let serving = fake.builder().batch_size(4).start().unwrap();
    fake.set(Behaviour::Block);
    let first = support::spawn_dispatch(&serving, 0);
    // Let the lone item's batch timer (5 ms by default) expire.
    tokio::time::sleep(batch_serving::DEFAULT_BATCH_TIMEOUT).await;
    support::until(|| fake.started() == 1).await;
    let rest: Vec<_> = (1..=6)
        .map(|i| {
            let s = serving.clone();
            tokio::spawn(async move { s.dispatch(i).await })
        })
        .collect();
    support::until(|| serving.stats().queue_depth == 6).await;
    fake.set(Behaviour::Ok);
    fake.gate.open();
    first.await.unwrap().unwrap();
    for call in rest {
        call.await.unwrap().unwrap();
    }
    assert_eq!(fake.recorded(), vec![vec![0], vec![1, 2, 3, 4], vec![5, 6]]);
}

#[tokio::test(start_paused = true)]
async fn sync_batch_functions_never_run_on_tokio_worker_threads() {
    let rt_thread = std::thread::current().id();
    let serving = Serving::new(move |batch: Batch<u64>| {
        let here = std::thread::current();
        Ok::<_, std::convert::Infallible>(
            batch
                .iter()
                .map(|_| u64::from(here.id() == rt_thread))
                .collect(),
        )
    })
    .start()
    .unwrap();
    assert_eq!(serving.dispatch(1).await.unwrap(), 0);
}

#[tokio::test(start_paused = true)]
async fn async_batch_functions_are_served() {
    let serving = Serving::new_async(|batch: Batch<u64>| async move {
        tokio::task::yield_now().await;
        Ok::<_, std::convert::Infallible>(batch.iter().map(|id| format!("row-{id}")).collect())
    })
    .partitions(2)
    .start()
    .unwrap();
    let rows = serving.dispatch_many(vec![3, 1, 2]).await.unwrap();
    assert_eq!(rows, vec!["row-3", "row-1", "row-2"]);
}

#[tokio::test(start_paused = true)]
async fn a_function_declared_cheap_runs_on_the_runtime_and_a_plain_one_on_its_own_thread() {
    // A current-thread runtime has one thread: the test's. A function that
    // runs on the runtime runs there; one on a partition thread does not.
    let here = std::thread::current().id();
    let threads = |seen: &Arc<Mutex<Vec<ThreadId>>>| seen.lock().unwrap().clone();
    let on_runtime: Arc<Mutex<Vec<ThreadId>>> = Arc::default();
    let cheap = Serving::new_on_runtime({
        let seen = Arc::clone(&on_runtime);
        move |batch: Batch<u64>| {
            seen.lock().unwrap().push(std::thread::current().id());
            if batch.contains(&13) {
                panic!("unlucky");
            }
            Ok::<_, std::convert::Infallible>(batch.iter().map(|x| x + 1).collect())
        }
    })
    .batch_size(4)
    .start()
    .unwrap();
    let on_thread: Arc<Mutex<Vec<ThreadId>>> = Arc::default();
    let plain = Serving::new({
        let seen = Arc::clone(&on_thread);
        move |batch: Batch<u64>| {
            seen.lock().unwrap().push(std::thread::current().id());
            Ok::<_, std::convert::Infallible>(batch.iter().map(|x| x + 1).collect())
        }
    })
    .start()
    .unwrap();
    assert_eq!(
        cheap.dispatch_many(vec![1, 2, 3]).await.unwrap(),
        vec![2, 3, 4]
    );
    assert_eq!(plain.dispatch(1).await.unwrap(), 2);
    assert!(!threads(&on_runtime).is_empty());
    assert!(threads(&on_runtime).iter().all(|t| *t == here));
    assert!(threads(&on_thread).iter().all(|t| *t != here));
    // A panic fails that batch's call only; the serving goes on.
    let failed = cheap.dispatch(13).await.unwrap_err();
    assert!(failed.to_string().contains("panic"), "{failed}");
    assert_eq!(cheap.dispatch(7).await.unwrap(), 8);
}
