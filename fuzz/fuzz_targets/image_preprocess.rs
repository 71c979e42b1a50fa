//! Image pre-processing on arbitrary bytes: an error or a [3, 224, 224]
//! tensor of finite values, never a panic or an unbounded allocation; a
//! decoded image never exceeds the pixel limit.
#![no_main]

use libfuzzer_sys::fuzz_target;

use batch_serving_ort::mobilenet::{MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE, decode_bounded};

fuzz_target!(|bytes: &[u8]| {
    if let Ok(image) = decode_bounded(bytes) {
        assert!(image.width() <= MAX_IMAGE_SIDE && image.height() <= MAX_IMAGE_SIDE);
        assert!(u64::from(image.width()) * u64::from(image.height()) <= MAX_IMAGE_PIXELS);
    }
    if let Ok(tensor) = batch_serving_ort::mobilenet::preprocess(bytes) {
        assert_eq!(tensor.shape(), &[3, 224, 224]);
        assert!(tensor.iter().all(|v| v.is_finite()));
    }
});
