//! S7: batching to a latency target under open-loop load. The adaptive
//! policy against eager, the best fixed timeout configuration at each load
//! (chosen with hindsight), the "±4 rule" and a BentoML-style dispatcher.

use std::sync::Arc;
use std::time::Duration;

use batch_serving::Policy;
use batch_serving_examples::chart::{Axis, Panel, Plot, Series};
use tokio::runtime::Runtime;

use crate::compare::common::{Options, Section, verdict};
use crate::contenders::{self, Contender, Setup};
use crate::open_loop::{self, OpenLoop, Trace};
use crate::report::table;
use crate::workload::Cost;

/// The S7 function: a busy spin of 1 ms + 60 µs per item.
pub const S7_COST: Cost = Cost::Spin {
    fixed: Duration::from_millis(1),
    per_item: Duration::from_micros(60),
};
/// The batch cap.
pub const S7_CAP: usize = 32;
/// The latency target, arrival to answer.
pub const S7_TARGET: Duration = Duration::from_millis(20);

/// Calls per second one partition answers in full batches.
pub fn s7_capacity() -> f64 {
    S7_CAP as f64 / S7_COST.batch_time(S7_CAP).as_secs_f64()
}

/// The fixed timeout configurations the oracle picks from.
const GRID: [(usize, u64); 6] = [(16, 1), (16, 2), (16, 4), (32, 1), (32, 2), (32, 4)];

/// A contender of S7.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Entry {
    Adaptive,
    Eager,
    StepRule,
    BentoStyle,
    /// One of the grid, for the oracle.
    Fixed {
        batch_size: usize,
        wait_ms: u64,
    },
}

impl Entry {
    const SHOWN: [Entry; 4] = [
        Entry::Adaptive,
        Entry::Eager,
        Entry::StepRule,
        Entry::BentoStyle,
    ];

    fn name(self) -> String {
        match self {
            Entry::Adaptive => "batch-serving (adaptive, target 20 ms)".to_owned(),
            Entry::Eager => "batch-serving (eager)".to_owned(),
            Entry::StepRule => "±4 rule (timeout 2 ms)".to_owned(),
            Entry::BentoStyle => "BentoML-style".to_owned(),
            Entry::Fixed {
                batch_size,
                wait_ms,
            } => format!("oracle: timeout, batch_size {batch_size}, {wait_ms} ms"),
        }
    }

    fn start(self) -> Result<Arc<dyn Contender>, String> {
        let setup = |batch_size: usize, wait: Duration| Setup {
            batch_size,
            max_wait: wait,
            cost: S7_COST,
        };
        let two_ms = Duration::from_millis(2);
        match self {
            Entry::Adaptive => contenders::serving(
                setup(S7_CAP, two_ms),
                Policy::Adaptive { target: S7_TARGET },
            ),
            Entry::Eager => contenders::serving(setup(S7_CAP, two_ms), Policy::Eager),
            Entry::StepRule => Ok(contenders::step_rule(setup(S7_CAP, two_ms), S7_TARGET)),
            Entry::BentoStyle => Ok(contenders::bento_style(setup(S7_CAP, two_ms), S7_TARGET)),
            Entry::Fixed {
                batch_size,
                wait_ms,
            } => contenders::serving(
                setup(batch_size, Duration::from_millis(wait_ms)),
                Policy::Timeout,
            ),
        }
    }
}

/// One load: its name, its share of capacity, and its trace.
struct Load {
    name: String,
    share: f64,
    trace: Trace,
}

fn loads(span: Duration) -> Vec<Load> {
    let capacity = s7_capacity();
    let mut loads: Vec<Load> = [0.3, 0.7, 0.9, 1.2, 2.0]
        .into_iter()
        .enumerate()
        .map(|(i, share)| Load {
            name: format!("Poisson {share}×"),
            share,
            trace: open_loop::poisson(share * capacity, span, 70 + i as u64),
        })
        .collect();
    loads.push(Load {
        name: "bursts 0.7×".to_owned(),
        share: 0.7,
        trace: open_loop::bursty(0.7 * capacity, span, 77),
    });
    loads
}

