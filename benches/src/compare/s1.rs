//! S1: the per-call overhead of each contender, with a free batch function.

use std::time::Duration;

use batch_serving_examples::chart::Axis;
use tokio::runtime::Runtime;

use crate::closed_loop::{self, Cell};
use crate::compare::common::{
    Cells, Options, Section, best_of, closed_loop_chart, closed_loop_scenario, closed_loop_table,
    eager_over_batched_fn, ours_over_best_peer, standing_row,
};
use crate::compare::common::{figure_of, median_of, spread_of};
use crate::contenders::{Kind, Setup};
use crate::report::{Spread, rate};
use crate::workload::Cost;

/// Our rows in S1: the default policies and the function declared cheap.
const OURS_IN_S1: [Kind; 3] = [
    Kind::ServingTimeout,
    Kind::ServingEager,
    Kind::ServingOnRuntime,
];

/// Runs S1 and returns its section.
pub fn run(rt: &Runtime, options: &Options) -> Section {
    let mut doc = String::new();
    let mut targets = String::new();
    let s1_levels = [1, 64, 1024];
    let s1 = Setup {
        batch_size: 64,
        max_wait: Duration::from_millis(1),
        cost: Cost::Free,
    };
    let s1_cells = rt.block_on(closed_loop_scenario(
        "S1",
        s1,
        &s1_levels,
        200_000,
        options.cell,
        options,
        &[Kind::ServingOnRuntime],
    ));
    doc.push_str("## S1: overhead\n\nIdentity function (`x + 1`), `batch_size` 64, wait 1 ms, closed-loop callers, 200 000 calls or the cell time per cell.\n\n");
    doc.push_str(&closed_loop_table(&s1_cells, &s1_levels, None));
    // The default synchronous serving, and the same function declared
    // cheap, are each held to every peer at each level; the best of ours
    // to the stretch target at 1024 callers.
    for kind in [Kind::ServingEager, Kind::ServingOnRuntime] {
        for callers in s1_levels {
            targets.push_str(&ours_over_best_peer("S1", &s1_cells, callers, &[kind], 1.0));
        }
    }
    targets.push_str(&ours_over_best_peer(
        "S1",
        &s1_cells,
        1024,
        &OURS_IN_S1,
        1.5,
    ));
    targets.push_str(&eager_over_batched_fn("S1", &s1_cells, 1, 20.0));
    targets.push_str(&timeout_keeps_its_word(&s1_cells, s1.max_wait));
    doc.push_str(&rt.block_on(wake_up_note(&s1_cells)));
    let charts = vec![(
        "s1".to_owned(),
        vec![closed_loop_chart(
            &s1_cells,
            &s1_levels,
            "S1: overhead, identity function",
            Axis::log("calls/s (median)"),
            &|_, per_second| per_second,
        )],
    )];
    Section {
        markdown: doc,
        targets,
        charts,
    }
}

/// How late past `batch_timeout` a lone call may be answered under the
/// timeout policy: the precise timer's wake-up (the kernel's timer slack,
/// 50 µs by default on Linux), the hand-offs to the partition and back,
/// and the caller's next call.
const TIMEOUT_TOLERANCE: Duration = Duration::from_micros(250);

/// The target row for the timeout policy at one caller: each call waits out
/// `batch_timeout` alone, so the time per call is the timer's accuracy.
fn timeout_keeps_its_word(cells: &Cells, batch_timeout: Duration) -> String {
    let per_second = spread_of(cells, 1, Kind::ServingTimeout);
    let per_call = 1.0 / per_second.median.max(1e-9);
    let allowed = (batch_timeout + TIMEOUT_TOLERANCE).as_secs_f64();
    standing_row(
        &format!(
            "S1 C=1 timeout policy: a lone call answered within {} µs of batch_timeout ({} ms)",
            TIMEOUT_TOLERANCE.as_micros(),
            batch_timeout.as_millis()
        ),
        &per_second,
        &Spread::point(1.0 / allowed),
        format!(
            "{:.3} ms per call ({:.3}–{:.3})",
            per_call * 1e3,
            1e3 / per_second.max.max(1e-9),
            1e3 / per_second.min.max(1e-9)
        ),
    )
}

