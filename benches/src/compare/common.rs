//! What every scenario shares: the run's options, the section a scenario
//! returns, starting the contenders, running closed-loop cells, and the
//! tables and target rows made from them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::closed_loop::{self, Cell};
use crate::contenders::{Contender, Kind, Setup};
use crate::report::{Spread, rate, table};
use batch_serving_examples::chart::{Axis, Panel, Plot, Series};

/// What the command line asked for.
#[derive(Debug)]
pub struct Options {
    /// Interleaved repetitions of each cell.
    pub reps: usize,
    /// How long a closed-loop cell runs.
    pub cell: Duration,
    /// Where the report goes.
    pub out: String,
    /// Scenarios to run (`--only s1,s4`); all when empty.
    pub only: Vec<String>,
    /// A short smoke run (`--quick`).
    pub quick: bool,
}

impl Options {
    /// Whether `scenario` is to run.
    pub fn runs(&self, scenario: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s.eq_ignore_ascii_case(scenario))
    }
}

/// What a scenario returns: its markdown section, and the rows it adds to
/// the targets table.
#[derive(Debug, Default)]
pub struct Section {
    /// The section, heading included.
    pub markdown: String,
    /// Rows of the targets table (`| target | measured | met |`).
    pub targets: String,
    /// Charts of the section: a file-name suffix and the panels drawn in
    /// it; the runner writes each beside the report and links it.
    pub charts: Vec<(String, Vec<Panel>)>,
}

