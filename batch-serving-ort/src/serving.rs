//! A serving of any ONNX model with a batch axis: one session per partition,
//! items checked in the caller's task, keyed by shape so that every batch
//! can be stacked.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use batch_serving::{Batch, Builder, CallOptions, Error, MappedServing, Serving};

use crate::signature::CheckedInputs;
use crate::{ModelInputs, ModelOutputs, ModelSession, ModelSignature, OrtError, SessionOptions};

/// The serving a [`ModelServingBuilder`] starts, with its whole call API:
/// callers pass [`ModelInputs`] and get [`ModelOutputs`].
pub type ModelMappedServing =
    MappedServing<ModelInputs, ModelOutputs, CheckedInputs, ModelOutputs, OrtError>;

/// The core builder a model serving is configured through: every core
/// setting (batch size, timeout, partitions, policy, pipelining, busy
/// polling, queue capacity, name) is set on it, in one place.
pub type ModelBuilder = Builder<CheckedInputs, ModelOutputs, OrtError>;

/// A hook that adjusts the core [`Builder`] of a model serving.
pub(crate) type ConfigureServing<I, O> =
    Arc<dyn Fn(Builder<I, O, OrtError>) -> Builder<I, O, OrtError> + Send + Sync>;

/// Configures a serving of one ONNX model: the adapter's own settings
/// here, the core's through [`serving`](Self::serving).
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use batch_serving_ort::{ModelInputs, ModelServingBuilder, SessionOptions};
/// let model = ModelServingBuilder::new("mobilenetv2-12.onnx")
///     .session_options(SessionOptions::default().intra_threads(1))
///     .serving(|core| core.partitions(2).batch_size(16))
///     .start()?;
/// let item = ModelInputs::new().with("input", ndarray::Array3::<f32>::zeros((3, 224, 224)));
/// let logits = model.dispatch(item).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[must_use = "a builder does nothing until `start` is called"]
pub struct ModelServingBuilder {
    model: PathBuf,
    options: SessionOptions,
    configure: Option<ConfigureServing<CheckedInputs, ModelOutputs>>,
    name: &'static str,
    requirement: Option<Requirement>,
}

/// A check a wrapper (such as the MobileNet classifier) makes of the model
/// when each partition opens it.
type Requirement = Arc<dyn Fn(&ModelSignature) -> Result<(), OrtError> + Send + Sync>;

impl ModelServingBuilder {
    /// A serving of the model file at `model`, with the core's defaults.
    pub fn new(model: impl Into<PathBuf>) -> Self {
        Self {
            model: model.into(),
            options: SessionOptions::default(),
            configure: None,
            name: "batch-serving-ort",
            requirement: None,
        }
    }

    /// The default name (the hook may still set another).
    pub(crate) fn default_name(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }

    /// Adds a check of the model's signature, made when each partition opens
    /// the model; its error fails `start`.
    pub fn require(
        mut self,
        check: impl Fn(&ModelSignature) -> Result<(), OrtError> + Send + Sync + 'static,
    ) -> Self {
        self.requirement = Some(Arc::new(check));
        self
    }

    /// How each partition's session is created.
    pub fn session_options(mut self, options: SessionOptions) -> Self {
        self.options = options;
        self
    }