/// Each load's runs: the shown contenders, then the oracle's pick.
struct Measured {
    load: Load,
    shown: Vec<(Entry, OpenLoop)>,
    oracle: (Entry, OpenLoop),
}

/// Runs S7 and returns its section.
pub fn run(rt: &Runtime, options: &Options) -> Section {
    let span = if options.quick {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(2)
    };
    let measured: Vec<Measured> = loads(span)
        .into_iter()
        .map(|load| rt.block_on(measure(load, span)))
        .collect();
    let capacity = s7_capacity();
    let mut doc = format!(
        "\n## S7: a latency target under open-loop load\n\n\
         A busy spin of 1 ms + 60 µs per item, batches of at most {S7_CAP}, one partition: {capacity:.0} calls/s at full batches (the capacity below). \
         Calls arrive on a seeded trace whatever the contender does, Poisson at a share of capacity or in bursts (10 ms at 3× then 40 ms at 0.5× the mean), for {:.1} s each, released on tokio's 1 ms timer tick. \
         A call is on time when answered correctly within {} ms of its start; goodput is on-time calls per second; attainment is on-time calls over calls offered. \
         The oracle is the best of {} fixed timeout configurations at each load by goodput, chosen with hindsight. \
         The ±4 rule and the BentoML-style dispatcher are written in the bench from their published descriptions (`benches/src/contenders/step_rule.rs`, `bento_style.rs`); each runs the function on a thread of its own. One run per cell.\n\n",
        span.as_secs_f64(),
        S7_TARGET.as_millis(),
        GRID.len(),
    );
    let mut rows = Vec::new();
    for m in &measured {
        for (entry, result) in m.shown.iter().chain(std::iter::once(&m.oracle)) {
            rows.push(row(&m.load.name, *entry, result));
        }
    }
    doc.push_str(&table(
        &[
            "load",
            "contender",
            "p50 ms",
            "p99 ms",
            "attainment",
            "goodput /s",
            "refused",
            "late",
            "mean batch",
            "checks",
        ],
        &rows,
    ));
    let targets = targets(&measured, capacity);
    let charts = vec![("s7".to_owned(), vec![goodput_chart(&measured)])];
    Section {
        markdown: doc,
        targets,
        charts,
    }
}

async fn measure(load: Load, span: Duration) -> Measured {
    let mut shown = Vec::new();
    for entry in Entry::SHOWN {
        shown.push((entry, offer(entry, &load, span).await));
    }
    let mut oracle: Option<(Entry, OpenLoop)> = None;
    for (batch_size, wait_ms) in GRID {
        let entry = Entry::Fixed {
            batch_size,
            wait_ms,
        };
        let result = offer(entry, &load, span).await;
        if oracle
            .as_ref()
            .is_none_or(|(_, best)| result.goodput > best.goodput)
        {
            oracle = Some((entry, result));
        }
    }
    Measured {
        load,
        shown,
        oracle: oracle.unwrap_or((Entry::Eager, OpenLoop::default())),
    }
}

async fn offer(entry: Entry, load: &Load, span: Duration) -> OpenLoop {
    let contender = match entry.start() {
        Ok(contender) => contender,
        Err(e) => {
            eprintln!("S7 {}: cannot start: {e}", entry.name());
            return OpenLoop::default();
        }
    };
    let result = open_loop::run(contender, &load.trace, span, S7_TARGET, S7_CAP).await;
    eprintln!(
        "S7 {} {}: goodput {:.0}/s, attainment {:.4}, p99 {:?}",
        load.name,
        entry.name(),
        result.goodput,
        result.attainment(),
        result.p99
    );
    result
}

