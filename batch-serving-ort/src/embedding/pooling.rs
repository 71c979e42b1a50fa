//! From the encoder's per-token states to one unit vector per sentence:
//! the mean over the sentence's real tokens, then L2 normalisation
//! (sentence-transformers' pooling for the MiniLM family).

use ndarray::ArrayView3;

/// Mean-pools `hidden` (`[batch, tokens, dims]`) over the first `lengths[i]`
/// tokens of row `i` (the real ones; padding is on the right) and scales each
/// result to unit length.
///
/// ```
/// use batch_serving_ort::embedding::mean_pool_normalized;
/// // One sentence of 2 real tokens and one padding token.
/// let hidden = ndarray::arr3(&[[[3.0_f32, 0.0], [3.0, 8.0], [100.0, 100.0]]]);
/// let pooled = mean_pool_normalized(hidden.view(), &[2]);
/// assert_eq!(pooled, vec![vec![0.6, 0.8]]); // mean (3, 4), length 5
/// ```
///
/// # Panics
///
/// When `lengths` has fewer entries than the batch, or a length exceeds the
/// token axis: the caller built both from the same batch.
pub fn mean_pool_normalized(hidden: ArrayView3<'_, f32>, lengths: &[usize]) -> Vec<Vec<f32>> {
    hidden
        .outer_iter()
        .zip(lengths)
        .map(|(states, &length)| {
            let real = states.slice_axis(ndarray::Axis(0), ndarray::Slice::from(..length));
            let mut mean = real
                .mean_axis(ndarray::Axis(0))
                .map_or_else(|| vec![0.0; states.ncols()], |m| m.to_vec());
            let norm = mean.iter().map(|x| x * x).sum::<f32>().sqrt();
            // A zero vector stays zero rather than becoming NaN.
            if norm > 0.0 {
                mean.iter_mut().for_each(|x| *x /= norm);
            }
            mean
        })
        .collect()
}

/// The cosine similarity of two vectors (their dot product when both are
/// unit vectors, as embeddings are).
///
/// ```
/// use batch_serving_ort::embedding::cosine_similarity;
/// assert_eq!(cosine_similarity(&[1.0, 0.0], &[0.0, 2.0]), 0.0);
/// assert!((cosine_similarity(&[1.0, 1.0], &[2.0, 2.0]) - 1.0).abs() < 1e-6);
/// ```
pub fn cosine_similarity(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let scale = norm(a) * norm(b);
    if scale > 0.0 { dot / scale } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_rows_do_not_change_a_sentence_pooled_vector() {
        let short = ndarray::arr3(&[[[1.0_f32, 2.0], [3.0, 2.0]]]);
        let padded = ndarray::arr3(&[[[1.0_f32, 2.0], [3.0, 2.0], [-50.0, 9.0], [7.0, 7.0]]]);
        let a = mean_pool_normalized(short.view(), &[2]);
        let b = mean_pool_normalized(padded.view(), &[2]);
        assert_eq!(a, b);
        let norm: f32 = a[0].iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-6);
    }

    #[test]
    fn a_zero_state_pools_to_zero_not_nan() {
        let hidden = ndarray::Array3::<f32>::zeros((1, 3, 4));
        assert_eq!(
            mean_pool_normalized(hidden.view(), &[3]),
            vec![vec![0.0; 4]]
        );
    }
}
