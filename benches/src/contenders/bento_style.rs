//! A BentoML-style adaptive dispatcher, written in the bench from BentoML's
//! published description of its adaptive batching: batch time is fitted as
//! `a·n + b` by least squares over the last 50 batches; a call whose wait
//! plus the predicted batch time would pass the latency limit is dropped,
//! oldest first; and a ready batch waits for more arrivals while the
//! expected gain holds. Calls are served oldest first (BentoML served them
//! newest first until its issue #4592 was fixed).
//!
//! "The expected gain" is taken here as: one more tick of waiting lowers
//! the predicted time per item by at least 5%, at the recent arrival rate,
//! and the oldest call still makes the limit after it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use super::dispatch_thread::{self, Pending, run_and_answer};
use super::{Contender, Setup};

/// Batches the fit remembers.
const WINDOW: usize = 50;
/// How long one wait for more arrivals lasts.
const TICK: Duration = Duration::from_micros(200);
/// The least fall in time per item that one tick must promise.
const MIN_GAIN: f64 = 0.05;

/// `a·n + b` over the last batches, in seconds.
#[derive(Default)]
struct Fit {
    batches: VecDeque<(f64, f64)>,
}

impl Fit {
    fn add(&mut self, n: usize, took: Duration) {
        if self.batches.len() == WINDOW {
            self.batches.pop_front();
        }
        self.batches.push_back((n as f64, took.as_secs_f64()));
    }

    /// (a, b): per item and per batch; zero until two sizes are seen.
    fn line(&self) -> (f64, f64) {
        let count = self.batches.len() as f64;
        if count < 2.0 {
            return (0.0, self.batches.front().map_or(0.0, |b| b.1));
        }
        let mean_n = self.batches.iter().map(|b| b.0).sum::<f64>() / count;
        let mean_t = self.batches.iter().map(|b| b.1).sum::<f64>() / count;
        let var: f64 = self.batches.iter().map(|b| (b.0 - mean_n).powi(2)).sum();
        if var <= f64::EPSILON {
            return (0.0, mean_t);
        }
        let cov: f64 = self
            .batches
            .iter()
            .map(|b| (b.0 - mean_n) * (b.1 - mean_t))
            .sum();
        let a = (cov / var).max(0.0);
        (a, (mean_t - a * mean_n).max(0.0))
    }
}

pub(super) fn start(setup: Setup, limit: Duration) -> Arc<dyn Contender> {
    dispatch_thread::spawn("bento-style", move |rx| {
        let mut queue: VecDeque<Pending> = VecDeque::new();
        let mut fit = Fit::default();
        // Arrivals per second, exponentially smoothed per batch.
        let mut rate = 0.0f64;
        let mut since = Instant::now();
        let mut arrived = 0usize;
        loop {
            if queue.is_empty() {
                let Ok(first) = rx.recv() else { return };
                queue.push_back(first);
                arrived += 1;
            }
            arrived += drain(&rx, &mut queue);
            let (a, b) = fit.line();
            let now = Instant::now();
            // Drop, oldest first, what the next batch cannot finish in time.
            while let Some(front) = queue.front() {
                let n = queue.len().min(setup.batch_size) as f64;
                let finish = now.duration_since(front.at).as_secs_f64() + a * n + b;
                if finish <= limit.as_secs_f64() {
                    break;
                }
                if let Some(late) = queue.pop_front() {
                    late.refuse("dropped: past the latency limit");
                }
            }
            if queue.is_empty() {
                continue;
            }
            let n = queue.len().min(setup.batch_size) as f64;
            let more = rate * TICK.as_secs_f64();
            let per_item = |n: f64| a + b / n.max(1.0);
            let oldest = now.duration_since(queue[0].at) + TICK;
            let gain = 1.0 - per_item(n + more) / per_item(n);
            let holds = oldest.as_secs_f64() + a * (n + more) + b <= limit.as_secs_f64();
            if n < setup.batch_size as f64 && gain >= MIN_GAIN && holds {
                match rx.recv_timeout(TICK) {
                    Ok(next) => {
                        queue.push_back(next);
                        arrived += 1;
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
                continue;
            }
            let take = queue.len().min(setup.batch_size);
            let batch: Vec<Pending> = queue.drain(..take).collect();
            let (took, _) = run_and_answer(setup.cost, batch);
            fit.add(take, took);
            let elapsed = since.elapsed().as_secs_f64();
            if elapsed > 0.0 {
                rate = 0.8 * rate + 0.2 * arrived as f64 / elapsed;
            }
            since = Instant::now();
            arrived = 0;
        }
    })
}

/// Moves every waiting arrival onto the queue; returns how many.
fn drain(rx: &Receiver<Pending>, queue: &mut VecDeque<Pending>) -> usize {
    let mut moved = 0;
    loop {
        match rx.try_recv() {
            Ok(next) => {
                queue.push_back(next);
                moved += 1;
            }
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => return moved,
        }
    }
}
