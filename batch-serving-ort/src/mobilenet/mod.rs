//! MobileNetV2 image classification: decode and normalise in the caller's
//! task, run the model in batches, and turn logits into top-k labels.

mod classifier;
mod decode;
mod files;
mod labels;
mod preprocess;

pub use classifier::{ClassifierServing, MobileNet, MobileNetBuilder};
pub use decode::{MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE, RESIZE_SHORT_SIDE, decode_bounded};
pub use files::{LABELS_NAME, MOBILENET_MODEL_NAMES, MobileNetFiles};
pub use labels::{Labels, Prediction, top_k};
pub use preprocess::{CROP_SIZE, IMAGENET_MEAN, IMAGENET_STD, preprocess, preprocess_image};
