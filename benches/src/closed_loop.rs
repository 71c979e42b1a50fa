//! A closed-loop cell: C callers each send a unique input, check the reply is
//! their own `x + 1`, and send again, until a call count or a time is
//! reached.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::batch_log::{BatchCounts, LOG};
use crate::contenders::Contender;

/// One cell's measurements.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cell {
    /// Calls answered correctly.
    pub calls: u64,
    /// Calls that returned an error.
    pub errors: u64,
    /// Calls answered with someone else's (or a wrong) reply.
    pub wrong: u64,
    /// Calls per second.
    pub per_second: f64,
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
    /// What the batch function saw.
    pub batches: BatchCounts,
}

impl Cell {
    /// Mean items per batch.
    pub fn mean_batch(&self) -> f64 {
        if self.batches.batches == 0 {
            0.0
        } else {
            self.batches.items as f64 / self.batches.batches as f64
        }
    }
}

/// A caller's unique input for its `seq`-th call.
pub fn unique_input(caller: usize, seq: u64) -> u64 {
    ((caller as u64) << 40) | seq
}

/// Runs `callers` closed-loop callers against `contender` until `max_calls`
/// calls were made or `max_time` passed, on the current runtime.
pub async fn run(
    contender: Arc<dyn Contender>,
    callers: usize,
    max_calls: u64,
    max_time: Duration,
    batch_size: usize,
) -> Cell {
    LOG.reset(batch_size);
    let issued = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + max_time;
    let tasks: Vec<_> = (0..callers)
        .map(|caller| {
            let (contender, issued) = (Arc::clone(&contender), Arc::clone(&issued));
            tokio::spawn(async move {
                let mut latencies = Histogram::<u64>::new(3)
                    .unwrap_or_else(|_| unreachable!("3 significant figures is valid"));
                let (mut errors, mut wrong) = (0u64, 0u64);
                let mut seq = 0;
                while issued.fetch_add(1, Ordering::Relaxed) < max_calls
                    && Instant::now() < deadline
                {
                    let x = unique_input(caller, seq);
                    seq += 1;
                    let sent = Instant::now();
                    match contender.call(x).await {
                        Ok(y) if y == x.wrapping_add(1) => {
                            let _ = latencies.record(sent.elapsed().as_nanos() as u64);
                        }
                        Ok(_) => wrong += 1,
                        Err(_) => errors += 1,
                    }
                }
                (latencies, errors, wrong)
            })
        })
        .collect();
    let mut latencies =
        Histogram::<u64>::new(3).unwrap_or_else(|_| unreachable!("3 significant figures is valid"));
    let mut cell = Cell::default();
    for task in tasks {
        match task.await {
            Ok((h, errors, wrong)) => {
                let _ = latencies.add(&h);
                cell.errors += errors;
                cell.wrong += wrong;
            }
            Err(_) => cell.errors += 1,
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    cell.calls = latencies.len();
    cell.per_second = cell.calls as f64 / elapsed;
    cell.p50 = Duration::from_nanos(latencies.value_at_quantile(0.5));
    cell.p99 = Duration::from_nanos(latencies.value_at_quantile(0.99));
    cell.batches = LOG.snapshot();
    cell
}
