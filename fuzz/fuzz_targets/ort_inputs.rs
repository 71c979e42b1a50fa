//! ORT input validation: arbitrary named tensors of arbitrary element types
//! and shapes, checked against the metadata of an image model, a text
//! encoder and a model with a fixed batch axis. Each check returns the
//! tensors in the model's order or an error naming the input; never a panic.
#![no_main]

use batch_serving_ort::{Dtype, ModelInputs, ModelSignature, TensorSpec};
use libfuzzer_sys::fuzz_target;
use ndarray::{ArrayD, IxDyn};

fn spec(name: &str, dtype: Dtype, item_dims: &[Option<usize>], batch_dim: Option<usize>) -> TensorSpec {
    TensorSpec { name: name.to_owned(), dtype, item_dims: item_dims.to_vec(), batch_dim }
}

fn signatures() -> [ModelSignature; 3] {
    let logits = spec("output", Dtype::F32, &[Some(1000)], None);
    let ids = |name: &str| spec(name, Dtype::I64, &[None], None);
    [
        ModelSignature {
            inputs: vec![spec("input", Dtype::F32, &[Some(3), Some(224), Some(224)], None)],
            outputs: vec![logits.clone()],
        },
        ModelSignature {
            inputs: vec![ids("input_ids"), ids("attention_mask"), ids("token_type_ids")],
            outputs: vec![spec("last_hidden_state", Dtype::F32, &[None, Some(384)], None)],
        },
        ModelSignature {
            inputs: vec![spec("input", Dtype::F32, &[Some(3), None, None], Some(4))],
            outputs: vec![logits],
        },
    ]
}

const NAMES: [&str; 6] = ["input", "input_ids", "attention_mask", "token_type_ids", "", "ïnput"];
const DIMS: [usize; 8] = [0, 1, 2, 3, 5, 8, 224, 384];
/// The most elements one fuzzed tensor may have, so inputs stay small.
const MAX_ELEMENTS: usize = 3 * 224 * 224;

fuzz_target!(|bytes: &[u8]| {
    let mut bytes = bytes.iter().copied();
    let mut item = ModelInputs::new();
    let tensors = bytes.next().unwrap_or(0) % 5;
    for _ in 0..tensors {
        let name = NAMES[usize::from(bytes.next().unwrap_or(0)) % NAMES.len()];
        let rank = usize::from(bytes.next().unwrap_or(0)) % 5;
        let shape: Vec<usize> = (0..rank)
            .map(|_| DIMS[usize::from(bytes.next().unwrap_or(0)) % DIMS.len()])
            .collect();
        if shape.iter().product::<usize>() > MAX_ELEMENTS {
            continue;
        }
        item = if bytes.next().unwrap_or(0) % 2 == 0 {
            item.with(name, ArrayD::<f32>::zeros(IxDyn(&shape)))
        } else {
            item.with(name, ArrayD::<i64>::zeros(IxDyn(&shape)))
        };
    }
    for signature in signatures() {
        if let Ok(checked) = signature.check(item.clone()) {
            // An accepted item has one tensor per model input.
            let _ = checked.key();
        }
    }
});
