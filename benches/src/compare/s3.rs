//! S3: bursts of callers that fire together, against the ideal burst of
//! back-to-back full batches.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use batch_serving_examples::chart::{Axis, Bars, Panel, Plot};
use tokio::runtime::Runtime;

use crate::burst::{self, Bursts};
use crate::compare::common::{Options, Section, standing_row, start_all};
use crate::compare::s2::{S2_BATCH_SIZE, s2_batch};
use crate::contenders::{Kind, Setup};
use crate::report::{Spread, table};
use crate::thread_sched::{PARTITION_THREADS, ThreadSched, threads_named};
use crate::workload::Cost;

/// Bursts per S3 run.
pub const S3_BURSTS: usize = 20;

/// The ideal burst: 256 callers in back-to-back full S2 batches.
pub fn s3_ideal() -> Duration {
    s2_batch() * (256 / S2_BATCH_SIZE) as u32
}

/// Runs S3 and returns its section.
pub fn run(rt: &Runtime, options: &Options) -> Section {
    let mut doc = String::new();
    let mut targets = String::new();
    let (bursts, scheduled) = rt.block_on(bursts_scenario(options));
    doc.push_str(&format!("\n## S3: bursts\n\n256 callers fire together every 50 ms, {S3_BURSTS} bursts, with the S2 function and settings. The ideal burst is {} full batches = {:.2} ms. A burst runs from its first caller firing to its last reply, and each call's latency is counted from that same first firing; the callers' tokio timers fire late by the \"timer lag\" (rounded up to the timer's 1 ms tick, then 256 sleepers woken one by one), which is the same for every contender and is not counted. The next four columns split the mean burst: from the first firing to the first batch's start, the batch function running, the gaps between batches, and from the last batch's end to the last reply.\n\n", 256 / S2_BATCH_SIZE, s3_ideal().as_secs_f64() * 1e3));
    let mut rows = Vec::new();
    let mut breakdown = Bars {
        categories: Vec::new(),
        series: [
            "to 1st batch",
            "in batches",
            "between batches",
            "after last batch",
        ]
        .map(|name| (name.to_owned(), Vec::new()))
        .to_vec(),
        stacked: true,
    };
    for (index, runs) in &bursts {
        let ms = |f: &dyn Fn(&Bursts) -> Duration| {
            Spread::of(
                &runs
                    .iter()
                    .map(|r| f(r).as_secs_f64() * 1e3)
                    .collect::<Vec<_>>(),
            )
        };
        breakdown
            .categories
            .push(Kind::ALL[*index].name().to_owned());
        let parts: [&dyn Fn(&Bursts) -> Duration; 4] = [
            &|r| r.to_first_batch,
            &|r| r.in_batches,
            &|r| r.between_batches,
            &|r| r.after_last_batch,
        ];
        for ((_, values), part) in breakdown.series.iter_mut().zip(parts) {
            values.push(ms(part).median);
        }
        let bad: u64 = runs
            .iter()
            .map(|r| r.bad + r.batches.empty + r.batches.oversized)
            .sum();
        rows.push(vec![
            Kind::ALL[*index].name().to_owned(),
            ms(&|r| r.mean_burst).show(1.0, 2),
            ms(&|r| r.max_burst).show(1.0, 2),
            format!("{:.2}", ms(&|r| r.p50).median),
            format!("{:.2}", ms(&|r| r.p99).median),
            format!("{:.0}", ms(&|r| r.to_first_batch).median * 1e3),
            format!("{:.0}", ms(&|r| r.in_batches).median * 1e3),
            format!("{:.0}", ms(&|r| r.between_batches).median * 1e3),
            format!("{:.0}", ms(&|r| r.after_last_batch).median * 1e3),
            format!("{:.2}", ms(&|r| r.timer_lag).median),
            if bad == 0 {
                "ok".to_owned()
            } else {
                format!("{bad} bad")
            },
        ]);
    }
    doc.push_str(&table(
        &[
            "contender",
            "mean burst ms",
            "max burst ms",
            "p50 ms",
            "p99 ms",
            "to 1st batch µs",
            "in batches µs",
            "between batches µs",
            "after last batch µs",
            "timer lag ms",
            "checks",
        ],
        &rows,
    ));
    doc.push_str(&burst_gaps_note(&bursts, &scheduled, S3_BURSTS));
    // Each contender's mean burst over the runs, in seconds.
    let mean_bursts: Vec<(Kind, Spread)> = bursts
        .iter()
        .map(|(i, runs)| {
            let seconds: Vec<f64> = runs.iter().map(|r| r.mean_burst.as_secs_f64()).collect();
            (Kind::ALL[*i], Spread::of(&seconds))
        })
        .collect();
    let quickest = |ours: bool| {
        mean_bursts
            .iter()
            .filter(|(k, _)| k.is_ours() == ours)
            .min_by(|a, b| a.1.median.total_cmp(&b.1.median))
            .copied()
    };
    if let (Some((mine, ours)), Some((peer, theirs))) = (quickest(true), quickest(false)) {
        let allowed = 1.05 * s3_ideal().as_secs_f64();
        // Shorter is better: the target (or the peer) must be at least ours.
        targets.push_str(&standing_row(
            &format!(
                "S3 mean burst ≤ 1.05 × {:.2} ms",
                s3_ideal().as_secs_f64() * 1e3
            ),
            &Spread::point(allowed),
            &ours,
            format!("{} ms ({})", ours.show(1e3, 2), mine.name()),
        ));
        targets.push_str(&standing_row(
            "S3 mean burst ≤ best peer's",
            &theirs,
            &ours,
            format!(
                "{} ms ({}) against {} ms ({})",
                ours.show(1e3, 2),
                mine.name(),
                theirs.show(1e3, 2),
                peer.name()
            ),
        ));
    }
    let charts = vec![(
        "s3".to_owned(),
        vec![Panel {
            title: "S3: where the mean burst goes".to_owned(),
            x: Axis::linear(""),
            y: Axis::linear("mean burst (ms)"),
            plot: Plot::Bars(breakdown),
        }],
    )];
    Section {
        markdown: doc,
        targets,
        charts,
    }
}

