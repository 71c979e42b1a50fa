//! Image pre-processing on arbitrary bytes: an error or a [3, 224, 224]
//! tensor of finite values, never a panic or an unbounded allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(tensor) = batch_serving_ort::mobilenet::preprocess(bytes) {
        assert_eq!(tensor.shape(), &[3, 224, 224]);
        assert!(tensor.iter().all(|v| v.is_finite()));
    }
});
