//! The MobileNet serving the applications start (server, load tester), and
//! its flags: where the models are, batch size, timeout, partitions,
//! threads, queue and policy, each also read from a `BS_*` variable.

use std::path::PathBuf;
use std::time::Duration;

use batch_serving::{Builder, Policy};
use batch_serving_ort::{MobileNet, MobileNetFiles, OrtError, SessionOptions};

/// `--policy`: how a batch is started (see `batch_serving::Policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PolicyFlag {
    /// Run at once while a partition is idle; grow the batch while all are busy.
    Eager,
    /// Wait for a full batch or the batch timeout.
    Timeout,
}

impl From<PolicyFlag> for Policy {
    fn from(flag: PolicyFlag) -> Self {
        match flag {
            PolicyFlag::Eager => Policy::Eager,
            PolicyFlag::Timeout => Policy::Timeout,
        }
    }
}

/// The most requests in flight that a closed-loop client may hold without
/// any being refused under the servers' default queue (see
/// `ServingConfig::queue_capacity`).
pub const CLOSED_LOOP_CLIENTS: usize = 512;

/// Parses a whole number of milliseconds.
pub fn millis(text: &str) -> Result<Duration, String> {
    text.parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|e| format!("{text}: {e} (a whole number of milliseconds)"))
}

/// Parses a whole number of milliseconds above zero.
pub fn positive_millis(text: &str) -> Result<Duration, String> {
    match millis(text)? {
        Duration::ZERO => Err(format!("{text}: must be above zero")),
        positive => Ok(positive),
    }
}

/// Serving settings for a model, as flags with environment fallbacks.
#[derive(Debug, Clone, clap::Args)]
pub struct ServingConfig {
    /// The models folder (else found beside the working directory).
    #[arg(long, env = "BATCH_SERVING_MODELS")]
    pub models: Option<PathBuf>,
    /// Items per batch.
    #[arg(long, env = "BS_BATCH_SIZE", default_value_t = 16)]
    pub batch_size: usize,
    /// The batch timer, in milliseconds.
    #[arg(long = "batch-timeout-ms", env = "BS_BATCH_TIMEOUT_MS", default_value = "5", value_parser = millis)]
    pub batch_timeout: Duration,
    /// Partitions, each with its own session.
    #[arg(long, env = "BS_PARTITIONS", default_value_t = 1)]
    pub partitions: usize,
    /// Intra-op threads per session [default: the cores shared among the partitions].
    #[arg(long, env = "BS_THREADS")]
    pub threads: Option<usize>,
    /// Queue capacity in items [default: 512, or four batches if more].
    ///
    /// Deep enough that a closed-loop client with up to 512 requests in
    /// flight (perf_analyzer at --concurrency-range 512, wrk with 512
    /// connections) is queued, never refused: it can hold no more than
    /// that, so it is not overload, and Triton, MLServer and the Python
    /// servers all queue it. The cost, for MobileNet: a queued item is a
    /// decoded 3 x 224 x 224 f32 tensor (602 KB), so a full queue holds
    /// 308 MB and is 32 batch executions of waiting. Real overload (an open
    /// loop faster than the model) still fills it and gets 503; a
    /// `--latency-target-ms` refuses calls predicted late long before.
    #[arg(long, env = "BS_QUEUE_CAPACITY")]
    pub queue_capacity: Option<usize>,
    /// How batches start.
    #[arg(long, env = "BS_POLICY", value_enum, default_value = "eager")]
    pub policy: PolicyFlag,
    /// Batch adaptively to keep each call within this many milliseconds,
    /// refusing at once (503) the calls predicted to miss it; replaces
    /// `--policy`, with `--batch-size` as the cap.
    #[arg(long = "latency-target-ms", env = "BS_LATENCY_TARGET_MS", value_parser = positive_millis)]
    pub latency_target: Option<Duration>,
    /// Whether ONNX Runtime's threads spin while waiting (measured with
    /// scripts/overload.sh: turning it off lost about 13% of the server's
    /// answers/s and did not make its 503s faster).
    #[arg(long = "ort-spinning", env = "BS_ORT_SPINNING", default_value_t = true, action = clap::ArgAction::Set)]
    pub spinning: bool,
}

