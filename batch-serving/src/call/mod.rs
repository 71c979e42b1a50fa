//! What runs in the caller's task: the admission gate (queue room), the one-item
//! future, many-item calls, streams and inline runs. A call talks to the
//! engine only through [`crate::engine::message`] and its own reply slot
//! ([`crate::request`]); nothing here is imported by the engine.

pub(crate) mod core;
pub(crate) mod gate;
pub(crate) mod inline;
pub(crate) mod many;
pub(crate) mod one;
pub(crate) mod stream;
