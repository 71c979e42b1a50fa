//! A timer finer than tokio's, for batch timers that must keep their word.
//!
//! tokio's timer wheel ticks once a millisecond and fires a deadline at the
//! first tick after it, so a lone call under `batch_timeout(1 ms)` waited
//! about 2.1 ms (S1 at one caller: 473 calls/s). The scheduler therefore
//! sets tokio's timer a little early (see `LEAD` in the scheduler) and,
//! once the deadline is that close, asks this timer to wake it at the
//! moment itself. One thread for the process sleeps on a condition
//! variable until just before the earliest moment asked for (a futex wait,
//! whose timeout has the kernel's resolution but may end up to the
//! kernel's timer slack late, 50 µs by default on Linux) and spins for the
//! rest, so it rings within a few microseconds of the moment and never
//! before it.
//!
//! An alarm says whether it is still wanted: most batch timers are
//! overtaken (the batch fills first), and the thread drops those without
//! waking for them, so a busy serving costs it little. Only moments within
//! `LEAD` of now are asked for, so the heap holds a few milliseconds'
//! worth. If the thread cannot be started, alarms are dropped and tokio's
//! timer, which the scheduler always sets as well, still fires, only
//! later.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// How long before its moment the thread stops sleeping and spins: the
/// kernel's default timer slack, by which a sleep may end late.
const SPIN: Duration = Duration::from_micros(50);

/// What rings at a moment.
pub(crate) trait Alarm: Send {
    /// Whether it should still ring: checked before the thread waits for
    /// it, so that one no longer wanted costs no wake-up.
    fn is_wanted(&self) -> bool;
    /// Rings it, on the timer thread: it must be quick and must not block.
    fn ring(self: Box<Self>);
}

/// One alarm and its moment. Ordered so that the heap's top is the
/// earliest (and, at equal moments, the first set).
struct Due {
    at: Instant,
    seq: u64,
    alarm: Box<dyn Alarm>,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Due {}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Due {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: `BinaryHeap` is a max-heap.
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

#[derive(Default)]
struct Pending {
    heap: BinaryHeap<Due>,
    seq: u64,
}

struct Timer {
    pending: Mutex<Pending>,
    /// Signalled when a wake-up earlier than every other is added.
    sooner: Condvar,
}

impl Timer {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A wake-up that panicked leaves nothing half-done in the heap.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The process's timer thread, started on first use; `None` if it could
/// not be started.
fn timer() -> Option<&'static Timer> {
    static TIMER: OnceLock<Option<&'static Timer>> = OnceLock::new();
    *TIMER.get_or_init(|| {
        let timer: &'static Timer = Box::leak(Box::new(Timer {
            pending: Mutex::new(Pending::default()),
            sooner: Condvar::new(),
        }));
        std::thread::Builder::new()
            .name("batch-serving-timer".into())
            .spawn(move || run(timer))
            .ok()
            .map(|_| timer)
    })
}

/// Rings `alarm` at `at` (a few microseconds after, never before), on the
/// timer thread, unless by then it is no longer wanted.
pub(crate) fn ring_at(at: Instant, alarm: impl Alarm + 'static) {
    let Some(timer) = timer() else {
        return;
    };
    let mut pending = timer.lock();
    let soonest = pending.heap.peek().is_none_or(|first| at < first.at);
    pending.seq += 1;
    let seq = pending.seq;
    pending.heap.push(Due {
        at,
        seq,
        alarm: Box::new(alarm),
    });
    drop(pending);
    if soonest {
        timer.sooner.notify_one();
    }
}

/// The timer thread: rings what is due, drops what is no longer wanted,
/// then sleeps until just before the next moment (or until a sooner one is
/// set) and spins for the rest.
fn run(timer: &'static Timer) {
    let mut pending = timer.lock();
    let mut due: Vec<Box<dyn Alarm>> = Vec::new();
    loop {
        while pending
            .heap
            .peek()
            .is_some_and(|first| !wanted(first.alarm.as_ref()))
        {
            pending.heap.pop();
        }
        let now = Instant::now();
        while pending.heap.peek().is_some_and(|first| first.at <= now) {
            if let Some(first) = pending.heap.pop()
                && wanted(first.alarm.as_ref())
            {
                due.push(first.alarm);
            }
        }
        if !due.is_empty() {
            drop(pending);
            for alarm in due.drain(..) {
                // One scheduler's alarm must not stop the others'.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| alarm.ring()));
            }
            pending = timer.lock();
            continue;
        }
        let Some(at) = pending.heap.peek().map(|first| first.at) else {
            pending = timer
                .sooner
                .wait(pending)
                .unwrap_or_else(PoisonError::into_inner);
            continue;
        };
        let wait = at - now;
        if wait > SPIN {
            pending = timer
                .sooner
                .wait_timeout(pending, wait - SPIN)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            continue;
        }
        // The last stretch, without the lock: an alarm set meanwhile waits
        // at most this long.
        drop(pending);
        while Instant::now() < at {
            std::hint::spin_loop();
        }
        pending = timer.lock();
    }
}

/// Whether `alarm` is wanted; one that panics to say is not.
fn wanted(alarm: &dyn Alarm) -> bool {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| alarm.is_wanted())).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc;

    /// An alarm that sends its label and when it rang, while wanted.
    struct Reports {
        label: u8,
        wanted: Arc<AtomicBool>,
        tx: mpsc::Sender<(u8, Instant)>,
    }

    impl Alarm for Reports {
        fn is_wanted(&self) -> bool {
            self.wanted.load(Ordering::SeqCst)
        }
        fn ring(self: Box<Self>) {
            let _ = self.tx.send((self.label, Instant::now()));
        }
    }

    fn reports(label: u8, tx: &mpsc::Sender<(u8, Instant)>) -> (Reports, Arc<AtomicBool>) {
        let wanted = Arc::new(AtomicBool::new(true));
        let alarm = Reports {
            label,
            wanted: Arc::clone(&wanted),
            tx: tx.clone(),
        };
        (alarm, wanted)
    }

    #[test]
    fn alarms_ring_in_the_order_of_their_moments_not_before_and_only_if_wanted() {
        let (tx, rx) = mpsc::channel();
        let start = Instant::now();
        for (label, micros) in [(3u8, 30_000u64), (1, 10_000), (4, 15_000), (2, 20_000)] {
            let (alarm, wanted) = reports(label, &tx);
            // One no longer wanted (its batch filled first) never rings.
            wanted.store(label != 4, Ordering::SeqCst);
            ring_at(start + Duration::from_micros(micros), alarm);
        }
        drop(tx);
        // The alarms hold the only senders: this ends once all are gone.
        let rang: Vec<(u8, Instant)> = rx.iter().collect();
        assert_eq!(
            rang.iter().map(|(label, _)| *label).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        for (label, at) in rang {
            // Never early: a batch must not start before its timeout.
            assert!(at >= start + Duration::from_millis(10 * u64::from(label)));
        }
    }

    #[test]
    fn a_panicking_alarm_does_not_stop_the_others() {
        struct Fails;
        impl Alarm for Fails {
            fn is_wanted(&self) -> bool {
                true
            }
            fn ring(self: Box<Self>) {
                panic!("an alarm that fails");
            }
        }
        let (tx, rx) = mpsc::channel();
        let now = Instant::now();
        ring_at(now, Fails);
        let (alarm, _wanted) = reports(1, &tx);
        ring_at(now + Duration::from_micros(10), alarm);
        assert!(rx.recv_timeout(Duration::from_secs(10)).is_ok());
    }
}
