//! Where a call goes: the nodes a handle knows of, from their published
//! reports, and a pick by power of two choices weighted by capacity.
//!
//! NATS queue groups pick a member at random, blind to load; Nx.Serving
//! picks at random by weight. Two weighted random candidates, of which the
//! one with the shorter expected wait wins, keep the choice spread (no
//! herd on the node that looked best a moment ago) while steering away
//! from a slow or full node. The expected wait counts this handle's own
//! calls in flight at each node, which it knows now, on top of the queue
//! the node last reported, which is up to one refresh old.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::report::NodeReport;

struct Known {
    report: NodeReport,
    seen: Instant,
    in_flight: Arc<AtomicUsize>,
}

/// The handle's table of nodes.
#[derive(Default)]
pub(crate) struct Routes {
    nodes: Mutex<Vec<Known>>,
}

/// A chosen node, holding the call's items in its in-flight count until
/// dropped: items, not calls, so that a node with one message of 200
/// items out is as loaded as one with 200 calls out.
pub(crate) struct Pick {
    pub(crate) node: String,
    items: usize,
    in_flight: Arc<AtomicUsize>,
}

impl Drop for Pick {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(self.items, Ordering::Relaxed);
    }
}

impl Routes {
    /// Takes a round of reports; nodes not heard from for `forget_after`
    /// are dropped (they left, or died).
    pub(crate) fn update(&self, reports: Vec<NodeReport>, now: Instant, forget_after: Duration) {
        let mut nodes = self.nodes.lock().unwrap_or_else(PoisonError::into_inner);
        for report in reports {
            match nodes
                .iter_mut()
                .find(|known| known.report.node == report.node)
            {
                Some(known) => {
                    known.report = report;
                    known.seen = now;
                }
                None => nodes.push(Known {
                    report,
                    seen: now,
                    in_flight: Arc::default(),
                }),
            }
        }
        nodes.retain(|known| now.saturating_duration_since(known.seen) <= forget_after);
    }

    /// Drops a node at once: it answered "no responders" on its own
    /// subject, or was lost mid-call.
    pub(crate) fn forget(&self, node: &str) {
        self.nodes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|known| known.report.node != node);
    }

    /// Nodes known now.
    pub(crate) fn len(&self) -> usize {
        self.nodes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// The reports known now.
    pub(crate) fn reports(&self) -> Vec<NodeReport> {
        self.nodes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|known| known.report.clone())
            .collect()
    }

    /// Picks a node for a call of `items` items, skipping those in
    /// `exclude` (already tried). `None` when no other node is known.
    pub(crate) fn pick(
        &self,
        items: usize,
        exclude: &[String],
        rng: &mut fastrand::Rng,
    ) -> Option<Pick> {
        let nodes = self.nodes.lock().unwrap_or_else(PoisonError::into_inner);
        let open: Vec<&Known> = nodes
            .iter()
            .filter(|known| !exclude.contains(&known.report.node))
            .collect();
        let chosen = match open.len() {
            0 => return None,
            1 => open[0],
            _ => {
                // Two distinct candidates, each drawn by capacity; the
                // shorter expected wait wins.
                let first = weighted(&open, rng);
                let rest: Vec<&Known> = open
                    .iter()
                    .copied()
                    .filter(|known| !std::ptr::eq(*known, first))
                    .collect();
                let second = weighted(&rest, rng);
                if wait(second, items) < wait(first, items) {
                    second
                } else {
                    first
                }
            }
        };
        chosen.in_flight.fetch_add(items, Ordering::Relaxed);
        Some(Pick {
            node: chosen.report.node.clone(),
            items,
            in_flight: Arc::clone(&chosen.in_flight),
        })
    }
}

/// A node drawn with probability in proportion to its capacity.
fn weighted<'a>(open: &[&'a Known], rng: &mut fastrand::Rng) -> &'a Known {
    let total: f64 = open.iter().map(|known| known.report.capacity()).sum();
    if total <= 0.0 || !total.is_finite() {
        return open[rng.usize(..open.len())];
    }
    let mut point = rng.f64() * total;
    for known in open {
        point -= known.report.capacity();
        if point <= 0.0 {
            return known;
        }
    }
    open[open.len() - 1]
}

