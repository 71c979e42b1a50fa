//! Length buckets: the batch key that keeps sentences of similar length
//! together, and how far each batch is padded.
//!
//! An encoder's attention is dense, so a padded token costs as much as a
//! real one: a batch padded to 128 tokens for 12-token sentences does ten
//! times the work. Bucketing bounds that waste by the ratio of neighbouring
//! edges.

use batch_serving::BatchKey;

/// The default bucket edges, in tokens (special tokens included): steps of
/// 1.33–1.5× up to 32 tokens, then 1.14–1.33× up to 128.
///
/// Short sentences gain most from batching, so their buckets are wide
/// enough to fill. Long sentences gain almost nothing from batching on a CPU
/// but pay for every padding token, so their buckets are narrow: a batch
/// of 64 tokens or more wastes at most a fifth of its work on padding.
pub const DEFAULT_BUCKET_EDGES: [usize; 12] = [8, 12, 16, 24, 32, 40, 48, 64, 80, 96, 112, 128];

/// Sequence-length buckets: a sentence of `n` tokens belongs to the first
/// bucket whose edge is at least `n`; one longer than every edge to a last,
/// open bucket.
///
/// ```
/// use batch_serving_ort::embedding::LengthBuckets;
/// let buckets = LengthBuckets::new([8, 16, 32]);
/// assert_eq!(buckets.key(5), buckets.key(8));
/// assert_ne!(buckets.key(8), buckets.key(9));
/// assert_eq!(buckets.key(40), buckets.key(500)); // past the last edge
/// assert_eq!(LengthBuckets::single().key(3), LengthBuckets::single().key(300));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LengthBuckets {
    edges: Vec<usize>,
}

impl LengthBuckets {
    /// Buckets with the given upper edges, in any order; duplicates are
    /// ignored.
    pub fn new(edges: impl IntoIterator<Item = usize>) -> Self {
        let mut edges: Vec<usize> = edges.into_iter().collect();
        edges.sort_unstable();
        edges.dedup();
        Self { edges }
    }

    /// One bucket for every length: batches mix lengths freely (and are
    /// padded to their longest sentence).
    pub fn single() -> Self {
        Self { edges: Vec::new() }
    }

    /// The upper edges, ascending.
    pub fn edges(&self) -> &[usize] {
        &self.edges
    }

    /// The batch key of a sentence of `tokens` tokens.
    pub fn key(&self, tokens: usize) -> BatchKey {
        BatchKey::from(self.edges.partition_point(|&edge| edge < tokens))
    }
}

impl Default for LengthBuckets {
    fn default() -> Self {
        Self::new(DEFAULT_BUCKET_EDGES)
    }
}

/// How far each batch's token axis is padded.
///
/// ```
/// use batch_serving_ort::embedding::Padding;
/// assert_eq!(Padding::Longest.padded_length(&[5, 9, 7]), 9);
/// assert_eq!(Padding::Fixed(128).padded_length(&[5, 9, 7]), 128);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Padding {
    /// To the longest sentence in the batch: the cheapest.
    #[default]
    Longest,
    /// Always to this many tokens, as a tokenizer's fixed padding does. It
    /// exists to measure what bucketing saves; it is never faster.
    Fixed(usize),
}

impl Padding {
    /// The token-axis length of a batch of sentences with these lengths.
    pub fn padded_length(self, lengths: &[usize]) -> usize {
        let longest = lengths.iter().copied().max().unwrap_or(0);
        match self {
            Self::Longest => longest,
            Self::Fixed(size) => size.max(longest),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_length_goes_to_the_smallest_bucket_that_holds_it() {
        let buckets = LengthBuckets::new([32, 8, 16, 16]);
        assert_eq!(buckets.edges(), [8, 16, 32]);
        let ids: Vec<u64> = [1, 8, 9, 16, 17, 32, 33, 512]
            .map(|n| buckets.key(n).id())
            .to_vec();
        assert_eq!(ids, [0, 0, 1, 1, 2, 2, 3, 3]);
    }
}
