//! The side-by-side comparison runner: batch-serving and its peers through
//! the same scenarios, in one process, on one tokio runtime shape, with
//! interleaved repetitions. Writes `docs/benchmarks.md`.
//!
//! ```text
//! cargo run --release -p batch-serving-benches --bin compare            # writes docs/benchmarks.md
//! cargo run --release -p batch-serving-benches --bin compare -- --quick # one repetition, short cells
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use batch_serving_benches::burst::{self, Bursts};
use batch_serving_benches::closed_loop::{self, Cell};
use batch_serving_benches::contenders::{Contender, Kind, Setup};
use batch_serving_benches::embed_ceiling;
use batch_serving_benches::embeddings::{Batching, EmbedCell, EmbedSetup};
use batch_serving_benches::memory;
use batch_serving_benches::onnx::OnnxSetup;
use batch_serving_benches::report::{Spread, rate, table};
use batch_serving_benches::thread_sched::{ThreadSched, threads_named};
use batch_serving_benches::workload::Cost;

/// The S2 ideal: 32 items per 300 + 4·32 µs.
/// One full S2 batch: 300 µs + 32 × 4 µs.
const S2_BATCH: Duration = Duration::from_micros(428);
const S2_BOUND: f64 = 32.0 / 428e-6;
/// The S3 ideal burst: 8 full batches of the S2 function.
/// Bursts per S3 run.
const S3_BURSTS: usize = 20;
const S3_IDEAL: Duration = Duration::from_micros(3424);

struct Options {
    reps: usize,
    cell: Duration,
    out: String,
    /// Scenarios to run (`--only s1,s4`); all when empty.
    only: Vec<String>,
}

impl Options {
    fn runs(&self, scenario: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s.eq_ignore_ascii_case(scenario))
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("cannot build the runtime: {e}"))
}

/// Starts the contenders of a scenario. The async-function serving runs in
/// S1 only: it answers how much of the per-call overhead is the hand-off to
/// a partition thread, and running it everywhere would push the whole
/// comparison past five minutes.
/// Starts every default contender and, of our variants, those in `variants`.
fn start_all(setup: Setup, variants: &[Kind]) -> Vec<(Kind, Arc<dyn Contender>)> {
    // `COMPARE_KINDS=ServingEager,Textbook` narrows the contenders (for profiling).
    let wanted = std::env::var("COMPARE_KINDS").unwrap_or_default();
    Kind::ALL
        .iter()
        .filter(|kind| !kind.is_variant() || variants.contains(kind))
        .filter(|kind| wanted.is_empty() || wanted.split(',').any(|w| w == format!("{kind:?}")))
        .filter_map(|&kind| match kind.start(setup) {
            Ok(contender) => Some((kind, contender)),
            Err(e) => {
                eprintln!("skipping {}: {e}", kind.name());
                None
            }
        })
        .collect()
}

type Cells = BTreeMap<(usize, usize), Vec<Cell>>; // (callers, kind index) -> repetitions

async fn closed_loop_scenario(
    label: &str,
    setup: Setup,
    levels: &[usize],
    max_calls: u64,
    cell: Duration,
    options: &Options,
    variants: &[Kind],
) -> Cells {
    let contenders = start_all(setup, variants);
    let mut cells = Cells::new();
    for rep in 0..options.reps {
        for &callers in levels {
            for (kind, contender) in &contenders {
                let index = Kind::ALL.iter().position(|k| k == kind).unwrap_or(0);
                let cell = closed_loop::run(
                    Arc::clone(contender),
                    callers,
                    max_calls,
                    cell,
                    setup.batch_size,
                )
                .await;
                eprintln!(
                    "{label} rep {rep} C={callers} {}: {:.0}/s",
                    kind.name(),
                    cell.per_second
                );
                cells.entry((callers, index)).or_default().push(cell);
            }
        }
    }
    cells
}

fn spread(cells: &[Cell], f: impl Fn(&Cell) -> f64) -> Spread {
    Spread::of(&cells.iter().map(f).collect::<Vec<_>>())
}

fn integrity(cells: &[Cell]) -> String {
    let errors: u64 = cells.iter().map(|c| c.errors).sum();
    let wrong: u64 = cells.iter().map(|c| c.wrong).sum();
    let empty: u64 = cells.iter().map(|c| c.batches.empty).sum();
    let oversized: u64 = cells.iter().map(|c| c.batches.oversized).sum();
    let lost: u64 = cells
        .iter()
        .map(|c| c.batches.items.saturating_sub(c.calls + c.errors + c.wrong))
        .sum();
    if errors + wrong + empty + oversized == 0 {
        "ok".to_owned()
    } else {
        format!(
            "errors {errors}, wrong {wrong}, empty {empty}, oversized {oversized}, unanswered {lost}"
        )
    }
}

