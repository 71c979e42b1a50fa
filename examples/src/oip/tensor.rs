//! The Open Inference Protocol's tensors on the wire, and their passage to
//! and from the adapter's per-item tensors.
//!
//! A request's tensor carries the batch axis first (`shape` `[N, ...]`); it
//! is cut into N items, which the serving batches with other clients'
//! items, and the N answers are stacked back. Data comes as JSON numbers
//! (flat or nested, row-major) or, with the binary-tensor extension, as raw
//! little-endian bytes after the JSON header. Every size is checked against
//! the bytes actually sent before anything is allocated for it.

use std::fmt;

use batch_serving::tensor::{split_items, stack_items};
use batch_serving_ort::{Dtype, TensorData};
use ndarray::{ArrayD, IxDyn};
use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

/// An inference request's JSON part. Fields it does not know are ignored,
/// as clients add their own (the KServe SDK sends `model_name` and
/// `model_version`).
#[derive(Debug, Deserialize)]
pub struct InferRequest {
    /// An identifier echoed in the response.
    #[serde(default)]
    pub id: Option<String>,
    /// Request parameters: `binary_data_output`, and `timeout` in
    /// microseconds (as Triton reads it).
    #[serde(default)]
    pub parameters: Parameters,
    /// The input tensors.
    pub inputs: Vec<RequestInput>,
    /// The outputs wanted (all of them when absent).
    #[serde(default)]
    pub outputs: Option<Vec<RequestOutput>>,
}

/// The parameters the server reads; others are accepted and ignored, as
/// the protocol allows.
#[derive(Debug, Default, Deserialize)]
pub struct Parameters {
    /// Answer every output as binary data.
    #[serde(default)]
    pub binary_data_output: Option<bool>,
    /// For an input: the size of its binary data after the JSON part. For
    /// an output: answer it as binary data.
    #[serde(default)]
    pub binary_data_size: Option<u64>,
    /// For a requested output: whether to answer it as binary data.
    #[serde(default)]
    pub binary_data: Option<bool>,
    /// A deadline for the request, in microseconds.
    #[serde(default)]
    pub timeout: Option<u64>,
    /// The request's priority: 1 is the highest level, 0 the default.
    #[serde(default)]
    pub priority: Option<u64>,
    /// For a requested output: answer its top N classes (the
    /// classification extension).
    #[serde(default)]
    pub classification: Option<u64>,
}

/// One input tensor of a request.
#[derive(Debug, Deserialize)]
pub struct RequestInput {
    /// The model input's name.
    pub name: String,
    /// The shape, batch axis first.
    pub shape: Vec<u64>,
    /// The protocol's element type name (`FP32`, `INT64`, ...).
    pub datatype: String,
    /// `binary_data_size` when the data follows the JSON part.
    #[serde(default)]
    pub parameters: Parameters,
    /// The elements as JSON, when not binary.
    #[serde(default)]
    pub data: Option<Numbers>,
}

/// One output asked for.
#[derive(Debug, Deserialize)]
pub struct RequestOutput {
    /// The model output's name.
    pub name: String,
    /// `binary_data`: answer this one as binary.
    #[serde(default)]
    pub parameters: Parameters,
}

/// A response's JSON part.
#[derive(Debug, Serialize, Deserialize)]
pub struct InferResponse {
    /// The model that answered.
    pub model_name: String,
    /// Its version.
    pub model_version: String,
    /// The request's id, when it had one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub id: Option<String>,
    /// The outputs.
    pub outputs: Vec<ResponseOutput>,
}

/// One output tensor of a response.
#[derive(Debug, Serialize, Deserialize)]
pub struct ResponseOutput {
    /// The output's name.
    pub name: String,
    /// Its element type.
    pub datatype: String,
    /// Its shape, batch axis first.
    pub shape: Vec<usize>,
    /// `binary_data_size` when its data follows the JSON part.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub parameters: Option<serde_json::Value>,
    /// The elements, row-major, when not binary.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub data: Option<serde_json::Value>,
}

