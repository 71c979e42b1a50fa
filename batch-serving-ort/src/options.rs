//! How a model's sessions are created: execution provider, threads and graph
//! optimisation.

/// Where a session runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ExecutionProvider {
    /// ONNX Runtime's CPU provider.
    #[default]
    Cpu,
    /// NVIDIA CUDA on the given device (needs the `cuda` feature and the
    /// onnxruntime-gpu build of the library). Failing to register it is an
    /// error, never a silent fallback to the CPU.
    Cuda {
        /// The CUDA device ordinal.
        device_id: i32,
    },
}

/// How much ONNX Runtime rewrites the graph when a session is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum GraphOptimization {
    /// No rewriting.
    Disabled,
    /// Constant folding and redundant-node removal.
    Basic,
    /// Also operator fusions.
    Extended,
    /// Everything, including layout changes (ONNX Runtime's default).
    #[default]
    All,
}

impl From<GraphOptimization> for ort::session::builder::GraphOptimizationLevel {
    fn from(level: GraphOptimization) -> Self {
        match level {
            GraphOptimization::Disabled => Self::Disable,
            GraphOptimization::Basic => Self::Level1,
            GraphOptimization::Extended => Self::Level2,
            GraphOptimization::All => Self::All,
        }
    }
}

/// Options for the session each partition creates.
///
/// ```
/// use batch_serving_ort::{ExecutionProvider, GraphOptimization, SessionOptions};
/// let options = SessionOptions::default()
///     .execution_provider(ExecutionProvider::Cpu)
///     .intra_threads(1)
///     .graph_optimization(GraphOptimization::All);
/// assert_eq!(options.intra_threads_per_session(), Some(1));
/// ```
#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    provider: ExecutionProvider,
    intra_threads: Option<usize>,
    spinning: Option<bool>,
    optimization: GraphOptimization,
    fixed_dimensions: Vec<(String, i64)>,
}

impl SessionOptions {
    /// Whether ONNX Runtime's intra-op threads spin while they wait for work
    /// (default: the runtime's, which spins). Spinning shaves the wake-up
    /// off each operator, but the spinning threads take CPU from whatever
    /// shares the cores: a server's async workers answering other requests,
    /// say. Turn it off where the model shares its cores.
    #[must_use]
    pub fn spinning(mut self, spinning: bool) -> Self {
        self.spinning = Some(spinning);
        self
    }

    /// The spinning setting, where one was made.
    pub fn spinning_setting(&self) -> Option<bool> {
        self.spinning
    }

    /// Where each session runs (default: the CPU).
    #[must_use]
    pub fn execution_provider(mut self, provider: ExecutionProvider) -> Self {
        self.provider = provider;
        self
    }

    /// Threads each session uses inside one operator. With `partitions(p)`,
    /// up to `p × threads` threads compute at once, so on a CPU keep the
    /// product near the core count. Default: ONNX Runtime's choice (all
    /// physical cores), which oversubscribes with more than one partition.
    #[must_use]
    pub fn intra_threads(mut self, threads: usize) -> Self {
        self.intra_threads = Some(threads);
        self
    }

    /// The graph optimisation level (default: all).
    #[must_use]
    pub fn graph_optimization(mut self, level: GraphOptimization) -> Self {
        self.optimization = level;
        self
    }

    /// Fixes the model's free dimension called `name` (for example its
    /// symbolic batch axis) to `size`, so ONNX Runtime can plan for it. A
    /// fixed batch axis limits `batch_size`; smaller batches are padded.
    #[must_use]
    pub fn fix_dimension(mut self, name: impl Into<String>, size: usize) -> Self {
        self.fixed_dimensions
            .push((name.into(), i64::try_from(size).unwrap_or(i64::MAX)));
        self
    }

    /// The free dimensions fixed with [`SessionOptions::fix_dimension`].
    pub fn fixed_dimensions(&self) -> &[(String, i64)] {
        &self.fixed_dimensions
    }

    /// The configured provider.
    pub fn provider(&self) -> ExecutionProvider {
        self.provider
    }

    /// The configured intra-op thread count, if any.
    pub fn intra_threads_per_session(&self) -> Option<usize> {
        self.intra_threads
    }

    /// The configured optimisation level.
    pub fn optimization(&self) -> GraphOptimization {
        self.optimization
    }
}