fn row(load: &str, entry: Entry, r: &OpenLoop) -> Vec<String> {
    let ms = |d: Duration| format!("{:.2}", d.as_secs_f64() * 1e3);
    let bad = r.wrong + r.batches.empty + r.batches.oversized;
    vec![
        load.to_owned(),
        entry.name(),
        ms(r.p50),
        ms(r.p99),
        format!("{:.2}%", r.attainment() * 100.0),
        format!("{:.0}", r.goodput),
        r.refused.to_string(),
        r.late.to_string(),
        format!(
            "{:.1}",
            r.batches.items as f64 / r.batches.batches.max(1) as f64
        ),
        if bad == 0 {
            "ok".to_owned()
        } else {
            format!("{bad} bad")
        },
    ]
}

/// Goodputs within this share of the offered rate count as level: at
/// loads every contender serves in full, goodput is the arrival rate for
/// all of them, and what separates them there is the clock, not the policy.
const LEVEL: f64 = 0.01;

fn targets(measured: &[Measured], capacity: f64) -> String {
    let mut targets = String::new();
    for m in measured {
        let ours = &m.shown[0].1;
        let offered = m.load.trace.len() as f64
            / m.load
                .trace
                .last()
                .map_or(1.0, |d| d.as_secs_f64().max(1e-9));
        let (best_other, best_other_goodput) = m.shown[1..]
            .iter()
            .map(|(e, r)| (*e, r.goodput))
            .fold((Entry::Eager, 0.0f64), |best, next| {
                if next.1 > best.1 { next } else { best }
            });
        let level = ours.goodput + LEVEL * offered >= best_other_goodput;
        targets.push_str(&format!(
            "| S7 {} adaptive goodput ≥ every other contender's (level within 1% of the offered rate) | {:.0} against {:.0} ({}) | {} |\n",
            m.load.name,
            ours.goodput,
            best_other_goodput,
            best_other.name(),
            if level { "met" } else { "**missed**" },
        ));
        let oracle = &m.oracle.1;
        let ratio = ours.goodput / oracle.goodput.max(1.0);
        targets.push_str(&verdict(
            &format!("S7 {} adaptive goodput ≥ 0.95× the oracle's", m.load.name),
            ratio,
            0.95,
            format!("{ratio:.3}× ({})", m.oracle.0.name()),
        ));
        if oracle.attainment() >= 0.99 {
            targets.push_str(&verdict(
                &format!(
                    "S7 {} adaptive attainment ≥ 99% (the oracle reaches it)",
                    m.load.name
                ),
                ours.attainment(),
                0.99,
                format!("{:.2}%", ours.attainment() * 100.0),
            ));
        }
        if (m.load.share - 2.0).abs() < 1e-9 {
            let share = ours.goodput / capacity;
            targets.push_str(&verdict(
                "S7 Poisson 2.0× adaptive goodput ≥ 0.9× capacity",
                share,
                0.9,
                format!("{share:.3}× of {capacity:.0}/s"),
            ));
        }
    }
    targets
}

fn goodput_chart(measured: &[Measured]) -> Panel {
    let poisson: Vec<&Measured> = measured
        .iter()
        .filter(|m| m.load.name.starts_with("Poisson"))
        .collect();
    let mut series: Vec<Series> = Entry::SHOWN
        .iter()
        .enumerate()
        .map(|(i, entry)| Series {
            name: entry.name(),
            points: poisson
                .iter()
                .map(|m| (m.load.share, m.shown[i].1.goodput))
                .collect(),
        })
        .collect();
    series.push(Series {
        name: "oracle (best fixed timeout)".to_owned(),
        points: poisson
            .iter()
            .map(|m| (m.load.share, m.oracle.1.goodput))
            .collect(),
    });
    Panel {
        title: "S7: goodput within 20 ms against offered load".to_owned(),
        x: Axis::linear("offered load (share of capacity)"),
        y: Axis::linear("on-time calls/s"),
        plot: Plot::Lines(series),
    }
}
