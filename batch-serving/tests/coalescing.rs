//! Coalescing: the batch timer, full batches, and the eager policy.

#![allow(clippy::unwrap_used)] // a panicking unwrap is the failure a test wants

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use batch_serving::{Batch, Policy, Serving};
use support::Fake;
use tokio::time::Instant;

type Log = Arc<Mutex<Vec<(Vec<u64>, Duration)>>>;

/// An async batch function (it runs on the runtime, so it sees virtual time)
/// that records each batch with the time it started.
fn timed(
    batch_size: usize,
    policy: Policy,
    log: &Log,
) -> Serving<u64, u64, std::convert::Infallible> {
    timed_by(batch_size, policy, Duration::from_millis(10), log)
}

fn timed_by(
    batch_size: usize,
    policy: Policy,
    timeout: Duration,
    log: &Log,
) -> Serving<u64, u64, std::convert::Infallible> {
    let log = Arc::clone(log);
    let t0 = Instant::now();
    Serving::new_async(move |batch: Batch<u64>| {
        log.lock().unwrap().push((batch.to_vec(), t0.elapsed()));
        async move { Ok(batch.iter().copied().collect()) }
    })
    .batch_size(batch_size)
    .batch_timeout(timeout)
    .policy(policy)
    .start()
    .unwrap()
}

#[tokio::test(start_paused = true)]
async fn timer_starts_at_first_item_and_later_arrivals_do_not_extend_it() {
    let log = Log::default();
    let serving = timed(8, Policy::Timeout, &log);
    let first = support::spawn_dispatch(&serving, 1);
    tokio::time::sleep(Duration::from_millis(6)).await;
    let second = support::spawn_dispatch(&serving, 2);
    tokio::time::sleep(Duration::from_millis(3)).await;
    assert!(
        log.lock().unwrap().is_empty(),
        "ran before the timer expired"
    );
    assert_eq!(first.await.unwrap().unwrap(), 1);
    assert_eq!(second.await.unwrap().unwrap(), 2);
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].0, vec![1, 2]);
    assert_eq!(
        log[0].1,
        Duration::from_millis(10),
        "timer ran from the first arrival"
    );
}