impl ServingConfig {
    /// The policy chosen: adaptive when a latency target is given.
    pub fn policy(&self) -> Policy {
        match self.latency_target {
            Some(target) => Policy::Adaptive { target },
            None => Policy::from(self.policy),
        }
    }

    /// Intra-op threads per session.
    pub fn threads(&self) -> usize {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        self.threads
            .unwrap_or((cores / self.partitions.max(1)).max(1))
    }

    /// Queue capacity in items, given the default for this model (at
    /// least [`CLOSED_LOOP_CLIENTS`]).
    pub fn queue_capacity_or(&self, default: usize) -> usize {
        self.queue_capacity
            .unwrap_or(default.max(CLOSED_LOOP_CLIENTS))
    }

    /// The core settings, as the hook every model builder takes, with the
    /// queue capacity this model defaults to.
    pub fn core_settings<I, O, E>(
        &self,
        default_capacity: usize,
    ) -> impl Fn(Builder<I, O, E>) -> Builder<I, O, E> + Send + Sync + 'static
    where
        I: Send + 'static,
        O: Send + 'static,
        E: Send + Sync + 'static,
    {
        let (batch_size, timeout, partitions) =
            (self.batch_size, self.batch_timeout, self.partitions);
        let (capacity, policy) = (self.queue_capacity_or(default_capacity), self.policy());
        move |core| {
            core.batch_size(batch_size)
                .batch_timeout(timeout)
                .partitions(partitions)
                .queue_capacity(capacity)
                .policy(policy)
        }
    }

    /// Locates the files and starts the classifier.
    ///
    /// # Errors
    ///
    /// When the runtime or the model cannot be found or loaded.
    pub fn start(&self) -> Result<MobileNet, OrtError> {
        // The serving registers its metrics as it starts: the exporter
        // comes first.
        crate::metrics::exporter();
        let files = MobileNetFiles::locate(self.models.as_deref())?;
        MobileNet::builder(&files)?
            .session_options(self.session_options())
            .serving(self.core_settings(4 * self.batch_size))
            .start()
    }

    /// The session options chosen: threads and spinning.
    pub fn session_options(&self) -> SessionOptions {
        SessionOptions::default()
            .intra_threads(self.threads())
            .spinning(self.spinning)
    }

    /// One line describing the settings.
    pub fn describe(&self) -> String {
        format!(
            "batch_size {}, {} partition(s) x {} thread(s), {}",
            self.batch_size,
            self.partitions,
            self.threads(),
            match self.policy() {
                Policy::Adaptive { target } => format!("adaptive policy, target {target:?}"),
                Policy::Timeout => format!("timeout policy, timeout {:?}", self.batch_timeout),
                _ => format!("eager policy, timeout {:?}", self.batch_timeout),
            },
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        serving: ServingConfig,
    }

    #[test]
    fn flags_parse_and_defaults_follow_the_other_settings() {
        let cli = Cli::try_parse_from([
            "app",
            "--batch-size",
            "8",
            "--partitions=2",
            "--policy",
            "timeout",
            "--ort-spinning",
            "false",
            "--batch-timeout-ms",
            "7",
        ])
        .unwrap();
        let config = cli.serving;
        assert_eq!((config.batch_size, config.partitions), (8, 2));
        assert_eq!(config.policy, PolicyFlag::Timeout);
        assert!(!config.spinning);
        assert_eq!(config.batch_timeout, Duration::from_millis(7));
        assert_eq!(
            config.queue_capacity_or(4 * config.batch_size),
            CLOSED_LOOP_CLIENTS
        );
        assert!(Cli::try_parse_from(["app", "--batch-size", "many"]).is_err());
        assert!(Cli::try_parse_from(["app", "--policy", "sometimes"]).is_err());
    }

    #[test]
    fn a_latency_target_makes_the_policy_adaptive() {
        let plain = Cli::try_parse_from(["app"]).unwrap().serving;
        assert_eq!(plain.policy(), Policy::Eager);
        let adaptive =
            Cli::try_parse_from(["app", "--policy", "timeout", "--latency-target-ms", "40"])
                .unwrap()
                .serving;
        assert_eq!(
            adaptive.policy(),
            Policy::Adaptive {
                target: Duration::from_millis(40)
            }
        );
        assert!(adaptive.describe().contains("adaptive policy, target 40ms"));
        assert!(Cli::try_parse_from(["app", "--latency-target-ms", "0"]).is_err());
    }
}
