//! S3: bursts. All callers fire together at fixed intervals; measures each
//! call's latency from the burst and the time from a burst to its last reply.
//!
//! A burst starts when its first caller actually fires, not at the instant
//! the callers' timers were set for: tokio's timer rounds up to its 1 ms
//! tick and wakes 256 sleepers one by one, which made callers fire 0.4 to
//! 4.9 ms late here, the same for every contender. That lateness is reported
//! on its own (`timer_lag`) instead of being charged to the contenders.

use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::time::Instant;

use crate::batch_log::{BatchCounts, LOG};
use crate::batch_times::TIMES;
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
    /// Mean time from the instant a burst was set for to its first caller
    /// firing: the timer's lateness, outside any contender's control.
    pub timer_lag: Duration,
    /// Mean time from a burst's first firing to its first batch starting.
    pub to_first_batch: Duration,
    /// Mean time per burst that the batch function was running.
    pub in_batches: Duration,
    /// Mean time per burst between one batch's end and the next's start.
    pub between_batches: Duration,
    /// Mean time from a burst's last batch ending to its last reply.
    pub after_last_batch: Duration,
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
    TIMES.start();
    let start = Instant::now() + Duration::from_millis(20);
    let tasks: Vec<_> = (0..callers)
        .map(|caller| {
            let contender = Arc::clone(&contender);
            tokio::spawn(async move {
                // (when this caller fired, when its reply came) per burst
                let mut calls = Vec::with_capacity(bursts);
                let mut bad = 0;
                for burst in 0..bursts {
                    tokio::time::sleep_until(start + every * burst as u32).await;
                    let fired = Instant::now();
                    let x = unique_input(caller, burst as u64);
                    match contender.call(x).await {
                        Ok(y) if y == x.wrapping_add(1) => {}
                        _ => bad += 1,
                    }
                    calls.push((fired, Instant::now()));
                }
                (calls, bad)
            })
        })
        .collect();
    let mut per_caller = Vec::with_capacity(callers);
    let mut result = Bursts::default();
    for task in tasks {
        match task.await {
            Ok((calls, bad)) => {
                result.bad += bad;
                per_caller.push(calls);
            }
            Err(_) => result.bad += bursts as u64,
        }
    }
    // Each burst's first firing and last reply, over all its callers.
    let mut first_fired: Vec<Option<Instant>> = vec![None; bursts];
    let mut last_reply: Vec<Option<Instant>> = vec![None; bursts];
    for calls in &per_caller {
        for (burst, &(fired, replied)) in calls.iter().enumerate() {
            first_fired[burst] = Some(first_fired[burst].map_or(fired, |f| f.min(fired)));
            last_reply[burst] = Some(last_reply[burst].map_or(replied, |r| r.max(replied)));
        }
    }
    let mut latencies =
        Histogram::<u64>::new(3).unwrap_or_else(|_| unreachable!("3 significant figures is valid"));
    for calls in &per_caller {
        for (burst, &(_, replied)) in calls.iter().enumerate() {
            let from = first_fired[burst].unwrap_or(replied);
            let _ = latencies.record(replied.saturating_duration_since(from).as_nanos() as u64);
        }
    }
    let spans: Vec<Duration> = first_fired
        .iter()
        .zip(&last_reply)
        .filter_map(|(fired, replied)| {
            Some(
                replied
                    .as_ref()?
                    .saturating_duration_since(*fired.as_ref()?),
            )
        })
        .collect();
    let lags: Vec<Duration> = first_fired
        .iter()
        .enumerate()
        .filter_map(|(burst, fired)| {
            Some(
                fired
                    .as_ref()?
                    .saturating_duration_since(start + every * burst as u32),
            )
        })
        .collect();
    let batches = TIMES.stop();
    let mut parts = Vec::with_capacity(bursts);
    for (fired, replied) in first_fired.iter().zip(&last_reply) {
        let (Some(fired), Some(replied)) = (fired, replied) else {
            continue;
        };
        let (fired, replied) = (fired.into_std(), replied.into_std());
        parts.push(split_burst(
            fired,
            replied,
            batches.iter().filter(|(s, _)| (fired..replied).contains(s)),
        ));
    }
    let part =
        |pick: fn(&BurstParts) -> Duration| mean(&parts.iter().map(pick).collect::<Vec<_>>());
    result.to_first_batch = part(|p| p.to_first_batch);
    result.in_batches = part(|p| p.in_batches);
    result.between_batches = part(|p| p.between_batches);
    result.after_last_batch = part(|p| p.after_last_batch);
    result.p50 = Duration::from_nanos(latencies.value_at_quantile(0.5));
    result.p99 = Duration::from_nanos(latencies.value_at_quantile(0.99));
    result.mean_burst = mean(&spans);
    result.max_burst = spans.iter().copied().max().unwrap_or_default();
    result.timer_lag = mean(&lags);
    result.batches = LOG.snapshot();
    result
}

fn mean(durations: &[Duration]) -> Duration {
    durations.iter().sum::<Duration>() / durations.len().max(1) as u32
}

/// Where one burst's time went.
struct BurstParts {
    to_first_batch: Duration,
    in_batches: Duration,
    between_batches: Duration,
    after_last_batch: Duration,
}

/// Splits the time from `fired` to `replied` by the batches that ran in it
/// (in order of their start).
fn split_burst<'a>(
    fired: std::time::Instant,
    replied: std::time::Instant,
    batches: impl Iterator<Item = &'a (std::time::Instant, std::time::Instant)>,
) -> BurstParts {
    let mut parts = BurstParts {
        to_first_batch: Duration::ZERO,
        in_batches: Duration::ZERO,
        between_batches: Duration::ZERO,
        after_last_batch: Duration::ZERO,
    };
    let mut last_end: Option<std::time::Instant> = None;
    for &(started, ended) in batches {
        match last_end {
            None => parts.to_first_batch = started - fired,
            Some(end) => parts.between_batches += started.saturating_duration_since(end),
        }
        parts.in_batches += ended - started;
        last_end = Some(ended);
    }
    parts.after_last_batch =
        last_end.map_or(Duration::ZERO, |end| replied.saturating_duration_since(end));
    parts
}
