//! The "±4 rule" of the C# BatchServing design (its issue #412): a
//! timeout batcher whose batch cap shrinks by 4 when latency is above 1.1×
//! the target and grows by 4 when it is below 0.9×. Written in the bench
//! from that description; the latency it steers by is each batch's
//! longest, from arrival to answer.

use std::sync::Arc;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use super::dispatch_thread::{self, run_and_answer};
use super::{Contender, Setup};

/// How much the cap moves per batch.
const STEP: usize = 4;

pub(super) fn start(setup: Setup, target: Duration) -> Arc<dyn Contender> {
    dispatch_thread::spawn("step-rule", move |rx| {
        let mut cap = setup.batch_size;
        while let Ok(first) = rx.recv() {
            let deadline = first.at + setup.max_wait;
            let mut batch = vec![first];
            while batch.len() < cap {
                let left = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(left) {
                    Ok(next) => batch.push(next),
                    Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                }
            }
            let (_, longest) = run_and_answer(setup.cost, batch);
            if longest > target.mul_f64(1.1) {
                cap = cap.saturating_sub(STEP).max(1);
            } else if longest < target.mul_f64(0.9) {
                cap = (cap + STEP).min(setup.batch_size);
            }
        }
    })
}
