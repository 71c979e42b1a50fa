//! The caller side: a handle with the verbs of a local serving, for a
//! serving that runs on other machines (and maybe this one).
//!
//! A call goes to the local serving when one was given and it has room;
//! otherwise to a node picked from the nodes' published load
//! ([`route`]); otherwise, while no load is known yet, to the shared
//! subject, where NATS picks a node at random. A call that a node refused
//! before running it (full queue, shutting down, gone) is tried on another
//! node, up to `max_tries`; one that may have run is tried again only on an
//! idempotent handle.

//!
//! The data path: `builder` starts a `handle`; its `verbs` send each call
//! through `retry` (where to, and when again), which either makes an
//! `attempt` (the messages of one try) itself, or hands the call to the
//! node's coalescer (`coalesce`), whose batch function makes one attempt
//! for many calls. Attempts speak over the `wire` and hear through the
//! `inbox`; `discovery` keeps the nodes' load in `route`'s table.

mod attempt;
mod builder;
mod coalesce;
mod discovery;
mod event;
mod handle;
mod inbox;
mod retry;
mod route;
mod shared;
mod verbs;
mod wire;

pub use builder::{DEFAULT_MAX_TRIES, DEFAULT_REFRESH, DEFAULT_SILENCE_LIMIT, RemoteBuilder};
pub use coalesce::{DEFAULT_COALESCE_IN_FLIGHT, DEFAULT_COALESCE_LINGER, DEFAULT_COALESCE_MAX};
pub use event::RemoteEvent;
pub use handle::RemoteServing;