/// The protocol's name for an element type the adapter handles.
pub fn datatype_name(dtype: Dtype) -> &'static str {
    match dtype {
        Dtype::F32 => "FP32",
        Dtype::I64 => "INT64",
        // A type this adapter version does not know matches no request.
        _ => "UNSUPPORTED",
    }
}

/// One JSON number, as sent.
#[derive(Debug, Clone, Copy)]
enum Number {
    Float(f64),
    Int(i64),
}

/// JSON tensor data: numbers in arrays nested to any depth, read flat in
/// row-major order without building a JSON tree.
#[derive(Debug, Default)]
pub struct Numbers(Vec<Number>);

impl Numbers {
    /// How many elements were sent.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none were.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'de> Deserialize<'de> for Numbers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut out = Vec::new();
        deserializer.deserialize_any(Flatten(&mut out))?;
        Ok(Numbers(out))
    }
}

/// The visitor that appends every number of a nested array to one list.
struct Flatten<'a>(&'a mut Vec<Number>);

impl<'de> Visitor<'de> for Flatten<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("numbers, or arrays of them")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Nested(&mut *self.0))?.is_some() {}
        Ok(())
    }

    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.0.push(Number::Float(v));
        Ok(())
    }

    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.0.push(Number::Int(v));
        Ok(())
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<(), E> {
        let v = i64::try_from(v).map_err(|_| E::custom(format!("{v} does not fit in INT64")))?;
        self.0.push(Number::Int(v));
        Ok(())
    }
}

struct Nested<'a>(&'a mut Vec<Number>);

impl<'de> serde::de::DeserializeSeed<'de> for Nested<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(Flatten(self.0))
    }
}

/// Where one input's elements come from.
#[derive(Debug)]
pub enum Elements<'a> {
    /// JSON numbers.
    Json(Numbers),
    /// Raw little-endian bytes from after the JSON part.
    Binary(&'a [u8]),
}

/// One decoded request input: the model's element type and the tensor with
/// its batch axis.
#[derive(Debug)]
pub struct BatchTensor {
    /// The input's name.
    pub name: String,
    /// The tensor, `[N, ...]`.
    pub data: TensorData,
}

/// Builds the batch tensor of one input, checking that its datatype is the
/// model's, its shape has a batch axis, and the data holds exactly the
/// shape's elements.
///
/// # Errors
///
/// A message for the client (sent with 400).
pub fn decode_input(
    name: &str,
    datatype: &str,
    shape: &[u64],
    expected: Dtype,
    elements: Elements<'_>,
) -> Result<BatchTensor, String> {
    let want = datatype_name(expected);
    if datatype != want {
        return Err(format!(
            "input `{name}` has datatype {datatype}; the model takes {want}"
        ));
    }
    if shape.is_empty() {
        return Err(format!(
            "input `{name}` has no batch axis: its shape must start with the batch size"
        ));
    }
    let dims: Vec<usize> = shape
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<_, _>>()
        .map_err(|_| format!("input `{name}` has a dimension too large: {shape:?}"))?;
    let count = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| format!("input `{name}` has too many elements: {shape:?}"))?;
    let data = match (elements, expected) {
        (Elements::Json(numbers), _) if numbers.len() != count => {
            return Err(format!(
                "input `{name}` has {} elements of data; its shape {shape:?} needs {count}",
                numbers.len()
            ));
        }
        (Elements::Json(numbers), Dtype::I64) => {
            let values = numbers
                .0
                .into_iter()
                .map(|n| match n {
                    Number::Int(v) => Ok(v),
                    Number::Float(v) => Err(format!("input `{name}` is INT64 but holds {v}")),
                })
                .collect::<Result<Vec<i64>, String>>()?;
            TensorData::I64(shaped(values, &dims))
        }
        (Elements::Json(numbers), _) => {
            let values = numbers
                .0
                .into_iter()
                .map(|n| match n {
                    Number::Float(v) => v as f32,
                    Number::Int(v) => v as f32,
                })
                .collect();
            TensorData::F32(shaped(values, &dims))
        }
        (Elements::Binary(bytes), dtype) => {
            let width = if dtype == Dtype::I64 { 8 } else { 4 };
            if count.checked_mul(width) != Some(bytes.len()) {
                return Err(format!(
                    "input `{name}` has {} bytes of binary data; its shape {shape:?} of {datatype} needs {}",
                    bytes.len(),
                    count.saturating_mul(width)
                ));
            }
            if dtype == Dtype::I64 {
                let values = bytes
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap_or_default()))
                    .collect();
                TensorData::I64(shaped(values, &dims))
            } else {
                let values = bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap_or_default()))
                    .collect();
                TensorData::F32(shaped(values, &dims))
            }
        }
    };
    Ok(BatchTensor {
        name: name.to_owned(),
        data,
    })
}

