//! The adapter's error type: one enum for the runtime, the model, the
//! caller's input and image decoding. `start` returns it directly; a call
//! returns it inside the core's [`batch_serving::Error`].

use std::path::PathBuf;

use batch_serving::StartError;

/// Everything that can go wrong between a caller's input and a model's output.
///
/// Input errors (`MissingInput`, `WrongShape`, `Image`, …) are raised in the
/// caller's own task before anything is queued, so they reach that caller
/// only; the batch of the others runs as usual.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OrtError {
    /// No ONNX Runtime library was found in any of the places searched.
    #[error(
        "onnxruntime library not found (searched: {searched}): set ORT_DYLIB_PATH to libonnxruntime.so.1.31.1 or install the onnxruntime 1.31 Python package (`pip install onnxruntime==1.31.1`)"
    )]
    RuntimeNotFound {
        /// The places that were tried, in order.
        searched: String,
    },
    /// A library was found but could not be loaded (wrong version, not a
    /// shared object, missing dependencies).
    #[error("cannot load onnxruntime from {path}: {message}")]
    RuntimeLoad {
        /// The library that failed to load.
        path: PathBuf,
        /// What the loader said.
        message: String,
    },
    /// A model or data file does not exist or cannot be read.
    #[error("cannot read {path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// ONNX Runtime reported an error (creating a session, running a batch).
    #[error("onnxruntime failed to {action}: {message}")]
    Runtime {
        /// What was being done, such as "create the session".
        action: &'static str,
        /// ONNX Runtime's message.
        message: String,
    },
    /// The requested execution provider could not be registered. There is no
    /// silent fallback to the CPU.
    #[error(
        "the {provider} execution provider could not be registered: {message} (is the onnxruntime-gpu build of the runtime loaded, and was the `cuda` feature enabled?)"
    )]
    ExecutionProvider {
        /// The provider, such as "CUDA".
        provider: &'static str,
        /// Why it failed.
        message: String,
    },
    /// The model cannot be served as a batch function (no batch axis, an
    /// element type this adapter does not handle).
    #[error("model cannot be served: {0}")]
    UnsupportedModel(String),
    /// The model's batch axis is fixed and smaller than the serving's
    /// `batch_size`.
    #[error(
        "model input `{input}` has a fixed batch axis of {fixed}, but batch_size is {batch_size}: set batch_size({fixed}) or export the model with a dynamic batch axis"
    )]
    FixedBatchAxis {
        /// The input whose first axis is fixed.
        input: String,
        /// Its fixed size.
        fixed: usize,
        /// The configured batch size.
        batch_size: usize,
    },
    /// An item lacks one of the model's inputs.
    #[error("missing input `{name}`")]
    MissingInput {
        /// The model input that was not given.
        name: String,
    },
    /// An item names an input the model does not have, or names one twice.
    #[error("unexpected input `{name}` (the model's inputs are: {expected})")]
    UnexpectedInput {
        /// The name that was given.
        name: String,
        /// The model's input names.
        expected: String,
    },
    /// An input has the wrong element type.
    #[error("input `{name}` must be {expected}, got {actual}")]
    WrongDtype {
        /// The input.
        name: String,
        /// The model's element type.
        expected: &'static str,
        /// The item's element type.
        actual: &'static str,
    },
    /// An input has the wrong shape (given without the batch axis).
    #[error("input `{name}` must have shape {expected} (without the batch axis), got {actual:?}")]
    WrongShape {
        /// The input.
        name: String,
        /// The expected shape, `?` for a free dimension.
        expected: String,
        /// The item's shape.
        actual: Vec<usize>,
    },
    /// The model returned an output this adapter cannot split per item.
    #[error("output `{name}` cannot be split per item: {message}")]
    Output {
        /// The output.
        name: String,
        /// Why.
        message: String,
    },
    /// Image bytes that could not be decoded.
    #[error("cannot decode image: {0}")]
    Image(String),
    /// A sentence with more tokens than the limit, refused under
    /// `Overflow::Reject`.
    #[error("text has more than {max_tokens} tokens (raise max_tokens or use Overflow::Truncate)")]
    TooManyTokens {
        /// The limit, special tokens included.
        max_tokens: usize,
    },
    /// The tokenizer failed on a text.
    #[error("cannot tokenize text: {0}")]
    Tokenizer(String),
    /// A setting that cannot work, such as a token limit beyond the model's.
    #[error("invalid configuration: {0}")]
    Configuration(String),
    /// A labels file that does not match the model.
    #[error("labels do not fit the model: {0}")]
    Labels(String),
    /// `start` was called outside a tokio runtime.
    #[error("start must be called from within a tokio runtime")]
    NoRuntime,
    /// A partition panicked while opening its session.
    #[error("partition {partition} panicked while starting: {message}")]
    PartitionPanicked {
        /// Index of the partition.
        partition: usize,
        /// The panic payload, when it was a string.
        message: std::sync::Arc<str>,
    },
    /// The operating system refused to spawn a partition thread.
    #[error("could not spawn a partition thread: {0}")]
    Spawn(#[source] std::io::Error),
}

/// A serving that could not start, told in the adapter's own terms: a
/// partition's failure is the [`OrtError`] it failed with (the runtime, the
/// model, the provider), and a core setting that cannot work is
/// [`OrtError::Configuration`].
impl From<StartError<OrtError>> for OrtError {
    fn from(error: StartError<OrtError>) -> Self {
        match error {
            StartError::PartitionStart { error, .. } => error,
            StartError::InvalidConfig(message) => OrtError::Configuration(message.to_owned()),
            StartError::NoRuntime => OrtError::NoRuntime,
            StartError::PartitionStartPanicked { partition, message } => {
                OrtError::PartitionPanicked { partition, message }
            }
            StartError::Spawn(error) => OrtError::Spawn(error),
            other => OrtError::Configuration(other.to_string()),
        }
    }
}

impl OrtError {
    pub(crate) fn runtime(action: &'static str, error: impl std::fmt::Display) -> Self {
        Self::Runtime {
            action,
            message: error.to_string(),
        }
    }

    pub(crate) fn file(path: impl Into<PathBuf>, error: impl std::fmt::Display) -> Self {
        Self::File {
            path: path.into(),
            message: error.to_string(),
        }
    }
}
