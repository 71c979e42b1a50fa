//! The MobileNetV2 model and its labels, found in the models folder.

use std::path::{Path, PathBuf};

use crate::{OrtError, models_dir};

/// MobileNetV2 file names accepted in a models folder, in order of
/// preference: the shared de-quantized build, then the ONNX model zoo's
/// `mobilenetv2-12.onnx` (same interface).
pub const MOBILENET_MODEL_NAMES: [&str; 2] =
    ["mobilenetv2_1.0_224_dequant.onnx", "mobilenetv2-12.onnx"];

/// The ImageNet labels file name, one class per line in index order.
pub const LABELS_NAME: &str = "imagenet_classes.txt";

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
