//! A reproducible corpus of plain sentences with a chosen spread of token
//! lengths, for benchmarks and demos that need many distinct inputs without
//! shipping a data set.

use std::ops::RangeInclusive;

/// Common English words that the BERT uncased vocabulary holds whole, so a
/// sentence of `w` words and a full stop is exactly `w + 3` tokens with
/// `[CLS]` and `[SEP]`. A test checks this against the real tokenizer.
const WORDS: [&str; 96] = [
    "the", "a", "man", "woman", "dog", "cat", "is", "was", "eating", "food", "riding", "horse",
    "bread", "piece", "of", "on", "in", "park", "street", "city", "house", "car", "red", "blue",
    "green", "small", "large", "old", "new", "young", "child", "children", "playing", "running",
    "walking", "with", "and", "near", "under", "over", "water", "river", "tree", "field", "music",
    "guitar", "song", "book", "reading", "table", "chair", "kitchen", "cooking", "dinner",
    "morning", "night", "day", "sun", "rain", "snow", "train", "bus", "station", "road", "bridge",
    "mountain", "beach", "sea", "boat", "fish", "bird", "flying", "sky", "window", "door", "room",
    "school", "teacher", "student", "class", "work", "office", "computer", "phone", "friend",
    "family", "mother", "father", "game", "ball", "team", "player", "happy", "quiet", "busy",
    "market",
];

/// Tokens a sentence carries besides its words: `[CLS]`, the full stop and
/// `[SEP]`.
const FRAME_TOKENS: usize = 3;

/// `count` distinct-looking sentences whose token counts (special tokens
/// included) are spread uniformly over `tokens`, the same for the same
/// `seed`. Lengths below 4 are raised to 4 (one word).
///
/// ```
/// use batch_serving_ort::embedding::synthetic_corpus;
/// let corpus = synthetic_corpus(3, 6..=8, 7);
/// assert_eq!(corpus.len(), 3);
/// assert_eq!(corpus, synthetic_corpus(3, 6..=8, 7));
/// assert!(corpus.iter().all(|s| s.ends_with('.')));
/// ```
pub fn synthetic_corpus(count: usize, tokens: RangeInclusive<usize>, seed: u64) -> Vec<String> {
    let mut state = seed;
    let (low, high) = (*tokens.start(), (*tokens.end()).max(*tokens.start()));
    (0..count)
        .map(|_| {
            let span = (high - low + 1) as u64;
            let target = low + (next(&mut state) % span) as usize;
            let words = target.saturating_sub(FRAME_TOKENS).max(1);
            let mut sentence = (0..words)
                .map(|_| WORDS[(next(&mut state) % WORDS.len() as u64) as usize])
                .collect::<Vec<_>>()
                .join(" ");
            sentence.push('.');
            sentence
        })
        .collect()
}

/// SplitMix64: a tiny, well-mixed generator, enough for reproducible
/// benchmark input.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
