//! The embedder configuration the embedding examples share, from flags or
//! the environment.

use std::path::PathBuf;
use std::time::Duration;

use batch_serving::Policy;
use batch_serving_ort::embedding::{
    DEFAULT_BUCKET_EDGES, DEFAULT_MAX_TOKENS, Embedder, LengthBuckets,
};
use batch_serving_ort::{MiniLmFiles, SessionOptions};

use crate::args::{Args, list};

/// Serving settings for the sentence encoder.
#[derive(Debug, Clone)]
pub struct EmbedConfig {
    /// The models folder (`--models`, `BATCH_SERVING_MODELS`); the MiniLM
    /// files are in its `minilm/` folder or in it directly.
    pub models: Option<PathBuf>,
    /// Sentences per batch (`--batch-size`, `BS_BATCH_SIZE`).
    pub batch_size: usize,
    /// The batch timer (`--batch-timeout-ms`, `BS_BATCH_TIMEOUT_MS`).
    pub batch_timeout: Duration,
    /// Partitions (`--partitions`, `BS_PARTITIONS`).
    pub partitions: usize,
    /// Intra-op threads per session (`--threads`, `BS_THREADS`).
    pub threads: usize,
    /// Token limit per sentence (`--max-tokens`, `BS_MAX_TOKENS`).
    pub max_tokens: usize,
    /// Bucket edges (`--buckets 8,16,32`, `BS_BUCKETS`; `none` for one bucket).
    pub buckets: LengthBuckets,
    /// `eager` or `timeout` (`--policy`, `BS_POLICY`).
    pub eager: bool,
}

impl EmbedConfig {
    /// Reads the settings; the defaults suit a small CPU machine.
    pub fn from_args(args: &Args) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let partitions = args.value("partitions", "BS_PARTITIONS", 1usize);
        let buckets = match args.get("buckets", "BS_BUCKETS").as_deref() {
            None => LengthBuckets::new(DEFAULT_BUCKET_EDGES),
            Some("none") => LengthBuckets::single(),
            Some(text) => LengthBuckets::new(list::<usize>(text).unwrap_or_else(|| {
                eprintln!("error: --buckets takes edges such as 8,16,32 or `none`: {text}");
                std::process::exit(2)
            })),
        };
        Self {
            models: args
                .get("models", "BATCH_SERVING_MODELS")
                .map(PathBuf::from),
            batch_size: args.value("batch-size", "BS_BATCH_SIZE", 16),
            batch_timeout: Duration::from_millis(args.value(
                "batch-timeout-ms",
                "BS_BATCH_TIMEOUT_MS",
                5,
            )),
            partitions,
            threads: args.value("threads", "BS_THREADS", (cores / partitions.max(1)).max(1)),
            max_tokens: args.value("max-tokens", "BS_MAX_TOKENS", DEFAULT_MAX_TOKENS),
            buckets,
            eager: args.get("policy", "BS_POLICY").is_none_or(|p| p == "eager"),
        }
    }

    /// Locates the files and starts the embedder.
    ///
    /// # Errors
    ///
    /// When the runtime or the model cannot be found or loaded.
    pub fn start(&self) -> Result<Embedder, Box<dyn std::error::Error>> {
        let files = MiniLmFiles::locate(self.models.as_deref())?;
        let (batch_size, timeout, partitions) =
            (self.batch_size, self.batch_timeout, self.partitions);
        let policy = if self.eager {
            Policy::Eager
        } else {
            Policy::Timeout
        };
        let embedder = Embedder::builder(files)
            .session_options(SessionOptions::default().intra_threads(self.threads))
            .max_tokens(self.max_tokens)
            .buckets(self.buckets.clone())
            .serving(move |b| {
                b.batch_size(batch_size)
                    .batch_timeout(timeout)
                    .partitions(partitions)
                    .policy(policy)
            })
            .start()
            .map_err(|e| e.to_string())?;
        Ok(embedder)
    }

    /// One line describing the settings.
    pub fn describe(&self) -> String {
        format!(
            "batch_size {}, {} partition(s) x {} thread(s), {} policy, buckets {:?}, max {} tokens",
            self.batch_size,
            self.partitions,
            self.threads,
            if self.eager { "eager" } else { "timeout" },
            self.buckets.edges(),
            self.max_tokens
        )
    }
}
