//! The MobileNetV2 classifier: image bytes in, top-k ImageNet labels out,
//! with inference batched across callers.

use std::ops::Deref;
use std::sync::Arc;

use batch_serving::{Error, MappedServing, Serving};

use super::{Labels, Prediction, preprocess, top_k};
use crate::signature::CheckedInputs;
use crate::{
    ModelInputs, ModelOutputs, ModelServing, ModelServingBuilder, ModelSignature, OrtError,
};

/// Configures a [`MobileNet`].
#[derive(Debug, Clone)]
pub struct MobileNetBuilder {
    model: ModelServingBuilder,
    labels: Labels,
    top_k: usize,
}

impl MobileNetBuilder {
    /// Adjusts the model serving (batch size, partitions, session options).
    #[must_use]
    pub fn configure(
        mut self,
        configure: impl FnOnce(ModelServingBuilder) -> ModelServingBuilder,
    ) -> Self {
        self.model = configure(self.model);
        self
    }

    /// How many predictions each caller gets (default 5).
    #[must_use]
    pub fn top_k(mut self, k: usize) -> Self {
        self.top_k = k;
        self
    }

    /// Opens the model in every partition and starts serving.
    ///
    /// # Errors
    ///
    /// As [`ModelServingBuilder::start`]; also when the model does not take
    /// one `[3, 224, 224]` f32 image or its class count differs from the
    /// labels'.
    pub fn start(self) -> Result<MobileNet, Error<OrtError>> {
        let classes = self.labels.len();
        let model = self
            .model
            .require(move |signature| fits_mobilenet(signature, classes))
            .start()?;
        let input = Arc::<str>::from(model.signature().inputs[0].name.as_str());
        let (labels, k) = (self.labels, self.top_k);
        let signature = Arc::clone(model.signature());
        let classifier =
            model
                .serving()
                .clone()
                .map_inputs(move |bytes: Vec<u8>| {
                    let tensor = preprocess(&bytes)?;
                    signature.check(ModelInputs::new().with(&*input, tensor))
                })
                .map_results(move |outputs: ModelOutputs| {
                    let logits = outputs.first().and_then(|t| t.as_f32()).ok_or_else(|| {
                        OrtError::Output {
                            name: "logits".to_owned(),
                            message: "the model's first output is not f32".to_owned(),
                        }
                    })?;
                    let logits: Vec<f32> = logits.iter().copied().collect();
                    Ok(top_k(&logits, k, &labels))
                });
        Ok(MobileNet { classifier, model })
    }
}

fn fits_mobilenet(signature: &ModelSignature, classes: usize) -> Result<(), OrtError> {
    let input = match signature.inputs.as_slice() {
        [input] => input,
        inputs => {
            return Err(OrtError::UnsupportedModel(format!(
                "MobileNet takes one input, this model takes {}",
                inputs.len()
            )));
        }
    };
    let image = [Some(3), Some(224), Some(224)];
    if input.dtype != crate::Dtype::F32
        || !input
            .item_dims
            .iter()
            .zip(image)
            .all(|(d, want)| d.is_none() || *d == want)
        || input.item_dims.len() != 3
    {
        return Err(OrtError::UnsupportedModel(format!(
            "input `{}` is not a [3, 224, 224] f32 image",
            input.name
        )));
    }
    let output_classes = signature
        .outputs
        .first()
        .and_then(|o| o.item_dims.last().copied().flatten());
    match output_classes {
        Some(n) if n == classes => Ok(()),
        other => Err(OrtError::Labels(format!(
            "the model has {other:?} classes, the labels file {classes}"
        ))),
    }
}

/// A MobileNetV2 classifier serving: each call takes the bytes of one JPEG or
/// PNG and returns its top-k predictions. Decoding and normalising run in the
/// caller's task; the model runs in batches on the partitions.
///
/// It dereferences to the [`MappedServing`] for `dispatch`, `dispatch_many`,
/// `try_dispatch`, `dispatch_with` and `inline`.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use batch_serving_ort::{MobileNet, MobileNetFiles};
/// let files = MobileNetFiles::locate(None)?;
/// let classifier = MobileNet::builder(&files)?.configure(|m| m.partitions(2)).start()?;
/// let top5 = classifier.classify(std::fs::read("cat.jpg")?).await?;
/// println!("{} ({:.1}%)", top5[0].label, top5[0].probability * 100.0);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct MobileNet {
    classifier: MappedServing<Vec<u8>, Vec<Prediction>, CheckedInputs, ModelOutputs, OrtError>,
    model: ModelServing,
}

impl MobileNet {
    /// A builder for the model and labels in `files`, with the default
    /// serving settings and top-5.
    ///
    /// # Errors
    ///
    /// When the labels file cannot be read.
    pub fn builder(files: &crate::MobileNetFiles) -> Result<MobileNetBuilder, OrtError> {
        Ok(MobileNetBuilder {
            model: ModelServingBuilder::new(&files.model).name("mobilenet"),
            labels: Labels::load(&files.labels)?,
            top_k: 5,
        })
    }

    /// Classifies one image.
    ///
    /// # Errors
    ///
    /// [`Error::Preprocess`] with [`OrtError::Image`] for bytes that are not
    /// an image (this caller only), or any error of [`Serving::dispatch`].
    pub async fn classify(&self, image: Vec<u8>) -> Result<Vec<Prediction>, Error<OrtError>> {
        self.classifier.dispatch(image).await
    }

    /// Classifies several images as one call; they may share batches with
    /// other callers' images.
    ///
    /// # Errors
    ///
    /// As [`MobileNet::classify`]; one bad image fails the whole call before
    /// anything is queued.
    pub async fn classify_many(
        &self,
        images: Vec<Vec<u8>>,
    ) -> Result<Vec<Vec<Prediction>>, Error<OrtError>> {
        self.classifier.dispatch_many(images).await
    }

    /// The underlying serving, for `stats` and `shutdown`.
    pub fn serving(&self) -> &Serving<CheckedInputs, ModelOutputs, OrtError> {
        self.model.serving()
    }

    /// The generic model serving under the classifier, for raw logits.
    pub fn model(&self) -> &ModelServing {
        &self.model
    }
}

impl Deref for MobileNet {
    type Target = MappedServing<Vec<u8>, Vec<Prediction>, CheckedInputs, ModelOutputs, OrtError>;

    fn deref(&self) -> &Self::Target {
        &self.classifier
    }
}
