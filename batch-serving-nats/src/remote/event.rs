//! What a remote streaming call yields.

use bytes::Bytes;

/// What a remote streaming call yields.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RemoteEvent<O> {
    /// Outputs of one executed piece, starting at `offset` in the call.
    Output {
        /// Index of the first output's item in the call.
        offset: usize,
        /// The piece's outputs, in order.
        outputs: Vec<O>,
    },
    /// A hook event of the batch function, about the call's items.
    Hook {
        /// The hook's name.
        name: String,
        /// The item it is about, when it is about one.
        item: Option<usize>,
        /// Its payload as the node's hook encoder wrote it (empty without
        /// one).
        payload: Bytes,
    },
}
