//! The batch function under test: `x + 1` per item, with faults injected
//! by plan (a call's items carry its plan), and a record of every item run.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use batch_serving::{Batch, BatchKey};

use super::CallLedger;

/// What a call asks the batch function to do to every batch it joins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Run normally.
    Normal,
    /// Return an error.
    Fail,
    /// Panic.
    Panic,
    /// Return one output too few.
    WrongCount,
    /// Sleep 1-3 ms, then run normally.
    Slow,
}

/// Bits recorded in [`CallLedger::faults`].
#[derive(Debug, Clone, Copy)]
pub struct InjectedFault;

impl InjectedFault {
    /// The batch returned an error.
    pub const ERROR: u8 = 1;
    /// The batch panicked.
    pub const PANIC: u8 = 2;
    /// The batch returned the wrong number of outputs.
    pub const WRONG_COUNT: u8 = 4;
}

/// Fractions of calls that carry each fault plan.
#[derive(Debug, Clone, Copy)]
pub struct FaultRates {
    /// Calls whose batches return an error.
    pub error: f64,
    /// Calls whose batches panic.
    pub panic: f64,
    /// Calls whose batches return one output too few.
    pub wrong_count: f64,
    /// Calls whose batches run slowly.
    pub slow: f64,
}

impl FaultRates {
    /// Picks a plan from `roll` (uniform in 0..1).
    pub fn plan(&self, roll: f64) -> Plan {
        let mut edge = self.error;
        if roll < edge {
            return Plan::Fail;
        }
        edge += self.panic;
        if roll < edge {
            return Plan::Panic;
        }
        edge += self.wrong_count;
        if roll < edge {
            return Plan::WrongCount;
        }
        edge += self.slow;
        if roll < edge {
            return Plan::Slow;
        }
        Plan::Normal
    }
}

/// One item: its value, its position in its call, the call's ledger and plan.
#[derive(Debug, Clone)]
pub struct SoakItem {
    /// The input; the output must be `value + 1`.
    pub value: u64,
    /// The item's position in its call.
    pub index: u32,
    /// The call's plan.
    pub plan: Plan,
    /// The call's ledger.
    pub ledger: Arc<CallLedger>,
}

impl SoakItem {
    /// The batch key: four keys, so keyed batching is always exercised.
    pub fn key(&self) -> BatchKey {
        BatchKey::from(self.value % 4)
    }
}

/// The per-serving counts the batch function keeps, to check `stats()`.
#[derive(Debug, Default)]
pub struct Faulty {
    /// Invocations.
    pub batches: AtomicU64,
    /// Items in them.
    pub items: AtomicU64,
    /// Invocations that returned an error or the wrong output count.
    pub failed: AtomicU64,
    /// Invocations that panicked.
    pub panicked: AtomicU64,
}

/// The message of an injected panic, which the runner's panic hook keeps
/// quiet.
pub const INJECTED_PANIC: &str = "soak: injected panic";

impl Faulty {
    /// Runs one batch: records each item's run, then applies the worst plan
    /// among the batch's items.
    pub fn run(&self, batch: Batch<SoakItem>) -> Result<Vec<u64>, String> {
        self.batches.fetch_add(1, Relaxed);
        self.items.fetch_add(batch.len() as u64, Relaxed);
        let worst = batch.iter().map(|i| i.plan).fold(Plan::Normal, worse);
        let bit = match worst {
            Plan::Fail => InjectedFault::ERROR,
            Plan::Panic => InjectedFault::PANIC,
            Plan::WrongCount => InjectedFault::WRONG_COUNT,
            Plan::Normal | Plan::Slow => 0,
        };
        for item in batch.iter() {
            let _ = item.ledger.runs[item.index as usize].fetch_add(1, Relaxed);
            item.ledger.faults.fetch_or(bit, Relaxed);
        }
        match worst {
            Plan::Fail => {
                self.failed.fetch_add(1, Relaxed);
                Err("soak: injected error".to_owned())
            }
            Plan::Panic => {
                self.panicked.fetch_add(1, Relaxed);
                std::panic::panic_any(INJECTED_PANIC)
            }
            Plan::WrongCount => {
                self.failed.fetch_add(1, Relaxed);
                Ok(batch.iter().skip(1).map(|i| i.value + 1).collect())
            }
            Plan::Slow => {
                std::thread::sleep(Duration::from_micros(1000 + batch[0].value % 2000));
                Ok(batch.iter().map(|i| i.value + 1).collect())
            }
            Plan::Normal => Ok(batch.iter().map(|i| i.value + 1).collect()),
        }
    }
}

fn worse(a: Plan, b: Plan) -> Plan {
    let rank = |p: Plan| match p {
        Plan::Normal => 0,
        Plan::Slow => 1,
        Plan::WrongCount => 2,
        Plan::Fail => 3,
        Plan::Panic => 4,
    };
    if rank(b) > rank(a) { b } else { a }
}