fn closed_loop_table(
    cells: &Cells,
    levels: &[usize],
    efficiency: Option<&dyn Fn(usize, f64) -> String>,
) -> String {
    let mut header = vec![
        "callers",
        "contender",
        "calls/s median (min–max)",
        "p50 µs",
        "p99 µs",
        "mean batch",
    ];
    if efficiency.is_some() {
        header.push("efficiency");
    }
    header.extend(["function ran on", "checks"]);
    let mut rows = Vec::new();
    for &callers in levels {
        for (index, kind) in Kind::ALL.iter().enumerate() {
            let Some(reps) = cells.get(&(callers, index)) else {
                continue;
            };
            let throughput = spread(reps, |c| c.per_second);
            let mut row = vec![
                callers.to_string(),
                kind.name().to_owned(),
                rate(&throughput),
                format!("{:.0}", spread(reps, |c| c.p50.as_secs_f64() * 1e6).median),
                format!("{:.0}", spread(reps, |c| c.p99.as_secs_f64() * 1e6).median),
                format!("{:.1}", spread(reps, Cell::mean_batch).median),
            ];
            if let Some(efficiency) = efficiency {
                row.push(efficiency(callers, throughput.median));
            }
            row.push(
                reps.iter()
                    .find_map(|c| c.batches.thread)
                    .unwrap_or("-")
                    .to_owned(),
            );
            row.push(integrity(reps));
            rows.push(row);
        }
    }
    table(&header, &rows)
}

fn median_of(cells: &Cells, callers: usize, kind: Kind) -> f64 {
    let index = Kind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
    cells
        .get(&(callers, index))
        .map_or(0.0, |reps| spread(reps, |c| c.per_second).median)
}

fn best_of(cells: &Cells, callers: usize, ours: bool) -> (f64, &'static str) {
    Kind::ALL
        .iter()
        .filter(|k| k.is_ours() == ours)
        .map(|&k| (median_of(cells, callers, k), k.name()))
        .fold(
            (0.0, "-"),
            |best, next| if next.0 > best.0 { next } else { best },
        )
}

fn verdict(name: &str, value: f64, target: f64, shown: String) -> String {
    let met = if value >= target { "met" } else { "**missed**" };
    format!("| {name} | {shown} | {met} |\n")
}

/// The target row for "eager at `callers` is at least `target` × batched-fn"
/// in `scenario`.
fn eager_over_batched_fn(scenario: &str, cells: &Cells, callers: usize, target: f64) -> String {
    let ratio = median_of(cells, callers, Kind::ServingEager)
        / median_of(cells, callers, Kind::BatchedFn).max(1.0);
    verdict(
        &format!("{scenario} C={callers} eager ≥ {target}× batched-fn"),
        ratio,
        target,
        format!("{ratio:.2}×"),
    )
}

/// S3's runs by contender, and for ours how the kernel scheduled the
/// partition thread during each run.
type BurstRuns = (
    BTreeMap<usize, Vec<Bursts>>,
    BTreeMap<usize, Vec<ThreadSched>>,
);

