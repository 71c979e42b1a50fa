//! How hooks travel to remote streaming callers: a leaf that the node's
//! builder (`node/mod.rs`) and its calls (`call.rs`) both read.

use std::sync::Arc;

use batch_serving::Hook;

/// Turns a hook's payload into bytes for remote streaming callers; hooks
/// it returns `None` for travel with an empty payload.
pub type HookEncoder = Arc<dyn Fn(&Hook) -> Option<Vec<u8>> + Send + Sync>;
