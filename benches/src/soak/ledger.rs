//! What the runner knows about each call and what it found: per-item run
//! counts written by the batch function, the faults the function injected
//! into batches holding the call's items, and the tallies of outcomes.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering::Relaxed};

/// Shared by a call's items (through [`super::SoakItem`]) and its caller.
#[derive(Debug)]
pub struct CallLedger {
    /// How many times each item ran in the batch function.
    pub runs: Box<[AtomicU8]>,
    /// [`super::InjectedFault`] bits of every batch that held one of the
    /// call's items.
    pub faults: AtomicU8,
}

impl CallLedger {
    /// A ledger for a call of `len` items.
    pub fn new(len: usize) -> Self {
        Self {
            runs: (0..len).map(|_| AtomicU8::new(0)).collect(),
            faults: AtomicU8::new(0),
        }
    }

    /// Items that ran more than once.
    pub fn ran_twice(&self) -> usize {
        self.runs.iter().filter(|r| r.load(Relaxed) > 1).count()
    }

    /// Items that ran at all.
    pub fn ran(&self) -> usize {
        self.runs.iter().filter(|r| r.load(Relaxed) > 0).count()
    }
}

/// One broken promise, kept for the report (the first few of each kind).
#[derive(Debug, Clone)]
pub struct Violation {
    /// What was broken.
    pub kind: &'static str,
    /// The details.
    pub detail: String,
}

/// Counters of the whole run, updated by every caller.
#[derive(Debug, Default)]
pub struct Tally {
    /// Calls made, by kind of call.
    pub calls: AtomicU64,
    /// Items in those calls.
    pub items: AtomicU64,
    /// Calls answered with their own correct outputs.
    pub ok: AtomicU64,
    /// Calls failed by an injected batch error, panic or wrong output count.
    pub faulted: AtomicU64,
    /// Calls the runner dropped mid-flight.
    pub dropped: AtomicU64,
    /// Calls answered `DeadlineExceeded` (all had a deadline).
    pub expired: AtomicU64,
    /// `try_dispatch` calls answered `Overloaded`.
    pub overloaded: AtomicU64,
    /// Calls answered `Closed` by a serving that was shutting down.
    pub closed: AtomicU64,
    /// Items that ran after their caller dropped the call or saw it expire
    /// (claimed into a batch before that, which is allowed).
    pub ran_after_leaving: AtomicU64,
    /// Broken promises; must stay empty.
    pub violations: Mutex<Vec<Violation>>,
    /// All broken promises, counted.
    pub violation_count: AtomicU64,
}

impl Tally {
    /// Records a broken promise.
    pub fn violate(&self, kind: &'static str, detail: String) {
        self.violation_count.fetch_add(1, Relaxed);
        let mut kept = self
            .violations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if kept.iter().filter(|v| v.kind == kind).count() < 5 {
            kept.push(Violation { kind, detail });
        }
    }
}
