//! The batch a batch function receives.

use std::any::Any;
use std::ops::{Deref, Range};
use std::sync::Arc;

use crate::hook::{Hook, HookSink};
use crate::key::BatchKey;

/// A streaming caller's items inside a batch: which positions are its, and
/// at which offset of its request they start.
pub(crate) struct Listener {
    pub(crate) range: Range<usize>,
    pub(crate) offset: usize,
    pub(crate) sink: Arc<dyn HookSink>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("range", &self.range)
            .field("offset", &self.offset)
            .finish_non_exhaustive()
    }
}

/// The items of one execution, handed to the batch function.
///
/// It dereferences to a slice, so `batch.iter()`, `batch.len()` and indexing
/// work as on `&[I]`; `into_items` gives the owned items. The function must
/// return exactly one output per item, in the same order.
///
/// ```
/// use batch_serving::Batch;
/// let batch = Batch::from_items(vec![1, 2, 3]);
/// let doubled: Vec<i32> = batch.iter().map(|x| x * 2).collect();
/// assert_eq!(doubled, [2, 4, 6]);
/// ```
#[derive(Debug)]
pub struct Batch<I> {
    items: Vec<I>,
    key: BatchKey,
    partition: usize,
    listeners: Vec<Listener>,
}

impl<I> Batch<I> {
    /// A batch of the given items, with the default key, for calling a batch
    /// function directly (in tests, or outside a serving).
    ///
    /// ```
    /// use batch_serving::{Batch, BatchKey};
    /// let batch = Batch::from_items(vec!["a", "b"]);
    /// assert_eq!((batch.len(), batch.key(), batch.partition()), (2, BatchKey::DEFAULT, 0));
    /// ```
    pub fn from_items(items: Vec<I>) -> Self {
        Batch {
            items,
            key: BatchKey::DEFAULT,
            partition: 0,
            listeners: Vec::new(),
        }
    }

    pub(crate) fn new(
        items: Vec<I>,
        key: BatchKey,
        partition: usize,
        listeners: Vec<Listener>,
    ) -> Self {
        Batch {
            items,
            key,
            partition,
            listeners,
        }
    }

    /// Keeps the items whose flag is set, and moves each listener with its
    /// items: a listener of dropped items goes, and one behind them now
    /// starts where its items start. Without this, a per-item hook would
    /// reach the caller whose items used to sit at that position.
    pub(crate) fn retain_flagged(&mut self, keep: &[bool]) {
        let mut flags = keep.iter();
        self.items
            .retain(|_| flags.next().copied().unwrap_or(false));
        if self.listeners.is_empty() {
            return;
        }
        // Where each old position went: the kept items before it.
        let mut moved_to = Vec::with_capacity(keep.len());
        let mut kept = 0;
        for &flag in keep {
            moved_to.push(kept);
            kept += usize::from(flag);
        }
        let mut listeners = Vec::with_capacity(self.listeners.len());
        for listener in self.listeners.drain(..) {
            // A call's items are kept or dropped together, but a run of
            // kept ones is found item by item, so no position is trusted.
            let mut run: Option<Listener> = None;
            for position in listener.range.clone() {
                let offset = listener.offset + (position - listener.range.start);
                if !keep.get(position).copied().unwrap_or(false) {
                    listeners.extend(run.take());
                    continue;
                }
                let to = moved_to[position];
                match &mut run {
                    Some(open) => open.range.end = to + 1,
                    None => {
                        run = Some(Listener {
                            range: to..to + 1,
                            offset,
                            sink: Arc::clone(&listener.sink),
                        });
                    }
                }
            }
            listeners.extend(run);
        }
        self.listeners = listeners;
    }

    pub(crate) fn set_partition(&mut self, partition: usize) {
        self.partition = partition;
    }

    /// The key shared by every item of this batch.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use batch_serving::{Batch, BatchKey, Serving};
    /// let serving = Serving::new(|b: Batch<u64>| Ok::<_, std::convert::Infallible>(vec![b.key().id(); b.len()]))
    ///     .key_by(|x: &u64| BatchKey::new(x % 2))
    ///     .start()?;
    /// assert_eq!(serving.dispatch_many(vec![4, 7]).await?, vec![0, 1]);
    /// # Ok(()) }
    /// ```
    pub fn key(&self) -> BatchKey {
        self.key
    }

