//! Finding the models folder by path, never by bundling models: an explicit
//! folder, then an environment variable, then a `shared/models` folder
//! beside the working directory or one of its parents. Each model module
//! finds its own files in it (`MobileNetFiles`, `MiniLmFiles`).

use std::path::{Path, PathBuf};

use crate::OrtError;

/// The environment variable naming the folder with the model files.
pub const MODELS_ENV: &str = "BATCH_SERVING_MODELS";

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
