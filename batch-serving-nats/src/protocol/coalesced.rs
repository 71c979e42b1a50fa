//! The coalesced call: many callers' calls to one node in one message, and
//! their answers in one reply (or a few, when one would pass the server's
//! `max_payload`).
//!
//! A request of mode [`Mode::Coalesced`] carries no
//! priority or deadline of its own in its `BS-Call` header: each entry
//! carries its caller's. The payload, every integer big-endian as in the
//! codecs' frames:
//!
//! ```text
//! request: FORMAT:u8 COUNT:u32 ENTRY*
//! entry:   ID:u32 MODE:u8 PRIORITY:u8 TIMEOUT_US:u64 LEN:u32 ITEMS[LEN]
//! reply:   FORMAT:u8 COUNT:u32 ANSWER*
//! answer:  ID:u32 STATUS:u8 LEN:u32 BODY[LEN]
//! ```
//!
//! - `ID` is the entry's number in its message. A dropped caller's cancel
//!   names it: the cancel subject's payload is `REPLY_SUBJECT ID`, so only
//!   that entry is dropped on the node.
//! - `MODE` is 0 for one item (`ITEMS` is the item, as a `one` call's
//!   payload) and 1 for many (`ITEMS` is the sequence, as a `many` call's).
//! - `PRIORITY` is 0 low, 1 normal, 2 high. `TIMEOUT_US` is the time left
//!   to the caller's deadline when the message was sent, `u64::MAX` for
//!   none.
//! - `STATUS` 0 is success, and `BODY` is the outputs as a `one` or `many`
//!   call's reply; any other status is an [`ErrorKind`] (its position in
//!   [`ERROR_KINDS`], plus one) and `BODY` is the error's text.
//!
//! Replies to a coalesced call come as zero or more messages of kind
//! `part` and a last `done`, each carrying some of the answers; every
//! entry is answered exactly once across them. An error reply to the whole
//! message (a bad envelope, a closed node) answers every entry.
//!
//! `FORMAT` is 1. A node reads only the formats it knows and refuses the
//! rest as a bad request, and a node of an older release refuses the mode
//! itself, so two versions never misread each other.

use std::time::Duration;

use batch_serving::Priority;

use super::{ErrorKind, Mode};

/// The envelope format written and read here.
pub const FORMAT: u8 = 1;

/// Error kinds in the order of their status byte (status = index + 1).
pub const ERROR_KINDS: [ErrorKind; 7] = [
    ErrorKind::BadRequest,
    ErrorKind::Overloaded,
    ErrorKind::Closed,
    ErrorKind::DeadlineExceeded,
    ErrorKind::Batch,
    ErrorKind::Panicked,
    ErrorKind::Failed,
];

/// Bytes of the envelope's head (`FORMAT COUNT`).
pub const HEAD: usize = 1 + 4;
/// Bytes an entry takes besides its items.
pub const ENTRY_OVERHEAD: usize = 4 + 1 + 1 + 8 + 4;
/// Bytes an answer takes besides its body.
pub const ANSWER_OVERHEAD: usize = 4 + 1 + 4;

/// One caller's call inside a coalesced message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Its number in the message.
    pub id: u32,
    /// [`Mode::One`] or [`Mode::Many`].
    pub mode: Mode,
    /// Its caller's priority.
    pub priority: Priority,
    /// Time left to its caller's deadline, when it has one.
    pub timeout: Option<Duration>,
    /// Its items, encoded as a `one` or `many` call's payload.
    pub items: &'a [u8],
}

/// One entry's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer<'a> {
    /// The entry's number.
    pub id: u32,
    /// The outputs, or why it failed and the error's text.
    pub result: Result<&'a [u8], (ErrorKind, &'a str)>,
}

impl Answer<'_> {
    /// Bytes it takes in a reply.
    pub fn size(&self) -> usize {
        ANSWER_OVERHEAD
            + match self.result {
                Ok(body) => body.len(),
                Err((_, text)) => text.len(),
            }
    }
}

/// Writes a request's entries into one payload.
#[derive(Debug)]
pub struct RequestWriter {
    bytes: Vec<u8>,
    count: u32,
}

impl Default for RequestWriter {
    fn default() -> Self {
        let mut bytes = Vec::with_capacity(256);
        bytes.push(FORMAT);
        bytes.extend_from_slice(&0u32.to_be_bytes());
        RequestWriter { bytes, count: 0 }
    }
}

