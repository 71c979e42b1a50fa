//! How the kernel scheduled some of this process's threads, from `/proc`:
//! how often they were switched out while they still had work (preempted),
//! and how long they waited on a run queue for a core. S2 and S3 use it to
//! show where the gaps between batches go when the batch function's thread and
//! the runtime's workers share two cores.

use std::time::Duration;

/// The name batch-serving's partition threads start with (the default
/// serving name).
pub const PARTITION_THREADS: &str = "batch-serving-p";

/// Totals over a set of threads since they started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThreadSched {
    /// Involuntary context switches: switched out while runnable.
    pub preempted: u64,
    /// Time spent runnable but waiting for a core.
    pub run_queue_wait: Duration,
}

impl ThreadSched {
    /// What happened between `earlier` and `self`.
    pub fn since(self, earlier: ThreadSched) -> ThreadSched {
        ThreadSched {
            preempted: self.preempted.saturating_sub(earlier.preempted),
            run_queue_wait: self.run_queue_wait.saturating_sub(earlier.run_queue_wait),
        }
    }
}

/// Totals over this process's threads whose name starts with `prefix`;
/// `None` where `/proc` does not say (not Linux, or no such thread).
pub fn threads_named(prefix: &str) -> Option<ThreadSched> {
    let mut total = ThreadSched::default();
    let mut found = false;
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let dir = task.path();
        let Ok(name) = std::fs::read_to_string(dir.join("comm")) else {
            continue;
        };
        if !name.starts_with(prefix) {
            continue;
        }
        // schedstat: time on a core, time waiting on a run queue (both in
        // ns), timeslices.
        let waited: Option<u64> = std::fs::read_to_string(dir.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse().ok());
        let preempted: Option<u64> =
            std::fs::read_to_string(dir.join("status"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("nonvoluntary_ctxt_switches:"))?
                        .trim()
                        .parse()
                        .ok()
                });
        if let (Some(waited), Some(preempted)) = (waited, preempted) {
            found = true;
            total.preempted += preempted;
            total.run_queue_wait += Duration::from_nanos(waited);
        }
    }
    found.then_some(total)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panicking unwrap is the failure a test wants
mod tests {
    use super::*;

    #[test]
    fn reads_a_named_thread_and_only_it() {
        let worker = std::thread::Builder::new()
            .name("sched-probe".into())
            .spawn(|| {
                let seen = threads_named("sched-probe");
                let none = threads_named("no-such-thread-name");
                (seen, none)
            })
            .unwrap();
        let (seen, none) = worker.join().unwrap();
        if std::path::Path::new("/proc/self/task").exists() {
            assert!(seen.is_some(), "the probe thread was not found");
        }
        assert_eq!(none, None);
    }
}