/// The measured cost of a task → thread → task round trip, and what it
/// means for S1 at 1024 callers.
pub async fn wake_up_note(cells: &Cells) -> String {
    let rounds: Vec<f64> = {
        let mut rounds = Vec::new();
        for _ in 0..5 {
            rounds.push(crate::wakeup::round_trip(10_000).await.as_secs_f64());
        }
        rounds
    };
    let trip = Spread::of(&rounds);
    let ours = median_of(cells, 1024, Kind::ServingEager);
    let batch = figure_of(cells, 1024, Kind::ServingEager, Cell::mean_batch).median;
    let per_batch = batch / ours.max(1.0);
    let on_runtime = median_of(cells, 1024, Kind::ServingOnRuntime);
    let textbook = median_of(cells, 1024, Kind::Textbook);
    let (peer, peer_name) = best_of(cells, 1024, false);
    let budget_ns = 2.0 / (1.5 * peer.max(1.0)) * 1e9;
    let mut floors = Vec::new();
    for _ in 0..3 {
        let floor = crate::floor::start(64);
        let cell = closed_loop::run(floor, 1024, 200_000, Duration::from_secs(3), 64).await;
        floors.push(cell.per_second);
    }
    let floor = Spread::of(&floors);
    let floor_verdict = if floor.median < 1.5 * peer {
        "so 1.5× the best peer is beyond what the parts every contender here is built from reach on their own, before any batching logic"
    } else {
        "so 1.5× the best peer is within what the bare parts reach"
    };
    format!(
        "\nOne hand-off from a tokio task to an OS thread and back (a tokio channel the thread waits on with `blocking_recv`, a oneshot back), measured here: **{:.1} µs** per round trip (median of 5 × 10 000; {:.1}–{:.1}). \
         A synchronous batch function runs on its partition's own thread, so each batch crosses to that thread and its answers cross back. \
         At C=1024 the eager serving ran {:.1} items per batch at {:.2} M calls/s, {:.1} µs per batch, {:.0}% of one round trip: crossings overlap (while one batch crosses, the scheduler forms the next, and a full one waits on deck). \
         The same function declared cheap (\"eager, on runtime\", `Serving::new_on_runtime`), whose partition is a task on the runtime and which crosses no thread, ran {:.2} M calls/s; the synchronous one ran {:.2}× that, so at this load the hand-off costs {}. \
         A CPU-bound function must still not run on a runtime worker (it would stall every task behind it); a cheap one that never blocks may. \
         Both stay below the textbook loop ({:.2}× and {:.2}×) by per-call work it does not do: a call's shared state (for cancellation, deadlines and many-item calls), admission to a bounded queue, the scheduler's keyed, prioritised queue, and queue-wait statistics. \
         The textbook loop used {:.0} ns of CPU per call here (2 cores / its calls per second); 1.5× the best peer ({}) would be {:.2} M calls/s, {:.0} ns per call for everything: both polls of the caller's task, its queueing and its answer. \
         The bare parts alone (`benches/src/floor.rs`: one tokio channel in and one oneshot back per call, answered as soon as taken, no timer and nothing else) ran **{} calls/s** at C=1024 (median of 3), {:.2}× the best peer, {}.\n",
        trip.median * 1e6,
        trip.min * 1e6,
        trip.max * 1e6,
        batch,
        ours / 1e6,
        per_batch * 1e6,
        per_batch / trip.median.max(1e-12) * 100.0,
        on_runtime / 1e6,
        ours / on_runtime.max(1.0),
        if ours >= 0.9 * on_runtime {
            "little"
        } else {
            "a share of the throughput"
        },
        ours / textbook.max(1.0),
        on_runtime / textbook.max(1.0),
        2.0 / textbook.max(1.0) * 1e9,
        peer_name,
        1.5 * peer / 1e6,
        budget_ns,
        rate(&floor),
        floor.median / peer.max(1.0),
        floor_verdict,
    )
}
