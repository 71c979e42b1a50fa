//! S2: costed batches, where batching pays: throughput against the bound
//! the cost model sets.

use std::sync::Arc;
use std::time::Duration;

use batch_serving_examples::chart::Axis;
use tokio::runtime::Runtime;

use crate::closed_loop;
use crate::compare::common::median_of;
use crate::compare::common::{
    Cells, Options, Section, best_among, closed_loop_chart, closed_loop_scenario,
    closed_loop_table, eager_over_batched_fn, figure_of, ours_over_best_peer, spread_of,
    standing_row,
};
use crate::contenders::{Kind, Setup};
use crate::report::Spread;
use crate::thread_sched::{PARTITION_THREADS, threads_named};
use crate::workload::Cost;

/// The batch size every S2 and S3 contender runs with.
pub const S2_BATCH_SIZE: usize = 32;

/// One full S2 batch, from the cost model.
pub fn s2_batch() -> Duration {
    Cost::S2.batch_time(S2_BATCH_SIZE)
}

/// The most calls/s any contender can reach: one full batch after another.
pub fn s2_bound() -> f64 {
    S2_BATCH_SIZE as f64 / s2_batch().as_secs_f64()
}

/// Runs S2 and returns its section.
pub fn run(rt: &Runtime, options: &Options) -> Section {
    let mut doc = String::new();
    let mut targets = String::new();
    let s2_levels = [1, 8, 64, 256];
    // 1.5 s cells rather than 3 keep the whole run, S5 and its ceiling
    // included, within five minutes; every S2 cell is time-bound, so
    // this is where the time goes, and 1.5 s still covers thousands of
    // batches per cell.
    let s2_cell = options.cell.min(Duration::from_millis(1500));
    let s2 = Setup {
        batch_size: S2_BATCH_SIZE,
        max_wait: Duration::from_millis(2),
        cost: Cost::S2,
    };
    let s2_cells = rt.block_on(closed_loop_scenario(
        "S2",
        s2,
        &s2_levels,
        u64::MAX,
        s2_cell,
        options,
        &[Kind::ServingBusyPoll],
    ));
    let (fixed_us, per_item_us) = (
        Cost::S2.batch_time(0).as_secs_f64() * 1e6,
        (Cost::S2.batch_time(1) - Cost::S2.batch_time(0)).as_secs_f64() * 1e6,
    );
    let n = S2_BATCH_SIZE;
    doc.push_str(&format!(
        "\n## S2: costed batches\n\nThe function busy-spins {fixed_us:.0} µs + {per_item_us:.0} µs per item, `batch_size` {n}, wait 2 ms, {:.1} s per cell. Efficiency is against the bound {n} / {:.0} µs = {:.0} calls/s; below {n} callers, also against min(C,{n}) / ({fixed_us:.0} + {per_item_us:.0}·min(C,{n})) µs.\n\n",
        s2_cell.as_secs_f64(),
        s2_batch().as_secs_f64() * 1e6,
        s2_bound(),
    ));
    let efficiency = |callers: usize, per_second: f64| {
        let full = per_second / s2_bound() * 100.0;
        if callers < S2_BATCH_SIZE {
            let c_bound = callers as f64 / Cost::S2.batch_time(callers).as_secs_f64();
            format!(
                "{full:.1}% ({:.1}% of C-bound)",
                per_second / c_bound * 100.0
            )
        } else {
            format!("{full:.1}%")
        }
    };
    doc.push_str(&closed_loop_table(&s2_cells, &s2_levels, Some(&efficiency)));
    let ours = [
        Kind::ServingTimeout,
        Kind::ServingEager,
        Kind::ServingBusyPoll,
    ];
    for callers in s2_levels {
        targets.push_str(&ours_over_best_peer("S2", &s2_cells, callers, &ours, 1.0));
    }
    for callers in [64, 256] {
        let best = best_among(&s2_cells, callers, ours.iter().copied());
        let measured = spread_of(&s2_cells, callers, best);
        targets.push_str(&standing_row(
            &format!("S2 C={callers} best of ours ≥ 98% of bound"),
            &measured,
            &Spread::point(0.98 * s2_bound()),
            format!(
                "{} ({})",
                measured.scaled(100.0 / s2_bound()).show(1.0, 1),
                best.name()
            ),
        ));
    }
    targets.push_str(&eager_over_batched_fn("S2", &s2_cells, 8, 5.0));
    doc.push_str(&rt.block_on(s2_overhead_note(&s2_cells)));
    doc.push_str(&rt.block_on(few_callers_note(&s2_cells, s2, s2_cell)));
    let charts = vec![(
        "s2".to_owned(),
        vec![
            closed_loop_chart(
                &s2_cells,
                &s2_levels,
                "S2: costed batches, throughput",
                Axis::linear("calls/s (median)"),
                &|_, per_second| per_second,
            ),
            closed_loop_chart(
                &s2_cells,
                &s2_levels,
                "S2: efficiency",
                Axis::linear("% of the throughput bound"),
                &|_, per_second| per_second / s2_bound() * 100.0,
            ),
        ],
    )];
    Section {
        markdown: doc,
        targets,
        charts,
    }
}

