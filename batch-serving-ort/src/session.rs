//! One partition's ONNX Runtime session, and the batch function that stacks
//! items, runs the graph once and splits the outputs back per item.

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;

use batch_serving::tensor::{pad_batch, split_items, stack_items};
use ndarray::{ArrayD, ArrayViewD};
use ort::session::{Session, SessionInputValue};
use ort::value::TensorRef;

use crate::signature::CheckedInputs;
use crate::{
    ExecutionProvider, ModelOutputs, ModelSignature, OrtError, Runtime, SessionOptions, TensorData,
};

/// A session that a single partition owns: ONNX Runtime sessions need
/// exclusive access to run, so each partition creates its own.
#[derive(Debug)]
pub struct ModelSession {
    session: Session,
    signature: Arc<ModelSignature>,
    output_names: Arc<[String]>,
}

impl ModelSession {
    /// Loads `model` with `options` in the process's runtime.
    ///
    /// # Errors
    ///
    /// A runtime that cannot be loaded, a model file that cannot be read or
    /// parsed, an execution provider that cannot be registered, or a model
    /// with an input or output the adapter cannot batch.
    pub fn open(model: &Path, options: &SessionOptions) -> Result<Self, OrtError> {
        let runtime = Runtime::get()?;
        if !model.is_file() {
            return Err(OrtError::file(model, "no such file"));
        }
        let session = build_session(&runtime, model, options)?;
        let signature = Arc::new(ModelSignature::read(&session)?);
        let output_names = signature.outputs.iter().map(|o| o.name.clone()).collect();
        Ok(Self {
            session,
            signature,
            output_names,
        })
    }

    /// The model's interface.
    pub fn signature(&self) -> &Arc<ModelSignature> {
        &self.signature
    }

    /// The session itself, for batch functions that feed it directly.
    pub(crate) fn session_mut(&mut self) -> &mut Session {
        &mut self.session
    }

    /// Runs one batch: stacks each input along a new axis 0, runs the graph
    /// once, and splits every output back into one [`ModelOutputs`] per item.
    ///
    /// # Errors
    ///
    /// [`OrtError::Runtime`] when ONNX Runtime fails, or
    /// [`OrtError::Output`] when an output has no batch axis to split.
    pub fn run(&mut self, items: &[CheckedInputs]) -> Result<Vec<ModelOutputs>, OrtError> {
        // A fixed batch axis takes exactly that many rows: pad, then drop the
        // padding rows' outputs.
        let rows = match self.signature.fixed_batch_axis() {
            Some((_, fixed)) => fixed.max(items.len()),
            None => items.len(),
        };
        let stacked = self
            .signature
            .inputs
            .iter()
            .enumerate()
            .map(|(index, spec)| stack_input(items, index, rows).map(|t| (spec.name.as_str(), t)))
            .collect::<Result<Vec<_>, _>>()?;
        let feeds = stacked
            .iter()
            .map(|(name, tensor)| Ok((Cow::Borrowed(*name), tensor_ref(tensor)?)))
            .collect::<Result<Vec<(Cow<'_, str>, SessionInputValue<'_>)>, OrtError>>()?;
        let outputs = self
            .session
            .run(feeds)
            .map_err(|error| OrtError::runtime("run the batch", error))?;
        let mut per_item: Vec<Vec<TensorData>> = (0..items.len()).map(|_| Vec::new()).collect();
        for spec in &self.signature.outputs {
            let value = &outputs[spec.name.as_str()];
            let split = match spec.dtype {
                crate::Dtype::F32 => {
                    split_output(&spec.name, value.try_extract_array::<f32>(), rows)?
                        .into_iter()
                        .map(TensorData::F32)
                        .collect::<Vec<_>>()
                }
                crate::Dtype::I64 => {
                    split_output(&spec.name, value.try_extract_array::<i64>(), rows)?
                        .into_iter()
                        .map(TensorData::I64)
                        .collect()
                }
            };
            for (item, tensor) in per_item.iter_mut().zip(split) {
                item.push(tensor);
            }
        }
        Ok(per_item
            .into_iter()
            .map(|tensors| ModelOutputs {
                names: Arc::clone(&self.output_names),
                tensors,
            })
            .collect())
    }
}

