//! Loom models of a call's [`Request`]: the rendezvous between the caller's
//! future, the scheduler that claims items, and the partitions that answer
//! them. Loom runs each model under every interleaving (within its
//! preemption bound), with the memory orderings the code asks for.

use std::future::poll_fn;
use std::sync::Arc;

use loom::sync::atomic::{AtomicBool, Ordering::SeqCst};
use loom::thread;

use crate::error::Failure;
use crate::request::Request;

type Call = Request<u32, ()>;

/// A caller that abandons its call while the scheduler claims an item: once
/// the caller has seen its abandonment succeed, no claim may succeed.
#[test]
fn loom_no_item_is_claimed_after_the_caller_saw_its_abandonment() {
    loom::model(|| {
        let call = Arc::new(Call::new(1, None));
        let abandoned_seen = Arc::new(AtomicBool::new(false));
        let scheduler = {
            let (call, seen) = (Arc::clone(&call), Arc::clone(&abandoned_seen));
            thread::spawn(move || {
                let seen_before = seen.load(SeqCst);
                let claimed = call.try_take();
                assert!(
                    !(seen_before && claimed),
                    "claimed after the caller saw it abandoned"
                );
            })
        };
        let won = call.abandon(false);
        if won {
            abandoned_seen.store(true, SeqCst);
        }
        let _ = scheduler.join();
        // Abandoning always wins over a call that is not finished, and the
        // call ends abandoned either way.
        assert!(won);
        assert!(call.is_abandoned());
    });
}

/// Two partitions answer the two items of one call at once: the caller,
/// waiting on its waker, is woken and reads both outputs in order.
#[test]
fn loom_a_caller_sees_both_outputs_of_two_partitions() {
    loom::model(|| {
        let call = Arc::new(Call::new(2, None));
        let partitions: Vec<_> = [(0, 10), (1, 11)]
            .into_iter()
            .map(|(index, output)| {
                let call = Arc::clone(&call);
                thread::spawn(move || call.deliver(index, std::iter::once(output), 1))
            })
            .collect();
        let outputs = loom::future::block_on(poll_fn(|cx| call.poll_complete(cx)));
        assert_eq!(outputs.ok(), Some(vec![10, 11]));
        for partition in partitions {
            let _ = partition.join();
        }
    });
}

/// One partition fails its item while another delivers: the caller gets the
/// failure, never a partial result, and is woken exactly when both are in.
#[test]
fn loom_a_failure_racing_a_delivery_reaches_the_caller() {
    loom::model(|| {
        let call = Arc::new(Call::new(2, None));
        let failing = {
            let call = Arc::clone(&call);
            thread::spawn(move || call.fail(&Failure::Closed, 1))
        };
        let delivering = {
            let call = Arc::clone(&call);
            thread::spawn(move || call.deliver(0, std::iter::once(7), 1))
        };
        let result = loom::future::block_on(poll_fn(|cx| call.poll_complete(cx)));
        assert!(matches!(result, Err(Failure::Closed)));
        let _ = failing.join();
        let _ = delivering.join();
    });
}

/// A single-item call: the partition's delivery and the caller's wait race;
/// the caller always takes the output, once.
#[test]
fn loom_a_single_output_is_taken_once() {
    loom::model(|| {
        let call = Arc::new(Call::new(1, None));
        let partition = {
            let call = Arc::clone(&call);
            thread::spawn(move || {
                assert!(call.try_take());
                call.deliver(0, std::iter::once(5), 1);
            })
        };
        loom::future::block_on(poll_fn(|cx| call.poll_ready(cx)));
        assert_eq!(call.take_single().ok(), Some(Some(5)));
        assert_eq!(call.take_single().ok(), Some(None));
        let _ = partition.join();
    });
}