    /// The index of the partition running this batch.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use batch_serving::{Batch, Serving};
    /// let serving = Serving::new(|b: Batch<u8>| Ok::<_, std::convert::Infallible>(vec![b.partition(); b.len()]))
    ///     .partitions(2)
    ///     .start()?;
    /// assert!(serving.dispatch(0).await? < 2);
    /// # Ok(()) }
    /// ```
    pub fn partition(&self) -> usize {
        self.partition
    }

    /// The items, by value.
    ///
    /// ```
    /// use batch_serving::Batch;
    /// let owned: Vec<String> = Batch::from_items(vec!["x".to_owned()]).into_items();
    /// assert_eq!(owned, ["x"]);
    /// ```
    pub fn into_items(self) -> Vec<I> {
        self.items
    }

    /// Whether any caller in this batch listens for hook events. Use it to
    /// skip building payloads nobody will see.
    ///
    /// ```
    /// use batch_serving::Batch;
    /// let batch = Batch::from_items(vec![1]);
    /// if batch.has_listeners() {
    ///     batch.emit("debug", format!("{:?}", &*batch)); // only built when someone streams
    /// }
    /// assert!(!batch.has_listeners());
    /// ```
    pub fn has_listeners(&self) -> bool {
        !self.listeners.is_empty()
    }

    /// Sends a batch-wide hook event to every streaming caller in this batch.
    ///
    /// ```
    /// use batch_serving::Batch;
    /// let batch = Batch::from_items(vec![1, 2]);
    /// batch.emit("progress", 0.5_f32); // nobody streams here, so it goes nowhere
    /// ```
    pub fn emit<P: Any + Send + Sync>(&self, name: &'static str, payload: P) {
        if self.listeners.is_empty() {
            return;
        }
        let payload: Arc<dyn Any + Send + Sync> = Arc::new(payload);
        for (at, listener) in self.listeners.iter().enumerate() {
            // A call whose items are not contiguous in the batch (keyed or
            // prioritised items interleave) has several listeners; it hears
            // a batch-wide event once, from the first.
            let heard = self.listeners[..at]
                .iter()
                .any(|earlier| Arc::ptr_eq(&earlier.sink, &listener.sink));
            if !heard {
                listener
                    .sink
                    .deliver_hook(Hook::new(name, None, Arc::clone(&payload)));
            }
        }
    }

    /// Sends a hook event about the item at `index` (its position in this
    /// batch) to the caller that owns it, and to no one else.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use batch_serving::{Batch, Event, Serving};
    /// use futures::StreamExt;
    /// let serving = Serving::new(|b: Batch<u32>| {
    ///     for (i, x) in b.iter().enumerate() {
    ///         b.emit_for(i, "started", *x);
    ///     }
    ///     Ok::<_, std::convert::Infallible>(b.to_vec())
    /// })
    /// .start()?;
    /// let mut events = serving.dispatch_stream(vec![5, 6]);
    /// let mut seen = Vec::new();
    /// while let Some(event) = events.next().await {
    ///     if let Event::Hook(hook) = event? {
    ///         seen.push((hook.item, *hook.payload::<u32>().unwrap()));
    ///     }
    /// }
    /// assert_eq!(seen, [(Some(0), 5), (Some(1), 6)]);
    /// # Ok(()) }
    /// ```
    pub fn emit_for<P: Any + Send + Sync>(&self, index: usize, name: &'static str, payload: P) {
        let Some(listener) = self.listeners.iter().find(|l| l.range.contains(&index)) else {
            return;
        };
        let item = listener.offset + (index - listener.range.start);
        listener
            .sink
            .deliver_hook(Hook::new(name, Some(item), Arc::new(payload)));
    }
}

impl<I> Deref for Batch<I> {
    type Target = [I];

    fn deref(&self) -> &[I] {
        &self.items
    }
}

impl<I> IntoIterator for Batch<I> {
    type Item = I;
    type IntoIter = std::vec::IntoIter<I>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

impl<'a, I> IntoIterator for &'a Batch<I> {
    type Item = &'a I;
    type IntoIter = std::slice::Iter<'a, I>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}