/// The scheduler sets tokio's timer early and finishes the wait on a finer
/// timer; on the paused clock only tokio's timer counts, and it must still
/// fire at the moment itself, whether the timeout is shorter than that lead
/// (1 ms) or longer (5 ms), and again for the next batch.
#[tokio::test(start_paused = true)]
async fn a_lone_call_starts_its_batch_at_the_timeout_short_or_long() {
    for millis in [1u64, 5] {
        let log = Log::default();
        let timeout = Duration::from_millis(millis);
        let serving = timed_by(8, Policy::Timeout, timeout, &log);
        let t0 = Instant::now();
        assert_eq!(serving.dispatch(1).await.unwrap(), 1);
        tokio::time::sleep(Duration::from_millis(2)).await;
        let second_at = t0.elapsed();
        assert_eq!(serving.dispatch(2).await.unwrap(), 2);
        let log = log.lock().unwrap();
        assert_eq!(log.len(), 2, "{millis} ms: {log:?}");
        assert_eq!(log[0].1, timeout, "{millis} ms: the first batch");
        assert_eq!(
            log[1].1,
            second_at + timeout,
            "{millis} ms: the second batch"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn full_batch_runs_at_once_without_waiting_for_the_timer() {
    let log = Log::default();
    let serving = timed(4, Policy::Timeout, &log);
    let outputs = serving.dispatch_many(vec![1, 2, 3, 4]).await.unwrap();
    assert_eq!(outputs, vec![1, 2, 3, 4]);
    let log = log.lock().unwrap();
    assert_eq!(log[0], (vec![1, 2, 3, 4], Duration::ZERO));
}

#[tokio::test(start_paused = true)]
async fn eager_policy_starts_at_once_with_whatever_is_queued() {
    let log = Log::default();
    let serving = timed(8, Policy::Eager, &log);
    assert_eq!(serving.dispatch(5).await.unwrap(), 5);
    assert_eq!(
        log.lock().unwrap()[0],
        (vec![5], Duration::ZERO),
        "no idle wait"
    );
}

#[tokio::test(start_paused = true)]
async fn no_batch_ever_exceeds_batch_size() {
    let fake = Fake::new();
    let serving = fake.builder().batch_size(5).partitions(2).start().unwrap();
    let calls: Vec<_> = (0..40u64)
        .map(|i| {
            let s = serving.clone();
            tokio::spawn(async move {
                if i % 3 == 0 {
                    s.dispatch_many((i * 100..i * 100 + 7).collect()).await
                } else {
                    s.dispatch(i).await.map(|y| vec![y])
                }
            })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    let batches = fake.recorded();
    assert!(
        batches.iter().all(|b| !b.is_empty() && b.len() <= 5),
        "{batches:?}"
    );
    assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), 14 * 7 + 26);
}

#[tokio::test(start_paused = true)]
async fn eager_batches_fill_while_the_partition_is_busy() {
    let fake = Fake::new();
    let serving = fake
        .builder()
        .batch_size(8)
        .policy(Policy::Eager)
        .start()
        .unwrap();
    fake.set(support::Behaviour::Block);
    let blocker = support::spawn_dispatch(&serving, 0);
    support::until(|| fake.started() == 1).await;
    let waiting = tokio::spawn({
        let s = serving.clone();
        async move { s.dispatch_many((1..=8).collect()).await }
    });
    support::until(|| serving.stats().queue_depth == 8).await;
    fake.gate.open();
    blocker.await.unwrap().unwrap();
    assert_eq!(waiting.await.unwrap().unwrap(), (2..=9).collect::<Vec<_>>());
    assert_eq!(fake.recorded(), vec![vec![0], (1..=8).collect()]);
}

/// Eight closed-loop callers of a costly synchronous function (each batch
/// takes a real millisecond on the partition's thread). The callers of one
/// batch get their answers together and call again at once, so under the
/// eager policy every batch after the first should hold all eight: starting
/// the next batch before they are back would run it with only the first
/// one or two, at the full cost of a run.
///
/// It needs two runtime workers: on one, the answered callers always run
/// before the scheduler does. Nothing here depends on time, only on the
/// order in which tasks run, so the clock is left real.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eager_batches_take_the_callers_just_answered_when_the_function_is_costly() {
    let sizes = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&sizes);
    let serving = Serving::new(move |batch: Batch<u64>| {
        seen.lock().unwrap().push(batch.len());
        std::thread::sleep(Duration::from_millis(1));
        Ok::<_, std::convert::Infallible>(batch.iter().map(|x| x + 1).collect())
    })
    .batch_size(8)
    .policy(Policy::Eager)
    .start()
    .unwrap();
    let callers: Vec<_> = (0..8u64)
        .map(|caller| {
            let serving = serving.clone();
            tokio::spawn(async move {
                for round in 0..25 {
                    let x = caller * 1000 + round;
                    assert_eq!(serving.dispatch(x).await.unwrap(), x + 1);
                }
            })
        })
        .collect();
    for caller in callers {
        caller.await.unwrap();
    }
    let sizes = sizes.lock().unwrap();
    assert_eq!(sizes.iter().sum::<usize>(), 200);
    let mean = 200.0 / sizes.len() as f64;
    assert!(
        mean >= 6.0,
        "mean batch {mean:.1} ({sizes:?}): the answered callers were left behind"
    );
}

/// Items of a zero-sized type (a "run now" trigger, say) batch like any
/// other; each caller gets its own answer. A vector of them reports a
/// capacity of `usize::MAX`, which must not leak into other allocations.
#[tokio::test(start_paused = true)]
async fn zero_sized_items_batch_and_are_answered() {
    let serving = Serving::new(|batch: Batch<()>| {
        Ok::<_, std::convert::Infallible>(vec![batch.len(); batch.len()])
    })
    .batch_size(4)
    .batch_timeout(Duration::from_millis(10))
    .start()
    .unwrap();
    let lone = {
        let serving = serving.clone();
        tokio::spawn(async move { serving.dispatch(()).await })
    };
    let many = serving.dispatch_many(vec![(); 3]).await.unwrap();
    assert_eq!(
        many,
        vec![4; 3],
        "the three and the lone call share one batch"
    );
    assert_eq!(lone.await.unwrap().unwrap(), 4);
    assert_eq!(
        serving.dispatch_many(vec![(); 6]).await.unwrap(),
        vec![4, 4, 4, 4, 2, 2]
    );
}