async fn bursts_scenario(options: &Options) -> BurstRuns {
    let setup = Setup {
        batch_size: 32,
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

/// The name our partition threads start with (the default serving name).
const PARTITION_THREADS: &str = "batch-serving-p";

/// S3's note on where the gaps between batches go: the partition thread's
/// preemptions and run-queue waits during the timeout serving's bursts.
fn burst_gaps_note(
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
    let overhead = (S3_IDEAL.as_secs_f64() * 0.05) * 1e6;
    format!(
        "\nWhere the time beyond the ideal goes, for the timeout serving: its partition thread was switched out while it still had work **{:.1} times per burst** and waited **{:.0} µs per burst** for a core (the kernel's own counts, `/proc/self/task/*/status` and `schedstat`, median of the runs), against {:.0} µs of gaps between batches. \
         On two cores the batch function's thread shares the machine with the runtime's two workers: each finished batch wakes a worker to deliver its 32 answers and run those callers, the kernel favours the just-woken worker, and the partition thread waits its turn before it can start the next batch. \
         The 5% allowance is {overhead:.0} µs per burst for everything beyond the 3 424 µs of function time; the partition thread's waits for a core alone {}, before the first batch's wait for 32 callers to fire ({:.0} µs at the quickest of all contenders here).\n",
        preempted.median,
        waited.median,
        gaps.median,
        if waited.median > overhead {
            "exceed it".to_owned()
        } else {
            format!("take {:.0}% of it", waited.median / overhead * 100.0)
        },
        fastest_first,
    )
}

fn memory_in_child(what: &str) -> Option<f64> {
    let exe = std::env::current_exe().ok()?;
    // A contender that cannot queue behind a held function (one that runs
    // it on a runtime worker may wedge) gets no figure rather than a hang.
    let output = std::process::Command::new("timeout")
        .arg("20")
        .arg(exe)
        .args(["memory", what])
        .output()
        .ok()?;
    String::from_utf8(output.stdout).ok()?.trim().parse().ok()
}

fn memory_child(what: &str) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build();
    let Ok(runtime) = runtime else { return };
    let bytes = runtime.block_on(async {
        if what == "dispatch_many" {
            return memory::per_item_in_one_call().await;
        }
        let kind = Kind::ALL
            .iter()
            .copied()
            .find(|k| format!("{k:?}") == what)?;
        memory::per_queued_call(kind).await.ok().flatten()
    });
    if let Some(bytes) = bytes {
        println!("{bytes:.1}");
    }
    std::process::exit(0);
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or("?".to_owned(), |kb| format!("{:.0} GiB", kb / 1048576.0));
    format!(
        "{cpu}, {cores} cores available, {memory} RAM; tokio multi-thread runtime with 2 workers"
    )
}

fn today() -> String {
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400) as i64;
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("memory") {
        memory_child(args.get(1).map_or("", String::as_str));
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let options = Options {
        reps: if quick { 1 } else { 3 },
        cell: if quick {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(3)
        },
        out: args
            .iter()
            .position(|a| a == "--out")
            .and_then(|i| args.get(i + 1).cloned())
            .unwrap_or_else(|| "docs/benchmarks.md".to_owned()),
        only: args
            .iter()
            .position(|a| a == "--only")
            .and_then(|i| args.get(i + 1))
            .map(|list| list.split(',').map(str::to_owned).collect())
            .unwrap_or_default(),
    };
    let started = std::time::Instant::now();
    let rt = runtime();
    let mut doc = format!(
        "# Benchmarks\n\n<!-- Written by `cargo run --release -p batch-serving-benches --bin compare`{}. Do not edit by hand. -->\n\n\
         Measured on {} ({}). Every contender runs in this one process on the same runtime, with {} interleaved repetition(s); \
         figures are the median with the min–max over repetitions. Every call's input is unique and its reply is checked to be its own `x + 1`; \
         \"checks\" counts errors, wrong replies, and empty or oversized batches. Each contender runs one batch at a time.\n\n",
        if quick { " -- --quick" } else { "" },
        today(),
        machine(),
        options.reps
    );
    let mut targets = String::from("| target | measured | |\n|---|---|---|\n");
    // How long each part took, so that whoever trims the run to its five
    // minutes sees where the time goes.
    let mut laps: Vec<(&str, Duration)> = Vec::new();
    let mut lap_started = std::time::Instant::now();
    let mut lap = |name: &'static str| {
        laps.push((name, lap_started.elapsed()));
        lap_started = std::time::Instant::now();
    };

    if options.runs("s1") {
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
            &options,
            &[Kind::ServingAsync],
        ));
        doc.push_str("## S1: overhead\n\nIdentity function (`x + 1`), `batch_size` 64, wait 1 ms, closed-loop callers, 200 000 calls or the cell time per cell.\n\n");
        doc.push_str(&closed_loop_table(&s1_cells, &s1_levels, None));
        let (ours, _) = best_of(&s1_cells, 1024, true);
        let (peer, peer_name) = best_of(&s1_cells, 1024, false);
        targets.push_str(&verdict(
            "S1 C=1024 ≥ 1.5× best peer",
            ours / peer.max(1.0),
            1.5,
            format!("{:.2}× {peer_name}", ours / peer.max(1.0)),
        ));
        targets.push_str(&eager_over_batched_fn("S1", &s1_cells, 1, 20.0));
        doc.push_str(&rt.block_on(wake_up_note(&s1_cells)));
    }

    if options.runs("s1") {
        lap("S1");
    }
    if options.runs("s2") {
        let s2_levels = [1, 8, 64, 256];
        // 1.5 s cells rather than 3 keep the whole run, S5 and its ceiling
        // included, within five minutes; every S2 cell is time-bound, so
        // this is where the time goes, and 1.5 s still covers thousands of
        // batches per cell.
        let s2_cell = options.cell.min(Duration::from_millis(1500));
        let s2 = Setup {
            batch_size: 32,
            max_wait: Duration::from_millis(2),
            cost: Cost::S2,
        };
        let s2_cells = rt.block_on(closed_loop_scenario(
            "S2",
            s2,
            &s2_levels,
            u64::MAX,
            s2_cell,
            &options,
            &[Kind::ServingBusyPoll],
        ));
        doc.push_str(&format!("\n## S2: costed batches\n\nThe function busy-spins 300 µs + 4 µs per item, `batch_size` 32, wait 2 ms, {:.1} s per cell. Efficiency is against the bound 32 / 428 µs = 74 766 calls/s; below 32 callers, also against min(C,32) / (300 + 4·min(C,32)) µs.\n\n", s2_cell.as_secs_f64()));
        let efficiency = |callers: usize, per_second: f64| {
            let full = per_second / S2_BOUND * 100.0;
            if callers < 32 {
                let c = callers as f64;
                format!(
                    "{full:.1}% ({:.1}% of C-bound)",
                    per_second / (c / ((300.0 + 4.0 * c) * 1e-6)) * 100.0
                )
            } else {
                format!("{full:.1}%")
            }
        };
        doc.push_str(&closed_loop_table(&s2_cells, &s2_levels, Some(&efficiency)));
        for callers in [64, 256] {
            let (ours, _) = best_of(&s2_cells, callers, true);
            targets.push_str(&verdict(
                &format!("S2 C={callers} ≥ 98% of bound"),
                ours / S2_BOUND,
                0.98,
                format!("{:.1}%", ours / S2_BOUND * 100.0),
            ));
        }
        targets.push_str(&eager_over_batched_fn("S2", &s2_cells, 8, 5.0));
        doc.push_str(&rt.block_on(s2_overhead_note(&s2_cells)));
    }

    if options.runs("s2") {
        lap("S2");
    }
    if options.runs("s3") {
        let (bursts, scheduled) = rt.block_on(bursts_scenario(&options));
        doc.push_str("\n## S3: bursts\n\n256 callers fire together every 50 ms, 20 bursts, with the S2 function and settings. The ideal burst is 8 full batches = 3.42 ms. A burst runs from its first caller firing to its last reply, and each call's latency is counted from that same first firing; the callers' tokio timers fire late by the \"timer lag\" (rounded up to the timer's 1 ms tick, then 256 sleepers woken one by one), which is the same for every contender and is not counted. The next four columns split the mean burst: from the first firing to the first batch's start, the batch function running, the gaps between batches, and from the last batch's end to the last reply.\n\n");
        let mut rows = Vec::new();
        for (index, runs) in &bursts {
            let ms = |f: &dyn Fn(&Bursts) -> Duration| {
                Spread::of(
                    &runs
                        .iter()
                        .map(|r| f(r).as_secs_f64() * 1e3)
                        .collect::<Vec<_>>(),
                )
            };
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
        let best_burst = bursts
            .iter()
            .filter(|(i, _)| Kind::ALL[**i].is_ours())
            .map(|(_, runs)| {
                Spread::of(
                    &runs
                        .iter()
                        .map(|r| r.mean_burst.as_secs_f64())
                        .collect::<Vec<_>>(),
                )
                .median
            })
            .fold(f64::INFINITY, f64::min);
        targets.push_str(&verdict(
            "S3 mean burst ≤ 1.05 × 3.42 ms",
            1.05 * S3_IDEAL.as_secs_f64() / best_burst,
            1.0,
            format!("{:.2} ms", best_burst * 1e3),
        ));
    }

    if options.runs("s3") {
        lap("S3");
    }
    if options.runs("s4") {
        doc.push_str("\n## S4: MobileNetV2 on ONNX Runtime (CPU)\n\n");
        match OnnxSetup::find() {
            Err(why) => doc.push_str(&format!("Skipped: {why}.\n")),
            Ok(onnx) => doc.push_str(&rt.block_on(onnx_scenario(&onnx, &options, &mut targets))),
        }
    }

    if options.runs("s4") {
        lap("S4");
    }
    if options.runs("s5") {
        doc.push_str("\n## S5: sentence embeddings (all-MiniLM-L6-v2, CPU)\n\n");
        match EmbedSetup::find() {
            Err(why) => doc.push_str(&format!("Skipped: {why}.\n")),
            Ok(setup) => doc.push_str(&rt.block_on(embeddings_scenario(
                &setup,
                &options,
                quick,
                &mut targets,
            ))),
        }
    }

    if options.runs("s5") {
        lap("S5");
    }
    if options.runs("memory") {
        doc.push_str("\n## Memory per queued call\n\n100 000 calls queued behind a held batch function, in a fresh process per measurement; resident memory beyond the same number of idle futures, each boxed and holding its item, in the same harness. So it counts each call's future (boxed as the library returns it, with only `map_err` around it), its queue entry and its reply slot, and not the item.\n\n");
        let mut rows = Vec::new();
        // The worst of our rows is the one held to the target.
        let mut ours_per_call = 0.0_f64;
        for kind in Kind::ALL.into_iter().filter(|k| !k.is_variant()) {
            let samples: Vec<f64> = (0..options.reps)
                .filter_map(|_| memory_in_child(&format!("{kind:?}")))
                .collect();
            let spread = Spread::of(&samples);
            if kind.is_ours() && !samples.is_empty() {
                ours_per_call = ours_per_call.max(spread.median);
            }
            rows.push(vec![
                kind.name().to_owned(),
                if samples.is_empty() {
                    "-".to_owned()
                } else {
                    spread.show(1.0, 0)
                },
            ]);
        }
        let many: Vec<f64> = (0..options.reps)
            .filter_map(|_| memory_in_child("dispatch_many"))
            .collect();
        rows.push(vec![
            "batch-serving, one dispatch_many of 100 000 items (per item, minus the item)"
                .to_owned(),
            Spread::of(&many).show(1.0, 0),
        ]);
        doc.push_str(&table(&["contender", "bytes per queued call"], &rows));
        doc.push_str(&memory_accounting(ours_per_call));
        targets.push_str(&verdict(
            "memory ≤ 128 B per queued call",
            128.0 / ours_per_call.max(1.0),
            1.0,
            format!("{ours_per_call:.0} B"),
        ));
    }

    if options.runs("memory") {
        lap("memory");
    }
    doc.push_str("\n## Targets\n\nRatios within this run.\n\n");
    doc.push_str(&targets);
    let parts: Vec<String> = laps
        .iter()
        .map(|(name, took)| format!("{name} {:.0} s", took.as_secs_f64()))
        .collect();
    doc.push_str(&format!(
        "\nThe whole run took {:.0} s ({}).\n",
        started.elapsed().as_secs_f64(),
        parts.join(", ")
    ));
    if let Err(e) = std::fs::write(&options.out, &doc) {
        eprintln!("cannot write {}: {e}", options.out);
        std::process::exit(1);
    }
    println!("{doc}\nwrote {}", options.out);
}

