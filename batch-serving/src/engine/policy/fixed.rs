//! The fixed policies' readiness rule: an eager batch may start at once, a
//! timeout batch once `batch_timeout` has passed since its first item (a
//! full batch, or one drained at shutdown, is ready under every policy: see
//! `Batching::ready`).

use tokio::time::Instant;

use crate::engine::policy::terms::{Ready, Rules};
use crate::policy::{Policy, StartReason};

/// Whether a forming batch whose first item came at `since` may start.
pub(super) fn ready(rules: &Rules, since: Instant, now: Instant) -> Ready {
    match rules.policy {
        Policy::Timeout => {
            let due = since + rules.batch_timeout;
            if now >= due {
                Ready::Now(StartReason::Timeout)
            } else {
                Ready::At(due)
            }
        }
        Policy::Eager | Policy::Adaptive { .. } => Ready::Now(StartReason::Eager),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Duration;

    fn rules(policy: Policy) -> Rules {
        Rules {
            policy,
            batch_size: 4,
            batch_timeout: Duration::from_millis(10),
            pipeline: false,
            max_weight: u64::MAX,
        }
    }

    #[test]
    fn a_timeout_batch_waits_for_its_timer_from_its_first_item() {
        let since = Instant::now();
        let timeout = rules(Policy::Timeout);
        let due = since + Duration::from_millis(10);
        assert_eq!(ready(&timeout, since, since), Ready::At(due));
        assert_eq!(
            ready(&timeout, since, due),
            Ready::Now(StartReason::Timeout)
        );
    }

    #[test]
    fn an_eager_batch_is_ready_at_once() {
        let now = Instant::now();
        assert_eq!(
            ready(&rules(Policy::Eager), now, now),
            Ready::Now(StartReason::Eager)
        );
    }
}