/// S3's runs by contender, and for ours how the kernel scheduled the
/// partition thread during each run.
pub type BurstRuns = (
    BTreeMap<usize, Vec<Bursts>>,
    BTreeMap<usize, Vec<ThreadSched>>,
);

/// Runs every contender through the bursts.
pub async fn bursts_scenario(options: &Options) -> BurstRuns {
    let setup = Setup {
        batch_size: S2_BATCH_SIZE,
        max_wait: Duration::from_millis(2),
        cost: Cost::S2,
    };
    let contenders = start_all(setup, &[Kind::ServingBusyPoll]);
    let mut runs: BTreeMap<usize, Vec<Bursts>> = BTreeMap::new();
    let mut scheduled: BTreeMap<usize, Vec<ThreadSched>> = BTreeMap::new();
    for rep in 0..options.reps {
        for (kind, contender) in &contenders {
            let index = Kind::ALL.iter().position(|k| k == kind).unwrap_or(0);
            // Every serving of ours names its partition threads after the
            // serving; only the one under test is busy meanwhile.
            let before = threads_named(PARTITION_THREADS);
            let result = burst::run(
                Arc::clone(contender),
                256,
                S3_BURSTS,
                Duration::from_millis(50),
                32,
            )
            .await;
            eprintln!(
                "S3 rep {rep} {}: mean burst {:?}",
                kind.name(),
                result.mean_burst
            );
            if let (true, Some(before), Some(after)) =
                (kind.is_ours(), before, threads_named(PARTITION_THREADS))
            {
                scheduled
                    .entry(index)
                    .or_default()
                    .push(after.since(before));
            }
            runs.entry(index).or_default().push(result);
        }
    }
    (runs, scheduled)
}

/// S3's note on where the gaps between batches go: the partition thread's
/// preemptions and run-queue waits during the timeout serving's bursts.
pub fn burst_gaps_note(
    runs: &BTreeMap<usize, Vec<Bursts>>,
    scheduled: &BTreeMap<usize, Vec<ThreadSched>>,
    bursts: usize,
) -> String {
    let index = Kind::ALL
        .iter()
        .position(|k| *k == Kind::ServingTimeout)
        .unwrap_or(0);
    let (Some(ours), Some(scheduled)) = (runs.get(&index), scheduled.get(&index)) else {
        return String::new();
    };
    // The quickest any contender got its first batch going.
    let fastest_first = runs
        .values()
        .map(|r| {
            Spread::of(
                &r.iter()
                    .map(|b| b.to_first_batch.as_secs_f64() * 1e6)
                    .collect::<Vec<_>>(),
            )
            .median
        })
        .fold(f64::INFINITY, f64::min);
    let per_burst = bursts.max(1) as f64;
    let preempted = Spread::of(
        &scheduled
            .iter()
            .map(|s| s.preempted as f64 / per_burst)
            .collect::<Vec<_>>(),
    );
    let waited = Spread::of(
        &scheduled
            .iter()
            .map(|s| s.run_queue_wait.as_secs_f64() * 1e6 / per_burst)
            .collect::<Vec<_>>(),
    );
    let gaps = Spread::of(
        &ours
            .iter()
            .map(|r| r.between_batches.as_secs_f64() * 1e6)
            .collect::<Vec<_>>(),
    );
    let overhead = (s3_ideal().as_secs_f64() * 0.05) * 1e6;
    format!(
        "\nWhere the time beyond the ideal goes, for the timeout serving: its partition thread was switched out while it still had work **{:.1} times per burst** and waited **{:.0} µs per burst** for a core (the kernel's own counts, `/proc/self/task/*/status` and `schedstat`, median of the runs), against {:.0} µs of gaps between batches. \
         On two cores the batch function's thread shares the machine with the runtime's two workers: each finished batch wakes a worker to deliver its 32 answers and run those callers, the kernel favours the just-woken worker, and the partition thread waits its turn before it can start the next batch. \
         The 5% allowance is {overhead:.0} µs per burst for everything beyond the {:.0} µs of function time; the partition thread's waits for a core alone {}, before the first batch's wait for 32 callers to fire ({:.0} µs at the quickest of all contenders here).\n",
        preempted.median,
        waited.median,
        gaps.median,
        s3_ideal().as_secs_f64() * 1e6,
        if waited.median > overhead {
            "exceed it".to_owned()
        } else {
            format!("take {:.0}% of it", waited.median / overhead * 100.0)
        },
        fastest_first,
    )
}
