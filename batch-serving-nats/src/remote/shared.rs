//! What every clone of a remote handle shares: a leaf below the handle
//! (`handle.rs`) and its verbs, so that neither imports the other to reach
//! it.

use std::sync::{Arc, Mutex};

use batch_serving::CallOptions;
use tokio::task::JoinHandle;

use super::coalesce::Coalescers;
use super::route::Routes;
use super::wire::Wire;
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
    pub(super) wire: Arc<Wire>,
    pub(super) items: Arc<dyn Codec<I>>,
    pub(super) outputs: Arc<dyn Codec<O>>,
    pub(super) routes: Arc<Routes>,
    pub(super) local: Option<Local<I, O>>,
    /// One coalescing serving per node, when the handle coalesces.
    pub(super) coalescers: Option<Coalescers>,
    pub(super) max_tries: usize,
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
