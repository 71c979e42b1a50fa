//! ImageNet labels, softmax and the top-k predictions.

use std::path::Path;
use std::sync::Arc;

use crate::OrtError;

/// Class labels in index order, cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labels(Arc<[Arc<str>]>);

impl Labels {
    /// Reads a labels file with one class per line.
    ///
    /// # Errors
    ///
    /// [`OrtError::File`] when it cannot be read, [`OrtError::Labels`] when
    /// it is empty.
    pub fn load(path: &Path) -> Result<Self, OrtError> {
        let text = std::fs::read_to_string(path).map_err(|e| OrtError::file(path, e))?;
        Self::from_lines(&text)
    }

    /// Labels from text with one class per line.
    ///
    /// # Errors
    ///
    /// [`OrtError::Labels`] when there are no lines.
    pub fn from_lines(text: &str) -> Result<Self, OrtError> {
        let labels: Arc<[Arc<str>]> = text.lines().map(|line| Arc::from(line.trim())).collect();
        if labels.is_empty() {
            return Err(OrtError::Labels("the labels file is empty".to_owned()));
        }
        Ok(Self(labels))
    }

    /// How many classes there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none (never true for loaded labels).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The label of class `index`.
    pub fn get(&self, index: usize) -> Option<&Arc<str>> {
        self.0.get(index)
    }
}

/// One predicted class.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Prediction {
    /// The class index.
    pub class: usize,
    /// Its label.
    pub label: Arc<str>,
    /// The softmax probability.
    pub probability: f32,
}

/// Softmax over `logits`, then the `k` most probable classes, most probable
/// first.
///
/// ```
/// use batch_serving_ort::mobilenet::{Labels, top_k};
/// let labels = Labels::from_lines("cat\ndog\nfish")?;
/// let best = top_k(&[0.0, 2.0, 1.0], 2, &labels);
/// assert_eq!(best.iter().map(|p| p.class).collect::<Vec<_>>(), [1, 2]);
/// # Ok::<(), batch_serving_ort::OrtError>(())
/// ```
pub fn top_k(logits: &[f32], k: usize, labels: &Labels) -> Vec<Prediction> {
    // Subtracting the maximum keeps exp() finite for large logits.
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|&l| (l - max).exp()).collect();
    let total: f32 = exps.iter().sum();
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_unstable_by(|&a, &b| exps[b].total_cmp(&exps[a]).then(a.cmp(&b)));
    order
        .into_iter()
        .take(k)
        .map(|class| Prediction {
            class,
            label: labels
                .get(class)
                .cloned()
                .unwrap_or_else(|| Arc::from(format!("class {class}"))),
            probability: exps[class] / total,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn probabilities_are_the_softmax_and_sum_to_one() {
        let labels = Labels::from_lines("a\nb\nc\nd").unwrap();
        let all = top_k(&[1.0, 3.0, 0.0, 2.0], 4, &labels);
        assert_eq!(
            all.iter().map(|p| p.class).collect::<Vec<_>>(),
            [1, 3, 0, 2]
        );
        assert_eq!(&*all[0].label, "b");
        let total: f32 = all.iter().map(|p| p.probability).sum();
        assert!((total - 1.0).abs() < 1e-6);
        // softmax(3) over [1,3,0,2] = e^3 / (e + e^3 + 1 + e^2)
        let e = std::f32::consts::E;
        assert!((all[0].probability - e.powi(3) / (e + e.powi(3) + 1.0 + e * e)).abs() < 1e-6);
    }

    #[test]
    fn huge_logits_stay_finite_and_k_is_capped() {
        let labels = Labels::from_lines("a\nb").unwrap();
        let best = top_k(&[1000.0, 999.0], 5, &labels);
        assert_eq!(best.len(), 2);
        assert!(best.iter().all(|p| p.probability.is_finite()));
        assert!((best[0].probability - 1.0 / (1.0 + (-1.0f32).exp())).abs() < 1e-6);
    }

    #[test]
    fn ties_are_ordered_by_class_and_missing_labels_are_named() {
        let labels = Labels::from_lines("only").unwrap();
        let best = top_k(&[0.5, 0.5, 0.5], 3, &labels);
        assert_eq!(best.iter().map(|p| p.class).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(&*best[2].label, "class 2");
        assert!(Labels::from_lines("").is_err());
    }
}
