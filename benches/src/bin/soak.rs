//! The soak runner: millions of calls of every kind, from 1 to 2 000
//! callers at a time, with faults injected at known rates and the serving
//! restarted under load; every call's outcome and the serving's counters
//! are checked. Writes `docs/soak.md`.
//!
//! ```text
//! cargo run --release -p batch-serving-benches --bin soak                      # ≥ 2 min, ≥ 5 M calls
//! cargo run --release -p batch-serving-benches --bin soak -- --seconds 30 --calls 0 --out -
//! ```
//!
//! Flags: `--seconds` (default 120), `--calls` (at least this many, default
//! 5 000 000), `--max-callers` (2 000), `--restart-every` seconds (10),
//! `--out` (a markdown file, `-` for none). Exits 1 on any violation.
//! `--nats` runs the NATS soak instead (`--seconds`, default 60; writes
//! `docs/soak-nats.md`).

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use batch_serving_benches::report::table;
use batch_serving_benches::soak::{self, FaultRates, INJECTED_PANIC, Load, Outcome};

fn flag<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| {
            v.parse().unwrap_or_else(|_| {
                eprintln!("soak: {name} takes a number, got {v}");
                std::process::exit(2)
            })
        })
}

/// Resident memory, from /proc (0 where it is not available).
fn rss() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .unwrap_or(0);
    pages * 4096
}

fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn restarts_range(samples: &[u64]) -> String {
    let later: Vec<String> = samples
        .iter()
        .skip(1)
        .map(|b| format!("{:.1}", *b as f64 / 1048576.0))
        .collect();
    if later.is_empty() {
        "-".to_owned()
    } else {
        format!("{} MiB", later.join(", "))
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1048576.0)
}