    /// Adjusts the core serving: `batch_size`, `batch_timeout`,
    /// `partitions` (each opens its own session on its own thread),
    /// `policy`, `pipeline`, `busy_poll`, `queue_capacity`, `name`. The
    /// adapter has set the batch key (by item shape) before the hook runs.
    pub fn serving(
        mut self,
        configure: impl Fn(ModelBuilder) -> ModelBuilder + Send + Sync + 'static,
    ) -> Self {
        self.configure = Some(Arc::new(configure));
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
    /// The [`OrtError`] that stopped it: the runtime, the model or the
    /// execution provider cannot be loaded; [`OrtError::UnsupportedModel`]
    /// for a model whose signature does not fit;
    /// [`OrtError::FixedBatchAxis`] when the model's fixed batch axis is
    /// smaller than `batch_size`; [`OrtError::Configuration`] for a core
    /// setting that cannot work.
    pub fn start(self) -> Result<ModelServing, OrtError> {
        let signature: Arc<OnceLock<Arc<ModelSignature>>> = Arc::default();
        let factory = {
            let (model, options, signature) = (
                self.model.clone(),
                self.options.clone(),
                Arc::clone(&signature),
            );
            let requirement = self.requirement.clone();
            move |_partition: usize| {
                let session = ModelSession::open(&model, &options)?;
                let _ = signature.set(Arc::clone(session.signature()));
                if let Some(check) = &requirement {
                    check(session.signature())?;
                }
                Ok(session)
            }
        };
        let run = |session: &mut ModelSession, batch: Batch<CheckedInputs>| session.run(&batch);
        let mut builder = Serving::with_state(factory, run)
            .key_by(CheckedInputs::key)
            .name(self.name);
        if let Some(configure) = &self.configure {
            builder = configure(builder);
        }
        let serving = builder.start()?;
        // Every factory ran before `start` returned, so the signature is set.
        let signature = signature.get().cloned().ok_or_else(|| {
            OrtError::UnsupportedModel("no partition could read the model's signature".to_owned())
        })?;
        if let Some((input, fixed)) = signature.fixed_batch_axis()
            && fixed < serving.batch_size()
        {
            return Err(OrtError::FixedBatchAxis {
                input: input.to_owned(),
                fixed,
                batch_size: serving.batch_size(),
            });
        }
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

impl std::fmt::Debug for ModelServingBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelServingBuilder")
            .field("model", &self.model)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// A started serving of one ONNX model. The common calls are here;
/// [`calls`](Self::calls) gives the whole call grid (streams, inline runs,
/// reservations), and [`serving`](Self::serving) the core [`Serving`] for
/// `stats` and `shutdown`.
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

    /// Runs one item in a batch with other callers' items.
    ///
    /// # Errors
    ///
    /// [`Error::Preprocess`] for an item that does not fit the signature
    /// (this caller only), or any error of [`Serving::dispatch`].
    pub async fn dispatch(&self, item: ModelInputs) -> Result<ModelOutputs, Error<OrtError>> {
        self.serving.dispatch(item).await
    }

    /// [`dispatch`](Self::dispatch) with a deadline, priority or fail-fast.
    ///
    /// # Errors
    ///
    /// As [`dispatch`](Self::dispatch) and [`Serving::dispatch_with`].
    pub async fn dispatch_with(
        &self,
        item: ModelInputs,
        options: CallOptions,
    ) -> Result<ModelOutputs, Error<OrtError>> {
        self.serving.dispatch_with(item, options).await
    }

    /// Runs several items as one call.
    ///
    /// # Errors
    ///
    /// As [`dispatch`](Self::dispatch); one bad item fails the whole call
    /// before anything is queued.
    pub async fn dispatch_many(
        &self,
        items: Vec<ModelInputs>,
    ) -> Result<Vec<ModelOutputs>, Error<OrtError>> {
        self.serving.dispatch_many(items).await
    }

    /// [`dispatch_many`](Self::dispatch_many) with options.
    ///
    /// # Errors
    ///
    /// As [`dispatch_many`](Self::dispatch_many) and
    /// [`Serving::dispatch_many_with`].
    pub async fn dispatch_many_with(
        &self,
        items: Vec<ModelInputs>,
        options: CallOptions,
    ) -> Result<Vec<ModelOutputs>, Error<OrtError>> {
        self.serving.dispatch_many_with(items, options).await
    }

    /// Every call verb of the serving: streams, inline runs, reservations.
    pub fn calls(&self) -> &ModelMappedServing {
        &self.serving
    }

    /// The core serving, for `stats`, `shutdown` and raw checked inputs.
    pub fn serving(&self) -> &Serving<CheckedInputs, ModelOutputs, OrtError> {
        self.serving.serving()
    }
}
