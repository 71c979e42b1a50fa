//! A model's interface as read from its metadata, and the check of each
//! caller's item against it. The check runs in the caller's task, so a
//! malformed item is refused before it can fail a batch of other callers.

use std::hash::{DefaultHasher, Hash, Hasher};

use batch_serving::BatchKey;
use ort::session::Session;
use ort::value::{TensorElementType, ValueType};

use crate::{ModelInputs, OrtError, TensorData};

/// The element types the adapter can stack and split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Dtype {
    /// 32-bit float.
    F32,
    /// 64-bit integer.
    I64,
}

impl Dtype {
    fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::I64 => "i64",
        }
    }

    fn of(tensor: &TensorData) -> Option<Self> {
        match tensor {
            TensorData::F32(_) => Some(Self::F32),
            TensorData::I64(_) => Some(Self::I64),
        }
    }
}

/// One model input or output: its name, element type, and the size of each
/// axis after the batch axis (`None` where the model leaves it free).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    /// The name in the graph.
    pub name: String,
    /// The element type.
    pub dtype: Dtype,
    /// The axes after the batch axis; `None` for a free (symbolic) axis.
    pub item_dims: Vec<Option<usize>>,
    /// The batch axis: `None` when it is free, as a served model needs.
    pub batch_dim: Option<usize>,
}

impl TensorSpec {
    fn from_outlet(name: &str, dtype: &ValueType) -> Result<Self, OrtError> {
        let ValueType::Tensor { ty, shape, .. } = dtype else {
            return Err(OrtError::UnsupportedModel(format!(
                "`{name}` is not a tensor"
            )));
        };
        let dtype = match ty {
            TensorElementType::Float32 => Dtype::F32,
            TensorElementType::Int64 => Dtype::I64,
            other => {
                return Err(OrtError::UnsupportedModel(format!(
                    "`{name}` has element type {other}; only f32 and i64 are handled"
                )));
            }
        };
        let dims: Vec<Option<usize>> = shape.iter().map(|&d| usize::try_from(d).ok()).collect();
        let Some((&batch_dim, item_dims)) = dims.split_first() else {
            return Err(OrtError::UnsupportedModel(format!(
                "`{name}` is a scalar with no batch axis"
            )));
        };
        Ok(Self {
            name: name.to_owned(),
            dtype,
            item_dims: item_dims.to_vec(),
            batch_dim,
        })
    }

    fn describe_dims(&self) -> String {
        let dims: Vec<String> = self
            .item_dims
            .iter()
            .map(|d| d.map_or_else(|| "?".to_owned(), |d| d.to_string()))
            .collect();
        format!("[{}]", dims.join(", "))
    }

    fn accepts_shape(&self, shape: &[usize]) -> bool {
        shape.len() == self.item_dims.len()
            && self
                .item_dims
                .iter()
                .zip(shape)
                .all(|(want, &got)| want.is_none_or(|w| w == got))
    }
}

/// A model's inputs and outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSignature {
    /// The inputs, in the graph's order.
    pub inputs: Vec<TensorSpec>,
    /// The outputs, in the graph's order.
    pub outputs: Vec<TensorSpec>,
}

/// An item that passed [`ModelSignature::check`]: its tensors in the model's
/// input order, and the batch key that keeps items of different free-axis
/// sizes out of one batch (they could not be stacked).
#[derive(Debug, Clone)]
pub struct CheckedInputs {
    pub(crate) tensors: Vec<TensorData>,
    pub(crate) key: BatchKey,
}

impl CheckedInputs {
    /// The batch key: equal for items whose shapes can be stacked together.
    pub fn key(&self) -> BatchKey {
        self.key
    }
}

impl ModelSignature {
    pub(crate) fn read(session: &Session) -> Result<Self, OrtError> {
        let specs = |outlets: &[ort::value::Outlet]| {
            outlets
                .iter()
                .map(|o| TensorSpec::from_outlet(o.name(), o.dtype()))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Self {
            inputs: specs(session.inputs())?,
            outputs: specs(session.outputs())?,
        })
    }

    /// The first input whose batch axis is fixed, with its size.
    pub fn fixed_batch_axis(&self) -> Option<(&str, usize)> {
        self.inputs
            .iter()
            .find_map(|spec| spec.batch_dim.map(|size| (spec.name.as_str(), size)))
    }

    /// Checks an item against the model: every input given once, with the
    /// right element type and shape. Returns the tensors in the model's order.
    ///
    /// # Errors
    ///
    /// [`OrtError::MissingInput`], [`OrtError::UnexpectedInput`],
    /// [`OrtError::WrongDtype`] or [`OrtError::WrongShape`], naming the input.
    pub fn check(&self, item: ModelInputs) -> Result<CheckedInputs, OrtError> {
        let mut given = item.tensors;
        let mut ordered = Vec::with_capacity(self.inputs.len());
        let mut hasher = DefaultHasher::new();
        for spec in &self.inputs {
            let position = given
                .iter()
                .position(|(name, _)| *name == spec.name)
                .ok_or_else(|| OrtError::MissingInput {
                    name: spec.name.clone(),
                })?;
            let (_, tensor) = given.swap_remove(position);
            if Dtype::of(&tensor) != Some(spec.dtype) {
                return Err(OrtError::WrongDtype {
                    name: spec.name.clone(),
                    expected: spec.dtype.name(),
                    actual: tensor.dtype(),
                });
            }
            if !spec.accepts_shape(tensor.shape()) {
                return Err(OrtError::WrongShape {
                    name: spec.name.clone(),
                    expected: spec.describe_dims(),
                    actual: tensor.shape().to_vec(),
                });
            }
            tensor.shape().hash(&mut hasher);
            ordered.push(tensor);
        }
        if let Some((name, _)) = given.into_iter().next() {
            let expected: Vec<&str> = self.inputs.iter().map(|s| s.name.as_str()).collect();
            return Err(OrtError::UnexpectedInput {
                name,
                expected: expected.join(", "),
            });
        }
        let all_fixed = self
            .inputs
            .iter()
            .all(|s| s.item_dims.iter().all(Option::is_some));
        let key = if all_fixed {
            BatchKey::DEFAULT
        } else {
            BatchKey::new(hasher.finish())
        };
        Ok(CheckedInputs {
            tensors: ordered,
            key,
        })
    }
}
