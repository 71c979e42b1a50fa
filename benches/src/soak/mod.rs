//! The soak runner: a long, mixed, fault-injected load on one serving at a
//! time (restarted now and then), with every call's outcome checked against
//! what its faults allow, and the serving's counters checked against the
//! runner's own.

mod callers;
mod function;
mod ledger;
pub mod nats;

pub use callers::{Instance, Load, Outcome, run, start_instance};
pub use function::{FaultRates, Faulty, INJECTED_PANIC, InjectedFault, Plan, SoakItem};
pub use ledger::{CallLedger, Tally, Violation};