/// What the S2 efficiency leaves per batch, against what one wake-up from a
/// partition thread costs that thread here.
pub async fn s2_overhead_note(cells: &Cells) -> String {
    let mut wakes = Vec::new();
    for _ in 0..3 {
        wakes.push(crate::wakeup::waker_side(1_000).await.as_secs_f64());
    }
    let wake = Spread::of(&wakes);
    let batch_us = s2_batch().as_secs_f64() * 1e6;
    let per_batch = |kind: Kind| {
        let calls = median_of(cells, 64, kind);
        if calls > 0.0 {
            32.0 / calls * 1e6 - batch_us
        } else {
            f64::NAN
        }
    };
    format!(
        "\nAt C=64 the eager serving spent **{:.1} µs per batch** beyond the function's {batch_us:.0} µs; 98% of the bound leaves {:.1} µs. \
         Between two batches a partition thread hands the finished batch's answers back to the runtime, and with the runtime's workers asleep (they have nothing to do while the function spins) that hand-off is a wake-up: measured here, waking a parked task costs the waking thread **{:.1} µs** (median of 3 × 1 000; {:.1}–{:.1}), paid on the partition thread before it can start the next batch. \
         With busy polling (`Builder::busy_poll`, here with a 1 ms budget) the scheduler's worker polls for the answers instead of sleeping, so the hand-off is a plain push, and the partition thread polls for its next batch before it sleeps: **{:.1} µs per batch**, at the price of that worker's CPU while batches run. \
         Peers that run the function on a runtime worker pay their own wake-ups to answer callers, which is why the default configurations land within a few percent of each other here.\n",
        per_batch(Kind::ServingEager),
        batch_us / 0.98 - batch_us,
        wake.median * 1e6,
        wake.min * 1e6,
        wake.max * 1e6,
        per_batch(Kind::ServingBusyPoll),
    )
}

/// Callers in the few-callers note: fewer than a batch, so that each batch
/// holds every caller and a cycle is one batch and its hand-offs.
const FEW: usize = 8;

/// Where a cycle goes at `FEW` callers: the time per batch beyond the
/// function's own, for fresh eager servings with and without busy polling
/// and for the best peer, and how long the partition thread waited for a
/// core per batch (the kernel's schedstat).
pub async fn few_callers_note(cells: &Cells, setup: Setup, cell: Duration) -> String {
    let (Ok(eager), Ok(polling)) = (
        Kind::ServingEager.start(setup),
        Kind::ServingBusyPoll.start(setup),
    ) else {
        return String::new();
    };
    // (time beyond the function, wait for a core), per batch, per run.
    let mut seen: [(Vec<f64>, Vec<f64>); 2] = Default::default();
    for _ in 0..3 {
        for (contender, (beyond, waits)) in [&eager, &polling].into_iter().zip(seen.iter_mut()) {
            let before = threads_named(PARTITION_THREADS);
            let run =
                closed_loop::run(Arc::clone(contender), FEW, u64::MAX, cell, setup.batch_size)
                    .await;
            let (Some(before), Some(after)) = (before, threads_named(PARTITION_THREADS)) else {
                return String::new();
            };
            let batches = run.batches.batches.max(1) as f64;
            waits.push(after.since(before).run_queue_wait.as_secs_f64() / batches);
            beyond.push(beyond_function(run.per_second, run.mean_batch()));
        }
    }
    let peer = best_among(cells, FEW, Kind::ALL.into_iter().filter(|k| !k.is_ours()));
    let peer_batch = figure_of(cells, FEW, peer, closed_loop::Cell::mean_batch).median;
    let us = |values: &Vec<f64>| Spread::of(values).show(1e6, 0);
    format!(
        "\nAt {FEW} callers each batch holds every caller, so a cycle is one batch and its hand-offs. Measured on fresh servings (3 runs each, median and min–max), the eager serving spent **{} µs per batch** beyond the function's own time, and with busy polling **{} µs**, against {:.0} µs for the best peer here ({}, which runs the function on a runtime worker, so that the worker which finishes a batch goes on to answer its callers and take their next calls). \
         Without busy polling the partition thread waited only {} µs per batch on a run queue for a core (the kernel's `schedstat`; with busy polling {} µs, which counts its polling too, as a polling thread is always runnable), so a lack of cores is not where the time goes. The rest of the eager serving's gap is two wake-ups of sleeping threads per cycle: the scheduler's worker, asleep while the function runs, for the answers, and the partition thread, asleep until its next batch, for that batch. Busy polling turns both into polls (the scheduler's worker while the batch runs, the partition thread for up to the budget after it), at the CPU price in the table.\n",
        us(&seen[0].0),
        us(&seen[1].0),
        beyond_function(median_of(cells, FEW, peer), peer_batch) * 1e6,
        peer.name(),
        us(&seen[0].1),
        us(&seen[1].1),
    )
}

/// Seconds per batch beyond the S2 function's own time, at `per_second`
/// calls/s in batches of `mean_batch`.
fn beyond_function(per_second: f64, mean_batch: f64) -> f64 {
    if per_second <= 0.0 {
        return f64::NAN;
    }
    let batch = mean_batch.round().max(1.0) as usize;
    mean_batch / per_second - Cost::S2.batch_time(batch).as_secs_f64()
}
