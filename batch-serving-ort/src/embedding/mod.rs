//! Sentence embeddings with a BERT-style encoder (all-MiniLM-L6-v2 and its
//! kin): tokenize in the caller's task, batch sentences of similar length
//! under one length-bucket key, pad each batch only to its own longest
//! sentence, then mean-pool and L2-normalise.

mod buckets;
#[cfg(feature = "bench-internals")]
mod corpus;
mod embedder;
mod encoder;
mod files;
mod pooling;
mod tokenizer;

pub use buckets::{DEFAULT_BUCKET_EDGES, LengthBuckets, Padding};
#[cfg(feature = "bench-internals")]
pub use corpus::synthetic_corpus;
pub use embedder::{EMBEDDED_EVENT, EmbeddedBatch, Embedder, EmbedderBuilder, EmbedderCoreBuilder};
pub use files::{MINILM_DIR, MINILM_MODEL_NAMES, MiniLmFiles, TOKENIZER_NAME};
pub use pooling::{cosine_similarity, mean_pool_normalized};
pub use tokenizer::{DEFAULT_MAX_TOKENS, Overflow, TextTokenizer, Tokens, cut_beyond_tokens};