impl RequestWriter {
    /// Appends an entry.
    pub fn push(&mut self, entry: &Entry<'_>) {
        self.bytes.extend_from_slice(&entry.id.to_be_bytes());
        self.bytes.push(match entry.mode {
            Mode::Many => 1,
            _ => 0,
        });
        self.bytes.push(match entry.priority {
            Priority::Low => 0,
            Priority::High => 2,
            _ => 1,
        });
        let timeout = entry.timeout.map_or(u64::MAX, |t| {
            u64::try_from(t.as_micros()).unwrap_or(u64::MAX - 1)
        });
        self.bytes.extend_from_slice(&timeout.to_be_bytes());
        self.bytes.extend_from_slice(&len32(entry.items.len()));
        self.bytes.extend_from_slice(entry.items);
        self.count += 1;
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether no entry was written.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The payload.
    pub fn finish(mut self) -> Vec<u8> {
        self.bytes[1..HEAD].copy_from_slice(&self.count.to_be_bytes());
        self.bytes
    }
}

/// Writes answers into one reply payload.
#[derive(Debug)]
pub struct ReplyWriter {
    bytes: Vec<u8>,
    count: u32,
}

impl Default for ReplyWriter {
    fn default() -> Self {
        let mut bytes = Vec::with_capacity(256);
        bytes.push(FORMAT);
        bytes.extend_from_slice(&0u32.to_be_bytes());
        ReplyWriter { bytes, count: 0 }
    }
}

impl ReplyWriter {
    /// Appends an answer.
    pub fn push(&mut self, answer: &Answer<'_>) {
        self.bytes.extend_from_slice(&answer.id.to_be_bytes());
        let (status, body) = match answer.result {
            Ok(body) => (0, body),
            Err((kind, text)) => (status_of(kind), text.as_bytes()),
        };
        self.bytes.push(status);
        self.bytes.extend_from_slice(&len32(body.len()));
        self.bytes.extend_from_slice(body);
        self.count += 1;
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether no answer was written.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The payload; the writer starts again empty.
    pub fn take(&mut self) -> Vec<u8> {
        let mut bytes = std::mem::take(&mut self.bytes);
        bytes[1..HEAD].copy_from_slice(&self.count.to_be_bytes());
        *self = ReplyWriter::default();
        bytes
    }
}

fn len32(len: usize) -> [u8; 4] {
    // Payloads are bounded by the server's max_payload (at most 64 MiB),
    // far below 4 GiB; a larger one is refused before it is written.
    u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes()
}

fn status_of(kind: ErrorKind) -> u8 {
    ERROR_KINDS
        .iter()
        .position(|k| *k == kind)
        .map_or(ERROR_KINDS.len() as u8, |i| i as u8 + 1)
}

/// A cursor over bytes from the network: every length is checked against
/// what is there, so a hostile frame can neither read past the end nor
/// make a reader allocate more than the payload holds.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(format!(
                "truncated {what}: {n} bytes needed, {} left",
                self.0.len()
            ));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self, what: &str) -> Result<u8, String> {
        Ok(self.take(1, what)?[0])
    }

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        let bytes = self.take(4, what)?;
        Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    fn u64(&mut self, what: &str) -> Result<u64, String> {
        let bytes = self.take(8, what)?;
        let mut array = [0; 8];
        array.copy_from_slice(bytes);
        Ok(u64::from_be_bytes(array))
    }

    /// Reads the head and returns the count, bounded by what the rest can
    /// hold at `least` bytes each.
    fn head(&mut self, least: usize) -> Result<usize, String> {
        let format = self.u8("format")?;
        if format != FORMAT {
            return Err(format!(
                "coalesced format {format} is not read here (this side reads {FORMAT})"
            ));
        }
        let count = self.u32("count")? as usize;
        if count > self.0.len() / least {
            return Err(format!(
                "{count} entries announced in {} bytes",
                self.0.len()
            ));
        }
        Ok(count)
    }
}

/// Reads a request payload. An error means the envelope itself is bad, and
/// the whole message is refused; items that the codec cannot read fail
/// only their own entry, later.
pub fn read_request(payload: &[u8]) -> Result<Vec<Entry<'_>>, String> {
    let mut cursor = Cursor(payload);
    let count = cursor.head(ENTRY_OVERHEAD)?;
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        let id = cursor.u32("entry id")?;
        let mode = match cursor.u8("entry mode")? {
            0 => Mode::One,
            1 => Mode::Many,
            other => return Err(format!("entry {id}: unknown mode {other}")),
        };
        let priority = match cursor.u8("entry priority")? {
            0 => Priority::Low,
            1 => Priority::Normal,
            2 => Priority::High,
            other => return Err(format!("entry {id}: unknown priority {other}")),
        };
        let timeout = match cursor.u64("entry timeout")? {
            u64::MAX => None,
            micros => Some(Duration::from_micros(micros)),
        };
        let len = cursor.u32("entry length")? as usize;
        let items = cursor.take(len, "entry items")?;
        entries.push(Entry {
            id,
            mode,
            priority,
            timeout,
            items,
        });
    }
    if !cursor.0.is_empty() {
        return Err(format!("{} bytes after the last entry", cursor.0.len()));
    }
    Ok(entries)
}