/// The runtime every contender runs on: two workers, as on the CI machine.
pub fn runtime() -> tokio::runtime::Runtime {
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
pub fn start_all(setup: Setup, variants: &[Kind]) -> Vec<(Kind, Arc<dyn Contender>)> {
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

/// Closed-loop cells: (callers, kind index) to repetitions.
pub type Cells = BTreeMap<(usize, usize), Vec<Cell>>; // (callers, kind index) -> repetitions

/// Runs every contender through closed-loop cells at each caller count,
/// the repetitions interleaved.
pub async fn closed_loop_scenario(
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

/// The spread of one figure over a cell's repetitions.
pub fn spread(cells: &[Cell], f: impl Fn(&Cell) -> f64) -> Spread {
    Spread::of(&cells.iter().map(f).collect::<Vec<_>>())
}

/// The "checks" column: `ok`, or what went wrong in the cells.
pub fn integrity(cells: &[Cell]) -> String {
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

/// The markdown table of closed-loop cells, with an efficiency column
/// where one is given.
pub fn closed_loop_table(
    cells: &Cells,
    levels: &[usize],
    efficiency: Option<&dyn Fn(usize, f64) -> String>,
) -> String {
    let mut header = vec![
        "callers",
        "contender",
        "calls/s median (min–max)",
        "CPU µs/call",
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
                format!("{:.1}", spread(reps, |c| c.cpu_us_per_call).median),
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

/// One figure of a contender's cells at `callers`, over the repetitions
/// (zeros where it did not run).
pub fn figure_of(cells: &Cells, callers: usize, kind: Kind, f: impl Fn(&Cell) -> f64) -> Spread {
    let index = Kind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
    cells
        .get(&(callers, index))
        .map_or_else(Spread::default, |reps| spread(reps, f))
}

/// A contender's calls/s at `callers` over the repetitions.
pub fn spread_of(cells: &Cells, callers: usize, kind: Kind) -> Spread {
    figure_of(cells, callers, kind, |c| c.per_second)
}

/// A contender's median calls/s at `callers`.
pub fn median_of(cells: &Cells, callers: usize, kind: Kind) -> f64 {
    spread_of(cells, callers, kind).median
}

/// Of `kinds`, the one with the best median calls/s at `callers`.
pub fn best_among(cells: &Cells, callers: usize, kinds: impl Iterator<Item = Kind>) -> Kind {
    kinds
        .map(|k| (median_of(cells, callers, k), k))
        .fold((f64::NEG_INFINITY, Kind::Textbook), |best, next| {
            if next.0 > best.0 { next } else { best }
        })
        .1
}

/// The best median calls/s at `callers` among ours (or among the peers),
/// with the contender's name.
pub fn best_of(cells: &Cells, callers: usize, ours: bool) -> (f64, &'static str) {
    let best = best_among(
        cells,
        callers,
        Kind::ALL.into_iter().filter(|k| k.is_ours() == ours),
    );
    (median_of(cells, callers, best), best.name())
}

/// One row of the targets table from single figures: met when
/// `value >= target`.
pub fn verdict(name: &str, value: f64, target: f64, shown: String) -> String {
    let met = if value >= target { "met" } else { "**missed**" };
    format!("| {name} | {shown} | {met} |\n")
}

/// One row of the targets table from repetitions: `measured` must reach
/// `target`, and the verdict is stated only where their ranges do not
/// overlap (`Spread::at_least`); otherwise the row says "within noise".
pub fn standing_row(name: &str, measured: &Spread, target: &Spread, shown: String) -> String {
    format!(
        "| {name} | {shown} | {} |\n",
        measured
            .at_least(target)
            .label(measured.median >= target.median)
    )
}

/// The target row for "eager at `callers` is at least `target` × batched-fn"
/// in `scenario`.
pub fn eager_over_batched_fn(scenario: &str, cells: &Cells, callers: usize, target: f64) -> String {
    let ours = spread_of(cells, callers, Kind::ServingEager);
    let theirs = spread_of(cells, callers, Kind::BatchedFn);
    standing_row(
        &format!("{scenario} C={callers} eager ≥ {target}× batched-fn"),
        &ours,
        &theirs.scaled(target),
        format!("{:.2}×", ours.median / theirs.median.max(1.0)),
    )
}

/// The target row for "the best of `ours` at `callers` is at least
/// `factor` × the best peer's calls/s", with both rows' CPU per call
/// beside them: where a peer is ahead, what each spends per call is the
/// first measured reason.
pub fn ours_over_best_peer(
    scenario: &str,
    cells: &Cells,
    callers: usize,
    ours: &[Kind],
    factor: f64,
) -> String {
    let mine = best_among(cells, callers, ours.iter().copied());
    let peer = best_among(
        cells,
        callers,
        Kind::ALL.into_iter().filter(|k| !k.is_ours()),
    );
    let (mine_rate, peer_rate) = (
        spread_of(cells, callers, mine),
        spread_of(cells, callers, peer),
    );
    let who = if ours.len() == 1 {
        mine.name().to_owned()
    } else {
        format!("best of ours ({})", mine.name())
    };
    standing_row(
        &format!("{scenario} C={callers} {who} ≥ {factor}× best peer"),
        &mine_rate,
        &peer_rate.scaled(factor),
        format!(
            "{:.2}× {}; CPU {:.1} against {:.1} µs/call",
            mine_rate.median / peer_rate.median.max(1.0),
            peer.name(),
            figure_of(cells, callers, mine, |c| c.cpu_us_per_call).median,
            figure_of(cells, callers, peer, |c| c.cpu_us_per_call).median,
        ),
    )
}

/// A line per contender of `value(callers, median calls/s)` against
/// callers, for a chart of closed-loop cells.
pub fn closed_loop_chart(
    cells: &Cells,
    levels: &[usize],
    title: &str,
    y: Axis,
    value: &dyn Fn(usize, f64) -> f64,
) -> Panel {
    let series = Kind::ALL
        .iter()
        .enumerate()
        .filter_map(|(index, kind)| {
            let points: Vec<(f64, f64)> = levels
                .iter()
                .filter_map(|&callers| {
                    let reps = cells.get(&(callers, index))?;
                    Some((
                        callers as f64,
                        value(callers, spread(reps, |c| c.per_second).median),
                    ))
                })
                .collect();
            (!points.is_empty()).then(|| Series {
                name: kind.name().to_owned(),
                points,
            })
        })
        .collect();
    Panel {
        title: title.to_owned(),
        x: Axis::log("concurrent callers"),
        y,
        plot: Plot::Lines(series),
    }
}
