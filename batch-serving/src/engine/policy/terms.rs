//! The terms of the seam between the scheduler and the policy: the
//! settings it decides by ([`Rules`]), what it is shown of a key's forming
//! batch ([`Forming`]), and what it answers ([`Ready`], [`Bound`],
//! [`Order`]).

use tokio::time::{Duration, Instant};

use crate::key::BatchKey;
use crate::policy::{Policy, StartReason};

/// The settings the policy decides by, validated by the builder.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rules {
    pub(crate) policy: Policy,
    pub(crate) batch_size: usize,
    pub(crate) batch_timeout: Duration,
    /// Whether a full batch may be handed to a busy partition ahead of time.
    pub(crate) pipeline: bool,
    /// The most weight in one batch (`u64::MAX`: bounded by count only).
    pub(crate) max_weight: u64,
}

/// How much one batch may hold: a count of items and a summed weight.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bound {
    pub(crate) items: usize,
    pub(crate) weight: u64,
}

/// What the policy sees of one key's forming batch.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Forming {
    pub(crate) key: BatchKey,
    /// Items queued under the key, live or not.
    pub(crate) len: usize,
    /// Their summed weight.
    pub(crate) weight: u64,
    /// When the forming batch got its first item: its timer runs from here.
    pub(crate) since: Instant,
}

/// Whether a forming batch may start on an idle partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ready {
    Now(StartReason),
    /// At that moment, unless it fills first.
    At(Instant),
}

/// How calls are ordered within a lane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Order {
    /// In arrival order.
    Fifo,
    /// Earliest due first: each call is due at its arrival plus `budget`,
    /// or at its deadline if sooner (see `engine::queue`).
    EarliestDue { budget: Duration },
}