/// Reads a reply payload.
pub fn read_reply(payload: &[u8]) -> Result<Vec<Answer<'_>>, String> {
    let mut cursor = Cursor(payload);
    let count = cursor.head(ANSWER_OVERHEAD)?;
    let mut answers = Vec::with_capacity(count);
    for _ in 0..count {
        let id = cursor.u32("answer id")?;
        let status = cursor.u8("answer status")?;
        let len = cursor.u32("answer length")? as usize;
        let body = cursor.take(len, "answer body")?;
        let result = match status {
            0 => Ok(body),
            status => {
                let kind = ERROR_KINDS
                    .get(usize::from(status) - 1)
                    .copied()
                    .unwrap_or(ErrorKind::Failed);
                Err((kind, std::str::from_utf8(body).unwrap_or("(not UTF-8)")))
            }
        };
        answers.push(Answer { id, result });
    }
    if !cursor.0.is_empty() {
        return Err(format!("{} bytes after the last answer", cursor.0.len()));
    }
    Ok(answers)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn requests_round_trip_with_each_callers_own_options() {
        let entries = [
            Entry {
                id: 0,
                mode: Mode::One,
                priority: Priority::High,
                timeout: Some(Duration::from_micros(1500)),
                items: b"\x07",
            },
            Entry {
                id: 9,
                mode: Mode::Many,
                priority: Priority::Low,
                timeout: None,
                items: b"",
            },
        ];
        let mut writer = RequestWriter::default();
        for entry in &entries {
            writer.push(entry);
        }
        assert_eq!(writer.len(), HEAD + 2 * ENTRY_OVERHEAD + 1);
        let payload = writer.finish();
        assert_eq!(read_request(&payload).unwrap(), entries);
    }

    #[test]
    fn replies_round_trip_with_each_error_kind_and_text() {
        let mut answers = vec![Answer {
            id: 3,
            result: Ok(b"out"),
        }];
        for (i, kind) in ERROR_KINDS.into_iter().enumerate() {
            answers.push(Answer {
                id: i as u32 + 10,
                result: Err((kind, "why")),
            });
        }
        let mut writer = ReplyWriter::default();
        for answer in &answers {
            writer.push(answer);
        }
        let payload = writer.take();
        assert!(writer.is_empty(), "take starts the writer again");
        assert_eq!(read_reply(&payload).unwrap(), answers);
    }

    #[test]
    fn hostile_envelopes_are_refused_with_a_reason_and_no_large_allocation() {
        let mut good = RequestWriter::default();
        good.push(&Entry {
            id: 1,
            mode: Mode::One,
            priority: Priority::Normal,
            timeout: None,
            items: b"abc",
        });
        let good = good.finish();
        let mut huge_count = good.clone();
        huge_count[1..5].copy_from_slice(&u32::MAX.to_be_bytes());
        let mut long_item = good.clone();
        let len_at = HEAD + ENTRY_OVERHEAD - 4;
        long_item[len_at..len_at + 4].copy_from_slice(&1000u32.to_be_bytes());
        let mut bad_mode = good.clone();
        bad_mode[HEAD + 4] = 7;
        let mut trailing = good.clone();
        trailing.push(0);
        let mut other_format = good.clone();
        other_format[0] = 2;
        for (bad, why) in [
            (&b""[..], "truncated format"),
            (&huge_count[..], "entries announced"),
            (&long_item[..], "truncated entry items"),
            (&bad_mode[..], "unknown mode"),
            (&trailing[..], "after the last entry"),
            (&other_format[..], "format 2"),
        ] {
            let error = read_request(bad).unwrap_err();
            assert!(error.contains(why), "{error:?} should say {why:?}");
        }
        // Fuzz-like: every prefix of a good payload is refused or read,
        // never a panic.
        for cut in 0..good.len() {
            assert!(read_request(&good[..cut]).is_err());
        }
    }
}
