//! Text to token ids, in the caller's task: a WordPiece tokenizer loaded
//! from `tokenizer.json` with its fixed padding turned off, because the
//! serving pads each batch itself, only as far as that batch needs.

use std::path::Path;

use tokenizers::{Tokenizer, TruncationParams};

use crate::OrtError;

/// The default token limit per sentence, special tokens included: the
/// length all-MiniLM-L6-v2 was trained at.
pub const DEFAULT_MAX_TOKENS: usize = 128;

/// What happens to a sentence longer than the token limit.
///
/// ```
/// use batch_serving_ort::embedding::Overflow;
/// assert_eq!(Overflow::default(), Overflow::Truncate);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Keep the first tokens up to the limit (sentence-transformers'
    /// behaviour): the embedding describes the start of the text.
    #[default]
    Truncate,
    /// Refuse the sentence with [`OrtError::TooManyTokens`], for that caller
    /// only.
    Reject,
}

/// One sentence as token ids, `[CLS] … [SEP]`, unpadded.
///
/// ```
/// use batch_serving_ort::embedding::Tokens;
/// let tokens = Tokens::from_ids(vec![101, 2023, 102]);
/// assert_eq!(tokens.len(), 3);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    ids: Box<[i64]>,
}

impl Tokens {
    /// Tokens from ids already made elsewhere.
    pub fn from_ids(ids: Vec<i64>) -> Self {
        Self { ids: ids.into() }
    }

    /// The ids.
    pub fn ids(&self) -> &[i64] {
        &self.ids
    }

    /// How many tokens, special tokens included.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are no tokens at all (never, for tokenized text: even
    /// an empty string has `[CLS]` and `[SEP]`).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// A tokenizer for one encoder, cheap to share behind an `Arc`.
///
/// ```no_run
/// use batch_serving_ort::embedding::{Overflow, TextTokenizer};
/// let tokenizer = TextTokenizer::load("minilm/tokenizer.json".as_ref(), 128, Overflow::Truncate)?;
/// assert_eq!(tokenizer.tokenize("A man is eating food.")?.len(), 8);
/// # Ok::<_, batch_serving_ort::OrtError>(())
/// ```
#[derive(Debug)]
pub struct TextTokenizer {
    tokenizer: Tokenizer,
    max_tokens: usize,
    overflow: Overflow,
}

impl TextTokenizer {
    /// Loads `tokenizer.json`, with padding off and at most `max_tokens`
    /// tokens per sentence.
    ///
    /// # Errors
    ///
    /// [`OrtError::File`] for a file that cannot be read or parsed, and
    /// [`OrtError::Configuration`] for a limit below 2 (room for `[CLS]`
    /// and `[SEP]`).
    pub fn load(path: &Path, max_tokens: usize, overflow: Overflow) -> Result<Self, OrtError> {
        if max_tokens < 2 {
            return Err(OrtError::Configuration(format!(
                "max_tokens is {max_tokens}; it must leave room for [CLS] and [SEP] (at least 2)"
            )));
        }
        if !path.is_file() {
            return Err(OrtError::file(path, "no such file"));
        }
        let mut tokenizer = Tokenizer::from_file(path).map_err(|e| OrtError::file(path, e))?;
        tokenizer.with_padding(None);
        // Rejecting needs to see the full length, so it tokenizes one past
        // the limit and checks.
        let limit = match overflow {
            Overflow::Truncate => max_tokens,
            Overflow::Reject => max_tokens + 1,
        };
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: limit,
                ..TruncationParams::default()
            }))
            .map_err(|e| OrtError::file(path, e))?;
        Ok(Self {
            tokenizer,
            max_tokens,
            overflow,
        })
    }

    /// The token limit per sentence.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// Tokenizes one sentence. An empty string gives `[CLS] [SEP]`, whose
    /// embedding is a valid unit vector (as in sentence-transformers).
    ///
    /// # Errors
    ///
    /// [`OrtError::TooManyTokens`] with [`Overflow::Reject`] for a sentence
    /// over the limit; [`OrtError::Tokenizer`] if the tokenizer fails.
    ///
    /// Only the start of a long text can reach the kept tokens, so the text
    /// is cut (see [`cut_beyond_tokens`]) before the tokenizer sees it: a
    /// 15 KB string costs what its first few hundred bytes do.
    pub fn tokenize(&self, text: &str) -> Result<Tokens, OrtError> {
        // One past the limit, so that rejecting still sees an overflow.
        let text = cut_beyond_tokens(text, self.max_tokens + 1);
        let encoding = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| OrtError::Tokenizer(e.to_string()))?;
        let ids = encoding.get_ids();
        if self.overflow == Overflow::Reject && ids.len() > self.max_tokens {
            return Err(OrtError::TooManyTokens {
                max_tokens: self.max_tokens,
            });
        }
        Ok(Tokens::from_ids(
            ids.iter().map(|&id| i64::from(id)).collect(),
        ))
    }
}

/// The start of `text` that gives the same first `tokens` tokens as the
/// whole of it: cut at the first whitespace after `tokens` words that
/// contain an ASCII letter or digit. Each such word gives at least one
/// token in any WordPiece, BPE or SentencePiece vocabulary, none of which
/// joins words across whitespace, and the words before the cut tokenize as
/// they would in the whole text. Text without such words (all CJK, say) is
/// returned whole; its length is the caller's to bound.
///
/// ```
/// use batch_serving_ort::embedding::cut_beyond_tokens;
/// assert_eq!(cut_beyond_tokens("a man is eating food", 3), "a man is");
/// assert_eq!(cut_beyond_tokens("a, b", 8), "a, b");
/// ```
pub fn cut_beyond_tokens(text: &str, tokens: usize) -> &str {
    let mut words = 0;
    let mut in_word = false;
    for (at, c) in text.char_indices() {
        if c.is_whitespace() {
            if words >= tokens {
                return &text[..at];
            }
            in_word = false;
        } else if c.is_ascii_alphanumeric() && !in_word {
            words += 1;
            in_word = true;
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::cut_beyond_tokens;

    #[test]
    fn the_cut_keeps_enough_words_and_ends_at_whitespace() {
        let long = "word ".repeat(3_000);
        let cut = cut_beyond_tokens(&long, 129);
        assert_eq!(cut.split_whitespace().count(), 129);
        assert!(long.starts_with(cut));
        // A word with non-ASCII letters in it still counts once, and
        // punctuation or emoji alone never count.
        assert_eq!(
            cut_beyond_tokens("caf\u{e9}s ok ! \u{1F600} more", 2),
            "caf\u{e9}s ok"
        );
        assert_eq!(
            cut_beyond_tokens("\u{4e2d}\u{6587} \u{4e2d}\u{6587}", 1),
            "\u{4e2d}\u{6587} \u{4e2d}\u{6587}"
        );
        assert_eq!(cut_beyond_tokens("", 1), "");
        assert_eq!(cut_beyond_tokens("one", 1), "one");
    }
}
