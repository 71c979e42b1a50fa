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
//! A request carries its version, mode, codec, priority and remaining time
//! in one [`CALL`] header; its reply subject is its id. Replies go to that
//! subject as one or more messages, each with a [`REPLY`] header. The last
//! one is `done`, or an error (which also carries the service API's
//! `Nats-Service-Error` headers). A cancel is a message on the cancel
//! subject whose payload is the call's reply subject.
//!
//! A handle that coalesces sends many callers' calls to one node as one
//! request of mode `coalesced`, whose envelope ([`coalesced`]) carries each
//! call's own priority, deadline and items; the node feeds them to its
//! serving as separate calls and answers them in one `done` reply (with
//! `part` replies before it when one would pass `max_payload`). A cancel
//! of one of them names it: `REPLY_SUBJECT ID`.

pub mod coalesced;

use std::time::Duration;

use async_nats::HeaderMap;
use batch_serving::Priority;

/// The protocol version this crate speaks. A request whose [`CALL`] header
/// does not start with it is refused with a `bad_request` error reply.
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

/// Request header: what the call is, in one line, so that a request costs
/// one header to write and to parse (each header is a map entry with its
/// own allocations on both sides and in the server):
/// `VERSION MODE CODEC PRIORITY [TIMEOUT_US]`, for example
/// `1 one msgpack normal 250000`. The timeout is the microseconds left
/// until the call's deadline: relative, because the caller's and the
/// node's clocks need not agree. The call's id is its reply subject.
pub const CALL: &str = "BS-Call";
/// Reply header: `KIND NODE [ARGS]`: `alive NODE`, `done NODE`,
/// `output NODE OFFSET`, `hook NODE ITEM|- NAME`, `error NODE ERROR_KIND`,
/// and for a coalesced call `part NODE` before its `done NODE`.
pub const REPLY: &str = "BS-Reply";

/// The node queued the call and is working on it; sent when it is not
/// answered within a heartbeat, then again at every heartbeat until it is.
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
/// Some of a coalesced call's answers, when all of them in one message
/// would pass the server's `max_payload`; the rest follow, the last in
/// `done`.
pub const KIND_PART: &str = "part";

/// A request's [`CALL`] header, read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallHeader<'a> {
    /// How it is to run.
    pub mode: Mode,
    /// The items' codec name.
    pub codec: &'a str,
    /// Its priority.
    pub priority: Priority,
    /// Time left until its deadline, when it has one.
    pub timeout: Option<Duration>,
}

impl<'a> CallHeader<'a> {
    /// The header's value.
    pub fn write(&self) -> String {
        let mut line = format!(
            "{VERSION} {} {} {}",
            self.mode.as_str(),
            self.codec,
            priority_str(self.priority)
        );
        if let Some(timeout) = self.timeout {
            line.push(' ');
            line.push_str(&timeout.as_micros().to_string());
        }
        line
    }

    /// Reads a header value; the error says what is wrong, for the
    /// caller's `bad_request` reply.
    pub fn parse(line: &'a str) -> Result<Self, String> {
        let mut fields = line.split_ascii_whitespace();
        match fields.next() {
            Some(VERSION) => {}
            Some(other) => {
                return Err(format!(
                    "protocol version {other:?} is not spoken here (this node speaks {VERSION:?})"
                ));
            }
            None => return Err("empty BS-Call header".into()),
        }
        let mode = fields
            .next()
            .and_then(Mode::parse)
            .ok_or("missing or unknown mode")?;
        let codec = fields.next().ok_or("missing codec")?;
        let priority = fields
            .next()
            .and_then(parse_priority)
            .ok_or("missing or unknown priority")?;
        let timeout = match fields.next() {
            None => None,
            Some(micros) => Some(Duration::from_micros(
                micros.parse().map_err(|_| "the timeout is not a number")?,
            )),
        };
        if fields.next().is_some() {
            return Err("unexpected fields in BS-Call".into());
        }
        Ok(CallHeader {
            mode,
            codec,
            priority,
            timeout,
        })
    }
}

/// A reply's [`REPLY`] header, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyHeader<'a> {
    /// A heartbeat.
    Alive,
    /// The last message of a successful call.
    Done,
    /// A streaming piece starting at this item.
    Output(usize),
    /// A hook event about an item, or the whole batch.
    Hook {
        /// The item it is about.
        item: Option<usize>,
        /// The hook's name.
        name: &'a str,
    },
    /// The last message of a failed call.
    Error(ErrorKind),
    /// Some of a coalesced call's answers, more to come.
    Part,
}

