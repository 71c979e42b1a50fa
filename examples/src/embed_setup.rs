//! The embedder the embedding applications start (server, index), and its
//! flags: the serving flags every application takes, plus the token limit
//! and the length buckets.

use batch_serving_ort::embedding::{
    DEFAULT_BUCKET_EDGES, DEFAULT_MAX_TOKENS, Embedder, LengthBuckets,
};
use batch_serving_ort::{MiniLmFiles, OrtError};

use crate::setup::ServingConfig;

/// Parses `--buckets`: edges such as `8,16,32`, or `none` for one bucket.
fn buckets(text: &str) -> Result<LengthBuckets, String> {
    if text == "none" {
        return Ok(LengthBuckets::single());
    }
    let edges: Result<Vec<usize>, _> = text.split(',').map(|p| p.trim().parse()).collect();
    edges
        .map(LengthBuckets::new)
        .map_err(|_| format!("{text}: edges such as 8,16,32, or `none`"))
}

/// Settings for the sentence encoder.
#[derive(Debug, Clone, clap::Args)]
pub struct EmbedConfig {
    /// Models folder, batch size, timeout, partitions, threads, queue, policy.
    #[command(flatten)]
    pub serving: ServingConfig,
    /// Token limit and length buckets.
    #[command(flatten)]
    pub text: TextConfig,
}

/// The sentence encoder's own settings, beside the serving flags every
/// application takes (the model server flattens the two apart).
#[derive(Debug, Clone, clap::Args)]
pub struct TextConfig {
    /// Token limit per sentence, special tokens included.
    #[arg(long, env = "BS_MAX_TOKENS", default_value_t = DEFAULT_MAX_TOKENS)]
    pub max_tokens: usize,
    /// Length-bucket edges (`8,16,32`), or `none` for one bucket [default: 8,12,16,24,32,40,48,64,80,96,112,128].
    #[arg(long, env = "BS_BUCKETS", value_parser = buckets)]
    pub buckets: Option<LengthBuckets>,
}

impl TextConfig {
    /// The length buckets chosen.
    pub fn buckets(&self) -> LengthBuckets {
        self.buckets
            .clone()
            .unwrap_or_else(|| LengthBuckets::new(DEFAULT_BUCKET_EDGES))
    }

    /// Queue capacity: by default room for four requests of the most texts
    /// one may carry (each queued item is at most max_tokens ids, 1 KB at
    /// 128, so 1024 hold about 1 MB).
    pub fn queue_capacity(serving: &ServingConfig) -> usize {
        serving.queue_capacity_or(4 * crate::embed_http::MAX_TEXTS)
    }

    /// Locates the files and starts the embedder with `serving`'s settings.
    ///
    /// # Errors
    ///
    /// When the runtime or the model cannot be found or loaded.
    pub fn start(&self, serving: &ServingConfig) -> Result<Embedder, OrtError> {
        crate::metrics::exporter();
        let files = MiniLmFiles::locate(serving.models.as_deref())?;
        Embedder::builder(files)
            .session_options(serving.session_options())
            .max_tokens(self.max_tokens)
            .buckets(self.buckets())
            .serving(serving.core_settings(Self::queue_capacity(serving)))
            .start()
    }

    /// One line describing these settings.
    pub fn describe(&self) -> String {
        format!(
            "buckets {:?}, max {} tokens",
            self.buckets().edges(),
            self.max_tokens
        )
    }
}

impl EmbedConfig {
    /// Locates the files and starts the embedder.
    ///
    /// # Errors
    ///
    /// When the runtime or the model cannot be found or loaded.
    pub fn start(&self) -> Result<Embedder, OrtError> {
        self.text.start(&self.serving)
    }

    /// One line describing the settings.
    pub fn describe(&self) -> String {
        format!("{}, {}", self.serving.describe(), self.text.describe())
    }
}
