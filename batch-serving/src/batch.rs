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

    pub(crate) fn set_partition(&mut self, partition: usize) {
        self.partition = partition;
    }

    /// The key shared by every item of this batch.
    pub fn key(&self) -> BatchKey {
        self.key
    }

    /// The index of the partition running this batch.
    pub fn partition(&self) -> usize {
        self.partition
    }

    /// The items, by value.
    pub fn into_items(self) -> Vec<I> {
        self.items
    }

    /// Whether any caller in this batch listens for hook events. Use it to
    /// skip building payloads nobody will see.
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
        for listener in &self.listeners {
            listener
                .sink
                .deliver_hook(Hook::new(name, None, Arc::clone(&payload)));
        }
    }

    /// Sends a hook event about the item at `index` (its position in this
    /// batch) to the caller that owns it, and to no one else.
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