/// Expected wait at a node for `items` more items, in seconds per unit of
/// capacity: its queue, plus this handle's items in flight there, plus the
/// call itself, over what it finishes per second.
fn wait(known: &Known, items: usize) -> f64 {
    let ahead = known.report.queued + known.in_flight.load(Ordering::Relaxed) + items;
    let full = if known.report.free() == 0 { 1e6 } else { 1.0 };
    full * ahead as f64 / known.report.capacity().max(1e-9)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn report(node: &str, batch_seconds: f64, queued: usize) -> NodeReport {
        NodeReport {
            node: node.into(),
            partitions: 1,
            batch_size: 8,
            weight: 1.0,
            queue_capacity: 64,
            queued,
            batch_seconds,
            batches: 0,
            items: 0,
        }
    }

    fn share(routes: &Routes, node: &str, calls: usize) -> f64 {
        let mut rng = fastrand::Rng::with_seed(7);
        let picked = (0..calls)
            .filter(|_| routes.pick(1, &[], &mut rng).unwrap().node == node)
            .count();
        picked as f64 / calls as f64
    }

    #[tokio::test(start_paused = true)]
    async fn a_node_twice_as_slow_gets_far_fewer_calls() {
        let routes = Routes::default();
        let now = Instant::now();
        routes.update(
            vec![report("fast", 0.002, 8), report("slow", 0.004, 8)],
            now,
            Duration::from_secs(1),
        );
        // Random by capacity alone would give the slow node a third; the
        // comparison of two gives it far less while its wait is longer.
        assert!(share(&routes, "slow", 3000) < 0.2);
    }

    #[tokio::test(start_paused = true)]
    async fn equal_nodes_share_evenly_and_in_flight_calls_count() {
        let routes = Routes::default();
        let now = Instant::now();
        routes.update(
            vec![report("a", 0.002, 0), report("b", 0.002, 0)],
            now,
            Duration::from_secs(1),
        );
        let a = share(&routes, "a", 4000);
        assert!((0.4..0.6).contains(&a), "a got {a}");
        // Calls held in flight at "a" steer new ones to "b".
        let mut rng = fastrand::Rng::with_seed(1);
        let held: Vec<Pick> = (0..20)
            .filter_map(|_| routes.pick(1, &["b".to_string()], &mut rng))
            .collect();
        assert_eq!(held.len(), 20);
        assert!(share(&routes, "b", 200) > 0.9);
        drop(held);
        assert!(share(&routes, "b", 4000) < 0.6);
    }

    #[tokio::test(start_paused = true)]
    async fn items_in_flight_count_not_calls() {
        let routes = Routes::default();
        let now = Instant::now();
        routes.update(
            vec![report("a", 0.002, 0), report("b", 0.002, 40)],
            now,
            Duration::from_secs(1),
        );
        assert!(share(&routes, "a", 500) > 0.99, "a's queue is shorter");
        // Items out at "a" (200 coalesced calls, or one call of 200) weigh
        // as 200, not as one call, so new calls go to "b".
        let mut rng = fastrand::Rng::with_seed(5);
        let big = routes.pick(200, &["b".to_string()], &mut rng).unwrap();
        assert_eq!(big.node, "a");
        assert!(share(&routes, "b", 500) > 0.99);
        drop(big);
        assert!(share(&routes, "a", 500) > 0.99);
    }

    #[tokio::test(start_paused = true)]
    async fn full_and_tried_nodes_are_avoided_and_silent_ones_forgotten() {
        let routes = Routes::default();
        let now = Instant::now();
        routes.update(
            vec![report("full", 0.002, 64), report("open", 0.002, 60)],
            now,
            Duration::from_secs(1),
        );
        assert!(share(&routes, "open", 500) > 0.99);
        let mut rng = fastrand::Rng::with_seed(3);
        let tried = ["open".to_string(), "full".to_string()];
        assert!(routes.pick(1, &tried, &mut rng).is_none());
        routes.update(
            vec![report("open", 0.002, 0)],
            now + Duration::from_secs(2),
            Duration::from_secs(1),
        );
        assert_eq!(
            routes.reports().len(),
            1,
            "the node not heard from is dropped"
        );
        routes.forget("open");
        assert_eq!(routes.len(), 0);
    }
}
