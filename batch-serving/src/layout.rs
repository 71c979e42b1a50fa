//! The sizes of what one queued `u64` call holds, for the comparison
//! runner's memory accounting (`docs/benchmarks.md`): read from the real
//! types, so the report cannot drift from the code. Only with the
//! non-default feature `bench-internals`: it is not part of the API.

use std::convert::Infallible;
use std::mem::size_of;

use crate::call::one::OneCall;
use crate::engine::message::Msg;
use crate::engine::queue::Entry;
use crate::request::Request;

/// One part of a queued call, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct Part {
    /// What it is.
    pub name: &'static str,
    /// Its size in bytes; for the shared state, with the `Arc`'s two counts.
    pub bytes: usize,
    /// Whether it lives until the call is answered (false: it is freed once
    /// the scheduler has taken the message).
    pub held: bool,
}

/// The parts of one queued `dispatch` of a `u64`, with `u64` outputs.
pub fn queued_u64_call() -> [Part; 4] {
    [
        Part {
            name: "the call's shared state (`Arc<Request>`: progress, and the reply slot and waker under one lock)",
            bytes: 2 * size_of::<usize>() + size_of::<Request<u64, Infallible>>(),
            held: true,
        },
        Part {
            name: "the `dispatch` future",
            bytes: size_of::<OneCall<'static, u64, u64, Infallible>>(),
            held: true,
        },
        Part {
            name: "the queue entry (item, call, position, time queued)",
            bytes: size_of::<Entry<u64, u64, Infallible>>(),
            held: true,
        },
        Part {
            name: "the message to the scheduler",
            bytes: size_of::<Msg<u64, u64, Infallible>>(),
            held: false,
        },
    ]
}
