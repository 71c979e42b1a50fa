//! Hook events: what a running batch function tells its streaming callers.

use std::any::Any;
use std::sync::Arc;

/// An event the batch function emitted while it ran, delivered to streaming
/// callers (see [`Serving::dispatch_stream`](crate::Serving::dispatch_stream)).
///
/// A batch-wide hook (`Batch::emit`) reaches every streaming caller in the
/// batch with `item == None`; a per-item hook (`Batch::emit_for`) reaches only
/// the caller that owns the item, with `item` set to the item's offset within
/// that caller's request.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use batch_serving::{Batch, Event, Serving};
/// use futures::StreamExt;
/// let serving = Serving::new(|b: Batch<u8>| {
///     b.emit("progress", 1.0_f32);
///     Ok::<_, std::convert::Infallible>(b.to_vec())
/// })
/// .start()?;
/// let mut events = serving.dispatch_stream(vec![1]);
/// let Some(Ok(Event::Hook(hook))) = events.next().await else { panic!("a hook comes first") };
/// assert_eq!((hook.name, hook.item, hook.payload::<f32>()), ("progress", None, Some(&1.0)));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Hook {
    /// The name the batch function gave the event (for example `"progress"`).
    pub name: &'static str,
    /// For a per-item hook, the item's offset within the caller's request.
    pub item: Option<usize>,
    payload: Arc<dyn Any + Send + Sync>,
}

impl Hook {
    pub(crate) fn new(
        name: &'static str,
        item: Option<usize>,
        payload: Arc<dyn Any + Send + Sync>,
    ) -> Self {
        Hook {
            name,
            item,
            payload,
        }
    }

    /// A hook that did not come from a batch function of this process: one
    /// relayed from elsewhere (a remote node's, read off the wire), for
    /// code that handles local and relayed streams alike.
    ///
    /// ```
    /// use batch_serving::Hook;
    /// let hook = Hook::relayed("progress", Some(2), 0.5_f32);
    /// assert_eq!((hook.name, hook.item, hook.payload::<f32>()), ("progress", Some(2), Some(&0.5)));
    /// ```
    pub fn relayed<P: Any + Send + Sync>(
        name: &'static str,
        item: Option<usize>,
        payload: P,
    ) -> Self {
        Hook::new(name, item, Arc::new(payload))
    }

    /// The payload, if it has type `T`.
    ///
    /// ```
    /// # use batch_serving::Hook;
    /// # fn show(hook: &Hook) {
    /// if let Some(done) = hook.payload::<usize>() {
    ///     println!("{}: {done}", hook.name);
    /// }
    /// # }
    /// ```
    pub fn payload<T: Any>(&self) -> Option<&T> {
        self.payload.downcast_ref::<T>()
    }
}

/// Something a hook can be delivered to: a streaming request. Object-safe so
/// that a `Batch<I>` can carry listeners without knowing the output type.
pub(crate) trait HookSink: Send + Sync {
    fn deliver_hook(&self, hook: Hook);
}
