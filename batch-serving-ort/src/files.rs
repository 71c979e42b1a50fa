//! Finding model files by path, never by bundling them: an explicit folder,
//! then an environment variable, then a `shared/models` folder beside the
//! working directory or one of its parents.

use std::path::{Path, PathBuf};

use crate::OrtError;

/// The environment variable naming the folder with the model files.
pub const MODELS_ENV: &str = "BATCH_SERVING_MODELS";

/// MobileNetV2 file names accepted in a models folder, in order of
/// preference: the shared de-quantized build, then the ONNX model zoo's
/// `mobilenetv2-12.onnx` (same interface).
pub const MOBILENET_MODEL_NAMES: [&str; 2] =
    ["mobilenetv2_1.0_224_dequant.onnx", "mobilenetv2-12.onnx"];

/// The ImageNet labels file name, one class per line in index order.
pub const LABELS_NAME: &str = "imagenet_classes.txt";

/// The folder to read models from: `explicit` if given, else `$BATCH_SERVING_MODELS`,
/// else the first `shared/models` folder found beside the working directory
/// or any of its parents.
///
/// # Errors
///
/// [`OrtError::File`] saying where it looked and how to get the files.
pub fn models_dir(explicit: Option<&Path>) -> Result<PathBuf, OrtError> {
    if let Some(dir) = explicit {
        return existing_dir(dir.to_path_buf(), "the given models folder");
    }
    if let Some(dir) = std::env::var_os(MODELS_ENV).filter(|d| !d.is_empty()) {
        return existing_dir(PathBuf::from(dir), MODELS_ENV);
    }
    let cwd = std::env::current_dir().map_err(|e| OrtError::file(".", e))?;
    cwd.ancestors()
        .flat_map(|dir| [dir.join("shared").join("models"), dir.join(".models")])
        .find(|dir| dir.is_dir())
        .ok_or_else(|| {
            OrtError::file(
                "shared/models",
                format!(
                    "no models folder found: set {MODELS_ENV}, pass the folder explicitly, or run scripts/fetch-model.sh to download mobilenetv2-12.onnx into .models/"
                ),
            )
        })
}

fn existing_dir(dir: PathBuf, what: &str) -> Result<PathBuf, OrtError> {
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(OrtError::file(dir, format!("{what} is not a folder")))
    }
}

/// The MobileNetV2 model and its labels, found in one folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MobileNetFiles {
    /// The ONNX model.
    pub model: PathBuf,
    /// The labels file.
    pub labels: PathBuf,
}

impl MobileNetFiles {
    /// Finds the files in [`models_dir`]`(explicit)`.
    ///
    /// # Errors
    ///
    /// [`OrtError::File`] naming the folder and the files it lacks.
    pub fn locate(explicit: Option<&Path>) -> Result<Self, OrtError> {
        let dir = models_dir(explicit)?;
        let model = MOBILENET_MODEL_NAMES
            .iter()
            .map(|name| dir.join(name))
            .find(|path| path.is_file())
            .ok_or_else(|| {
                OrtError::file(
                    &dir,
                    format!("neither {} is there", MOBILENET_MODEL_NAMES.join(" nor ")),
                )
            })?;
        let labels = dir.join(LABELS_NAME);
        if !labels.is_file() {
            return Err(OrtError::file(
                labels,
                "the ImageNet labels file is missing",
            ));
        }
        Ok(Self { model, labels })
    }
}

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
