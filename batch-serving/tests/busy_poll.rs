//! Busy polling: while a batch runs on a partition thread the scheduler
//! polls for its answers instead of sleeping, within a budget.

#![allow(clippy::unwrap_used)] // a panicking unwrap is the failure a test wants

mod support;

use std::time::Duration;

use batch_serving::{Batch, Policy, Serving};
use support::Fake;

/// A budget no wait in these tests comes near, so giving up can only mean
/// the polling missed what it was waiting for.
const AMPLE: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_caught_while_polling_and_each_caller_gets_its_own() {
    let serving = Serving::new(|batch: Batch<u64>| {
        std::thread::sleep(Duration::from_micros(200));
        Ok::<_, std::convert::Infallible>(batch.iter().map(|x| x + 1).collect())
    })
    .batch_size(8)
    .policy(Policy::Eager)
    .busy_poll(AMPLE)
    .start()
    .unwrap();
    let callers: Vec<_> = (0..16u64)
        .map(|caller| {
            let serving = serving.clone();
            tokio::spawn(async move {
                for round in 0..20 {
                    let x = caller * 1000 + round;
                    assert_eq!(serving.dispatch(x).await.unwrap(), x + 1);
                }
            })
        })
        .collect();
    for caller in callers {
        caller.await.unwrap();
    }
    let stats = serving.stats();
    assert_eq!(stats.items, 320);
    assert!(stats.busy_poll_caught > 0, "never polled: {stats:?}");
    assert_eq!(stats.busy_poll_gave_up, 0, "missed a hand-off: {stats:?}");
}

type Blocked = tokio::task::JoinHandle<Result<u64, batch_serving::Error<support::FakeError>>>;

/// A serving with a 1 ms budget whose only partition holds a batch (item 0)
/// until the gate opens, once the scheduler has given up polling for it.
async fn held_past_its_budget(fake: &Fake) -> (Serving<u64, u64, support::FakeError>, Blocked) {
    let serving = fake
        .builder()
        .busy_poll(Duration::from_millis(1))
        .start()
        .unwrap();
    let blocked = support::occupy_partition(fake, &serving).await;
    // The batch is held far longer than the budget: the scheduler must stop
    // polling and sleep rather than keep a worker spinning.
    support::until(|| serving.stats().busy_poll_gave_up >= 1).await;
    (serving, blocked)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_gives_up_after_its_budget_and_the_serving_still_answers() {
    let fake = Fake::new();
    let (serving, blocked) = held_past_its_budget(&fake).await;
    let queued = support::spawn_dispatch(&serving, 5);
    fake.gate.open();
    assert_eq!(blocked.await.unwrap().unwrap(), 1);
    assert_eq!(queued.await.unwrap().unwrap(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_arriving_during_a_long_batch_do_not_extend_its_polling() {
    let fake = Fake::new();
    let (serving, blocked) = held_past_its_budget(&fake).await;
    let before = serving.stats();
    // Each arrival wakes the scheduler; with the batch's budget spent it
    // queues the call and sleeps again instead of polling anew.
    let mut queued = Vec::new();
    for x in 1..=10 {
        queued.push(support::spawn_dispatch(&serving, x));
        support::until(|| serving.stats().queue_depth == x).await;
    }
    let after = serving.stats();
    fake.gate.open();
    assert_eq!(blocked.await.unwrap().unwrap(), 1);
    for (x, call) in (1..=10).zip(queued) {
        assert_eq!(call.await.unwrap().unwrap(), x + 1);
    }
    assert_eq!(
        (after.busy_poll_caught, after.busy_poll_gave_up),
        (before.busy_poll_caught, before.busy_poll_gave_up),
        "arrivals restarted the polling of a batch whose budget was spent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_timer_coming_due_ends_the_polling() {
    let fake = Fake::new();
    let serving = fake
        .builder()
        .partitions(2)
        .batch_size(4)
        .batch_timeout(Duration::from_millis(5))
        .policy(Policy::Timeout)
        .busy_poll(AMPLE)
        .start()
        .unwrap();
    let blocked = support::occupy_partition(&fake, &serving).await;
    // Partition 0 is held, so the scheduler polls; this lone call must
    // start on partition 1 when its timer comes due, not when the budget
    // runs out.
    fake.set(support::Behaviour::Ok);
    let answer = serving.dispatch(7).await;
    let gave_up = serving.stats().busy_poll_gave_up;
    // Opened before asserting, so a failure does not leave the partition held.
    fake.gate.open();
    assert_eq!(answer.unwrap(), 8);
    assert_eq!(gave_up, 0, "the call waited for the budget, not its timer");
    assert_eq!(blocked.await.unwrap().unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_budget_the_scheduler_never_polls() {
    let fake = Fake::new();
    let serving = fake.builder().start().unwrap();
    let answers = futures::future::join_all((0..40).map(|x| serving.dispatch(x))).await;
    assert!(
        answers
            .into_iter()
            .enumerate()
            .all(|(x, y)| y.unwrap() == x as u64 + 1)
    );
    let stats = serving.stats();
    assert_eq!((stats.busy_poll_caught, stats.busy_poll_gave_up), (0, 0));
}

/// Drops with a signal: tells the test that a partition's state is gone,
/// which happens when its thread ends.
struct Goodbye(std::sync::mpsc::Sender<()>);

impl Drop for Goodbye {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_polling_for_its_next_batch_ends_when_the_serving_does() {
    // After each batch the partition thread polls for the next one for up
    // to the budget: an hour here. The serving's end must end that polling
    // at once rather than leave the thread spinning out its budget.
    let (tx, gone) = std::sync::mpsc::channel();
    let serving = Serving::with_state(
        move |_| Ok::<_, std::convert::Infallible>(Goodbye(tx.clone())),
        |_: &mut Goodbye, batch: Batch<u64>| Ok(batch.iter().map(|x| x * 3).collect()),
    )
    .policy(Policy::Eager)
    .busy_poll(Duration::from_secs(3600))
    .start()
    .unwrap();
    // Calls one after another: each is handed to a thread that is polling.
    for x in 0..50 {
        assert_eq!(serving.dispatch(x).await.unwrap(), x * 3);
    }
    serving.shutdown().await;
    drop(serving);
    // A guard against a hang, not a measure: it takes microseconds.
    let ended = tokio::task::spawn_blocking(move || gone.recv_timeout(Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(ended.is_ok(), "the partition thread was still polling");
}
