//! The all-MiniLM-L6-v2 encoder and its tokenizer, found in the models
//! folder.

use std::path::{Path, PathBuf};

use crate::{OrtError, models_dir};

/// The sub-folder of a models folder that holds the MiniLM files.
pub const MINILM_DIR: &str = "minilm";

/// Sentence-encoder file names accepted, in order of preference: the shared
/// export, then the name the model's own repository gives its ONNX export.
pub const MINILM_MODEL_NAMES: [&str; 2] = ["all-MiniLM-L6-v2.onnx", "model.onnx"];

/// The tokenizer file name (the `tokenizers` library's JSON format).
pub const TOKENIZER_NAME: &str = "tokenizer.json";

/// The all-MiniLM-L6-v2 encoder and its tokenizer, found in one folder.
///
/// ```no_run
/// let files = batch_serving_ort::MiniLmFiles::locate(None)?;
/// assert!(files.tokenizer.ends_with("tokenizer.json"));
/// # Ok::<_, batch_serving_ort::OrtError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MiniLmFiles {
    /// The ONNX encoder (`input_ids`, `attention_mask`, `token_type_ids` in;
    /// `last_hidden_state` out).
    pub model: PathBuf,
    /// Its `tokenizer.json`.
    pub tokenizer: PathBuf,
}

impl MiniLmFiles {
    /// Finds the files in `minilm/` under [`models_dir`]`(explicit)`, or in
    /// that folder itself.
    ///
    /// # Errors
    ///
    /// [`OrtError::File`] naming where it looked and how to get the files.
    pub fn locate(explicit: Option<&Path>) -> Result<Self, OrtError> {
        let dir = models_dir(explicit)?;
        [dir.join(MINILM_DIR), dir.clone()]
            .into_iter()
            .find_map(|folder| {
                let model = MINILM_MODEL_NAMES
                    .iter()
                    .map(|name| folder.join(name))
                    .find(|path| path.is_file())?;
                let tokenizer = folder.join(TOKENIZER_NAME);
                tokenizer.is_file().then_some(Self { model, tokenizer })
            })
            .ok_or_else(|| {
                OrtError::file(
                    dir.join(MINILM_DIR),
                    format!(
                        "no sentence encoder there: it needs {} and {TOKENIZER_NAME} (see docs/embeddings.md for how to get them)",
                        MINILM_MODEL_NAMES.join(" or ")
                    ),
                )
            })
    }
}
