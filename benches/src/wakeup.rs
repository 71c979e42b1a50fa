//! The cost of one hand-off between a tokio task and an OS thread, measured
//! the way the serving makes it: a tokio channel that the thread waits on
//! with `blocking_recv`, and an answer that wakes the waiting task. Every
//! batch on a partition thread pays two of these (the batch goes to the
//! thread, the outputs come back), which no amount of tuning on the
//! runtime side removes.

use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

/// Measures `rounds` task → thread → task round trips and returns the mean
/// time of one round trip.
pub async fn round_trip(rounds: u32) -> Duration {
    let (tx, mut rx) = mpsc::unbounded_channel::<oneshot::Sender<()>>();
    let thread = std::thread::spawn(move || {
        while let Some(reply) = rx.blocking_recv() {
            let _ = reply.send(());
        }
    });
    // Warm up: the first hand-offs fault in stacks and channel blocks.
    for _ in 0..100 {
        let (reply, answered) = oneshot::channel();
        let _ = tx.send(reply);
        let _ = answered.await;
    }
    let started = Instant::now();
    for _ in 0..rounds {
        let (reply, answered) = oneshot::channel();
        let _ = tx.send(reply);
        let _ = answered.await;
    }
    let elapsed = started.elapsed();
    drop(tx);
    let _ = thread.join();
    elapsed / rounds.max(1)
}

/// What waking a parked task costs the thread that wakes it: the thread
/// spins 200 µs (as a batch would, long enough for the runtime's workers to
/// go to sleep), then answers the waiting task and times that answer alone.
/// Returns the median over `rounds`. A partition thread pays this once per
/// batch, between one batch and the next, to hand its answers back.
pub async fn waker_side(rounds: u32) -> Duration {
    let (tx, mut rx) = mpsc::unbounded_channel::<oneshot::Sender<()>>();
    let thread = std::thread::spawn(move || {
        let mut costs = Vec::with_capacity(rounds as usize);
        while let Some(reply) = rx.blocking_recv() {
            let until = Instant::now() + Duration::from_micros(200);
            while Instant::now() < until {
                std::hint::spin_loop();
            }
            let started = Instant::now();
            let _ = reply.send(());
            costs.push(started.elapsed());
        }
        costs
    });
    for _ in 0..rounds {
        let (reply, answered) = oneshot::channel();
        let _ = tx.send(reply);
        let _ = answered.await;
    }
    drop(tx);
    let mut costs = thread.join().unwrap_or_default();
    costs.sort();
    costs.get(costs.len() / 2).copied().unwrap_or_default()
}