fn shaped<T>(values: Vec<T>, dims: &[usize]) -> ArrayD<T> {
    // The element count was checked against the shape above.
    ArrayD::from_shape_vec(IxDyn(dims), values).unwrap_or_else(|_| unreachable!())
}

/// A batch tensor cut into its items (the core's `split_items`), each
/// without the batch axis.
pub fn split(tensor: &TensorData) -> Vec<TensorData> {
    match tensor {
        TensorData::F32(a) => split_items(a.view())
            .into_iter()
            .map(TensorData::F32)
            .collect(),
        TensorData::I64(a) => split_items(a.view())
            .into_iter()
            .map(TensorData::I64)
            .collect(),
        // An element type this adapter version adds is not decoded above.
        _ => Vec::new(),
    }
}

/// Stacks one output of every item back into `[N, ...]` (the core's
/// `stack_items`).
///
/// # Errors
///
/// When the items' shapes or element types differ.
pub fn stack(name: &str, items: &[&TensorData]) -> Result<TensorData, String> {
    let mismatch = || format!("output `{name}` differs in shape between the items");
    match items.first() {
        Some(TensorData::F32(_)) => {
            let views = items
                .iter()
                .map(|t| t.as_f32().ok_or_else(mismatch))
                .collect::<Result<Vec<_>, _>>()?;
            stack_items(&views)
                .map(TensorData::F32)
                .map_err(|_| mismatch())
        }
        Some(TensorData::I64(_)) => {
            let views = items
                .iter()
                .map(|t| t.as_i64().ok_or_else(mismatch))
                .collect::<Result<Vec<_>, _>>()?;
            stack_items(&views)
                .map(TensorData::I64)
                .map_err(|_| mismatch())
        }
        _ => Err(format!("output `{name}` has no items or an unknown type")),
    }
}

/// A stacked output as the response's tensor: JSON numbers, or its bytes
/// appended to `binary` when `as_binary`.
pub fn encode_output(
    name: &str,
    tensor: &TensorData,
    as_binary: bool,
    binary: &mut Vec<u8>,
) -> ResponseOutput {
    let shape = tensor.shape().to_vec();
    let (datatype, data, bytes) = match tensor {
        TensorData::I64(a) => {
            let bytes: Vec<u8> = a.iter().flat_map(|v| v.to_le_bytes()).collect();
            (
                "INT64",
                serde_json::json!(a.iter().collect::<Vec<_>>()),
                bytes,
            )
        }
        _ => {
            let view = tensor.as_f32();
            let values: Vec<f32> = view.iter().flat_map(|a| a.iter().copied()).collect();
            let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            ("FP32", serde_json::json!(values), bytes)
        }
    };
    if as_binary {
        let size = bytes.len();
        binary.extend_from_slice(&bytes);
        ResponseOutput {
            name: name.to_owned(),
            datatype: datatype.to_owned(),
            shape,
            parameters: Some(serde_json::json!({ "binary_data_size": size })),
            data: None,
        }
    } else {
        ResponseOutput {
            name: name.to_owned(),
            datatype: datatype.to_owned(),
            shape,
            parameters: None,
            data: Some(data),
        }
    }
}

