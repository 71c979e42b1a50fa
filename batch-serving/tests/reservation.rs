//! Admission before preparation: queue room is reserved first, so a call the
//! queue cannot take is refused before it pre-processes anything, and room
//! that is not used goes back on every path.

#![allow(clippy::unwrap_used)] // a panicking unwrap is the failure a test wants

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use batch_serving::{CallOptions, Error, MappedServing, Policy, Serving};
use support::{Behaviour, Fake, FakeError};

type Counted = MappedServing<u64, u64, u64, u64, FakeError>;

/// A serving of `capacity` items whose pre-processing counts its runs and
/// refuses the input 99.
fn counted(
    fake: &Fake,
    capacity: usize,
) -> (Serving<u64, u64, FakeError>, Counted, Arc<AtomicUsize>) {
    let serving = fake
        .builder()
        .batch_size(1)
        .queue_capacity(capacity)
        .policy(Policy::Eager)
        .start()
        .unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let mapped = serving.clone().map_inputs({
        let runs = Arc::clone(&runs);
        move |x: u64| {
            runs.fetch_add(1, Ordering::SeqCst);
            if x == 99 {
                Err(FakeError("bad input"))
            } else {
                Ok(x)
            }
        }
    });
    (serving, mapped, runs)
}

#[tokio::test(start_paused = true)]
async fn a_rejected_call_never_runs_its_preprocessing() {
    let fake = Fake::new();
    let (serving, mapped, runs) = counted(&fake, 1);
    let blocker = support::occupy_partition(&fake, &serving).await;
    let queued = support::spawn_dispatch(&serving, 5);
    support::until(|| serving.stats().queue_depth == 1).await;

    let refused = mapped.try_dispatch(1).await;
    assert!(
        matches!(
            refused,
            Err(Error::Overloaded {
                requested: 1,
                capacity: 1
            })
        ),
        "{refused:?}"
    );
    let refused_many = mapped.try_dispatch_many(vec![1, 2]).await;
    assert!(matches!(
        refused_many,
        Err(Error::Overloaded { requested: 2, .. })
    ));
    assert!(matches!(
        mapped.try_reserve(),
        Err(Error::Overloaded { .. })
    ));
    assert_eq!(
        runs.load(Ordering::SeqCst),
        0,
        "pre-processing ran for a refused call"
    );
    assert_eq!(serving.stats().rejected, 3);

    fake.set(Behaviour::Ok);
    fake.gate.open();
    blocker.await.unwrap().unwrap();
    assert_eq!(queued.await.unwrap().unwrap(), 6);
    assert_eq!(mapped.try_dispatch(1).await.unwrap(), 2);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_waiting_call_preprocesses_only_once_it_has_room() {
    let fake = Fake::new();
    let (serving, mapped, runs) = counted(&fake, 1);
    let blocker = support::occupy_partition(&fake, &serving).await;
    let queued = support::spawn_dispatch(&serving, 5);
    support::until(|| serving.stats().queue_depth == 1).await;

    let waiting = tokio::spawn({
        let mapped = mapped.clone();
        async move { mapped.dispatch(7).await }
    });
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        0,
        "pre-processed while the queue was full"
    );

    fake.set(Behaviour::Ok);
    fake.gate.open();
    blocker.await.unwrap().unwrap();
    queued.await.unwrap().unwrap();
    assert_eq!(waiting.await.unwrap().unwrap(), 8);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_deadline_bounds_the_wait_for_room_and_nothing_is_preprocessed() {
    let fake = Fake::new();
    let (serving, mapped, runs) = counted(&fake, 1);
    let blocker = support::occupy_partition(&fake, &serving).await;
    let queued = support::spawn_dispatch(&serving, 5);
    support::until(|| serving.stats().queue_depth == 1).await;

    // The blocked partition thread stops virtual time from advancing by
    // itself, so the test moves the clock.
    let timeout = CallOptions::new().timeout(Duration::from_millis(20));
    let late = tokio::spawn({
        let mapped = mapped.clone();
        async move { mapped.dispatch_with(7, timeout).await }
    });
    let late_many = tokio::spawn({
        let mapped = mapped.clone();
        async move { mapped.dispatch_many_with(vec![7], timeout).await }
    });
    tokio::time::advance(Duration::from_millis(19)).await;
    assert!(
        !late.is_finished() && !late_many.is_finished(),
        "gave up early"
    );
    tokio::time::advance(Duration::from_millis(1)).await;
    let late = late.await.unwrap();
    assert!(matches!(late, Err(Error::DeadlineExceeded)), "{late:?}");
    let late_many = late_many.await.unwrap();
    assert!(
        matches!(late_many, Err(Error::DeadlineExceeded)),
        "{late_many:?}"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    assert_eq!(serving.stats().expired, 2);
    assert_eq!(
        serving.stats().queue_depth,
        1,
        "a timed-out wait holds no room"
    );

    fake.set(Behaviour::Ok);
    fake.gate.open();
    blocker.await.unwrap().unwrap();
    queued.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn room_goes_back_when_preprocessing_fails() {
    let fake = Fake::new();
    let (serving, mapped, runs) = counted(&fake, 2);
    for _ in 0..5 {
        let failed = mapped.try_dispatch(99).await;
        assert!(matches!(
            failed,
            Err(Error::Preprocess(FakeError("bad input")))
        ));
        let failed_many = mapped.try_dispatch_many(vec![1, 99]).await;
        assert!(matches!(failed_many, Err(Error::Preprocess(_))));
        assert_eq!(
            serving.stats().queue_depth,
            0,
            "a failed input kept its room"
        );
    }
    assert_eq!(runs.load(Ordering::SeqCst), 15);
    assert_eq!(
        mapped.try_dispatch_many(vec![1, 2]).await.unwrap(),
        vec![2, 3]
    );
    assert!(
        fake.all_items().iter().all(|&x| x != 99),
        "a failed input was queued"
    );
}

#[tokio::test(start_paused = true)]
async fn unused_room_goes_back_on_every_path() {
    let fake = Fake::new();
    let serving = fake.builder().queue_capacity(4).start().unwrap();

    let room = serving.try_reserve(4).unwrap();
    assert_eq!((room.items(), serving.stats().queue_depth), (4, 4));
    assert!(matches!(
        serving.try_dispatch(1).await,
        Err(Error::Overloaded { .. })
    ));
    drop(room);
    assert_eq!(serving.stats().queue_depth, 0, "dropped unspent");

    let room = serving.try_reserve(3).unwrap();
    drop(room.dispatch(1)); // a call future dropped before its first poll
    assert_eq!(serving.stats().queue_depth, 0, "dropped before queueing");

    let room = serving.try_reserve(4).unwrap();
    assert_eq!(room.dispatch_many(vec![1, 2]).await.unwrap(), vec![2, 3]);
    assert_eq!(serving.stats().queue_depth, 0, "the two unused items' room");

    let room = serving.try_reserve(2).unwrap();
    let past = CallOptions::new().deadline(tokio::time::Instant::now());
    assert!(matches!(
        room.dispatch_with(1, past).await,
        Err(Error::DeadlineExceeded)
    ));
    assert_eq!(serving.stats().queue_depth, 0, "an expired call");

    assert!(matches!(
        serving.try_reserve(5),
        Err(Error::Overloaded {
            requested: 5,
            capacity: 4
        })
    ));
    assert!(matches!(
        serving.reserve(5).await,
        Err(Error::Overloaded {
            requested: 5,
            capacity: 4
        })
    ));
    serving.shutdown().await;
    assert!(matches!(serving.try_reserve(1), Err(Error::Closed)));
    assert!(matches!(serving.reserve(1).await, Err(Error::Closed)));
}

#[tokio::test(start_paused = true)]
async fn a_reservation_holds_room_that_a_waiting_caller_cannot_take() {
    let fake = Fake::new();
    let serving = fake
        .builder()
        .batch_size(4)
        .queue_capacity(2)
        .start()
        .unwrap();
    let room = serving.try_reserve(2).unwrap();
    let waiting = support::spawn_dispatch(&serving, 3);
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert!(!waiting.is_finished(), "took reserved room");
    // More items than reserved: the extra is admitted as dispatch_many admits.
    let many = tokio::spawn(async move { room.dispatch_many(vec![1, 2]).await });
    assert_eq!(many.await.unwrap().unwrap(), vec![2, 3]);
    assert_eq!(waiting.await.unwrap().unwrap(), 4);
    assert_eq!(serving.stats().queue_depth, 0);
}

/// Issue 32, defect 1: a reservation spent on more items than it holds,
/// while another call waits for room, used to deadlock both: the waiter held
/// the one free unit and the reservation's call waited behind it, with its
/// own reserved room never queued. The reserved items are queued first now,
/// so they run, free their room, and both calls finish.
#[tokio::test(start_paused = true)]
async fn a_reservation_spent_on_more_items_than_it_holds_never_deadlocks_a_waiter() {
    for (capacity, reserved, waiter_items, spent_items) in [(4, 3, 2, 4), (8, 2, 7, 3)] {
        let fake = Fake::new();
        let serving = fake
            .builder()
            .batch_size(capacity)
            .queue_capacity(capacity)
            .start()
            .unwrap();
        let room = serving.try_reserve(reserved).unwrap();
        let waiter = {
            let serving = serving.clone();
            let items: Vec<u64> = (100..100 + waiter_items).collect();
            tokio::spawn(async move { serving.dispatch_many(items).await })
        };
        support::until(|| serving.queued() == capacity).await;
        let items: Vec<u64> = (1..=spent_items).collect();
        let expected: Vec<u64> = items.iter().map(|x| x + 1).collect();
        let spent = tokio::time::timeout(Duration::from_secs(10), room.dispatch_many(items))
            .await
            .expect("the reservation's call hung");
        assert_eq!(spent.unwrap(), expected);
        let waited = tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("the waiting call hung")
            .unwrap()
            .unwrap();
        assert_eq!(waited, (101..101 + waiter_items).collect::<Vec<u64>>());
        assert_eq!(serving.queued(), 0);
        serving.shutdown().await;
    }
}

/// Issue 32, defect 5: a reserved call dropped while it waits for room for
/// its items beyond the reservation is a cancelled call, and counts as one.
#[tokio::test(start_paused = true)]
async fn a_reserved_call_dropped_while_waiting_for_more_room_counts_as_cancelled() {
    let fake = Fake::new();
    let serving = fake
        .builder()
        .batch_size(8)
        .queue_capacity(4)
        .start()
        .unwrap();
    let room = serving.try_reserve(2).unwrap();
    let other = serving.try_reserve(2).unwrap();
    let mut call = Box::pin(room.dispatch_many(vec![1, 2, 3]));
    assert!(futures::poll!(call.as_mut()).is_pending());
    drop(call);
    assert_eq!(serving.stats().cancelled, 1);
    drop(other);
    serving.shutdown().await;
    assert_eq!(serving.queued(), 0);
    assert!(fake.all_items().is_empty(), "a cancelled call's items ran");
}
