//! The models an inference server serves, each a batching serving of its
//! own, found by name: MobileNetV2 and MiniLM from the models folder, or
//! every ONNX model in a folder given on the command line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use batch_serving_ort::{ModelServing, ModelServingBuilder};

use crate::setup::ServingConfig;

/// The served models by name.
#[derive(Debug, Clone, Default)]
pub struct Repository {
    models: BTreeMap<String, ModelServing>,
    /// Class labels, for the models that have them (the classification
    /// extension answers `score:index:label` with them).
    labels: BTreeMap<String, Vec<String>>,
}

impl Repository {
    /// A repository of servings already started.
    pub fn from_servings(models: impl IntoIterator<Item = (String, ModelServing)>) -> Self {
        Self {
            models: models.into_iter().collect(),
            labels: BTreeMap::new(),
        }
    }

    /// The same repository, with `serving` (started elsewhere) as `name`,
    /// and its class labels if it has them.
    #[must_use]
    pub fn with_model(
        mut self,
        name: &str,
        serving: ModelServing,
        labels: Option<Vec<String>>,
    ) -> Self {
        self.models.insert(name.to_owned(), serving);
        if let Some(labels) = labels {
            self.labels.insert(name.to_owned(), labels);
        }
        self
    }

    /// The same repository, with class labels for `name`.
    #[must_use]
    pub fn with_labels(mut self, name: &str, labels: Vec<String>) -> Self {
        self.labels.insert(name.to_owned(), labels);
        self
    }

    /// The class labels of the model called `name`, if it has them.
    pub fn labels(&self, name: &str) -> Option<&[String]> {
        self.labels.get(name).map(Vec::as_slice)
    }

    /// Starts a serving for each model file, with `settings` for the batch
    /// size, timeout, partitions, threads, queue and policy. Each serving's
    /// metrics carry the model's name as their `serving` label.
    ///
    /// # Errors
    ///
    /// The first model that cannot be loaded, with its name.
    pub fn start(
        files: impl IntoIterator<Item = (String, PathBuf)>,
        settings: &ServingConfig,
    ) -> Result<Self, String> {
        // The servings register their metrics as they start.
        crate::metrics::exporter();
        let mut models = BTreeMap::new();
        let mut labels = BTreeMap::new();
        for (name, path) in files {
            let core = settings.core_settings(4 * settings.batch_size);
            let label = name.clone();
            let serving = ModelServingBuilder::new(&path)
                .session_options(settings.session_options())
                .serving(move |builder| core(builder).name(label.clone()))
                .start()
                .map_err(|e| format!("model `{name}` ({}): {e}", path.display()))?;
            labels.extend(labels_beside(&path).map(|found| (name.clone(), found)));
            models.insert(name, serving);
        }
        Ok(Self { models, labels })
    }

    /// The serving of the model called `name`.
    pub fn get(&self, name: &str) -> Option<&ModelServing> {
        self.models.get(name)
    }

    /// Every model, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ModelServing)> {
        self.models
            .iter()
            .map(|(name, serving)| (name.as_str(), serving))
    }

    /// How many models are served.
    pub fn len(&self) -> usize {
        self.models.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }
}

/// Every ONNX model in `dir`: each `NAME.onnx` in it as `NAME`, and each
/// subfolder `NAME/` holding exactly one `.onnx` file as `NAME` (the layout
/// of the models folder's `minilm/`). Names that could not travel in a URL
/// path unescaped are skipped with a warning.
///
/// # Errors
///
/// When `dir` cannot be read, or holds no model.
pub fn models_in(dir: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    let read = |dir: &Path| -> Result<Vec<PathBuf>, String> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        Ok(entries)
    };
    let is_onnx = |path: &Path| path.is_file() && path.extension().is_some_and(|e| e == "onnx");
    let mut found = Vec::new();
    for path in read(dir)? {
        let named = if is_onnx(&path) {
            path.file_stem()
                .map(|stem| (stem.to_string_lossy().into_owned(), path.clone()))
        } else if path.is_dir() {
            let inside: Vec<PathBuf> = read(&path)?.into_iter().filter(|p| is_onnx(p)).collect();
            match (inside.len(), path.file_name()) {
                (1, Some(name)) => Some((name.to_string_lossy().into_owned(), inside[0].clone())),
                _ => None,
            }
        } else {
            None
        };
        match named {
            Some((name, file)) if is_url_safe(&name) => found.push((name, file)),
            Some((name, _)) => tracing::warn!(name, "skipping a model whose name is not URL-safe"),
            None => {}
        }
    }
    if found.is_empty() {
        return Err(format!(
            "{}: no .onnx model in this folder or its subfolders",
            dir.display()
        ));
    }
    Ok(found)
}

/// A model's class labels, one per line: `NAME.labels.txt` beside
/// `NAME.onnx`, or `labels.txt` in its folder, or ImageNet's
/// `imagenet_classes.txt` there (the models folder's MobileNet).
pub fn labels_beside(model: &Path) -> Option<Vec<String>> {
    let folder = model.parent()?;
    let own = model.with_extension("labels.txt");
    [
        own,
        folder.join("labels.txt"),
        folder.join("imagenet_classes.txt"),
    ]
    .iter()
    .find_map(|path| std::fs::read_to_string(path).ok())
    .map(|text| text.lines().map(str::to_owned).collect())
}

fn is_url_safe(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_lists_its_models_and_one_model_subfolders_by_name() {
        let dir = std::env::temp_dir().join(format!("oip-repo-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for path in [
            "a.onnx",
            "notes.txt",
            "bert/model.onnx",
            "two/x.onnx",
            "two/y.onnx",
            "bad name.onnx",
        ] {
            let path = dir.join(path);
            std::fs::create_dir_all(path.parent().unwrap_or(&dir)).unwrap_or_default();
            std::fs::write(path, b"").unwrap_or_default();
        }
        let names: Vec<String> = models_in(&dir)
            .unwrap_or_default()
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        assert_eq!(names, ["a", "bert"]);
        let _ = std::fs::remove_dir_all(&dir);
        assert!(models_in(&dir).is_err());
    }
}