/// An output answered by the classification extension, as a `BYTES`
/// tensor: JSON strings, or its elements appended to `binary` when
/// `as_binary`.
pub fn encode_classes(
    name: &str,
    classes: &crate::oip::classification::Classes,
    as_binary: bool,
    binary: &mut Vec<u8>,
) -> ResponseOutput {
    if as_binary {
        let bytes = classes.to_bytes();
        let size = bytes.len();
        binary.extend_from_slice(&bytes);
        ResponseOutput {
            name: name.to_owned(),
            datatype: "BYTES".to_owned(),
            shape: classes.shape.clone(),
            parameters: Some(serde_json::json!({ "binary_data_size": size })),
            data: None,
        }
    } else {
        ResponseOutput {
            name: name.to_owned(),
            datatype: "BYTES".to_owned(),
            shape: classes.shape.clone(),
            parameters: None,
            data: Some(serde_json::json!(classes.elements)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers(json: &str) -> Numbers {
        serde_json::from_str(json).unwrap_or_default()
    }

    #[test]
    fn nested_and_flat_json_data_give_the_same_tensor() {
        let flat = decode_input(
            "x",
            "FP32",
            &[2, 2],
            Dtype::F32,
            Elements::Json(numbers("[1, 2.5, 3, 4]")),
        );
        let nested = decode_input(
            "x",
            "FP32",
            &[2, 2],
            Dtype::F32,
            Elements::Json(numbers("[[1, 2.5], [3, 4]]")),
        );
        let (Ok(flat), Ok(nested)) = (flat, nested) else {
            panic!("both decode")
        };
        assert_eq!(flat.data, nested.data);
        assert_eq!(flat.data.shape(), [2, 2]);
        assert_eq!(
            split(&flat.data)[1],
            TensorData::F32(ndarray::arr1(&[3.0f32, 4.0]).into_dyn())
        );
    }

    #[test]
    fn sizes_types_and_shapes_that_do_not_match_are_refused_before_allocating() {
        let check = |datatype: &str, shape: &[u64], expected, elements| {
            decode_input("x", datatype, shape, expected, elements)
                .err()
                .unwrap_or_default()
        };
        assert!(
            check(
                "FP32",
                &[1, 3],
                Dtype::F32,
                Elements::Json(numbers("[1, 2]"))
            )
            .contains("needs 3")
        );
        assert!(
            check("INT64", &[1, 1], Dtype::F32, Elements::Json(numbers("[1]")))
                .contains("takes FP32")
        );
        assert!(
            check(
                "INT64",
                &[1, 1],
                Dtype::I64,
                Elements::Json(numbers("[1.5]"))
            )
            .contains("holds 1.5")
        );
        assert!(
            check("FP32", &[], Dtype::F32, Elements::Json(numbers("[1]"))).contains("batch axis")
        );
        // A shape that claims an absurd size with a few bytes behind it.
        let huge = [u64::MAX, u64::MAX];
        assert!(!check("FP32", &huge, Dtype::F32, Elements::Binary(&[0; 8])).is_empty());
        assert!(check("FP32", &[1, 3], Dtype::F32, Elements::Binary(&[0; 8])).contains("needs 12"));
    }

    #[test]
    fn binary_data_is_little_endian_and_outputs_round_trip() {
        let bytes: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let Ok(tensor) = decode_input("x", "FP32", &[1, 2], Dtype::F32, Elements::Binary(&bytes))
        else {
            panic!("decodes")
        };
        let mut binary = Vec::new();
        let out = encode_output("y", &tensor.data, true, &mut binary);
        assert_eq!(binary, bytes);
        assert_eq!(out.shape, [1, 2]);
        let json = encode_output("y", &tensor.data, false, &mut binary);
        assert_eq!(json.data, Some(serde_json::json!([1.5, -2.0])));
        let row = &split(&tensor.data)[0];
        let stacked = stack("y", &[row, row]);
        assert_eq!(stacked.map(|t| t.shape().to_vec()), Ok(vec![2, 2]));
    }
}
