//! A serving of any ONNX model with a batch axis: one session per partition,
//! items checked in the caller's task, keyed by shape so that every batch
//! can be stacked.

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use batch_serving::{Batch, Error, MappedServing, Policy, Serving};

use crate::signature::CheckedInputs;
use crate::{ModelInputs, ModelOutputs, ModelSession, ModelSignature, OrtError, SessionOptions};

/// The serving a [`ModelServingBuilder`] starts: callers pass
/// [`ModelInputs`] and get [`ModelOutputs`]; dispatch methods come from
/// [`MappedServing`] through `Deref`.
pub type ModelMappedServing =
    MappedServing<ModelInputs, ModelOutputs, CheckedInputs, ModelOutputs, OrtError>;

/// Configures a serving of one ONNX model.
///
/// ```no_run
/// # async fn demo() -> Result<(), batch_serving::Error<batch_serving_ort::OrtError>> {
/// use batch_serving_ort::{ModelInputs, ModelServingBuilder, SessionOptions};
/// let model = ModelServingBuilder::new("mobilenetv2-12.onnx")
///     .session_options(SessionOptions::default().intra_threads(1))
///     .partitions(2)
///     .batch_size(16)
///     .start()?;
/// let item = ModelInputs::new().with("input", ndarray::Array3::<f32>::zeros((3, 224, 224)));
/// let logits = model.dispatch(item).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ModelServingBuilder {
    model: PathBuf,
    options: SessionOptions,
    batch_size: usize,
    batch_timeout: Option<Duration>,
    partitions: Option<usize>,
    policy: Option<Policy>,
    queue_capacity: Option<usize>,
    name: Option<String>,
    requirement: Option<Requirement>,
}

/// A check a wrapper (such as the MobileNet classifier) makes of the model
/// when each partition opens it.
type Requirement = Arc<dyn Fn(&ModelSignature) -> Result<(), OrtError> + Send + Sync>;

impl ModelServingBuilder {
    /// A serving of the model file at `model`.
    pub fn new(model: impl Into<PathBuf>) -> Self {
        Self {
            model: model.into(),
            options: SessionOptions::default(),
            batch_size: batch_serving::DEFAULT_BATCH_SIZE,
            batch_timeout: None,
            partitions: None,
            policy: None,
            queue_capacity: None,
            name: None,
            requirement: None,
        }
    }

    /// Adds a check of the model's signature, made when each partition opens
    /// the model; its error fails `start`.
    #[must_use]
    pub fn require(
        mut self,
        check: impl Fn(&ModelSignature) -> Result<(), OrtError> + Send + Sync + 'static,
    ) -> Self {
        self.requirement = Some(Arc::new(check));
        self
    }

    /// How each partition's session is created.
    #[must_use]
    pub fn session_options(mut self, options: SessionOptions) -> Self {
        self.options = options;
        self
    }

    /// As [`batch_serving::Builder::batch_size`].
    #[must_use]
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// As [`batch_serving::Builder::batch_timeout`].
    #[must_use]
    pub fn batch_timeout(mut self, timeout: Duration) -> Self {
        self.batch_timeout = Some(timeout);
        self
    }

    /// As [`batch_serving::Builder::partitions`]: each partition opens its own
    /// session on its own thread.
    #[must_use]
    pub fn partitions(mut self, partitions: usize) -> Self {
        self.partitions = Some(partitions);
        self
    }

    /// As [`batch_serving::Builder::policy`].
    #[must_use]
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// As [`batch_serving::Builder::queue_capacity`].
    #[must_use]
    pub fn queue_capacity(mut self, items: usize) -> Self {
        self.queue_capacity = Some(items);
        self
    }

    /// As [`batch_serving::Builder::name`].
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Opens one session per partition (each on its partition's thread) and
    /// starts the serving.
    ///
    /// A model whose batch axis is fixed is served only when `batch_size`
    /// fits in it; smaller batches are padded to the fixed size.
    ///
    /// # Errors
    ///
    /// [`Error::PartitionStart`] carrying the [`OrtError`] when the runtime,
    /// the model or the execution provider cannot be loaded, or when the
    /// model's fixed batch axis is smaller than `batch_size`; the core's
    /// configuration errors otherwise.
    pub fn start(self) -> Result<ModelServing, Error<OrtError>> {
        let signature: Arc<OnceLock<Arc<ModelSignature>>> = Arc::default();
        let factory = {
            let (model, options, signature) = (
                self.model.clone(),
                self.options.clone(),
                Arc::clone(&signature),
            );
            let (batch_size, requirement) = (self.batch_size, self.requirement.clone());
            move |_partition: usize| {
                let session = open_partition(&model, &options, batch_size, &signature)?;
                if let Some(check) = &requirement {
                    check(session.signature())?;
                }
                Ok(session)
            }
        };
        let run = |session: &mut ModelSession, batch: Batch<CheckedInputs>| session.run(&batch);
        let mut builder = Serving::with_state(factory, run)
            .batch_size(self.batch_size)
            .key_by(CheckedInputs::key)
            .name(self.name.unwrap_or_else(|| "batch-serving-ort".to_owned()));
        if let Some(timeout) = self.batch_timeout {
            builder = builder.batch_timeout(timeout);
        }
        if let Some(partitions) = self.partitions {
            builder = builder.partitions(partitions);
        }
        if let Some(policy) = self.policy {
            builder = builder.policy(policy);
        }
        if let Some(capacity) = self.queue_capacity {
            builder = builder.queue_capacity(capacity);
        }
        let serving = builder.start()?;
        // Every factory ran before `start` returned, so the signature is set.
        let signature = signature.get().cloned().ok_or(Error::Closed)?;
        let check = {
            let signature = Arc::clone(&signature);
            move |item: ModelInputs| signature.check(item)
        };
        Ok(ModelServing {
            serving: serving.map_inputs(check),
            signature,
        })
    }
}

fn open_partition(
    model: &Path,
    options: &SessionOptions,
    batch_size: usize,
    signature: &OnceLock<Arc<ModelSignature>>,
) -> Result<ModelSession, OrtError> {
    let session = ModelSession::open(model, options)?;
    if let Some((input, fixed)) = session.signature().fixed_batch_axis()
        && fixed < batch_size
    {
        return Err(OrtError::FixedBatchAxis {
            input: input.to_owned(),
            fixed,
            batch_size,
        });
    }
    let _ = signature.set(Arc::clone(session.signature()));
    Ok(session)
}

impl std::fmt::Debug for ModelServingBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelServingBuilder")
            .field("model", &self.model)
            .field("options", &self.options)
            .field("batch_size", &self.batch_size)
            .field("partitions", &self.partitions)
            .finish_non_exhaustive()
    }
}

/// A started serving of one ONNX model. It dereferences to
/// [`ModelMappedServing`] for `dispatch`, `dispatch_many`, `try_dispatch`,
/// `inline` and the rest; [`MappedServing::serving`] gives the underlying
/// [`Serving`] for `stats` and `shutdown`.
#[derive(Debug, Clone)]
pub struct ModelServing {
    serving: ModelMappedServing,
    signature: Arc<ModelSignature>,
}

impl ModelServing {
    /// The model's inputs and outputs, as its metadata declares them.
    pub fn signature(&self) -> &Arc<ModelSignature> {
        &self.signature
    }
}

impl Deref for ModelServing {
    type Target = ModelMappedServing;

    fn deref(&self) -> &Self::Target {
        &self.serving
    }
}
