//! The handle a caller holds: cheap to clone, every clone sharing one
//! reply subscription and one table of nodes; what it knows of the nodes.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::shared::Shared;
use crate::report::NodeReport;

/// A serving that runs on other machines, called through NATS with the
/// verbs of a local one. Cheap to clone; clones share one reply
/// subscription and one table of nodes.
pub struct RemoteServing<I, O> {
    pub(super) shared: Arc<Shared<I, O>>,
}

impl<I, O> Clone for RemoteServing<I, O> {
    fn clone(&self) -> Self {
        RemoteServing {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<I, O> std::fmt::Debug for RemoteServing<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteServing")
            .field("name", &self.shared.wire.name)
            .field("nodes", &self.shared.routes.len())
            .finish_non_exhaustive()
    }
}

impl<I, O> RemoteServing<I, O>
where
    I: Send + 'static,
    O: Send + 'static,
{
    /// The serving's name.
    pub fn name(&self) -> &str {
        &self.shared.wire.name
    }

    /// The nodes this handle knows of now, with their last reports.
    pub fn nodes(&self) -> Vec<NodeReport> {
        self.shared.routes.reports()
    }

    /// Waits until at least `count` nodes have reported, or `limit` passes;
    /// returns how many are known. Calls work before (through the shared
    /// subject); this is for start-up and tests.
    pub async fn wait_for_nodes(&self, count: usize, limit: Duration) -> usize {
        let until = Instant::now() + limit;
        while self.shared.routes.len() < count && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.shared.routes.len()
    }
}
