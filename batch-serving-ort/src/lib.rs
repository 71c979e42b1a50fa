//! ONNX Runtime models served with [`batch_serving`]: any model with a batch
//! axis becomes a batch function, with one session per partition, and
//! MobileNetV2 image classification is ready to use on top of it.
//!
//! - [`Runtime`] finds and loads `libonnxruntime` at run time
//!   (`ORT_DYLIB_PATH`, the `onnxruntime` Python package, the system path).
//! - [`ModelServingBuilder`] serves any model: callers send [`ModelInputs`]
//!   (named tensors without the batch axis), checked against the model in
//!   the caller's task, and get [`ModelOutputs`].
//! - [`MobileNet`] takes image bytes and returns top-k ImageNet labels.
//! - [`embedding::Embedder`] takes sentences and returns all-MiniLM-L6-v2
//!   embeddings, batching sentences of similar length together.
//!
//! Model files are found by path ([`MobileNetFiles::locate`]), never bundled.

pub mod embedding;
mod error;
mod files;
pub mod mobilenet;
mod options;
mod runtime;
mod serving;
mod session;
mod signature;
mod tensors;

pub use embedding::{MINILM_DIR, MINILM_MODEL_NAMES, MiniLmFiles, TOKENIZER_NAME};
pub use error::OrtError;
pub use files::{MODELS_ENV, models_dir};
pub use mobilenet::{
    LABELS_NAME, MOBILENET_MODEL_NAMES, MobileNet, MobileNetBuilder, MobileNetFiles,
};
pub use options::{ExecutionProvider, GraphOptimization, SessionOptions};
pub use runtime::{DYLIB_ENV, LIBRARY_NAME, LibrarySource, Runtime, locate_library};
pub use serving::{ModelBuilder, ModelMappedServing, ModelServing, ModelServingBuilder};
pub use session::ModelSession;
pub use signature::{CheckedInputs, Dtype, ModelSignature, TensorSpec};
pub use tensors::{ModelInputs, ModelOutputs, TensorData};

/// The `ort` crate this adapter is built on, for sessions configured beyond
/// [`SessionOptions`].
pub use ort;