/// Checks each serving's counters against what its batch function and its
/// callers saw; returns the rows of the table.
fn check_counters(outcome: &Outcome) -> Vec<Vec<String>> {
    // (counter, detail) for every check that failed, on any serving.
    let mut mismatches: Vec<(&'static str, String)> = Vec::new();
    let mut totals = [0u64; 7]; // the seven counters, in the table's order
    let mut dropped = 0;
    for (n, instance) in outcome.instances.iter().enumerate() {
        let stats = instance.serving.stats();
        let f = &instance.function;
        let exact = [
            ("batches", stats.batches, f.batches.load(Relaxed)),
            ("items", stats.items, f.items.load(Relaxed)),
            ("failed", stats.failed, f.failed.load(Relaxed)),
            ("panicked", stats.panicked, f.panicked.load(Relaxed)),
            ("expired", stats.expired, instance.expired.load(Relaxed)),
        ];
        for (name, theirs, ours) in exact {
            if theirs != ours {
                mismatches.push((
                    name,
                    format!("serving {n}: stats.{name} {theirs}, runner {ours}"),
                ));
            }
        }
        let overloaded = instance.overloaded.load(Relaxed);
        let closed = instance.closed.load(Relaxed);
        // `rejected` also counts calls refused as closed at admission;
        // the runner cannot tell those from calls failed as closed later.
        if stats.rejected < overloaded || stats.rejected > overloaded + closed {
            let bound = overloaded + closed;
            let detail = format!(
                "serving {n}: stats.rejected {} outside {overloaded}..={bound}",
                stats.rejected
            );
            mismatches.push(("rejected", detail));
        }
        // A dropped call whose last output landed just before the drop is
        // not cancelled; none can be cancelled without being dropped.
        let dropped_here = instance.dropped.load(Relaxed);
        if stats.cancelled > dropped_here {
            let detail = format!(
                "serving {n}: stats.cancelled {} > dropped {dropped_here}",
                stats.cancelled
            );
            mismatches.push(("cancelled", detail));
        }
        let counts = [
            stats.batches,
            stats.items,
            stats.failed,
            stats.panicked,
            stats.expired,
            stats.rejected,
            stats.cancelled,
        ];
        for (total, count) in totals.iter_mut().zip(counts) {
            *total += count;
        }
        dropped += dropped_here;
    }
    for (_, detail) in &mismatches {
        outcome
            .tally
            .violate("stats() disagrees with the runner", detail.clone());
    }
    let rows = [
        (
            "batches",
            "batches run",
            "= batch function invocations".to_owned(),
        ),
        ("items", "items run", "= items the function saw".to_owned()),
        (
            "failed",
            "failed batches",
            "= injected errors + wrong counts".to_owned(),
        ),
        (
            "panicked",
            "panicked batches",
            "= injected panics".to_owned(),
        ),
        (
            "expired",
            "expired calls",
            "= DeadlineExceeded answers".to_owned(),
        ),
        (
            "rejected",
            "rejected calls",
            "between Overloaded and Overloaded + Closed answers".to_owned(),
        ),
        (
            "cancelled",
            "cancelled calls",
            format!("≤ {dropped} dropped by the runner"),
        ),
    ];
    rows.into_iter()
        .zip(totals)
        .map(|((counter, label, rule), total)| {
            let holds = !mismatches.iter().any(|(c, _)| *c == counter);
            let check = if holds { "holds" } else { "**broken**" };
            vec![label.to_owned(), total.to_string(), rule, check.to_owned()]
        })
        .collect()
}

/// `--nats`: the NATS soak (three nodes, several clients, node cuts and
/// NATS restarts) instead of the in-process one; writes `docs/soak-nats.md`.
fn nats_soak(args: &[String]) {
    let seconds: f64 = flag(args, "--seconds", 60.0);
    let out: String = flag(args, "--out", "docs/soak-nats.md".to_owned());
    let Some(binary) = batch_serving_benches::nats_server::binary() else {
        eprintln!("soak: no nats-server (run `source scripts/nats-server.sh && nats_server`)");
        std::process::exit(1);
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("cannot build the runtime: {e}"));
    let outcome = match runtime.block_on(soak::nats::run(&binary, seconds, 3, 64)) {
        Ok(outcome) => outcome,
        Err(e) => {
            eprintln!("soak: {e}");
            std::process::exit(1);
        }
    };
    let list = |m: &std::collections::BTreeMap<&str, u64>| {
        if m.is_empty() {
            "0".to_owned()
        } else {
            m.iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let rows = vec![
        vec!["calls".into(), outcome.calls.to_string()],
        vec![
            "answered with their own outputs".into(),
            outcome.ok.to_string(),
        ],
        vec![
            "failed, explained by an injected fault".into(),
            list(&outcome.explained),
        ],
        vec!["**failed, unexplained**".into(), list(&outcome.unexplained)],
        vec![
            "**misrouted** (a reply not the call's own)".into(),
            outcome.misrouted.to_string(),
        ],
        vec![
            "**ran twice** (items, non-idempotent handles)".into(),
            outcome.ran_twice.to_string(),
        ],
        vec![
            "**hung** (past deadline + 5 s)".into(),
            outcome.hung.to_string(),
        ],
        vec![
            "items run by the nodes".into(),
            outcome.items_run.to_string(),
        ],
        vec![
            "nodes cut off and replaced".into(),
            outcome.node_cuts.to_string(),
        ],
        vec![
            "NATS server restarts".into(),
            outcome.nats_restarts.to_string(),
        ],
    ];
    let doc = format!(
        "# NATS soak\n\n<!-- Written by `cargo run --release -p batch-serving-benches --bin soak -- --nats --seconds {seconds}`. Do not edit by hand. -->\n\n\
         {:.0} s through a real nats-server on loopback: three nodes (async stand-in, 1 ms + 10 µs per item, batches of 32, eager), \
         three calling clients with 64 callers each (one call in four carries 2–5 items; deadline 2 s, silence limit 0.8 s), \
         each coalescing its calls to a node into one message (the default), so that cuts and restarts land mid-message. \
         Every 4 s one node's connection is closed mid-call and a fresh node joins; every 11 s the server is killed and restarted. \
         An error is explained when it is of a kind a lost node or connection gives and it ends within 5 s after a fault.\n\n{}\n\
         Violations: {}.\n",
        outcome.seconds,
        table(&["", "count"], &rows),
        outcome.violations()
    );
    println!("{doc}");
    if out != "-"
        && let Err(e) = std::fs::write(&out, &doc)
    {
        eprintln!("cannot write {out}: {e}");
        std::process::exit(1);
    }
    if outcome.violations() > 0 {
        std::process::exit(1);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--nats") {
        nats_soak(&args);
        return;
    }
    let load = Load {
        duration: Duration::from_secs(flag(&args, "--seconds", 120)),
        min_calls: flag(&args, "--calls", 5_000_000),
        max_callers: flag(&args, "--max-callers", 2000),
        restart_every: Duration::from_secs(flag(&args, "--restart-every", 10)),
        faults: FaultRates {
            error: 0.002,
            panic: 0.001,
            wrong_count: 0.001,
            slow: 0.003,
        },
    };
    let out: String = flag(&args, "--out", "docs/soak.md".to_owned());
    // Injected panics are expected; any other panic still prints.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() != Some(&INJECTED_PANIC) {
            default_hook(info);
        }
    }));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("cannot build the runtime: {e}"));
    let rss_before = rss();
    eprintln!("soak: {load:?}");
    let outcome = runtime.block_on(soak::run(load.clone(), rss));
    let rss_after = rss();
    let counters = check_counters(&outcome);
    let t = &outcome.tally;
    let faults: (u64, u64) = outcome.instances.iter().fold((0, 0), |(f, p), i| {
        (
            f + i.function.failed.load(Relaxed),
            p + i.function.panicked.load(Relaxed),
        )
    });
    let violations = t.violation_count.load(Relaxed);
    let calls = t.calls.load(Relaxed);
    let mut doc = format!(
        "# Soak\n\n<!-- Written by `cargo run --release -p batch-serving-benches --bin soak{}`. Do not edit by hand. -->\n\n\
         {:.0} s, {} calls ({:.0}/s) carrying {} items, from 1 to {} callers at a time; {} servings (restarted under load every {} s).\n\
         Calls were 50% `dispatch`, 15% `dispatch_many` of 2-100 items (split past `batch_size` 32), 10% streaming of 2-64 items, \
         10% `try_dispatch`, 8% `dispatch_with` a 0-3 ms deadline, 7% `dispatch_many` dropped after 0-3 ms; every item is keyed (4 keys). \
         Of all calls, 0.2% make their batches fail, 0.1% panic, 0.1% return one output too few and 0.3% run 1-3 ms slow.\n\n",
        if args.is_empty() {
            String::new()
        } else {
            format!(" -- {}", args.join(" "))
        },
        outcome.elapsed.as_secs_f64(),
        calls,
        calls as f64 / outcome.elapsed.as_secs_f64(),
        t.items.load(Relaxed),
        load.max_callers,
        outcome.instances.len(),
        load.restart_every.as_secs(),
    );
    let n = |a: &std::sync::atomic::AtomicU64| a.load(Relaxed).to_string();
    doc.push_str("## Outcomes\n\n");
    doc.push_str(&table(
        &["outcome", "calls"],
        &[
            vec!["answered with their own outputs, in order".into(), n(&t.ok)],
            vec![
                "failed by an injected fault of a batch they were in".into(),
                n(&t.faulted),
            ],
            vec!["dropped by the caller mid-flight".into(), n(&t.dropped)],
            vec!["DeadlineExceeded".into(), n(&t.expired)],
            vec!["Overloaded (try_dispatch)".into(), n(&t.overloaded)],
            vec![
                "Closed (their serving was shutting down)".into(),
                n(&t.closed),
            ],
            vec!["**violations**".into(), violations.to_string()],
        ],
    ));
    doc.push_str(&format!(
        "\nBatches that failed by injection: {} errors or wrong counts, {} panics. \
         Items that ran after their caller left (claimed into a batch before it left, which is allowed): {}.\n\n",
        faults.0, faults.1, n(&t.ran_after_leaving)
    ));
    doc.push_str("## `stats()` against the runner's own counts\n\n");
    doc.push_str(&table(&["counter", "total", "must be", "check"], &counters));
    doc.push_str("\n## Memory\n\n");
    doc.push_str(&table(
        &["resident memory", ""],
        &[
            vec!["at start".into(), mib(rss_before)],
            vec![
                "after the first restart (warm-up)".into(),
                outcome
                    .rss_at_restarts
                    .first()
                    .map_or("-".into(), |b| mib(*b)),
            ],
            vec![
                "after each later restart, in order".into(),
                restarts_range(&outcome.rss_at_restarts),
            ],
            vec!["at the end, every serving shut down".into(), mib(rss_after)],
            vec!["peak".into(), mib(peak_rss())],
        ],
    ));
    let kept = t
        .violations
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !kept.is_empty() {
        doc.push_str("\n## Violations (first of each kind)\n\n");
        for v in kept.iter() {
            doc.push_str(&format!("- {}: {}\n", v.kind, v.detail));
        }
    }
    println!("{doc}");
    if out != "-" {
        if let Err(e) = std::fs::write(&out, &doc) {
            eprintln!("cannot write {out}: {e}");
            std::process::exit(1);
        }
        println!("wrote {out}");
    }
    let total_violations = t.violation_count.load(Relaxed);
    println!("soak: {calls} calls, {total_violations} violations");
    if total_violations > 0 {
        std::process::exit(1);
    }
}
