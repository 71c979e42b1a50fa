//! Batch keys: items with different keys never share a batch.

/// Which batch an item may join. A batch never mixes keys, and each key has
/// its own batch timer.
///
/// Keys are plain integers so that computing and comparing them costs
/// nothing on the hot path; map richer keys (a sequence-length bucket, an
/// input shape) to an id yourself. [`BatchKey::DEFAULT`] is the key of every
/// item when the serving has no `key_by` function.
///
/// ```
/// use batch_serving::BatchKey;
/// let bucket = BatchKey::from(2u32);
/// assert_ne!(bucket, BatchKey::DEFAULT);
/// assert_eq!(bucket.id(), 2);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct BatchKey(u64);

impl BatchKey {
    /// The key of items in a serving without `key_by`.
    ///
    /// ```
    /// assert_eq!(batch_serving::BatchKey::DEFAULT, batch_serving::BatchKey::default());
    /// ```
    pub const DEFAULT: BatchKey = BatchKey(0);

    /// A key with the given id.
    ///
    /// ```
    /// const SHORT: batch_serving::BatchKey = batch_serving::BatchKey::new(8);
    /// assert_eq!(SHORT.id(), 8);
    /// ```
    pub const fn new(id: u64) -> Self {
        BatchKey(id)
    }

    /// The key's id.
    ///
    /// ```
    /// assert_eq!(batch_serving::BatchKey::from(3u32).id(), 3);
    /// ```
    pub const fn id(self) -> u64 {
        self.0
    }
}

impl From<u64> for BatchKey {
    fn from(id: u64) -> Self {
        BatchKey(id)
    }
}

impl From<u32> for BatchKey {
    fn from(id: u32) -> Self {
        BatchKey(u64::from(id))
    }
}

impl From<usize> for BatchKey {
    fn from(id: usize) -> Self {
        BatchKey(id as u64)
    }
}

impl std::fmt::Display for BatchKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}
