//! Tensor plumbing for ndarray-based batch functions (feature `ndarray`):
//! stack per-item arrays into a batch, concatenate batches, pad a batch to a
//! fixed size, and split a batched output back per item.

use ndarray::{Array, ArrayView, Axis, Dimension, RemoveAxis, ShapeError};

/// Stacks per-item arrays (no batch axis) along a new axis 0.
///
/// ```
/// use batch_serving::tensor::stack_items;
/// use ndarray::array;
/// let (a, b) = (array![1.0, 2.0], array![3.0, 4.0]);
/// let batch = stack_items(&[a.view(), b.view()])?;
/// assert_eq!(batch, array![[1.0, 2.0], [3.0, 4.0]]);
/// # Ok::<(), ndarray::ShapeError>(())
/// ```
///
/// # Errors
///
/// A [`ShapeError`] when the items' shapes differ or `items` is empty.
pub fn stack_items<A: Clone, D: Dimension>(
    items: &[ArrayView<'_, A, D>],
) -> Result<Array<A, D::Larger>, ShapeError> {
    ndarray::stack(Axis(0), items)
}

/// Concatenates arrays that already carry a batch axis, along axis 0.
///
/// ```
/// use batch_serving::tensor::concat_batches;
/// use ndarray::array;
/// let (a, b) = (array![[1], [2]], array![[3]]);
/// assert_eq!(concat_batches(&[a.view(), b.view()])?, array![[1], [2], [3]]);
/// # Ok::<(), ndarray::ShapeError>(())
/// ```
///
/// # Errors
///
/// A [`ShapeError`] when the shapes differ beyond axis 0 or `parts` is empty.
pub fn concat_batches<A: Clone, D: RemoveAxis>(
    parts: &[ArrayView<'_, A, D>],
) -> Result<Array<A, D>, ShapeError> {
    ndarray::concatenate(Axis(0), parts)
}

/// Pads a batch along axis 0 with `fill` up to `size` rows (for models with
/// a fixed batch size). A batch already that large is returned unchanged.
///
/// ```
/// use batch_serving::tensor::pad_batch;
/// use ndarray::array;
/// assert_eq!(pad_batch(array![[1, 2]], 3, 0), array![[1, 2], [0, 0], [0, 0]]);
/// ```
pub fn pad_batch<A: Clone, D: RemoveAxis>(batch: Array<A, D>, size: usize, fill: A) -> Array<A, D> {
    let rows = batch.len_of(Axis(0));
    if rows >= size {
        return batch;
    }
    let mut shape = batch.raw_dim();
    shape[0] = size - rows;
    let padding = Array::from_elem(shape, fill);
    match ndarray::concatenate(Axis(0), &[batch.view(), padding.view()]) {
        Ok(padded) => padded,
        // Cannot happen: the padding has the batch's shape beyond axis 0.
        Err(_) => batch,
    }
}

/// Splits a batched array along axis 0 into one owned array per item.
///
/// ```
/// use batch_serving::tensor::split_items;
/// use ndarray::array;
/// let items = split_items(array![[1, 2], [3, 4]].view());
/// assert_eq!(items, vec![array![1, 2], array![3, 4]]);
/// ```
pub fn split_items<A: Clone, D: RemoveAxis>(
    batch: ArrayView<'_, A, D>,
) -> Vec<Array<A, D::Smaller>> {
    batch.outer_iter().map(|item| item.to_owned()).collect()
}

/// Splits a batched array along axis 0 into consecutive parts of the given
/// row counts (for items that each carried their own batch axis).
///
/// ```
/// use batch_serving::tensor::split_batches;
/// use ndarray::array;
/// let parts = split_batches(array![[1], [2], [3]].view(), &[2, 1])?;
/// assert_eq!(parts, vec![array![[1], [2]], array![[3]]]);
/// # Ok::<(), ndarray::ShapeError>(())
/// ```
///
/// # Errors
///
/// A [`ShapeError`] when the counts do not add up to the batch's rows.
pub fn split_batches<A: Clone, D: RemoveAxis>(
    batch: ArrayView<'_, A, D>,
    rows: &[usize],
) -> Result<Vec<Array<A, D>>, ShapeError> {
    if rows.iter().sum::<usize>() != batch.len_of(Axis(0)) {
        return Err(ShapeError::from_kind(ndarray::ErrorKind::IncompatibleShape));
    }
    let mut start = 0;
    Ok(rows
        .iter()
        .map(|&n| {
            let part = batch
                .slice_axis(Axis(0), (start..start + n).into())
                .to_owned();
            start += n;
            part
        })
        .collect())
}
