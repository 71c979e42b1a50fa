//! A closed-loop cell: C callers each send a unique input, check the reply is
//! their own `x + 1`, and send again, until a call count or a time is
//! reached.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::batch_log::{BatchCounts, LOG};
use crate::contenders::Contender;
use crate::cpu_time::process_cpu_seconds;

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
    /// CPU time of the whole process per answered call, in µs: the
    /// callers, the contender and anything it keeps spinning.
    pub cpu_us_per_call: f64,
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
    let cpu_before = process_cpu_seconds(None);
    let started = Instant::now();
    let deadline = started + max_time;
    let tasks: Vec<_> = (0..callers)
        .map(|caller| {
            let (contender, issued) = (Arc::clone(&contender), Arc::clone(&issued));
            tokio::spawn(async move {
                // Latencies are kept raw and put into a histogram after the
                // cell: a histogram per caller that resizes as it fills cost
                // 14% of the CPU at 1024 callers (profiled), and one clock
                // read per call serves as the end of one call, the deadline
                // check and the start of the next.
                let mut latencies = Vec::new();
                let (mut errors, mut wrong) = (0u64, 0u64);
                let mut seq = 0;
                let mut sent = Instant::now();
                while sent < deadline && issued.fetch_add(1, Ordering::Relaxed) < max_calls {
                    let x = unique_input(caller, seq);
                    seq += 1;
                    let outcome = contender.call(x).await;
                    let now = Instant::now();
                    match outcome {
                        Ok(y) if y == x.wrapping_add(1) => {
                            latencies.push(now.duration_since(sent).as_nanos() as u64);
                        }
                        Ok(_) => wrong += 1,
                        Err(_) => errors += 1,
                    }
                    sent = now;
                }
                (latencies, errors, wrong)
            })
        })
        .collect();
    let mut finished = Vec::with_capacity(tasks.len());
    for task in tasks {
        finished.push(task.await);
    }
    // Timed before the latencies are sorted into the histogram.
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = process_cpu_seconds(None) - cpu_before;
    let mut latencies =
        Histogram::<u64>::new(3).unwrap_or_else(|_| unreachable!("3 significant figures is valid"));
    let mut cell = Cell::default();
    for outcome in finished {
        match outcome {
            Ok((raw, errors, wrong)) => {
                for nanos in raw {
                    let _ = latencies.record(nanos);
                }
                cell.errors += errors;
                cell.wrong += wrong;
            }
            Err(_) => cell.errors += 1,
        }
    }
    cell.calls = latencies.len();
    cell.per_second = cell.calls as f64 / elapsed;
    cell.cpu_us_per_call = cpu * 1e6 / cell.calls.max(1) as f64;
    cell.p50 = Duration::from_nanos(latencies.value_at_quantile(0.5));
    cell.p99 = Duration::from_nanos(latencies.value_at_quantile(0.99));
    cell.batches = LOG.snapshot();
    cell
}