async fn onnx_scenario(onnx: &OnnxSetup, options: &Options, targets: &mut String) -> String {
    let mut out = String::from(
        "64 closed-loop callers through the serving (eager) against direct session runs in a loop at the best batch size of 1, 8 and 32, with the same threads; the serving's `batch_size` is that same best size, as a user would tune it. Inputs are pre-processed tensors; each caller sends its own copy.\n\n",
    );
    // Shorter cells than S1-S3 keep the whole run within five minutes; one
    // image takes milliseconds, so 2 s still covers hundreds of images.
    let sweep = options.cell.min(Duration::from_secs(1));
    let cell = options.cell.min(Duration::from_secs(2));
    let mut rows = Vec::new();
    let mut ratios = Vec::new();
    // Each configuration's direct and served medians.
    let mut bests: Vec<(f64, f64)> = Vec::new();
    for (partitions, threads) in [(2usize, 1usize), (1, 2)] {
        let mut best = (0.0, 1);
        for batch in [1, 8, 32] {
            match onnx.direct(partitions, threads, batch, sweep) {
                Ok(rate) if rate > best.0 => best = (rate, batch),
                Ok(_) => {}
                Err(e) => return format!("Skipped: {e}.\n"),
            }
        }
        let (mut direct, mut served, mut mean_batch) = (Vec::new(), Vec::new(), Vec::new());
        for rep in 0..options.reps {
            match (
                onnx.direct(partitions, threads, best.1, cell),
                onnx.served(partitions, threads, best.1, 64, cell).await,
            ) {
                (Ok(d), Ok((s, b))) => {
                    eprintln!(
                        "S4 rep {rep} {partitions}x{threads}: direct {d:.0}/s, served {s:.0}/s"
                    );
                    direct.push(d);
                    served.push(s);
                    mean_batch.push(b);
                }
                (Err(e), _) | (_, Err(e)) => return format!("Failed: {e}.\n"),
            }
        }
        let (d, s) = (Spread::of(&direct), Spread::of(&served));
        ratios.push(s.median / d.median.max(1e-9));
        bests.push((d.median, s.median));
        rows.push(vec![
            format!("{partitions} × {threads}"),
            format!("{} (batch {})", d.show(1.0, 1), best.1),
            s.show(1.0, 1),
            format!("{:.1}", Spread::of(&mean_batch).median),
            format!("{:.3}", s.median / d.median.max(1e-9)),
        ]);
    }
    out.push_str(&table(
        &[
            "partitions × threads",
            "direct img/s",
            "served img/s",
            "served mean batch",
            "served / direct",
        ],
        &rows,
    ));
    // The issue's measure: the best served configuration against the best
    // direct one; each configuration's own ratio is in the table, and the
    // worst of them is shown beside the verdict.
    let best_direct = bests.iter().map(|b| b.0).fold(0.0, f64::max);
    let best_served = bests.iter().map(|b| b.1).fold(0.0, f64::max);
    let ratio = best_served / best_direct.max(1e-9);
    let worst = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let copy = onnx.input_copy_cost();
    out.push_str(&format!(
        "\nThe best served configuration ran {ratio:.3}× the best direct one; per configuration, served / direct ran {worst:.3}–{:.3}×. One cost a served call has and a direct run does not is its caller's own copy of the input (a fresh 3 × 224 × 224 tensor): {:.0} µs here, {:.1}% of the two cores at the best served rate.\n",
        ratios.iter().copied().fold(0.0, f64::max),
        copy.as_secs_f64() * 1e6,
        copy.as_secs_f64() * best_served / 2.0 * 100.0,
    ));
    targets.push_str(&verdict(
        "S4 served ≥ 0.97 × direct",
        ratio / 0.97,
        1.0,
        format!("{ratio:.3}× best to best (per configuration {worst:.3}× at worst)"),
    ));
    out
}

