//! The serving settings the examples share (where the models are, batch
//! size, timeout, partitions, threads, queue, policy), from flags or the
//! environment, and the MobileNet classifier they configure.

use std::path::PathBuf;
use std::time::Duration;

use batch_serving::{Error, Policy};
use batch_serving_ort::{MobileNet, MobileNetFiles, OrtError, SessionOptions};

use crate::args::Args;

/// Serving settings for MobileNet.
#[derive(Debug, Clone)]
pub struct ServingConfig {
    /// The models folder (`--models`, `BATCH_SERVING_MODELS`, else found).
    pub models: Option<PathBuf>,
    /// Items per batch (`--batch-size`, `BS_BATCH_SIZE`).
    pub batch_size: usize,
    /// The batch timer (`--batch-timeout-ms`, `BS_BATCH_TIMEOUT_MS`).
    pub batch_timeout: Duration,
    /// Partitions, each with its own session (`--partitions`, `BS_PARTITIONS`).
    pub partitions: usize,
    /// Intra-op threads per session (`--threads`, `BS_THREADS`).
    pub threads: usize,
    /// Queue capacity in items (`--queue-capacity`, `BS_QUEUE_CAPACITY`).
    /// The default, four batches, is sized for latency and memory rather
    /// than the core's generic default: a queued MobileNet item is a decoded
    /// 3 x 224 x 224 f32 tensor (602 KB), so 64 of them hold 38.5 MB, and a
    /// full queue is at most four batch executions of waiting.
    pub queue_capacity: usize,
    /// `eager` or `timeout` (`--policy`, `BS_POLICY`).
    pub eager: bool,
    /// Whether ONNX Runtime's threads spin while waiting (`--ort-spinning
    /// false`, `BS_ORT_SPINNING`; default on, the runtime's own default:
    /// measured with `scripts/overload.sh`, turning it off lost about 13% of
    /// the server's answers/s and did not make its 503s faster).
    pub spinning: bool,
}

impl ServingConfig {
    /// Reads the settings; the defaults suit a small CPU machine.
    pub fn from_args(args: &Args) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let partitions = args.value("partitions", "BS_PARTITIONS", 1usize);
        let batch_size = args.value("batch-size", "BS_BATCH_SIZE", 16);
        Self {
            models: args
                .get("models", "BATCH_SERVING_MODELS")
                .map(PathBuf::from),
            batch_size,
            batch_timeout: Duration::from_millis(args.value(
                "batch-timeout-ms",
                "BS_BATCH_TIMEOUT_MS",
                5,
            )),
            partitions,
            threads: args.value("threads", "BS_THREADS", (cores / partitions.max(1)).max(1)),
            queue_capacity: args.value("queue-capacity", "BS_QUEUE_CAPACITY", 4 * batch_size),
            eager: args.get("policy", "BS_POLICY").is_none_or(|p| p == "eager"),
            spinning: args.value("ort-spinning", "BS_ORT_SPINNING", true),
        }
    }

    /// Locates the files and starts the classifier.
    ///
    /// # Errors
    ///
    /// When the runtime or the model cannot be found or loaded.
    pub fn start(&self) -> Result<MobileNet, Box<dyn std::error::Error>> {
        let files = MobileNetFiles::locate(self.models.as_deref())?;
        let classifier = MobileNet::builder(&files)?
            .configure(|model| {
                model
                    .session_options(self.session_options())
                    .batch_size(self.batch_size)
                    .batch_timeout(self.batch_timeout)
                    .partitions(self.partitions)
                    .queue_capacity(self.queue_capacity)
                    .policy(self.policy())
            })
            .start()
            .map_err(|e: Error<OrtError>| e.to_string())?;
        Ok(classifier)
    }

    /// The session options chosen: threads and spinning.
    pub fn session_options(&self) -> SessionOptions {
        SessionOptions::default()
            .intra_threads(self.threads)
            .spinning(self.spinning)
    }

    /// The batching policy chosen.
    pub fn policy(&self) -> Policy {
        if self.eager {
            Policy::Eager
        } else {
            Policy::Timeout
        }
    }

    /// One line describing the settings.
    pub fn describe(&self) -> String {
        format!(
            "batch_size {}, {} partition(s) x {} thread(s), {} policy, timeout {:?}",
            self.batch_size,
            self.partitions,
            self.threads,
            if self.eager { "eager" } else { "timeout" },
            self.batch_timeout
        )
    }
}
