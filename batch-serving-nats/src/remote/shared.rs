//! What every clone of a remote handle shares, and what each call attempt
//! reads: a leaf below both the handle (`handle.rs`) and the attempts
//! (`attempt.rs`), so that neither imports the other to reach it.

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::Client;
use batch_serving::CallOptions;
use tokio::task::JoinHandle;

use super::inbox::Inbox;
use super::route::Routes;
use crate::codec::Codec;
use crate::dispatch::LocalCall;

/// A local serving the handle may run calls on, kept behind trait objects
/// so the handle's type does not name it.
pub(super) struct Local<I, O> {
    pub(super) one: Box<TryOne<I, O>>,
    pub(super) many: Box<TryMany<I, O>>,
}

pub(super) type TryOne<I, O> = dyn Fn(I, CallOptions) -> Result<LocalCall<O>, I> + Send + Sync;
pub(super) type TryMany<I, O> =
    dyn Fn(Vec<I>, CallOptions) -> Result<LocalCall<Vec<O>>, Vec<I>> + Send + Sync;

pub(crate) struct Shared<I, O> {
    pub(super) client: Client,
    pub(super) name: String,
    pub(super) shared_subject: String,
    pub(super) cancel_subject: String,
    /// The server's `max_payload`, refreshed with the load reports (a
    /// reconnect may land on a server with another limit); read per call
    /// without cloning the client's whole server info.
    pub(super) max_payload: Arc<AtomicUsize>,
    pub(super) items: Arc<dyn Codec<I>>,
    pub(super) outputs: Arc<dyn Codec<O>>,
    pub(super) inbox: Inbox,
    pub(super) routes: Arc<Routes>,
    pub(super) local: Option<Local<I, O>>,
    pub(super) max_tries: usize,
    pub(super) silence_limit: Duration,
    pub(super) idempotent: bool,
    pub(super) route_by_load: bool,
    pub(super) rng: Mutex<fastrand::Rng>,
    pub(super) refresher: JoinHandle<()>,
}

impl<I, O> Drop for Shared<I, O> {
    fn drop(&mut self) {
        self.refresher.abort();
    }
}
