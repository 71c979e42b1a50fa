//! The values that travel through a model serving: named input tensors per
//! item, and named output tensors per item, both without the batch axis.

use std::sync::Arc;

use ndarray::{ArrayD, ArrayViewD, Dimension};

/// One tensor of an item, in one of the element types the adapter handles:
/// `f32` (images, features) and `i64` (token ids, masks).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TensorData {
    /// 32-bit floats.
    F32(ArrayD<f32>),
    /// 64-bit integers.
    I64(ArrayD<i64>),
}

impl TensorData {
    /// The element type's name, as errors print it.
    pub fn dtype(&self) -> &'static str {
        match self {
            Self::F32(_) => "f32",
            Self::I64(_) => "i64",
        }
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        match self {
            Self::F32(array) => array.shape(),
            Self::I64(array) => array.shape(),
        }
    }

    /// A view of the `f32` data, or `None` for another element type.
    pub fn as_f32(&self) -> Option<ArrayViewD<'_, f32>> {
        match self {
            Self::F32(array) => Some(array.view()),
            Self::I64(_) => None,
        }
    }

    /// A view of the `i64` data, or `None` for another element type.
    pub fn as_i64(&self) -> Option<ArrayViewD<'_, i64>> {
        match self {
            Self::I64(array) => Some(array.view()),
            Self::F32(_) => None,
        }
    }
}

impl<D: Dimension> From<ndarray::Array<f32, D>> for TensorData {
    fn from(array: ndarray::Array<f32, D>) -> Self {
        Self::F32(array.into_dyn())
    }
}

impl<D: Dimension> From<ndarray::Array<i64, D>> for TensorData {
    fn from(array: ndarray::Array<i64, D>) -> Self {
        Self::I64(array.into_dyn())
    }
}

/// One caller's item: the model's inputs by name, each without the batch
/// axis.
///
/// ```
/// use batch_serving_ort::ModelInputs;
/// let item = ModelInputs::new().with("input", ndarray::Array3::<f32>::zeros((3, 224, 224)));
/// assert_eq!(item.get("input").map(|t| t.shape().to_vec()), Some(vec![3, 224, 224]));
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelInputs {
    pub(crate) tensors: Vec<(String, TensorData)>,
}

impl ModelInputs {
    /// An item with no tensors yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the tensor for input `name`.
    #[must_use]
    pub fn with(mut self, name: impl Into<String>, tensor: impl Into<TensorData>) -> Self {
        self.tensors.push((name.into(), tensor.into()));
        self
    }

    /// The tensor given for `name`.
    pub fn get(&self, name: &str) -> Option<&TensorData> {
        self.tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }
}

/// One item's outputs: each of the model's outputs without the batch axis.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelOutputs {
    pub(crate) names: Arc<[String]>,
    pub(crate) tensors: Vec<TensorData>,
}

impl ModelOutputs {
    /// The output called `name`.
    pub fn get(&self, name: &str) -> Option<&TensorData> {
        let index = self.names.iter().position(|n| n == name)?;
        self.tensors.get(index)
    }

    /// The first output, for the common single-output model.
    pub fn first(&self) -> Option<&TensorData> {
        self.tensors.first()
    }

    /// Takes the output called `name` as `f32`.
    pub fn into_f32(self, name: &str) -> Option<ArrayD<f32>> {
        let index = self.names.iter().position(|n| n == name)?;
        match self.tensors.into_iter().nth(index)? {
            TensorData::F32(array) => Some(array),
            TensorData::I64(_) => None,
        }
    }

    /// The outputs in the model's order, with their names.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &TensorData)> {
        self.names.iter().map(String::as_str).zip(&self.tensors)
    }
}
