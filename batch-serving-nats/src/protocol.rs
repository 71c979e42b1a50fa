//! The wire: subjects, headers and error kinds that nodes and callers share.
//! Everything that crosses NATS is named here and nowhere else, so the two
//! sides cannot drift apart.
//!
//! Version 1, for a serving named `N`:
//! - the NATS service is `bsv1-N`, so `$SRV.PING|INFO|STATS.bsv1-N` finds
//!   every node, and a node speaking another version is another service;
//! - `bsv1.N.call` is the shared subject (NATS queue group `bsv1.N`: one
//!   random node per request), used while no node's load is known;
//! - `bsv1.N.node.ID` is one node's own subject, where routed calls go;
//! - `bsv1.N.cancel` is a plain subject every node hears: a dropped call.
//!
//! A request carries [`PROTOCOL`] and its call id, mode, codec, priority and
//! remaining time in headers; replies go to the request's reply subject as
//! one or more messages, each with a [`KIND`] header. The last one is
//! `done`, or an error (the service API's `Nats-Service-Error` headers plus
//! [`ERROR_KIND`]).

use async_nats::HeaderMap;
use batch_serving::Priority;

/// The protocol version this crate speaks. A request without this exact
/// value in [`PROTOCOL`] is refused with a `bad_request` error reply.
pub const VERSION: &str = "1";

/// The NATS service name for a serving named `name`.
pub fn service_name(name: &str) -> String {
    format!("bsv{VERSION}-{name}")
}

/// The subject every node of `name` listens on through one queue group.
pub fn shared_subject(name: &str) -> String {
    format!("bsv{VERSION}.{name}.call")
}

/// The subject one node listens on alone.
pub fn node_subject(name: &str, node: &str) -> String {
    format!("bsv{VERSION}.{name}.node.{node}")
}

/// The subject where dropped calls are announced to every node.
pub fn cancel_subject(name: &str) -> String {
    format!("bsv{VERSION}.{name}.cancel")
}

/// The queue group of the shared subject.
pub fn queue_group(name: &str) -> String {
    format!("bsv{VERSION}.{name}")
}

/// Serving names become subject tokens and a service name, so they are
/// held to what both allow.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Request header: the protocol version.
pub const PROTOCOL: &str = "BS-Protocol";
/// Request and reply header: the call id, unique per calling process.
pub const CALL: &str = "BS-Call";
/// Request header: `one`, `many` or `stream`.
pub const MODE: &str = "BS-Mode";
/// Request header: the codec of the items; reply header: of the outputs.
pub const CODEC: &str = "BS-Codec";
/// Request header: `low`, `normal` or `high`.
pub const PRIORITY: &str = "BS-Priority";
/// Request header: microseconds left until the call's deadline. Relative,
/// because the caller's and the node's clocks need not agree.
pub const TIMEOUT_US: &str = "BS-Timeout-Us";
/// Reply header: what this message is (see the `KIND_*` values).
pub const KIND: &str = "BS-Kind";
/// Reply header: the id of the node that answers.
pub const NODE: &str = "BS-Node";
/// Reply header on `output`: index of the piece's first item in the call.
pub const OFFSET: &str = "BS-Offset";
/// Reply header on `hook`: the hook's name.
pub const HOOK_NAME: &str = "BS-Hook";
/// Reply header on `hook`: the item the hook is about, when it is about one.
pub const HOOK_ITEM: &str = "BS-Hook-Item";
/// Reply header on an error: which [`ErrorKind`] it is.
pub const ERROR_KIND: &str = "BS-Error";

/// The node queued the call and is working on it; sent when it is not
/// answered soon, then again at every heartbeat until it is.
pub const KIND_ALIVE: &str = "alive";
/// A streaming call's piece of outputs.
pub const KIND_OUTPUT: &str = "output";
/// A streaming call's hook event.
pub const KIND_HOOK: &str = "hook";
/// The last message of a successful call: its outputs, or for a stream an
/// empty end marker.
pub const KIND_DONE: &str = "done";
/// The last message of a failed call.
pub const KIND_ERROR: &str = "error";

/// How a request asks to be run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One item in, one output back.
    One,
    /// Many items in, their outputs back in one message.
    Many,
    /// Many items in; outputs and hook events as they happen, then `done`.
    Stream,
}