/// A corpus for S5: its name, its token range and the target it carries.
struct EmbedCorpus {
    name: &'static str,
    tokens: std::ops::RangeInclusive<usize>,
    sentences: usize,
}

async fn embeddings_scenario(
    setup: &EmbedSetup,
    options: &Options,
    quick: bool,
    targets: &mut String,
) -> String {
    let corpora = [
        EmbedCorpus {
            name: "short sentences, 6–32 tokens",
            tokens: 6..=32,
            sentences: if quick { 96 } else { 192 },
        },
        EmbedCorpus {
            name: "mixed lengths, 8–128 tokens",
            tokens: 8..=128,
            sentences: if quick { 64 } else { 128 },
        },
    ];
    // Calls that end inside the window count; it opens after the warm-up.
    let (warm_up, window) = if quick {
        (Duration::from_millis(250), Duration::from_millis(500))
    } else {
        (Duration::from_millis(400), Duration::from_millis(1500))
    };
    let mut out = format!(
        "64 closed-loop callers cycle through a generated corpus (`synthetic_corpus`, fixed seeds), one sentence per call; sentences/s counts the calls that end inside a measured window of {:.2} s that opens after {:.2} s of warm-up (calls still waiting when it closes are dropped), so the ramp-up and the drain do not count. One partition with 2 intra-op threads, eager policy; batches hold at most 16 sentences. (d) uses the default bucket edges (`DEFAULT_BUCKET_EDGES`: 8, 12, 16, 24, 32, 40, 48, 64, 80, 96, 112, 128). Token counts include `[CLS]` and `[SEP]`.\n",
        window.as_secs_f64(),
        warm_up.as_secs_f64()
    );
    // corpus -> batching -> repetitions, run interleaved so that drift in
    // the machine's speed hits every variant alike.
    let mut cells: Vec<Vec<Vec<EmbedCell>>> =
        vec![vec![Vec::new(); Batching::ALL.len()]; corpora.len()];
    let texts: Vec<Arc<Vec<String>>> = corpora
        .iter()
        .enumerate()
        .map(|(i, c)| {
            Arc::new(batch_serving_ort::embedding::synthetic_corpus(
                c.sentences,
                c.tokens.clone(),
                100 + i as u64,
            ))
        })
        .collect();
    for rep in 0..options.reps {
        for (c, corpus) in corpora.iter().enumerate() {
            for (b, batching) in Batching::ALL.iter().enumerate() {
                match setup.run(*batching, &texts[c], 64, warm_up, window).await {
                    Ok(cell) => {
                        eprintln!(
                            "S5 rep {rep} {} {}: {:.0}/s, mean batch {:.1}",
                            corpus.name,
                            batching.name(),
                            cell.per_second,
                            cell.mean_batch
                        );
                        cells[c][b].push(cell);
                    }
                    Err(e) => return format!("Failed: {e}.\n"),
                }
            }
        }
    }
    let median = |reps: &[EmbedCell], f: &dyn Fn(&EmbedCell) -> f64| {
        Spread::of(&reps.iter().map(f).collect::<Vec<_>>())
    };
    for (c, corpus) in corpora.iter().enumerate() {
        let rate_of = |b: Batching| {
            let index = Batching::ALL.iter().position(|x| *x == b).unwrap_or(0);
            median(&cells[c][index], &|x| x.per_second).median
        };
        let unbatched = rate_of(Batching::Unbatched).max(1e-9);
        let rows: Vec<Vec<String>> = Batching::ALL
            .iter()
            .zip(&cells[c])
            .map(|(batching, reps)| {
                let per_second = median(reps, &|x| x.per_second);
                vec![
                    batching.name().to_owned(),
                    per_second.show(1.0, 1),
                    format!("{:.0}", median(reps, &|x| x.p50.as_secs_f64() * 1e3).median),
                    format!("{:.0}", median(reps, &|x| x.p99.as_secs_f64() * 1e3).median),
                    format!("{:.1}", median(reps, &|x| x.mean_batch).median),
                    format!("{:.2}×", per_second.median / unbatched),
                ]
            })
            .collect();
        out.push_str(&format!(
            "\n{} sentences, {}:\n\n",
            corpus.sentences, corpus.name
        ));
        out.push_str(&table(
            &[
                "batching",
                "sentences/s median (min–max)",
                "p50 ms",
                "p99 ms",
                "mean batch",
                "vs (a)",
            ],
            &rows,
        ));
        let bucketed = rate_of(Batching::LengthBuckets);
        // What no way of forming batches could beat on this CPU.
        let grid = if c == 0 {
            &embed_ceiling::SHORT_GRID[..]
        } else {
            &embed_ceiling::MIXED_GRID[..]
        };
        let (files, corpus_texts) = (setup.files().clone(), Arc::clone(&texts[c]));
        let ceiling = tokio::task::spawn_blocking(move || {
            embed_ceiling::batching_ceiling(&files, &corpus_texts, 16, grid)
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
        let ceiling_shown = match &ceiling {
            Ok(ceiling) => {
                out.push_str(&format!(
                    "\nThe ceiling for this corpus on this CPU: direct session runs, no serving, of full batches of 16 equally long sentences (nothing padded) take **{ceiling:.2}×** less time per sentence than one sentence at a time at its own length, weighted by the corpus's own lengths (`benches/src/embed_ceiling.rs`). (d) reached {:.0}% of that ceiling.\n",
                    bucketed / unbatched / ceiling * 100.0
                ));
                format!(" (ceiling {ceiling:.2}×)")
            }
            Err(e) => {
                out.push_str(&format!(
                    "\nThe batching ceiling could not be measured: {e}.\n"
                ));
                String::new()
            }
        };
        if c == 0 {
            let ratio = bucketed / unbatched;
            targets.push_str(&verdict(
                "S5 short corpus: (d) buckets ≥ 1.5× (a) unbatched",
                ratio,
                1.5,
                format!("{ratio:.2}×{ceiling_shown}"),
            ));
        } else {
            let ratio = bucketed / rate_of(Batching::FixedPadding).max(1e-9);
            targets.push_str(&verdict(
                "S5 mixed corpus: (d) buckets ≥ 1.6× (b) padded to 128",
                ratio,
                1.6,
                format!("{ratio:.2}×"),
            ));
        }
    }
    out
}

/// The measured cost of a task → thread → task round trip, and what it
/// means for S1 at 1024 callers.
async fn wake_up_note(cells: &Cells) -> String {
    let rounds: Vec<f64> = {
        let mut rounds = Vec::new();
        for _ in 0..5 {
            rounds.push(
                batch_serving_benches::wakeup::round_trip(10_000)
                    .await
                    .as_secs_f64(),
            );
        }
        rounds
    };
    let trip = Spread::of(&rounds);
    let ours = median_of(cells, 1024, Kind::ServingEager);
    let index = Kind::ALL
        .iter()
        .position(|k| *k == Kind::ServingEager)
        .unwrap_or(0);
    let batch = cells
        .get(&(1024, index))
        .map_or(64.0, |reps| spread(reps, Cell::mean_batch).median);
    let per_batch = batch / ours.max(1.0);
    let on_runtime = median_of(cells, 1024, Kind::ServingAsync);
    let textbook = median_of(cells, 1024, Kind::Textbook);
    let (peer, peer_name) = best_of(cells, 1024, false);
    let budget_ns = 2.0 / (1.5 * peer.max(1.0)) * 1e9;
    let mut floors = Vec::new();
    for _ in 0..3 {
        let floor = batch_serving_benches::floor::start(64);
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
         The async-function serving (\"eager, async fn\", `Serving::new_async`), whose partition is a task on the runtime and which crosses no thread, ran {:.2} M calls/s; the synchronous one ran {:.2}× that, so at this load the hand-off costs {}. \
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

/// What the S2 efficiency leaves per batch, against what one wake-up from a
/// partition thread costs that thread here.
async fn s2_overhead_note(cells: &Cells) -> String {
    let mut wakes = Vec::new();
    for _ in 0..3 {
        wakes.push(
            batch_serving_benches::wakeup::waker_side(1_000)
                .await
                .as_secs_f64(),
        );
    }
    let wake = Spread::of(&wakes);
    let batch_us = S2_BATCH.as_secs_f64() * 1e6;
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
         With busy polling (`Builder::busy_poll`, here with a 1 ms budget) the scheduler's worker polls for the answers instead of sleeping, so the hand-off is a plain push: **{:.1} µs per batch**, at the price of that worker's CPU while batches run. \
         Peers that run the function on a runtime worker pay their own wake-ups to answer callers, which is why the default configurations land within a few percent of each other here.\n",
        per_batch(Kind::ServingEager),
        batch_us / 0.98 - batch_us,
        wake.median * 1e6,
        wake.min * 1e6,
        wake.max * 1e6,
        per_batch(Kind::ServingBusyPoll),
    )
}

/// What one queued call of batch-serving holds, part by part, from the
/// types' own sizes.
fn memory_accounting(measured: f64) -> String {
    // glibc's malloc: 8 bytes of header, rounded up to 16, and 32 at least.
    let chunk = |bytes: usize| ((bytes + 8).div_ceil(16) * 16).max(32);
    let parts = batch_serving::layout::queued_u64_call();
    let mut out = String::from(
        "\nWhat one queued `dispatch` of a `u64` holds in batch-serving, from the types' sizes:\n\n",
    );
    let mut held = 0;
    let mut future = 0;
    for (at, part) in parts.iter().enumerate() {
        let note = match (at, part.held) {
            (0, _) => {
                held += chunk(part.bytes);
                format!("one allocation of {} B", chunk(part.bytes))
            }
            (1, _) => {
                held += part.bytes;
                future = part.bytes;
                "held by the caller until answered".to_owned()
            }
            (_, true) => {
                held += part.bytes;
                "held until answered".to_owned()
            }
            (_, false) => "freed once the scheduler takes it".to_owned(),
        };
        out.push_str(&format!("- {}: {} B, {note}\n", part.name, part.bytes));
    }
    let item = std::mem::size_of::<u64>();
    out.push_str(&format!(
        "\nThat is {held} B held per call, {} B beyond the item, which the queue entry holds. \
         The measured {measured:.0} B is lower mainly because a boxed future of {future} B takes the same {} B allocation as the harness's idle future, which holds only the item. \
         Where a caller awaits the call inside a task of its own, the future's {future} B join that task instead. \
         The shared state is one allocation because the reply slot and the caller's waker share one lock: a many-item call's outputs and a failure sit behind one pointer, and what only streaming or traced calls need behind another. \
         A many-item call shares one state and one future among its items; its per-item cost is in the last row.\n",
        held - item,
        chunk(future),
    ));
    out
}
