//! S3: bursts. All callers fire together at fixed intervals; measures each
//! call's latency from the burst and the time from a burst to its last reply.

use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::time::Instant;

use crate::batch_log::{BatchCounts, LOG};
use crate::closed_loop::unique_input;
use crate::contenders::Contender;

/// The measurements of one run of bursts.
#[derive(Debug, Clone, Default)]
pub struct Bursts {
    /// Median call latency from its burst.
    pub p50: Duration,
    /// 99th percentile call latency.
    pub p99: Duration,
    /// Mean time from a burst to its last reply.
    pub mean_burst: Duration,
    /// Longest time from a burst to its last reply.
    pub max_burst: Duration,
    /// Calls that failed or got a wrong reply.
    pub bad: u64,
    /// What the batch function saw.
    pub batches: BatchCounts,
}

/// Fires `callers` calls at once every `every`, `bursts` times.
pub async fn run(
    contender: Arc<dyn Contender>,
    callers: usize,
    bursts: usize,
    every: Duration,
    batch_size: usize,
) -> Bursts {
    LOG.reset(batch_size);
    let start = Instant::now() + Duration::from_millis(20);
    let tasks: Vec<_> = (0..callers)
        .map(|caller| {
            let contender = Arc::clone(&contender);
            tokio::spawn(async move {
                let mut finished = Vec::with_capacity(bursts);
                let mut bad = 0;
                for burst in 0..bursts {
                    let fire = start + every * burst as u32;
                    tokio::time::sleep_until(fire).await;
                    let x = unique_input(caller, burst as u64);
                    match contender.call(x).await {
                        Ok(y) if y == x.wrapping_add(1) => {}
                        _ => bad += 1,
                    }
                    finished.push(Instant::now().saturating_duration_since(fire));
                }
                (finished, bad)
            })
        })
        .collect();
    let mut per_burst_last = vec![Duration::ZERO; bursts];
    let mut latencies =
        Histogram::<u64>::new(3).unwrap_or_else(|_| unreachable!("3 significant figures is valid"));
    let mut result = Bursts::default();
    for task in tasks {
        let Ok((finished, bad)) = task.await else {
            result.bad += bursts as u64;
            continue;
        };
        result.bad += bad;
        for (burst, took) in finished.into_iter().enumerate() {
            let _ = latencies.record(took.as_nanos() as u64);
            per_burst_last[burst] = per_burst_last[burst].max(took);
        }
    }
    result.p50 = Duration::from_nanos(latencies.value_at_quantile(0.5));
    result.p99 = Duration::from_nanos(latencies.value_at_quantile(0.99));
    result.mean_burst = per_burst_last.iter().sum::<Duration>() / bursts.max(1) as u32;
    result.max_burst = per_burst_last.iter().copied().max().unwrap_or_default();
    result.batches = LOG.snapshot();
    result
}
