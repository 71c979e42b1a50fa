//! One [`batch_serving`] serving across many machines, through NATS.
//!
//! A [`Node`] exports a local `Serving` (or `MappedServing`) under a name:
//! calls from every machine enter the same queue as local calls and batch
//! with them. A [`RemoteServing`] calls it from anywhere with the verbs of a
//! local serving and the same [`CallOptions`](batch_serving::CallOptions),
//! and routes each call to the node with the shortest expected wait (power
//! of two choices over the nodes' published load), preferring a local
//! serving with room. [`Dispatch`] is the one trait both sides share, so
//! code does not care where a serving runs.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use batch_serving::{Batch, CallOptions, Serving};
//! use batch_serving_nats::{Node, RemoteServing};
//! use std::time::Duration;
//!
//! // On each serving machine:
//! let squares = Serving::new(|b: Batch<u32>| Ok::<_, String>(b.iter().map(|x| x * x).collect()))
//!     .batch_size(32)
//!     .start()?;
//! let nats = async_nats::connect("nats://10.0.0.1:4222").await?;
//! let _node = Node::builder(nats, "squares", squares).start().await?;
//!
//! // On any machine:
//! let nats = async_nats::connect("nats://10.0.0.1:4222").await?;
//! let squares = RemoteServing::<u32, u32>::builder(nats, "squares").connect().await?;
//! let y = squares.dispatch_with(7, CallOptions::new().timeout(Duration::from_millis(50))).await?;
//! assert_eq!(y, 49);
//! # Ok(()) }
//! ```
//!
//! Failures say whether the call may have run ([`Error::never_ran`]): a
//! call is tried on another node only when it is known not to have started,
//! or when the handle is marked idempotent. `docs/distributed.md` in the
//! repository has the topology, the failure semantics and the tuning.

mod codec;
mod dispatch;
mod error;
mod node;
pub mod protocol;
mod remote;
mod report;

pub use codec::{Codec, CodecError, MsgPack, RawBytes};
pub use dispatch::{Dispatch, Load, LocalCall, LocalServing};
pub use error::Error;
pub use node::{DEFAULT_HEARTBEAT, HookEncoder, Node, NodeBuilder, NodeError};
pub use remote::{
    DEFAULT_COALESCE_IN_FLIGHT, DEFAULT_COALESCE_LINGER, DEFAULT_COALESCE_MAX, DEFAULT_MAX_TRIES,
    DEFAULT_REFRESH, DEFAULT_SILENCE_LIMIT, RemoteBuilder, RemoteEvent, RemoteServing,
};
pub use report::NodeReport;
