//! The one model server: every model over the Open Inference Protocol, on
//! HTTP and gRPC at once, with MobileNet's `/v1/classify` and MiniLM's
//! `/v1/embed` as routes on the same HTTP port, one `/health`, one
//! `/metrics`, and one set of flags.
//!
//! `/v1/classify` and the protocol's `mobilenet` share one serving, so
//! photos posted to the one and tensors sent to the other (over HTTP or
//! gRPC) batch together. `/v1/embed` has a serving of its own over MiniLM,
//! keyed by length bucket, because it takes texts; the protocol's `minilm`
//! takes token tensors a client has already padded.
//!
//! The data path: `flags` → [`FrontDoor::start`] (the servings) →
//! [`FrontDoor::router`] and the gRPC service → `run` (the sockets, and
//! the drain at shutdown).

mod door;
mod flags;
mod run;

pub use door::FrontDoor;
pub use flags::ServerConfig;
pub use run::{drain, serve_both};
