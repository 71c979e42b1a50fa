//! The embedder configuration the embedding examples share, from flags or
//! the environment.

use batch_serving_ort::MiniLmFiles;
use batch_serving_ort::embedding::{
    DEFAULT_BUCKET_EDGES, DEFAULT_MAX_TOKENS, Embedder, LengthBuckets,
};

use crate::args::{Args, list};
use crate::setup::ServingConfig;

/// Settings for the sentence encoder: the serving flags every example takes,
/// plus the token limit and the length buckets.
#[derive(Debug, Clone)]
pub struct EmbedConfig {
    /// Models folder, batch size, timeout, partitions, threads, queue, policy.
    pub serving: ServingConfig,
    /// Token limit per sentence (`--max-tokens`, `BS_MAX_TOKENS`).
    pub max_tokens: usize,
    /// Bucket edges (`--buckets 8,16,32`, `BS_BUCKETS`; `none` for one bucket).
    pub buckets: LengthBuckets,
}

impl EmbedConfig {
    /// Reads the settings; the defaults suit a small CPU machine.
    pub fn from_args(args: &Args) -> Self {
        let buckets = match args.get("buckets", "BS_BUCKETS").as_deref() {
            None => LengthBuckets::new(DEFAULT_BUCKET_EDGES),
            Some("none") => LengthBuckets::single(),
            Some(text) => LengthBuckets::new(list::<usize>(text).unwrap_or_else(|| {
                eprintln!("error: --buckets takes edges such as 8,16,32 or `none`: {text}");
                std::process::exit(2)
            })),
        };
        let mut serving = ServingConfig::from_args(args);
        // Room for four requests of the most texts one may carry: each
        // queued item is at most max_tokens ids (1 KB at 128), so 1024 hold
        // about 1 MB.
        serving.queue_capacity = args.value(
            "queue-capacity",
            "BS_QUEUE_CAPACITY",
            4 * crate::embed_http::MAX_TEXTS,
        );
        Self {
            serving,
            max_tokens: args.value("max-tokens", "BS_MAX_TOKENS", DEFAULT_MAX_TOKENS),
            buckets,
        }
    }

    /// Locates the files and starts the embedder.
    ///
    /// # Errors
    ///
    /// When the runtime or the model cannot be found or loaded.
    pub fn start(&self) -> Result<Embedder, Box<dyn std::error::Error>> {
        let config = &self.serving;
        let files = MiniLmFiles::locate(config.models.as_deref())?;
        let (batch_size, timeout, partitions) =
            (config.batch_size, config.batch_timeout, config.partitions);
        let (capacity, policy) = (config.queue_capacity, config.policy());
        let embedder = Embedder::builder(files)
            .session_options(config.session_options())
            .max_tokens(self.max_tokens)
            .buckets(self.buckets.clone())
            .serving(move |b| {
                b.batch_size(batch_size)
                    .batch_timeout(timeout)
                    .partitions(partitions)
                    .queue_capacity(capacity)
                    .policy(policy)
            })
            .start()
            .map_err(|e| e.to_string())?;
        Ok(embedder)
    }

    /// One line describing the settings.
    pub fn describe(&self) -> String {
        format!(
            "{}, buckets {:?}, max {} tokens",
            self.serving.describe(),
            self.buckets.edges(),
            self.max_tokens
        )
    }
}
