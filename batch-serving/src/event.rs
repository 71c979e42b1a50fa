//! What a streaming call yields: outputs per executed piece, and the hook
//! events the batch function emits for the call's items.

use crate::hook::Hook;

/// One event of a streaming dispatch.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use batch_serving::{Batch, Event, Serving};
/// use futures::StreamExt;
/// let serving = Serving::new(|b: Batch<u8>| Ok::<_, std::convert::Infallible>(b.to_vec())).start()?;
/// let mut events = serving.dispatch_stream(vec![1, 2]);
/// let Some(Ok(Event::Output { offset, outputs })) = events.next().await else { panic!() };
/// assert_eq!((offset, outputs), (0, vec![1, 2]));
/// assert!(events.next().await.is_none());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub enum Event<O> {
    /// The outputs of one executed piece of the request: items
    /// `offset..offset + outputs.len()`. Pieces that ran on different
    /// partitions may arrive in any order; together they cover every item
    /// exactly once.
    Output {
        /// Position of the piece's first item in the request.
        offset: usize,
        /// The piece's outputs, in item order.
        outputs: Vec<O>,
    },
    /// An event the batch function emitted while running one of this
    /// request's pieces. It arrives before that piece's `Output`.
    Hook(Hook),
}
