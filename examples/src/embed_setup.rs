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
    /// Token limit per sentence, special tokens included.
    #[arg(long, env = "BS_MAX_TOKENS", default_value_t = DEFAULT_MAX_TOKENS)]
    pub max_tokens: usize,
    /// Length-bucket edges (`8,16,32`), or `none` for one bucket [default: 8,12,16,24,32,40,48,64,80,96,112,128].
    #[arg(long, env = "BS_BUCKETS", value_parser = buckets)]
    pub buckets: Option<LengthBuckets>,
}

impl EmbedConfig {
    /// The length buckets chosen.
    pub fn buckets(&self) -> LengthBuckets {
        self.buckets
            .clone()
            .unwrap_or_else(|| LengthBuckets::new(DEFAULT_BUCKET_EDGES))
    }

    /// Queue capacity: by default room for four requests of the most texts
    /// one may carry (each queued item is at most max_tokens ids, 1 KB at
    /// 128, so 1024 hold about 1 MB).
    pub fn queue_capacity(&self) -> usize {
        self.serving
            .queue_capacity_or(4 * crate::embed_http::MAX_TEXTS)
    }

    /// Locates the files and starts the embedder.
    ///
    /// # Errors
    ///
    /// When the runtime or the model cannot be found or loaded.
    pub fn start(&self) -> Result<Embedder, OrtError> {
        crate::metrics::exporter();
        let config = &self.serving;
        let files = MiniLmFiles::locate(config.models.as_deref())?;
        Embedder::builder(files)
            .session_options(config.session_options())
            .max_tokens(self.max_tokens)
            .buckets(self.buckets())
            .serving(config.core_settings(self.queue_capacity()))
            .start()
    }

    /// One line describing the settings.
    pub fn describe(&self) -> String {
        format!(
            "{}, buckets {:?}, max {} tokens",
            self.serving.describe(),
            self.buckets().edges(),
            self.max_tokens
        )
    }
}
