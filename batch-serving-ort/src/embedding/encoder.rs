//! One partition's encoder session and the batch function: pad the batch's
//! token ids to the width its [`Padding`] asks for, run the graph once, and
//! pool each sentence over its own real tokens.

use std::borrow::Cow;

use ndarray::{Array2, Ix3};
use ort::session::SessionInputValue;
use ort::value::TensorRef;

use super::{Padding, Tokens, mean_pool_normalized};
use crate::{Dtype, ModelSession, ModelSignature, OrtError};

/// The encoder inputs this adapter fills. `token_type_ids` is optional:
/// some exports drop it because single sentences always pass zeros.
const INPUT_IDS: &str = "input_ids";
const ATTENTION_MASK: &str = "attention_mask";
const TOKEN_TYPE_IDS: &str = "token_type_ids";

/// What one batch cost, for progress displays and for checking that
/// bucketing works: `padded_tokens / real_tokens` is the padding overhead.
///
/// ```
/// use batch_serving_ort::embedding::EmbeddedBatch;
/// let batch = EmbeddedBatch { sentences: 2, width: 10, real_tokens: 15 };
/// assert_eq!(batch.padded_tokens(), 20);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbeddedBatch {
    /// Sentences in the batch.
    pub sentences: usize,
    /// The token axis the batch was padded to.
    pub width: usize,
    /// Tokens that were not padding.
    pub real_tokens: usize,
}

impl EmbeddedBatch {
    /// Tokens the encoder processed, padding included.
    pub fn padded_tokens(&self) -> usize {
        self.sentences * self.width
    }
}

/// A partition's encoder: its own session (sessions need exclusive access)
/// and the padding rule.
#[derive(Debug)]
pub(crate) struct Encoder {
    session: ModelSession,
    output: String,
    padding: Padding,
}

impl Encoder {
    pub(crate) fn new(session: ModelSession, padding: Padding) -> Result<Self, OrtError> {
        let output = check_encoder(session.signature())?;
        Ok(Self {
            session,
            output,
            padding,
        })
    }

    /// Embeds one batch: one unit vector per sentence, in order.
    pub(crate) fn run(
        &mut self,
        batch: &[Tokens],
    ) -> Result<(Vec<Vec<f32>>, EmbeddedBatch), OrtError> {
        let lengths: Vec<usize> = batch.iter().map(Tokens::len).collect();
        // A zero-width tensor is not a valid encoder input; a batch of
        // id-less items pools to zero vectors over one padding column.
        let width = self.padding.padded_length(&lengths).max(1);
        let mut ids = Array2::<i64>::zeros((batch.len(), width));
        let mut mask = Array2::<i64>::zeros((batch.len(), width));
        for (row, tokens) in batch.iter().enumerate() {
            for (slot, &id) in ids.row_mut(row).iter_mut().zip(tokens.ids()) {
                *slot = id;
            }
            mask.row_mut(row)
                .iter_mut()
                .take(tokens.len())
                .for_each(|m| *m = 1);
        }
        let types = Array2::<i64>::zeros((batch.len(), width));
        let wrap = |error: ort::Error| OrtError::runtime("wrap an input tensor", error);
        let mut feeds: Vec<(Cow<'_, str>, SessionInputValue<'_>)> = Vec::with_capacity(3);
        for spec in &self.session.signature().inputs {
            let tensor = match spec.name.as_str() {
                INPUT_IDS => &ids,
                ATTENTION_MASK => &mask,
                _ => &types,
            };
            let value = TensorRef::from_array_view(tensor.view()).map_err(wrap)?;
            feeds.push((Cow::Owned(spec.name.clone()), value.into()));
        }
        let outputs = self
            .session
            .session_mut()
            .run(feeds)
            .map_err(|error| OrtError::runtime("run the batch", error))?;
        let output_error = |message: String| OrtError::Output {
            name: self.output.clone(),
            message,
        };
        let hidden = outputs[self.output.as_str()]
            .try_extract_array::<f32>()
            .map_err(|e| output_error(e.to_string()))?
            .into_dimensionality::<Ix3>()
            .map_err(|e| output_error(e.to_string()))?;
        if hidden.shape()[..2] != [batch.len(), width] {
            return Err(output_error(format!(
                "shape {:?} does not match the batch [{}, {width}]",
                hidden.shape(),
                batch.len()
            )));
        }
        let vectors = mean_pool_normalized(hidden, &lengths);
        let cost = EmbeddedBatch {
            sentences: batch.len(),
            width,
            real_tokens: lengths.iter().sum(),
        };
        Ok((vectors, cost))
    }
}

/// Checks that the model is a BERT-style encoder this adapter can feed, and
/// returns the name of its per-token output.
fn check_encoder(signature: &ModelSignature) -> Result<String, OrtError> {
    for spec in &signature.inputs {
        let known = [INPUT_IDS, ATTENTION_MASK, TOKEN_TYPE_IDS].contains(&spec.name.as_str());
        if !known || spec.dtype != Dtype::I64 || spec.item_dims.len() != 1 {
            return Err(OrtError::UnsupportedModel(format!(
                "input `{}` is not one of {INPUT_IDS}, {ATTENTION_MASK}, {TOKEN_TYPE_IDS} as i64 [batch, tokens]",
                spec.name
            )));
        }
    }
    for required in [INPUT_IDS, ATTENTION_MASK] {
        if !signature.inputs.iter().any(|s| s.name == required) {
            return Err(OrtError::UnsupportedModel(format!(
                "the encoder has no `{required}` input"
            )));
        }
    }
    let output = signature
        .outputs
        .iter()
        .find(|o| o.name == "last_hidden_state")
        .or_else(|| signature.outputs.first())
        .filter(|o| o.dtype == Dtype::F32 && o.item_dims.len() == 2)
        .ok_or_else(|| {
            OrtError::UnsupportedModel(
                "the encoder has no f32 [batch, tokens, hidden] output".to_owned(),
            )
        })?;
    Ok(output.name.clone())
}