impl Mode {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::One => "one",
            Mode::Many => "many",
            Mode::Stream => "stream",
        }
    }

    /// Parses a header value.
    pub fn parse(value: &str) -> Option<Mode> {
        match value {
            "one" => Some(Mode::One),
            "many" => Some(Mode::Many),
            "stream" => Some(Mode::Stream),
            _ => None,
        }
    }
}

/// The header value of a priority.
pub fn priority_str(priority: Priority) -> &'static str {
    match priority {
        Priority::Low => "low",
        Priority::High => "high",
        _ => "normal",
    }
}

/// Parses a priority header value.
pub fn parse_priority(value: &str) -> Option<Priority> {
    match value {
        "low" => Some(Priority::Low),
        "normal" => Some(Priority::Normal),
        "high" => Some(Priority::High),
        _ => None,
    }
}

/// Why a node refused or failed a call, as carried in [`ERROR_KIND`].
/// The NATS service error code beside it follows HTTP, for tools that only
/// read `Nats-Service-Error-Code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request could not be read: wrong protocol, codec, headers or
    /// payload. Nothing ran.
    BadRequest,
    /// The node's queue had no room. Nothing ran; another node may take it.
    Overloaded,
    /// The node is shutting down. Nothing ran.
    Closed,
    /// The deadline passed before the outputs were ready.
    DeadlineExceeded,
    /// The batch function returned an error.
    Batch,
    /// The batch function panicked.
    Panicked,
    /// Any other failure of the call on the node.
    Failed,
}

impl ErrorKind {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::Closed => "closed",
            ErrorKind::DeadlineExceeded => "deadline_exceeded",
            ErrorKind::Batch => "batch",
            ErrorKind::Panicked => "panicked",
            ErrorKind::Failed => "failed",
        }
    }

    /// Parses a header value; an unknown one is a [`ErrorKind::Failed`].
    pub fn parse(value: &str) -> ErrorKind {
        match value {
            "bad_request" => ErrorKind::BadRequest,
            "overloaded" => ErrorKind::Overloaded,
            "closed" => ErrorKind::Closed,
            "deadline_exceeded" => ErrorKind::DeadlineExceeded,
            "batch" => ErrorKind::Batch,
            "panicked" => ErrorKind::Panicked,
            _ => ErrorKind::Failed,
        }
    }

    /// The `Nats-Service-Error-Code` beside it.
    pub fn code(self) -> usize {
        match self {
            ErrorKind::BadRequest => 400,
            ErrorKind::DeadlineExceeded => 408,
            ErrorKind::Closed => 410,
            ErrorKind::Batch | ErrorKind::Panicked | ErrorKind::Failed => 500,
            ErrorKind::Overloaded => 503,
        }
    }
}

/// A header's value as text, when it is there.
pub fn header<'a>(headers: Option<&'a HeaderMap>, name: &str) -> Option<&'a str> {
    headers?.get(name).map(|value| value.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_version_and_stay_apart() {
        assert_eq!(service_name("sq"), "bsv1-sq");
        assert_eq!(shared_subject("sq"), "bsv1.sq.call");
        assert_eq!(node_subject("sq", "abc"), "bsv1.sq.node.abc");
        assert_ne!(cancel_subject("sq"), shared_subject("sq"));
        assert!(valid_name("mobile-net_2"));
        for bad in ["", "a.b", "a b", "a*", "a>"] {
            assert!(!valid_name(bad), "{bad:?} must be refused");
        }
    }

    #[test]
    fn header_values_round_trip() {
        for mode in [Mode::One, Mode::Many, Mode::Stream] {
            assert_eq!(Mode::parse(mode.as_str()), Some(mode));
        }
        for p in [Priority::Low, Priority::Normal, Priority::High] {
            assert_eq!(parse_priority(priority_str(p)), Some(p));
        }
        for kind in [
            ErrorKind::BadRequest,
            ErrorKind::Overloaded,
            ErrorKind::Closed,
            ErrorKind::DeadlineExceeded,
            ErrorKind::Batch,
            ErrorKind::Panicked,
            ErrorKind::Failed,
        ] {
            assert_eq!(ErrorKind::parse(kind.as_str()), kind);
        }
        assert_eq!(ErrorKind::parse("from-the-future"), ErrorKind::Failed);
        assert_eq!(Mode::parse("ONE"), None);
    }
}
