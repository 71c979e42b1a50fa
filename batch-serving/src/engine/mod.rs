//! The engine: what runs behind the callers. The scheduler task owns the
//! queue, which stores calls, and forms batches as the policy says;
//! partitions run them; delivery answers the callers. Callers talk to it
//! only through the messages in [`message`], and read the policy's
//! forecast at admission.

pub(crate) mod clock;
pub(crate) mod delivery;
pub(crate) mod message;
pub(crate) mod partition;
pub(crate) mod policy;
pub(crate) mod precise_timer;
pub(crate) mod queue;
pub(crate) mod scheduler;