impl ReplyHeader<'_> {
    /// The header's value for a reply from `node`.
    pub fn write(&self, node: &str) -> String {
        match self {
            ReplyHeader::Alive => format!("{KIND_ALIVE} {node}"),
            ReplyHeader::Done => format!("{KIND_DONE} {node}"),
            ReplyHeader::Output(offset) => format!("{KIND_OUTPUT} {node} {offset}"),
            ReplyHeader::Hook { item, name } => match item {
                Some(item) => format!("{KIND_HOOK} {node} {item} {name}"),
                None => format!("{KIND_HOOK} {node} - {name}"),
            },
            ReplyHeader::Error(kind) => format!("{KIND_ERROR} {node} {}", kind.as_str()),
            ReplyHeader::Part => format!("{KIND_PART} {node}"),
        }
    }

    /// Reads a header value: the reply and the node that sent it.
    pub fn parse(line: &str) -> Option<(ReplyHeader<'_>, &str)> {
        let mut fields = line.splitn(4, ' ');
        let kind = fields.next()?;
        let node = fields.next()?;
        let reply = match kind {
            KIND_ALIVE => ReplyHeader::Alive,
            KIND_DONE => ReplyHeader::Done,
            KIND_OUTPUT => ReplyHeader::Output(fields.next()?.parse().ok()?),
            KIND_HOOK => {
                let item = fields.next()?;
                let name = fields.next().unwrap_or("");
                ReplyHeader::Hook {
                    item: if item == "-" {
                        None
                    } else {
                        Some(item.parse().ok()?)
                    },
                    name,
                }
            }
            KIND_ERROR => ReplyHeader::Error(ErrorKind::parse(fields.next()?)),
            KIND_PART => ReplyHeader::Part,
            _ => return None,
        };
        Some((reply, node))
    }
}

/// How a request asks to be run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One item in, one output back.
    One,
    /// Many items in, their outputs back in one message.
    Many,
    /// Many items in; outputs and hook events as they happen, then `done`.
    Stream,
    /// Many callers' calls in one envelope ([`coalesced`]), their answers
    /// back in one.
    Coalesced,
}

impl Mode {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::One => "one",
            Mode::Many => "many",
            Mode::Stream => "stream",
            Mode::Coalesced => "coalesced",
        }
    }

    /// Parses a header value.
    pub fn parse(value: &str) -> Option<Mode> {
        match value {
            "one" => Some(Mode::One),
            "many" => Some(Mode::Many),
            "stream" => Some(Mode::Stream),
            "coalesced" => Some(Mode::Coalesced),
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

/// Why a node refused or failed a call, as carried in an error reply's
/// [`REPLY`] header.
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
    #![allow(clippy::unwrap_used)]
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
        for mode in [Mode::One, Mode::Many, Mode::Stream, Mode::Coalesced] {
            assert_eq!(Mode::parse(mode.as_str()), Some(mode));
        }
        for p in [Priority::Low, Priority::Normal, Priority::High] {
            assert_eq!(parse_priority(priority_str(p)), Some(p));
        }
        // The coalesced envelope's list is every kind, in wire order.
        for kind in coalesced::ERROR_KINDS {
            assert_eq!(ErrorKind::parse(kind.as_str()), kind);
        }
        assert_eq!(ErrorKind::parse("from-the-future"), ErrorKind::Failed);
        assert_eq!(Mode::parse("ONE"), None);
    }

    #[test]
    fn call_headers_round_trip_and_bad_ones_say_why() {
        let call = CallHeader {
            mode: Mode::Many,
            codec: "msgpack",
            priority: Priority::High,
            timeout: Some(Duration::from_micros(1500)),
        };
        let line = call.write();
        assert_eq!(line, "1 many msgpack high 1500");
        assert_eq!(CallHeader::parse(&line), Ok(call));
        let plain = CallHeader {
            timeout: None,
            ..call
        };
        assert_eq!(CallHeader::parse(&plain.write()), Ok(plain));
        for (bad, why) in [
            ("", "empty"),
            ("2 one msgpack normal", "version"),
            ("1 all msgpack normal", "mode"),
            ("1 one", "codec"),
            ("1 one msgpack urgent", "priority"),
            ("1 one msgpack normal soon", "timeout"),
            ("1 one msgpack normal 5 6", "unexpected"),
        ] {
            let error = CallHeader::parse(bad).unwrap_err();
            assert!(error.contains(why), "{bad:?}: {error}");
        }
    }

    #[test]
    fn reply_headers_round_trip() {
        for reply in [
            ReplyHeader::Alive,
            ReplyHeader::Done,
            ReplyHeader::Output(16),
            ReplyHeader::Hook {
                item: Some(3),
                name: "tokens",
            },
            ReplyHeader::Hook {
                item: None,
                name: "batch size",
            },
            ReplyHeader::Error(ErrorKind::Overloaded),
            ReplyHeader::Part,
        ] {
            let line = reply.write("n1");
            assert_eq!(ReplyHeader::parse(&line), Some((reply.clone(), "n1")));
        }
        assert_eq!(ReplyHeader::parse("done"), None);
        assert_eq!(ReplyHeader::parse("later n1"), None);
        assert_eq!(ReplyHeader::parse("output n1 x"), None);
    }
}
