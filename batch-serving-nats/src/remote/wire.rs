//! What every try of a call needs to send its request and hear its
//! replies, apart from the handle's codecs and routing: shared by the
//! handle's plain calls and by its coalescers' batch functions, which hold
//! it without holding the handle (the handle owns them).

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use async_nats::Client;

use super::inbox::Inbox;

pub(crate) struct Wire {
    pub(super) client: Client,
    pub(super) name: String,
    pub(super) shared_subject: String,
    pub(super) cancel_subject: String,
    /// The server's `max_payload`, refreshed with the load reports (a
    /// reconnect may land on a server with another limit); read per call
    /// without cloning the client's whole server info.
    pub(super) max_payload: Arc<AtomicUsize>,
    /// The items' codec name, for the `BS-Call` header.
    pub(super) codec: &'static str,
    pub(super) inbox: Inbox,
    pub(super) silence_limit: Duration,
}
