//! S7: open-loop arrivals. Calls arrive on a seeded trace whatever the
//! contender does (Poisson, or bursts), each as its own task, and each
//! call counts as on time when answered within the latency target.
//!
//! Arrivals are released on tokio's timer, which ticks each millisecond:
//! the calls due within a tick start together at its end. That is the same
//! for every contender; latency is counted from when a call starts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use crate::batch_log::{BatchCounts, LOG};
use crate::contenders::Contender;

/// Runs so far in this process.
static RUNS: AtomicU64 = AtomicU64::new(0);

/// Arrival times, from the start of a run.
pub type Trace = Vec<Duration>;

/// A Poisson process of `rate` calls per second for `span`.
pub fn poisson(rate: f64, span: Duration, seed: u64) -> Trace {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut at = 0.0;
    let mut trace = Vec::new();
    loop {
        let u: f64 = rng.random();
        at += -(1.0 - u).ln() / rate;
        if at >= span.as_secs_f64() {
            return trace;
        }
        trace.push(Duration::from_secs_f64(at));
    }
}

/// Bursts with a mean of `rate`: in each 50 ms, 10 ms at three times
/// `rate` and 40 ms at half of it, each a Poisson process.
pub fn bursty(rate: f64, span: Duration, seed: u64) -> Trace {
    let period = Duration::from_millis(50).as_nanos();
    let burst = Duration::from_millis(10).as_nanos();
    let in_burst = |at: &Duration| at.as_nanos() % period < burst;
    let mut trace: Trace = poisson(3.0 * rate, span, seed)
        .into_iter()
        .filter(in_burst)
        .chain(
            poisson(0.5 * rate, span, !seed)
                .into_iter()
                .filter(|at| !in_burst(at)),
        )
        .collect();
    trace.sort_unstable();
    trace
}

/// How one open-loop run went.
#[derive(Debug, Clone, Default)]
pub struct OpenLoop {
    /// Calls offered.
    pub offered: u64,
    /// Answered correctly within the target.
    pub on_time: u64,
    /// Answered correctly, after the target.
    pub late: u64,
    /// Answered with an error (refused, dropped).
    pub refused: u64,
    /// Answered with someone else's result.
    pub wrong: u64,
    /// The median latency of the answered calls.
    pub p50: Duration,
    /// Their 99th percentile latency.
    pub p99: Duration,
    /// Calls answered within the target per second of the trace.
    pub goodput: f64,
    /// What the batch function saw.
    pub batches: BatchCounts,
}

impl OpenLoop {
    /// The share of offered calls answered within the target.
    pub fn attainment(&self) -> f64 {
        self.on_time as f64 / self.offered.max(1) as f64
    }
}

#[derive(Default)]
struct Tally {
    on_time: u64,
    late: u64,
    refused: u64,
    wrong: u64,
}

/// Offers `trace` to `contender` and waits for every answer.
pub async fn run(
    contender: Arc<dyn Contender>,
    trace: &[Duration],
    span: Duration,
    target: Duration,
    batch_size: usize,
) -> OpenLoop {
    LOG.reset(batch_size);
    let run = RUNS.fetch_add(1, Ordering::Relaxed);
    let latencies = Arc::new(Mutex::new(
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
            .unwrap_or_else(|e| panic!("histogram bounds: {e}")),
    ));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let start = Instant::now() + Duration::from_millis(5);
    let mut calls = Vec::with_capacity(trace.len());
    for (i, &at) in trace.iter().enumerate() {
        let due = start + at;
        if due > Instant::now() {
            tokio::time::sleep_until(due).await;
        }
        let (contender, latencies, tally) = (
            Arc::clone(&contender),
            Arc::clone(&latencies),
            Arc::clone(&tally),
        );
        // Unique across runs of the process, so that a stale reply shows.
        let x = run << 32 | i as u64;
        calls.push(tokio::spawn(async move {
            let asked = std::time::Instant::now();
            let answer = contender.call(x).await;
            let took = asked.elapsed();
            let mut tally = tally.lock().unwrap_or_else(|p| p.into_inner());
            match answer {
                Ok(y) if y == x.wrapping_add(1) => {
                    let _ = latencies
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .record(took.as_micros().max(1) as u64);
                    if took <= target {
                        tally.on_time += 1;
                    } else {
                        tally.late += 1;
                    }
                }
                Ok(_) => tally.wrong += 1,
                Err(_) => tally.refused += 1,
            }
        }));
    }
    for call in calls {
        let _ = call.await;
    }
    let tally = tally.lock().unwrap_or_else(|p| p.into_inner());
    let latencies = latencies.lock().unwrap_or_else(|p| p.into_inner());
    OpenLoop {
        offered: trace.len() as u64,
        on_time: tally.on_time,
        late: tally.late,
        refused: tally.refused,
        wrong: tally.wrong,
        p50: Duration::from_micros(latencies.value_at_quantile(0.5)),
        p99: Duration::from_micros(latencies.value_at_quantile(0.99)),
        goodput: tally.on_time as f64 / span.as_secs_f64(),
        batches: LOG.snapshot(),
    }
}