fn build_session(
    runtime: &Runtime,
    model: &Path,
    options: &SessionOptions,
) -> Result<Session, OrtError> {
    let recover =
        |action: &'static str| move |error: ort::Error<_>| OrtError::runtime(action, error);
    let mut builder = Session::builder(runtime.environment())
        .map_err(|error| OrtError::runtime("create a session builder", error))?
        .with_optimization_level(options.optimization().into())
        .map_err(recover("set the optimisation level"))?;
    if let Some(threads) = options.intra_threads_per_session() {
        builder = builder
            .with_intra_threads(threads)
            .map_err(recover("set the thread count"))?;
    }
    if let Some(spinning) = options.spinning_setting() {
        builder = builder
            .with_intra_op_spinning(spinning)
            .map_err(recover("set intra-op spinning"))?;
    }
    for (name, size) in options.fixed_dimensions() {
        builder = builder
            .with_dimension_override(name, *size)
            .map_err(recover("fix a dimension"))?;
    }
    builder = register_provider(builder, options.provider())?;
    builder
        .commit_from_file(model)
        .map_err(|error| OrtError::runtime("load the model", error))
}

fn register_provider(
    builder: ort::session::builder::SessionBuilder,
    provider: ExecutionProvider,
) -> Result<ort::session::builder::SessionBuilder, OrtError> {
    match provider {
        ExecutionProvider::Cpu => Ok(builder),
        #[cfg(feature = "cuda")]
        ExecutionProvider::Cuda { device_id } => {
            let cuda = ort::ep::CUDA::default()
                .with_device_id(device_id)
                .build()
                .error_on_failure();
            builder
                .with_execution_providers([cuda])
                .map_err(|error| OrtError::ExecutionProvider {
                    provider: "CUDA",
                    message: error.to_string(),
                })
        }
        #[cfg(not(feature = "cuda"))]
        ExecutionProvider::Cuda { .. } => Err(OrtError::ExecutionProvider {
            provider: "CUDA",
            message: "batch-serving-ort was built without the `cuda` feature".to_owned(),
        }),
    }
}

/// The batch-wide tensor of input `index`, zero-padded to `rows`. Items were
/// checked against the signature and share a batch key, so their shapes
/// agree.
fn stack_input(items: &[CheckedInputs], index: usize, rows: usize) -> Result<TensorData, OrtError> {
    let shape_error = |error: ndarray::ShapeError| OrtError::runtime("stack the batch", error);
    let first = items
        .first()
        .and_then(|item| item.tensors.get(index))
        .ok_or_else(|| OrtError::runtime("stack the batch", "empty batch"))?;
    Ok(match first {
        TensorData::F32(_) => {
            let views: Vec<ArrayViewD<'_, f32>> = items
                .iter()
                .filter_map(|i| i.tensors[index].as_f32())
                .collect();
            TensorData::F32(pad_batch(
                stack_items(&views).map_err(shape_error)?,
                rows,
                0.0,
            ))
        }
        TensorData::I64(_) => {
            let views: Vec<ArrayViewD<'_, i64>> = items
                .iter()
                .filter_map(|i| i.tensors[index].as_i64())
                .collect();
            TensorData::I64(pad_batch(
                stack_items(&views).map_err(shape_error)?,
                rows,
                0,
            ))
        }
    })
}

fn tensor_ref(tensor: &TensorData) -> Result<SessionInputValue<'_>, OrtError> {
    let wrap = |error: ort::Error| OrtError::runtime("wrap an input tensor", error);
    Ok(match tensor {
        TensorData::F32(array) => TensorRef::from_array_view(array.view())
            .map_err(wrap)?
            .into(),
        TensorData::I64(array) => TensorRef::from_array_view(array.view())
            .map_err(wrap)?
            .into(),
    })
}

fn split_output<T: Clone>(
    name: &str,
    extracted: ort::Result<ArrayViewD<'_, T>>,
    items: usize,
) -> Result<Vec<ArrayD<T>>, OrtError> {
    let array = extracted.map_err(|error| OrtError::Output {
        name: name.to_owned(),
        message: error.to_string(),
    })?;
    if array.ndim() == 0 || array.shape()[0] != items {
        return Err(OrtError::Output {
            name: name.to_owned(),
            message: format!("its shape {:?} has no batch axis of {items}", array.shape()),
        });
    }
    Ok(split_items(array))
}
