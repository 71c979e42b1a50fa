//! The MobileNetV2 classifier: image bytes in, top-k ImageNet labels out,
//! with inference batched across callers.

use std::sync::Arc;

use batch_serving::{CallOptions, Error, MappedServing, Serving};

use super::{Labels, MobileNetFiles, Prediction, preprocess, top_k};
use crate::signature::CheckedInputs;
use crate::{
    ModelBuilder, ModelInputs, ModelOutputs, ModelServing, ModelServingBuilder, ModelSignature,
    OrtError, SessionOptions,
};

/// The classifier's whole call API: image bytes in, predictions out.
pub type ClassifierServing =
    MappedServing<Vec<u8>, Vec<Prediction>, CheckedInputs, ModelOutputs, OrtError>;

/// Configures a [`MobileNet`]: the classifier's settings here, the
/// session's through [`session_options`](Self::session_options), and the
/// core serving's through [`serving`](Self::serving), as for every model.
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `start` is called"]
pub struct MobileNetBuilder {
    model: ModelServingBuilder,
    labels: Labels,
    top_k: usize,
}

impl MobileNetBuilder {
    /// How each partition's session is created.
    pub fn session_options(mut self, options: SessionOptions) -> Self {
        self.model = self.model.session_options(options);
        self
    }

    /// Adjusts the core serving (batch size, partitions, policy, queue
    /// capacity, …), as [`ModelServingBuilder::serving`].
    pub fn serving(
        mut self,
        configure: impl Fn(ModelBuilder) -> ModelBuilder + Send + Sync + 'static,
    ) -> Self {
        self.model = self.model.serving(configure);
        self
    }

    /// How many predictions each caller gets (default 5).
    pub fn top_k(mut self, k: usize) -> Self {
        self.top_k = k;
        self
    }

    /// Opens the model in every partition and starts serving.
    ///
    /// # Errors
    ///
    /// As [`ModelServingBuilder::start`]; also
    /// [`OrtError::UnsupportedModel`] when the model does not take one
    /// `[3, 224, 224]` f32 image, and [`OrtError::Labels`] when its class
    /// count differs from the labels'.
    pub fn start(self) -> Result<MobileNet, OrtError> {
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
/// The common calls are here; [`calls`](Self::calls) gives the whole call
/// grid (streams, inline runs, reservations for admission before decoding).
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use batch_serving_ort::{MobileNet, MobileNetFiles};
/// let files = MobileNetFiles::locate(None)?;
/// let classifier = MobileNet::builder(&files)?.serving(|core| core.partitions(2)).start()?;
/// let top5 = classifier.classify(std::fs::read("cat.jpg")?).await?;
/// println!("{} ({:.1}%)", top5[0].label, top5[0].probability * 100.0);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct MobileNet {
    classifier: ClassifierServing,
    model: ModelServing,
}

impl MobileNet {
    /// A builder for the model and labels in `files`, with the default
    /// serving settings and top-5.
    ///
    /// # Errors
    ///
    /// When the labels file cannot be read.
    pub fn builder(files: &MobileNetFiles) -> Result<MobileNetBuilder, OrtError> {
        Ok(MobileNetBuilder {
            model: ModelServingBuilder::new(&files.model).default_name("mobilenet"),
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

    /// [`classify`](Self::classify) with a deadline, priority or fail-fast.
    ///
    /// # Errors
    ///
    /// As [`classify`](Self::classify) and [`Serving::dispatch_with`].
    pub async fn classify_with(
        &self,
        image: Vec<u8>,
        options: CallOptions,
    ) -> Result<Vec<Prediction>, Error<OrtError>> {
        self.classifier.dispatch_with(image, options).await
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

    /// [`classify_many`](Self::classify_many) with options.
    ///
    /// # Errors
    ///
    /// As [`classify_many`](Self::classify_many) and
    /// [`Serving::dispatch_many_with`].
    pub async fn classify_many_with(
        &self,
        images: Vec<Vec<u8>>,
        options: CallOptions,
    ) -> Result<Vec<Vec<Prediction>>, Error<OrtError>> {
        self.classifier.dispatch_many_with(images, options).await
    }

    /// Every call verb of the classifier, reservations included (a server
    /// takes queue room with `calls().try_reserve()` before decoding).
    pub fn calls(&self) -> &ClassifierServing {
        &self.classifier
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
