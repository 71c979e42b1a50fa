//! The classification extension: an output asked for with the parameter
//! `classification: N` is answered as each item's top N classes instead of
//! the raw tensor, as Triton answers it: a `BYTES` tensor of shape
//! `[batch, N]` whose elements read `score:index`, or `score:index:label`
//! when the model has labels.

use batch_serving_ort::TensorData;

/// An output's top classes per item, highest score first.
#[derive(Debug, Clone, PartialEq)]
pub struct Classes {
    /// `[batch, count]`.
    pub shape: Vec<usize>,
    /// Row-major.
    pub elements: Vec<String>,
}

/// The top `count` classes of each item of `output` (a `[batch, classes]`
/// FP32 tensor, or any shape whose axes after the batch one are flattened).
///
/// # Errors
///
/// A message for the client (sent with 400): a count of 0, or an output
/// that is not FP32.
pub fn classify(
    name: &str,
    output: &TensorData,
    count: u64,
    labels: Option<&[String]>,
) -> Result<Classes, String> {
    if count == 0 {
        return Err(format!(
            "output `{name}`: classification asks for 0 classes; ask for 1 or more"
        ));
    }
    let Some(view) = output.as_f32() else {
        return Err(format!(
            "output `{name}` is not FP32, so it cannot be classified"
        ));
    };
    let batch = view.shape().first().copied().unwrap_or(0);
    let per_item = view.len().checked_div(batch).unwrap_or(0);
    let count = usize::try_from(count).unwrap_or(usize::MAX).min(per_item);
    let scores: Vec<f32> = view.iter().copied().collect();
    let mut elements = Vec::with_capacity(batch * count);
    for item in scores.chunks(per_item.max(1)).take(batch) {
        let mut order: Vec<usize> = (0..item.len()).collect();
        // Highest first; a NaN sorts last rather than panicking.
        order.sort_by(|&a, &b| item[b].total_cmp(&item[a]));
        for &class in order.iter().take(count) {
            let label = labels.and_then(|labels| labels.get(class));
            elements.push(match label {
                Some(label) => format!("{}:{class}:{label}", item[class]),
                None => format!("{}:{class}", item[class]),
            });
        }
    }
    Ok(Classes {
        shape: vec![batch, count],
        elements,
    })
}

impl Classes {
    /// The elements as the binary-tensor extension writes `BYTES`: each a
    /// little-endian u32 length, then its bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        for element in &self.elements {
            bytes.extend_from_slice(&(element.len() as u32).to_le_bytes());
            bytes.extend_from_slice(element.as_bytes());
        }
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::ArrayD;

    fn logits(rows: &[&[f32]]) -> TensorData {
        let width = rows[0].len();
        let flat: Vec<f32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
        TensorData::F32(
            ArrayD::from_shape_vec(vec![rows.len(), width], flat)
                .unwrap_or_else(|_| unreachable!()),
        )
    }

    #[test]
    fn each_item_gets_its_top_classes_highest_first_with_labels() {
        let labels = ["cat".to_owned(), "dog".to_owned(), "fox".to_owned()];
        let classes = classify(
            "out",
            &logits(&[&[0.1, 0.7, 0.2], &[0.9, 0.0, 0.5]]),
            2,
            Some(&labels),
        );
        assert_eq!(
            classes,
            Ok(Classes {
                shape: vec![2, 2],
                elements: vec![
                    "0.7:1:dog".to_owned(),
                    "0.2:2:fox".to_owned(),
                    "0.9:0:cat".to_owned(),
                    "0.5:2:fox".to_owned(),
                ],
            })
        );
    }

    #[test]
    fn without_labels_an_element_is_score_and_index_and_the_count_is_capped() {
        let classes =
            classify("out", &logits(&[&[0.1, 0.7]]), 5, None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(classes.shape, [1, 2]);
        assert_eq!(classes.elements, ["0.7:1", "0.1:0"]);
        assert_eq!(&classes.to_bytes()[..9], b"\x05\0\0\x000.7:1");
        assert!(classify("out", &logits(&[&[0.1]]), 0, None).is_err());
    }
}
