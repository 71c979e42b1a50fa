//! What a node publishes about itself through the NATS service's stats
//! handler, and what a router reads back: capacity and live load.

use serde::{Deserialize, Serialize};

/// One node's capacity and load, as carried in the `data` field of its
/// endpoints in a `$SRV.STATS` reply (JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeReport {
    /// The node's id (the NATS service instance id).
    pub node: String,
    /// Partitions: batches that can run at once.
    pub partitions: usize,
    /// The most items in one batch.
    pub batch_size: usize,
    /// The operator's weight for this node (1.0 unless set), multiplying
    /// its capacity, as Nx.Serving's `distribution_weight`.
    pub weight: f64,
    /// Queue capacity, in items.
    pub queue_capacity: usize,
    /// Items holding queue room now.
    pub queued: usize,
    /// Median batch execution time so far, in seconds (0 before the first).
    pub batch_seconds: f64,
    /// Batches run since the serving started.
    #[serde(default)]
    pub batches: u64,
    /// Items run since the serving started.
    #[serde(default)]
    pub items: u64,
}

impl NodeReport {
    /// Free queue room now.
    pub fn free(&self) -> usize {
        self.queue_capacity.saturating_sub(self.queued)
    }

    /// Items the node finishes per second at full batches, weighted. Before
    /// the first batch there is no time yet, so the weighted partitions
    /// stand in: equal nodes are then equal.
    pub fn capacity(&self) -> f64 {
        let partitions = self.partitions.max(1) as f64 * self.weight.max(0.0);
        if self.batch_seconds > 0.0 {
            partitions * self.batch_size.max(1) as f64 / self.batch_seconds
        } else {
            partitions
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn report(batch_seconds: f64) -> NodeReport {
        NodeReport {
            node: "a".into(),
            partitions: 2,
            batch_size: 8,
            weight: 1.0,
            queue_capacity: 64,
            queued: 10,
            batch_seconds,
            batches: 3,
            items: 20,
        }
    }

    #[test]
    fn a_slower_node_has_less_capacity() {
        assert!(report(0.002).capacity() > report(0.004).capacity());
        assert!((report(0.002).capacity() - 2.0 * report(0.004).capacity()).abs() < 1e-6);
        assert_eq!(report(0.0).capacity(), 2.0);
        assert_eq!(report(0.0).free(), 54);
    }

    #[test]
    fn it_reads_back_what_it_writes() {
        let json = serde_json::to_value(report(0.5)).unwrap();
        assert_eq!(json["queue_capacity"], 64);
        let back: NodeReport = serde_json::from_value(json).unwrap();
        assert_eq!(back, report(0.5));
    }
}
