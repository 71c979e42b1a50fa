//! The engine: what runs behind the callers. The scheduler task owns the
//! queue and forms batches; partitions run them; delivery answers the
//! callers. Callers talk to it only through the messages in [`message`].

pub(crate) mod adaptive;
pub(crate) mod clock;
pub(crate) mod delivery;
pub(crate) mod message;
pub(crate) mod partition;
pub(crate) mod precise_timer;
pub(crate) mod queue;
pub(crate) mod scheduler;
