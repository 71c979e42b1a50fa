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
    pub fn tokenize(&self, text: &str) -> Result<Tokens, OrtError> {
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
